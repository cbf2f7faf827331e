package baseline

import (
	"context"
	"fmt"
	"math"

	"github.com/usersim/usersim/dataset"
)

// GlobalMean predicts the mean of all training ratings for every pair.
// A predictor that has not been fitted returns NaN (an invalid answer).
type GlobalMean struct {
	mean  float64
	scale dataset.Scale
	ok    bool
}

// NewGlobalMean returns an unfitted global-mean predictor.
func NewGlobalMean() *GlobalMean { return &GlobalMean{} }

// Name returns "global-mean".
func (m *GlobalMean) Name() string { return "global-mean" }

// Fit computes the mean of the training ratings.
func (m *GlobalMean) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	t, err := newTrainSet(d, train)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	m.mean, m.scale, m.ok = t.mean, t.scale, true
	return nil
}

// Predict returns the training mean.
func (m *GlobalMean) Predict(user, item int32) float64 {
	if !m.ok {
		return math.NaN()
	}
	return clampTo(m.scale, m.mean)
}

// groupMean predicts the mean training rating of a user (or of an item),
// and the global mean for users (items) without training ratings.
type groupMean struct {
	name   string
	byUser bool
	means  []float64 // NaN where the group has no rating
	mean   float64
	scale  dataset.Scale
	ok     bool
}

// UserMean predicts each user's mean training rating; users without
// training ratings get the global mean. No shrinkage is applied.
type UserMean struct{ groupMean }

// NewUserMean returns an unfitted user-mean predictor.
func NewUserMean() *UserMean { return &UserMean{groupMean{name: "user-mean", byUser: true}} }

// ItemMean predicts each item's mean training rating; items without
// training ratings get the global mean. No shrinkage is applied.
type ItemMean struct{ groupMean }

// NewItemMean returns an unfitted item-mean predictor.
func NewItemMean() *ItemMean { return &ItemMean{groupMean{name: "item-mean"}} }

// Name returns "user-mean" or "item-mean".
func (g *groupMean) Name() string { return g.name }

// Fit computes the per-group means.
func (g *groupMean) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	t, err := newTrainSet(d, train)
	if err != nil {
		return fmt.Errorf("%s: %w", g.name, err)
	}
	g.mean, g.scale = t.mean, t.scale
	if g.byUser {
		g.means = make([]float64, t.nUsers)
		for u := range t.nUsers {
			g.means[u] = meanOf(t.uVal[t.uPtr[u]:t.uPtr[u+1]])
		}
	} else {
		g.means = make([]float64, t.nItems)
		for i := range t.nItems {
			var s float64
			for q := t.iPtr[i]; q < t.iPtr[i+1]; q++ {
				s += float64(t.uVal[t.iRow[q]])
			}
			if n := t.iPtr[i+1] - t.iPtr[i]; n > 0 {
				g.means[i] = s / float64(n)
			} else {
				g.means[i] = math.NaN()
			}
		}
	}
	g.ok = true
	return nil
}

// Predict returns the group's mean, or the global mean for an unknown group.
func (g *groupMean) Predict(user, item int32) float64 {
	if !g.ok {
		return math.NaN()
	}
	k := item
	if g.byUser {
		k = user
	}
	if k >= 0 && int(k) < len(g.means) && !math.IsNaN(g.means[k]) {
		return clampTo(g.scale, g.means[k])
	}
	return clampTo(g.scale, g.mean)
}

func meanOf(v []float32) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}
