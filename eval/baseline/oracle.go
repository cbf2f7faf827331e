package baseline

import (
	"context"
	"errors"
	"math"

	"github.com/usersim/usersim/dataset"
)

// Oracle predicts with a known function of the pair instead of learning:
// for a synthetic world, its true expected rating E[r|u,i] (synth's
// World.Expected). Its error is the world's noise floor on exactly the
// rows evaluated — what no predictor that knows only (user, item) can beat
// in expectation — so a report can show how close the models come.
type Oracle struct {
	// Expected returns the true expected rating of item by user.
	Expected func(user, item int32) float64

	nu, ni int
	scale  dataset.Scale
	ok     bool
}

// NewOracle returns an oracle predicting expected(user, item).
func NewOracle(expected func(user, item int32) float64) *Oracle {
	return &Oracle{Expected: expected}
}

// Name returns "oracle".
func (m *Oracle) Name() string { return "oracle" }

// Fit records the dataset's size and scale; the training rows are not used.
func (m *Oracle) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	if d == nil || m.Expected == nil {
		return errors.New("oracle: nil dataset or expectation")
	}
	m.nu, m.ni, m.scale, m.ok = d.NumUsers(), d.NumItems(), d.Scale, true
	return nil
}

// Predict returns Expected(user, item) clamped to the scale, or NaN for a
// pair outside the dataset.
func (m *Oracle) Predict(user, item int32) float64 {
	if !m.ok || user < 0 || int(user) >= m.nu || item < 0 || int(item) >= m.ni {
		return math.NaN()
	}
	return clampTo(m.scale, m.Expected(user, item))
}
