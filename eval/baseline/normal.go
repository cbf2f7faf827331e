package baseline

import (
	"context"
	"fmt"
	"math"

	"github.com/usersim/usersim/dataset"
)

// Normal predicts a random rating drawn from N(μ, σ²), μ and σ the mean and
// (maximum-likelihood) standard deviation of the training ratings, as
// Surprise's NormalPredictor; draws are clamped to the scale. It is the
// floor every model must beat. The draw for a pair is a pure function of
// (Seed, user, item), so predictions are deterministic and do not depend on
// the order they are asked in.
type Normal struct {
	Seed int64

	mu, sigma float64
	scale     dataset.Scale
	ok        bool
}

// NewNormal returns an unfitted normal predictor.
func NewNormal(seed int64) *Normal { return &Normal{Seed: seed} }

// Name returns "normal".
func (m *Normal) Name() string { return "normal" }

// Fit estimates μ and σ from the training ratings.
func (m *Normal) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	t, err := newTrainSet(d, train)
	if err != nil {
		return fmt.Errorf("normal: %w", err)
	}
	var ss float64
	for _, v := range t.uVal {
		x := float64(v) - t.mean
		ss += x * x
	}
	m.mu, m.sigma, m.scale, m.ok = t.mean, math.Sqrt(ss/float64(len(t.uVal))), t.scale, true
	return nil
}

// Predict returns the pair's draw from N(μ, σ²), clamped to the scale.
func (m *Normal) Predict(user, item int32) float64 {
	if !m.ok {
		return math.NaN()
	}
	h := splitmix(uint64(m.Seed) ^ splitmix(uint64(uint32(user))<<32|uint64(uint32(item))))
	u1 := (float64(h>>11) + 0.5) / (1 << 53) // (0, 1)
	u2 := float64(splitmix(h)>>11) / (1 << 53)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
	return clampTo(m.scale, m.mu+m.sigma*z)
}

// splitmix is the SplitMix64 finaliser: a bijective 64-bit mix.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
