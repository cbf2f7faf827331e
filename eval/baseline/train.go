// Package baseline implements the classic rating predictors that every
// usersim agent is compared against: global, user and item means, the
// regularised bias baseline, biased matrix factorisation (SVD), SVD++ and
// item-based k-nearest-neighbours with baselines.
//
// The algorithms and their default hyper-parameters follow the Surprise
// library (Hug, 2020), so that numbers on MovieLens can be checked against
// its published benchmarks. Every predictor trains only on the rows it is
// given, is deterministic for its Seed, and clamps its predictions to the
// dataset's rating scale.
//
// Users and items are the dataset's dense indices. A user or item with no
// training rating is "unknown": its bias and latent factors are taken as
// zero, as Surprise does, so a prediction for an unknown user falls back to
// the global mean plus the item's bias (and symmetrically for unknown items).
// Indices outside the dataset are treated as unknown, never a panic.
//
// All predictors are safe for concurrent Predict calls once Fit returned; Fit
// must not run concurrently with anything else on the same value.
package baseline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/usersim/usersim/dataset"
)

// Predictor is what every baseline implements; it has the same method set as
// eval.Predictor.
type Predictor interface {
	// Name is a short, stable identifier such as "svd".
	Name() string
	// Fit trains on the given rows of d.Ratings, replacing any earlier fit.
	Fit(ctx context.Context, d *dataset.Dataset, train []int32) error
	// Predict returns the estimated rating of item by user, clamped to the
	// scale of the dataset last fitted.
	Predict(user, item int32) float64
}

// errNoTrain is returned by Fit when there is nothing to learn from.
var errNoTrain = errors.New("no training ratings")

// trainSet is the training rows regrouped by user and by item (compressed
// sparse rows), with the global mean. It is built once per Fit.
type trainSet struct {
	nUsers, nItems int
	scale          dataset.Scale
	mean           float64

	// By user: the ratings of user u are uItem[uPtr[u]:uPtr[u+1]] with
	// values uVal[...].
	uPtr  []int32
	uItem []int32
	uVal  []float32

	// By item: the ratings of item i are by users iUser[iPtr[i]:iPtr[i+1]];
	// iRow holds the position of the same rating in the by-user arrays.
	iPtr  []int32
	iUser []int32
	iRow  []int32
}

// newTrainSet checks the training rows and regroups them. Rows are visited in
// the given order, so the order within each user follows train's order.
func newTrainSet(d *dataset.Dataset, train []int32) (*trainSet, error) {
	if d == nil {
		return nil, errors.New("nil dataset")
	}
	if len(train) == 0 {
		return nil, errNoTrain
	}
	r := &d.Ratings
	n := int32(r.Len())
	nu, ni := d.NumUsers(), d.NumItems()
	t := &trainSet{nUsers: nu, nItems: ni, scale: d.Scale}
	t.uPtr = make([]int32, nu+1)
	t.iPtr = make([]int32, ni+1)
	var sum float64
	for k, row := range train {
		if row < 0 || row >= n {
			return nil, fmt.Errorf("training row %d (position %d) outside ratings table of %d rows", row, k, n)
		}
		u, i := r.User[row], r.Item[row]
		if u < 0 || int(u) >= nu || i < 0 || int(i) >= ni {
			return nil, fmt.Errorf("rating row %d: user %d or item %d outside dataset (%d users, %d items)", row, u, i, nu, ni)
		}
		v := r.Value[row]
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("rating row %d: value is %v", row, v)
		}
		sum += float64(v)
		t.uPtr[u+1]++
		t.iPtr[i+1]++
	}
	for u := range nu {
		t.uPtr[u+1] += t.uPtr[u]
	}
	for i := range ni {
		t.iPtr[i+1] += t.iPtr[i]
	}
	m := len(train)
	t.mean = sum / float64(m)
	t.uItem = make([]int32, m)
	t.uVal = make([]float32, m)
	t.iUser = make([]int32, m)
	t.iRow = make([]int32, m)
	uNext := append([]int32(nil), t.uPtr[:nu]...)
	for _, row := range train {
		u := r.User[row]
		p := uNext[u]
		uNext[u]++
		t.uItem[p] = r.Item[row]
		t.uVal[p] = r.Value[row]
	}
	// Fill the by-item view from the by-user view so that iRow points back.
	iNext := append([]int32(nil), t.iPtr[:ni]...)
	for u := range nu {
		for p := t.uPtr[u]; p < t.uPtr[u+1]; p++ {
			i := t.uItem[p]
			q := iNext[i]
			iNext[i]++
			t.iUser[q] = int32(u)
			t.iRow[q] = p
		}
	}
	return t, nil
}

func (t *trainSet) userCount(u int32) int32 { return t.uPtr[u+1] - t.uPtr[u] }
func (t *trainSet) itemCount(i int32) int32 { return t.iPtr[i+1] - t.iPtr[i] }

// knownUser reports whether u is a valid index with at least one training
// rating.
func (t *trainSet) knownUser(u int32) bool {
	return u >= 0 && int(u) < t.nUsers && t.userCount(u) > 0
}

// knownItem reports whether i is a valid index with at least one training
// rating.
func (t *trainSet) knownItem(i int32) bool {
	return i >= 0 && int(i) < t.nItems && t.itemCount(i) > 0
}

// sgdOrder returns the training rows in the order Surprise's SGD visits a
// shuffled training set: users in a seeded random order, and each user's
// ratings together, themselves in a seeded random order. The same order is
// used in every epoch.
func sgdOrder(d *dataset.Dataset, train []int32, rng *rand.Rand) []int32 {
	rows := append([]int32(nil), train...)
	rng.Shuffle(len(rows), func(a, b int) { rows[a], rows[b] = rows[b], rows[a] })
	// Stable grouping by user, users ranked by first appearance.
	nu := d.NumUsers()
	rank := make([]int32, nu)
	for i := range rank {
		rank[i] = -1
	}
	var next int32
	count := make([]int32, 0, nu)
	for _, row := range rows {
		u := d.Ratings.User[row]
		if rank[u] < 0 {
			rank[u] = next
			next++
			count = append(count, 0)
		}
		count[rank[u]]++
	}
	start := make([]int32, len(count)+1)
	for k, c := range count {
		start[k+1] = start[k] + c
	}
	out := make([]int32, len(rows))
	for _, row := range rows {
		k := rank[d.Ratings.User[row]]
		out[start[k]] = row
		start[k]++
	}
	return out
}

// newRNG returns the deterministic generator used for a predictor's seed.
func newRNG(seed int64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x75736572_73696d00)) // "usersim\0"
}

// clampTo limits v to the scale, mapping NaN to the scale's midpoint so that
// a numerically broken model still returns a rating.
func clampTo(s dataset.Scale, v float64) float64 {
	if math.IsNaN(v) {
		return (s.Min + s.Max) / 2
	}
	return s.Clamp(v)
}

// checkCtx returns ctx's error, wrapped with what was interrupted.
func checkCtx(ctx context.Context, name string, epoch int) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: interrupted at epoch %d: %w", name, epoch, err)
	}
	return nil
}
