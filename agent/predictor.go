package agent

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/train/raft"
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
	// Keep makes PredictBatch keep every Rating it reads, in call order
	// (see Kept): the whole distribution behind each answer, for
	// diagnostics such as the argmax error or the prediction spread.
	Keep bool

	d     *dataset.Dataset
	errMu sync.Mutex
	err   error
	kept  []Rating
}

// Kept returns the Ratings PredictBatch read since the last Fit, in the
// order of the pairs asked (only with Keep; not for mode Generated).
func (p *Predictor) Kept() []Rating {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.kept
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
	p.errMu.Lock()
	p.kept = nil
	p.errMu.Unlock()
	return nil
}

// Err returns the first error Predict met (Predict itself can only answer
// NaN).
func (p *Predictor) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// Predict implements eval.Predictor.
func (p *Predictor) Predict(user, item int32) float64 {
	out := []float64{0}
	if err := p.PredictBatch(context.Background(), []int32{user}, []int32{item}, out); err != nil {
		p.errMu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.errMu.Unlock()
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
			out[lo+k] = r.Value(p.Mode)
		}
		if p.Keep {
			p.errMu.Lock()
			p.kept = append(p.kept, rs...)
			p.errMu.Unlock()
		}
	}
	return nil
}

// RateExamples rates prompts built elsewhere — raft's Builder.Queries over
// a split's test rows — with the pool's backend, chat template and
// adapters (each example's user and persona pick the adapter), batch at a
// time (0: 64). The examples carry their own retrieved memory, so the
// agents' remembered interactions do not enter. With mode Generated the
// answers are generated and parsed strictly instead.
func (p *Pool) RateExamples(ctx context.Context, exs []raft.Example, mode Mode, batch int) ([]Rating, error) {
	ps := make([]Prompt, len(exs))
	for k, ex := range exs {
		adapter := ""
		if p.cfg.Adapter != nil {
			adapter = p.cfg.Adapter(ex.User, ex.Persona)
		}
		pr, err := p.render(adapter, ex.Messages, ex.Prompt)
		if err != nil {
			return nil, fmt.Errorf("agent: example %d (user %q, item %q): %w", k, ex.User, ex.Item, err)
		}
		ps[k] = pr
	}
	out := make([]Rating, 0, len(exs))
	if mode == Generated {
		for _, pr := range ps {
			text, err := p.backend.Generate(ctx, pr, GenerateOptions{MaxTokens: cmpOr(p.cfg.GenerateTokens, DefaultGenerateTokens)})
			if err != nil {
				return nil, err
			}
			out = append(out, p.parsed(text))
		}
		return out, nil
	}
	nb := cmpOr(batch, 64)
	for lo := 0; lo < len(ps); lo += nb {
		rs, err := p.scorePrompts(ctx, ps[lo:min(lo+nb, len(ps))])
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// PredictRows answers the given rating rows of the dataset (a split's test
// rows) through raft's Builder.Queries: the rating the mode reads, NaN for
// an invalid answer, with the Ratings behind them.
func (p *Pool) PredictRows(ctx context.Context, rows []int32, mode Mode) ([]float64, []Rating, error) {
	exs, err := p.b.Queries(ctx, rows)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	rs, err := p.RateExamples(ctx, exs, mode, 0)
	if err != nil {
		return nil, nil, err
	}
	pred := make([]float64, len(rs))
	for k, r := range rs {
		pred[k] = r.Value(mode)
	}
	return pred, rs, nil
}

// Value is the rating a mode reads: Argmax for Argmax, Expected otherwise
// (a generated answer's Expected is the parsed value); NaN when invalid.
func (r Rating) Value(mode Mode) float64 {
	switch {
	case !r.Valid:
		return math.NaN()
	case mode == Argmax:
		return r.Argmax
	}
	return r.Expected
}
