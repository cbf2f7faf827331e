package baseline

import (
	"context"
	"fmt"
	"math"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/pcg"
)

// OutOfFold wraps a baseline so that its estimate of a training rating
// never comes from a model that saw that rating. Fit splits the training
// rows into Folds random folds and fits one model per fold on the other
// folds, plus one model on every row. Predict answers a training pair
// (user, item) from the model that left its fold out, and any other pair
// from the model fitted on every row.
//
// This is the collaborative anchor of usersim's default agent: its
// training prompts carry the anchor of their own target rating, so an
// in-sample estimate would teach the agent to copy a number that already
// knows the answer, and the agent would trust it more than it deserves on
// the test rows.
type OutOfFold struct {
	// New makes a fresh, unfitted baseline (one per fold and one for all
	// rows).
	New func() Predictor
	// Folds is the number of folds; default 5.
	Folds int
	// Seed drives the fold assignment.
	Seed int64

	name   string
	d      *dataset.Dataset
	full   Predictor
	folds  []Predictor
	foldOf map[int64]int // user<<32|item → fold of a training pair
}

// NewOutOfFold wraps the baseline that New makes.
func NewOutOfFold(newFn func() Predictor, folds int, seed int64) *OutOfFold {
	return &OutOfFold{New: newFn, Folds: folds, Seed: seed}
}

// Name returns "oof-" and the wrapped baseline's name.
func (o *OutOfFold) Name() string {
	if o.name == "" && o.New != nil {
		o.name = "oof-" + o.New().Name()
	}
	return o.name
}

// Fit fits the per-fold models and the model on every row.
func (o *OutOfFold) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	if o.New == nil {
		return fmt.Errorf("out-of-fold: no baseline constructor")
	}
	k := o.Folds
	if k == 0 {
		k = 5
	}
	if k < 2 {
		return fmt.Errorf("out-of-fold %s: %d folds, want at least 2", o.Name(), k)
	}
	if len(train) < k {
		return fmt.Errorf("out-of-fold %s: %d training rows for %d folds", o.Name(), len(train), k)
	}
	// A seeded shuffle dealt round-robin: fold sizes differ by at most one.
	perm := make([]int, len(train))
	for i := range perm {
		perm[i] = i
	}
	src := pcg.New(o.Seed, 0x6f6f66)
	for i := len(perm) - 1; i > 0; i-- {
		j := pcg.Intn(src, i+1)
		perm[i], perm[j] = perm[j], perm[i]
	}
	fold := make([]int, len(train))
	for n, i := range perm {
		fold[i] = n % k
	}
	r := &d.Ratings
	o.foldOf = make(map[int64]int, len(train))
	for n, row := range train {
		o.foldOf[pairKey(r.User[row], r.Item[row])] = fold[n]
	}
	o.folds = make([]Predictor, k)
	rest := make([]int32, 0, len(train))
	for f := range k {
		if err := ctx.Err(); err != nil {
			return err
		}
		rest = rest[:0]
		for n, row := range train {
			if fold[n] != f {
				rest = append(rest, row)
			}
		}
		p := o.New()
		if err := p.Fit(ctx, d, rest); err != nil {
			return fmt.Errorf("out-of-fold %s: fold %d: %w", o.Name(), f, err)
		}
		o.folds[f] = p
	}
	o.full = o.New()
	if err := o.full.Fit(ctx, d, train); err != nil {
		return fmt.Errorf("out-of-fold %s: all rows: %w", o.Name(), err)
	}
	o.d = d
	return nil
}

// Predict returns the out-of-fold estimate of a training pair and the
// all-rows estimate of any other pair; NaN before Fit.
func (o *OutOfFold) Predict(user, item int32) float64 {
	if o.full == nil {
		return math.NaN()
	}
	if f, ok := o.foldOf[pairKey(user, item)]; ok {
		return o.folds[f].Predict(user, item)
	}
	return o.full.Predict(user, item)
}

// Full returns the model fitted on every training row (nil before Fit).
func (o *OutOfFold) Full() Predictor { return o.full }

func pairKey(u, i int32) int64 { return int64(u)<<32 | int64(uint32(i)) }
