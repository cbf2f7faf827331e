package split

import (
	"fmt"
	"math"
	"slices"

	"github.com/usersim/usersim/dataset"
)

// allUsers lists 0..NumUsers-1.
func allUsers(d *dataset.Dataset) []int32 {
	u := make([]int32, d.NumUsers())
	for i := range u {
		u[i] = int32(i)
	}
	return u
}

// permutation returns the rows of d in a seeded random order.
func permutation(d *dataset.Dataset, seed int64) ([]int32, error) {
	n := d.Ratings.Len()
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("%d ratings exceed the int32 row index", n)
	}
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	shuffle(newRNG(seed, streamRows), p)
	return p, nil
}

// Random splits d's rows at random: ceil(testFrac·n) test rows (as
// Surprise's train_test_split rounds a fractional test size), the rest
// training rows. The usual comparison with the literature uses 0.1.
func Random(d *dataset.Dataset, testFrac float64, seed int64) (*Split, error) {
	if !(testFrac > 0 && testFrac < 1) {
		return nil, fmt.Errorf("random split: test fraction %v is not in (0, 1)", testFrac)
	}
	n := d.Ratings.Len()
	if n < 2 {
		return nil, fmt.Errorf("random split: %s has %d ratings, need at least 2", d.Name, n)
	}
	p, err := permutation(d, seed)
	if err != nil {
		return nil, fmt.Errorf("random split: %w", err)
	}
	m := min(int(math.Ceil(testFrac*float64(n)-1e-9)), n-1)
	test := p[:m]
	slices.Sort(test)
	return &Split{
		Protocol: ProtocolRandom,
		Seed:     seed,
		Users:    allUsers(d),
		Train:    complement(test, n),
		Test:     slices.Clip(test),
		TestFrac: testFrac,
	}, nil
}

// KFold splits d's rows into k folds for cross-validation as Surprise's
// KFold does: the rows are shuffled with the seed and cut into k contiguous
// folds, the first n mod k folds one row longer; split f tests on fold f and
// trains on the others.
func KFold(d *dataset.Dataset, k int, seed int64) ([]*Split, error) {
	n := d.Ratings.Len()
	if k < 2 || k > n {
		return nil, fmt.Errorf("k-fold split: k = %d must be in [2, %d ratings]", k, n)
	}
	p, err := permutation(d, seed)
	if err != nil {
		return nil, fmt.Errorf("k-fold split: %w", err)
	}
	users := allUsers(d)
	out := make([]*Split, k)
	start := 0
	for f := range k {
		stop := start + n/k
		if f < n%k {
			stop++
		}
		test := slices.Clone(p[start:stop])
		slices.Sort(test)
		out[f] = &Split{
			Protocol: ProtocolKFold,
			Seed:     seed,
			Users:    slices.Clone(users),
			Train:    complement(test, n),
			Test:     test,
			Fold:     f,
			Folds:    k,
		}
		start = stop
	}
	return out, nil
}
