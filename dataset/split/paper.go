package split

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/usersim/usersim/dataset"
)

// PaperOptions configure the paper's protocol. A zero field takes its default.
type PaperOptions struct {
	MinRatings int     // fewest ratings of an eligible user (default 100)
	MaxRatings int     // most ratings of an eligible user (default 200)
	NumUsers   int     // users to sample (default 200); negative: every eligible user
	TrainFrac  float64 // share of each sampled user's ratings that train (default 0.6)
	Seed       int64   // seed of the user sample and of the order without timestamps
	// AllowFewer takes every eligible user when fewer than NumUsers are
	// eligible; otherwise that is an error.
	AllowFewer bool
	// SampledOnly restricts the training rows to the sampled users' own
	// training rows; by default every other user's whole history trains too.
	SampledOnly bool
	// IgnoreTime splits each user's ratings in a seeded random order even
	// when the dataset has timestamps.
	IgnoreTime bool
}

// DefaultPaperOptions returns the paper's settings: 200 users with 100–200
// ratings, oldest 60% of each user's ratings train.
func DefaultPaperOptions() PaperOptions {
	return PaperOptions{MinRatings: 100, MaxRatings: 200, NumUsers: 200, TrainFrac: 0.6}
}

func (o *PaperOptions) fill() error {
	def := DefaultPaperOptions()
	if o.MinRatings == 0 {
		o.MinRatings = def.MinRatings
	}
	if o.MaxRatings == 0 {
		o.MaxRatings = def.MaxRatings
	}
	if o.NumUsers == 0 {
		o.NumUsers = def.NumUsers
	}
	if o.TrainFrac == 0 {
		o.TrainFrac = def.TrainFrac
	}
	var errs []error
	if o.MinRatings < 2 {
		errs = append(errs, fmt.Errorf("min ratings %d: a user needs at least 2 ratings to have a training and a test row", o.MinRatings))
	}
	if o.MaxRatings < o.MinRatings {
		errs = append(errs, fmt.Errorf("max ratings %d is below min ratings %d", o.MaxRatings, o.MinRatings))
	}
	if !(o.TrainFrac > 0 && o.TrainFrac < 1) {
		errs = append(errs, fmt.Errorf("train fraction %v is not in (0, 1)", o.TrainFrac))
	}
	return errors.Join(errs...)
}

// NumTrain returns how many of a user's n ratings train under the paper
// protocol: floor(frac·n), computed with a tolerance of 1e-9 so that
// floating-point error never drops a whole rating (0.6·5 is 3, not 2), and
// kept within [1, n-1] so that every sampled user has both training and test
// rows. With frac 0.6: 100 ratings give 60 train and 40 test, 101 give 60
// and 41, 199 give 119 and 80.
func NumTrain(n int, frac float64) int {
	k := int(math.Floor(frac*float64(n) + 1e-9))
	return max(1, min(k, n-1))
}

// Paper splits d by the paper's protocol. Users with MinRatings..MaxRatings
// ratings are eligible; NumUsers of them are sampled with the seed. Each
// sampled user's ratings are ordered by time (ties broken by row order) and
// the oldest NumTrain(n, TrainFrac) train while the rest are test rows. When
// d has no timestamps (or IgnoreTime is set) the order is a seeded random
// permutation of the user's rows and the split is marked Temporal = false.
// The training rows are every row except the sampled users' test rows,
// unless SampledOnly is set.
func Paper(d *dataset.Dataset, opt PaperOptions) (*Split, error) {
	if err := opt.fill(); err != nil {
		return nil, fmt.Errorf("paper split: %w", err)
	}
	r := &d.Ratings
	n := r.Len()
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("paper split: %d ratings exceed the int32 row index", n)
	}
	count := make([]int32, d.NumUsers())
	for _, u := range r.User {
		if u < 0 || int(u) >= len(count) {
			return nil, fmt.Errorf("paper split: a rating's user index %d is out of range [0, %d)", u, len(count))
		}
		count[u]++
	}
	var eligible []int32
	for u, c := range count {
		if int(c) >= opt.MinRatings && int(c) <= opt.MaxRatings {
			eligible = append(eligible, int32(u))
		}
	}
	want := opt.NumUsers
	if want < 0 {
		want = len(eligible)
	}
	if len(eligible) < want {
		if !opt.AllowFewer {
			return nil, fmt.Errorf("paper split: %d users of %s have %d–%d ratings, fewer than the %d to sample (allow fewer to take them all)",
				len(eligible), d.Name, opt.MinRatings, opt.MaxRatings, want)
		}
		want = len(eligible)
	}
	if want == 0 {
		return nil, fmt.Errorf("paper split: no user of %s has %d–%d ratings", d.Name, opt.MinRatings, opt.MaxRatings)
	}
	shuffle(newRNG(opt.Seed, streamSample), eligible)
	users := slices.Clone(eligible[:want])
	slices.Sort(users)

	// The sampled users' rows, in row order.
	sampled := make([]bool, d.NumUsers())
	for _, u := range users {
		sampled[u] = true
	}
	byUser := make(map[int32][]int32, len(users))
	for row, u := range r.User {
		if sampled[u] {
			byUser[u] = append(byUser[u], int32(row))
		}
	}
	temporal := d.HasTime() && !opt.IgnoreTime
	var test, own []int32
	for _, u := range users {
		rows := byUser[u]
		if temporal {
			t := r.Time
			slices.SortStableFunc(rows, func(a, b int32) int { return cmp.Compare(t[a], t[b]) })
		} else {
			shuffle(newRNG(opt.Seed, streamUserBase+uint64(u)), rows)
		}
		k := NumTrain(len(rows), opt.TrainFrac)
		own = append(own, rows[:k]...)
		test = append(test, rows[k:]...)
	}
	slices.Sort(test)
	var train []int32
	if opt.SampledOnly {
		train = own
		slices.Sort(train)
	} else {
		train = complement(test, n)
	}
	return &Split{
		Protocol:    ProtocolPaper,
		Seed:        opt.Seed,
		Temporal:    temporal,
		Users:       users,
		Train:       train,
		Test:        test,
		MinRatings:  opt.MinRatings,
		MaxRatings:  opt.MaxRatings,
		TrainFrac:   opt.TrainFrac,
		SampledOnly: opt.SampledOnly,
	}, nil
}
