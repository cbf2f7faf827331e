package baseline

import (
	"context"
	"math"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// rowCounter predicts, for any pair, how many training rows it was fitted
// on, and NaN for a pair it saw: a probe of which model answered.
type rowCounter struct {
	n    int
	seen map[int64]bool
	d    *dataset.Dataset
}

func (c *rowCounter) Name() string { return "count" }
func (c *rowCounter) Fit(_ context.Context, d *dataset.Dataset, train []int32) error {
	c.n, c.d, c.seen = len(train), d, map[int64]bool{}
	for _, row := range train {
		c.seen[pairKey(d.Ratings.User[row], d.Ratings.Item[row])] = true
	}
	return nil
}
func (c *rowCounter) Predict(u, i int32) float64 {
	if c.seen[pairKey(u, i)] {
		return math.NaN()
	}
	return float64(c.n)
}

func TestOutOfFoldNeverSeesItsRow(t *testing.T) {
	d := smallDataset(t)
	var train, test []int32
	for row := range int32(d.Ratings.Len()) {
		if row%4 == 0 {
			test = append(test, row)
		} else {
			train = append(train, row)
		}
	}
	o := NewOutOfFold(func() Predictor { return &rowCounter{} }, 5, 7)
	if err := o.Fit(context.Background(), d, train); err != nil {
		t.Fatal(err)
	}
	r := &d.Ratings
	for _, row := range train {
		got := o.Predict(r.User[row], r.Item[row])
		if math.IsNaN(got) {
			t.Fatalf("training row %d answered by a model that saw it", row)
		}
		// Fold sizes differ by at most one: each fold model sees about 4/5.
		if lo, hi := float64(len(train)*4/5-1), float64(len(train)*4/5+1); got < lo || got > hi {
			t.Fatalf("training row %d answered by a model fitted on %g rows, want ≈%d", row, got, len(train)*4/5)
		}
	}
	for _, row := range test {
		if got := o.Predict(r.User[row], r.Item[row]); got != float64(len(train)) {
			t.Fatalf("test row %d answered by a model fitted on %g rows, want all %d", row, got, len(train))
		}
	}
	if o.Name() != "oof-count" {
		t.Errorf("name %q", o.Name())
	}
}

func TestOutOfFoldDeterministicAndCloseToFull(t *testing.T) {
	d := smallDataset(t)
	train := make([]int32, d.Ratings.Len())
	for i := range train {
		train[i] = int32(i)
	}
	fit := func() *OutOfFold {
		o := NewOutOfFold(func() Predictor { return NewBias() }, 4, 3)
		if err := o.Fit(context.Background(), d, train); err != nil {
			t.Fatal(err)
		}
		return o
	}
	a, b := fit(), fit()
	r := &d.Ratings
	var inSample, oof float64
	for _, row := range train {
		u, i, v := r.User[row], r.Item[row], float64(r.Value[row])
		if a.Predict(u, i) != b.Predict(u, i) {
			t.Fatal("two fits with one seed differ")
		}
		inSample += sq(a.Full().Predict(u, i) - v)
		oof += sq(a.Predict(u, i) - v)
	}
	// Out-of-fold estimates are honest: worse on the rows than in-sample.
	if oof <= inSample {
		t.Errorf("out-of-fold squared error %.3f not above in-sample %.3f", oof, inSample)
	}
}

func TestOutOfFoldErrors(t *testing.T) {
	d := smallDataset(t)
	if err := NewOutOfFold(func() Predictor { return NewBias() }, 1, 0).Fit(context.Background(), d, []int32{0, 1}); err == nil {
		t.Error("1 fold accepted")
	}
	if err := NewOutOfFold(func() Predictor { return NewBias() }, 5, 0).Fit(context.Background(), d, []int32{0, 1}); err == nil {
		t.Error("2 rows for 5 folds accepted")
	}
	if got := NewOutOfFold(func() Predictor { return NewBias() }, 5, 0).Predict(0, 0); !math.IsNaN(got) {
		t.Errorf("Predict before Fit = %g, want NaN", got)
	}
}

func sq(x float64) float64 { return x * x }

func smallDataset(t *testing.T) *dataset.Dataset {
	t.Helper()
	return newWorld(5, 60, 80, 2, 0.3, 0.3, 0.5, 0.4).d
}
