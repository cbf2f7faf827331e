package agent

import (
	"context"
	"fmt"
	"math"

	"github.com/usersim/usersim/dataset"
)

// Mode says which answer a Predictor reports.
type Mode int

const (
	// Expected reports the distribution's expected value.
	Expected Mode = iota
	// Argmax reports the distribution's most probable value.
	Argmax
	// Generated reports the strictly parsed free generation (NaN when
	// invalid, counted by URR).
	Generated
)

func (m Mode) String() string {
	switch m {
	case Expected:
		return "expected"
	case Argmax:
		return "argmax"
	case Generated:
		return "generated"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Predictor adapts a Pool to eval.Predictor and eval.BatchPredictor. Fit
// trains nothing (the adapters are trained beforehand); it only checks that
// the dataset is the pool's. Predict answers NaN when the agent gives no
// valid answer, or on an error (logged into Err).
type Predictor struct {
	Pool  *Pool
	Mode  Mode
	Label string // Name; default "agent-" + Mode
	// Batch is the number of pairs scored per backend call (0: 64).
	Batch int

	d   *dataset.Dataset
	err error
}

// Name implements eval.Predictor.
func (p *Predictor) Name() string {
	if p.Label != "" {
		return p.Label
	}
	return "agent-" + p.Mode.String()
}

// Fit implements eval.Predictor.
func (p *Predictor) Fit(_ context.Context, d *dataset.Dataset, _ []int32) error {
	if p.Pool == nil {
		return fmt.Errorf("agent: predictor %s has no pool", p.Name())
	}
	if d != p.Pool.in.Dataset {
		return fmt.Errorf("agent: predictor %s: Fit with a dataset other than the pool's", p.Name())
	}
	p.d = d
	return nil
}

// Err returns the first error Predict met (Predict itself can only answer
// NaN).
func (p *Predictor) Err() error { return p.err }

// Predict implements eval.Predictor.
func (p *Predictor) Predict(user, item int32) float64 {
	out := []float64{0}
	if err := p.PredictBatch(context.Background(), []int32{user}, []int32{item}, out); err != nil {
		if p.err == nil {
			p.err = err
		}
		return math.NaN()
	}
	return out[0]
}

// PredictBatch implements eval.BatchPredictor: the prompts of many users
// (and adapters) are scored together, Batch at a time.
func (p *Predictor) PredictBatch(ctx context.Context, users, items []int32, out []float64) error {
	d := p.Pool.in.Dataset
	if len(users) != len(items) || len(out) != len(users) {
		return fmt.Errorf("agent: predict batch: %d users, %d items, %d outputs", len(users), len(items), len(out))
	}
	nb := cmpOr(p.Batch, 64)
	for lo := 0; lo < len(users); lo += nb {
		hi := min(lo+nb, len(users))
		agents := make([]*Agent, hi-lo)
		ids := make([]string, hi-lo)
		for k := lo; k < hi; k++ {
			u, i := users[k], items[k]
			if u < 0 || int(u) >= len(d.Users) || i < 0 || int(i) >= len(d.Items) {
				return fmt.Errorf("agent: predict: user %d or item %d out of range", u, i)
			}
			a, err := p.Pool.Agent(d.Users[u].ID)
			if err != nil {
				return err
			}
			agents[k-lo], ids[k-lo] = a, d.Items[i].ID
		}
		if p.Mode == Generated {
			for k, a := range agents {
				r, err := a.RateGenerate(ctx, ids[k])
				if err != nil {
					return err
				}
				out[lo+k] = r.Expected
			}
			continue
		}
		ps := make([]Prompt, len(agents))
		for k, a := range agents {
			pr, err := a.RatingPrompt(ids[k])
			if err != nil {
				return err
			}
			ps[k] = pr
		}
		rs, err := p.Pool.scorePrompts(ctx, ps)
		if err != nil {
			return err
		}
		for k, r := range rs {
			switch {
			case !r.Valid:
				out[lo+k] = math.NaN()
			case p.Mode == Argmax:
				out[lo+k] = r.Argmax
			default:
				out[lo+k] = r.Expected
			}
		}
	}
	return nil
}
