package baseline

import (
	"context"
	"fmt"
	"math"

	"github.com/usersim/usersim/dataset"
)

// Bias is the regularised baseline estimate r̂ = μ + b_u + b_i, fitted by
// alternating least squares as Surprise's BaselineOnly with method "als":
// each epoch first sets every item bias to Σ(r − μ − b_u)/(RegI + |U_i|),
// then every user bias to Σ(r − μ − b_i)/(RegU + |I_u|).
type Bias struct {
	Epochs int     // ALS sweeps; default 10
	RegU   float64 // user-bias regulariser; default 15
	RegI   float64 // item-bias regulariser; default 10

	b baselines
}

// NewBias returns a bias baseline with Surprise's defaults.
func NewBias() *Bias { return &Bias{Epochs: 10, RegU: 15, RegI: 10} }

// Name returns "bias".
func (b *Bias) Name() string { return "bias" }

// Fit learns the biases from the training rows.
func (b *Bias) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	t, err := newTrainSet(d, train)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Name(), err)
	}
	bl, err := fitBaselinesALS(ctx, t, b.Epochs, b.RegU, b.RegI)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Name(), err)
	}
	b.b = bl
	return nil
}

// Predict returns μ + b_u + b_i clamped to the scale; an unknown user or
// item contributes no bias.
func (b *Bias) Predict(user, item int32) float64 {
	if b.b.t == nil {
		return math.NaN()
	}
	return clampTo(b.b.t.scale, b.b.estimate(user, item))
}

// UserBias returns the fitted bias of user u (0 when unknown).
func (b *Bias) UserBias(u int32) float64 { return b.b.userBias(u) }

// ItemBias returns the fitted bias of item i (0 when unknown).
func (b *Bias) ItemBias(i int32) float64 { return b.b.itemBias(i) }

// Mean returns the global mean of the training ratings.
func (b *Bias) Mean() float64 {
	if b.b.t == nil {
		return math.NaN()
	}
	return b.b.t.mean
}

// baselines holds fitted user and item biases over a training set.
type baselines struct {
	t      *trainSet
	bu, bi []float64
}

func (b *baselines) userBias(u int32) float64 {
	if b.t == nil || u < 0 || int(u) >= len(b.bu) {
		return 0
	}
	return b.bu[u]
}

func (b *baselines) itemBias(i int32) float64 {
	if b.t == nil || i < 0 || int(i) >= len(b.bi) {
		return 0
	}
	return b.bi[i]
}

func (b *baselines) estimate(u, i int32) float64 {
	return b.t.mean + b.userBias(u) + b.itemBias(i)
}

// fitBaselinesALS runs Surprise's baseline_als.
func fitBaselinesALS(ctx context.Context, t *trainSet, epochs int, regU, regI float64) (baselines, error) {
	if epochs < 0 || regU < 0 || regI < 0 {
		return baselines{}, fmt.Errorf("invalid ALS settings: epochs %d, reg_u %g, reg_i %g", epochs, regU, regI)
	}
	bu := make([]float64, t.nUsers)
	bi := make([]float64, t.nItems)
	mu := t.mean
	for ep := range epochs {
		if err := checkCtx(ctx, "als", ep); err != nil {
			return baselines{}, err
		}
		for i := range t.nItems {
			var dev float64
			lo, hi := t.iPtr[i], t.iPtr[i+1]
			if lo == hi {
				continue // unknown item: bias stays 0
			}
			for q := lo; q < hi; q++ {
				dev += float64(t.uVal[t.iRow[q]]) - mu - bu[t.iUser[q]]
			}
			bi[i] = dev / (regI + float64(hi-lo))
		}
		for u := range t.nUsers {
			var dev float64
			lo, hi := t.uPtr[u], t.uPtr[u+1]
			if lo == hi {
				continue
			}
			for p := lo; p < hi; p++ {
				dev += float64(t.uVal[p]) - mu - bi[t.uItem[p]]
			}
			bu[u] = dev / (regU + float64(hi-lo))
		}
	}
	return baselines{t: t, bu: bu, bi: bi}, nil
}
