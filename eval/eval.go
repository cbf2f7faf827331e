// Package eval measures how well rating predictors — classic baselines and
// LLM user agents alike — reproduce held-out ratings: RMSE, MAE, URR (the
// share of invalid answers), per-user breakdowns, user-level bootstrap
// confidence intervals, the distance between the predicted and the true
// rating histograms and per-group errors (persona clusters). Evaluate runs
// predictors over a split and returns Results, which marshal to
// results.json and render as report.md with self-contained SVG charts
// (rmse.svg, hist.svg, groups.svg).
//
// An answer is invalid when it is not a finite number: a predictor marks an
// answer it could not give (an LLM reply that is not a rating) with NaN.
// RMSE, MAE, the histograms and the prediction mean and spread are computed
// over valid answers only; URR counts the invalid ones. Valid answers are
// used as given — predictors are expected to clamp to the rating scale, as
// the baselines in eval/baseline do.
package eval

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/usersim/usersim/dataset"
)

// Predictor estimates ratings. Fit trains on the given rows of d.Ratings
// (and only on those) and replaces any earlier fit; Predict returns the
// estimated rating of item by user, or NaN for an invalid answer.
type Predictor interface {
	Name() string
	Fit(ctx context.Context, d *dataset.Dataset, train []int32) error
	Predict(user, item int32) float64
}

// BatchPredictor is implemented by predictors that answer many pairs at once
// more cheaply (an LLM agent batching prompts). Evaluate uses it when
// present: out[k] receives the answer for (users[k], items[k]).
type BatchPredictor interface {
	Predictor
	PredictBatch(ctx context.Context, users, items []int32, out []float64) error
}

// Invalid is the answer a predictor returns when it has no valid rating.
var Invalid = math.NaN()

// IsValid reports whether a predicted rating counts as an answer: it is a
// finite number.
func IsValid(p float64) bool { return !math.IsNaN(p) && !math.IsInf(p, 0) }

// Float is a float64 that marshals NaN and infinities as JSON null (a metric
// over no valid answers is undefined) and reads null back as NaN.
type Float float64

// MarshalJSON writes the number, or null when it is not finite.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON reads a number, or null as NaN.
func (f *Float) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = Float(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = Float(v)
	return nil
}

// Kinds of predictor, for PredictorInfo.Kind.
const (
	KindBaseline = "baseline" // a classic recommender baseline
	KindAgent    = "agent"    // an LLM user agent
	KindOracle   = "oracle"   // knows the world's expected rating: the noise floor
)

// PredictorInfo describes a configuration for the report: what it is, how
// big and how long it took to train. Zero fields are shown blank.
type PredictorInfo struct {
	// Kind is KindBaseline, KindAgent, KindOracle or "" (unknown).
	Kind string `json:"kind,omitempty"`
	// TrainableParams counts the parameters trained for this configuration
	// (a LoRA adapter's, not the frozen base model's).
	TrainableParams int64 `json:"trainable_params,omitempty"`
	// TrainSeconds is the training time spent outside Fit (adapters trained
	// by an earlier stage); Fit's own time is PredictorResult.FitSeconds.
	TrainSeconds float64 `json:"train_seconds,omitempty"`
	// Description says in words what the configuration is.
	Description string `json:"description,omitempty"`
}

// Describer is implemented by predictors that describe themselves for the
// report. Evaluate calls Describe after Fit.
type Describer interface {
	Describe() PredictorInfo
}

// baselineNames are the names of the predictors in eval/baseline.
var baselineNames = []string{"normal", "global-mean", "user-mean", "item-mean", "bias", "svd", "svdpp", "item-knn"}

// inferKind returns the kind of a predictor whose Info has none: the
// oracle and the baselines of eval/baseline are known by their names.
func inferKind(name string) string {
	switch {
	case name == "oracle":
		return KindOracle
	case slices.Contains(baselineNames, name):
		return KindBaseline
	}
	return ""
}

// kind returns p.Info.Kind, or the kind inferred from the name when empty.
func (p *PredictorResult) kind() string {
	if p.Info.Kind != "" {
		return p.Info.Kind
	}
	return inferKind(p.Name)
}
