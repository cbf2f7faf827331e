// Package split divides a dataset's ratings into training and test rows:
// the paper's protocol (sampled users, per-user temporal 60/40) and a global
// random split for comparison with the classic literature. Splits are saved
// to disk and reloaded so that every model sees exactly the same rows.
package split

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/usersim/usersim/dataset"
)

// Protocols.
const (
	ProtocolPaper  = "paper"
	ProtocolRandom = "random"
	ProtocolKFold  = "kfold"
)

// Split names which rows of a dataset.Dataset's Ratings table are training
// data and which are test data. Rows are indices into the Ratings columns.
type Split struct {
	Protocol string  `json:"protocol"` // "paper", "random" or "kfold"
	Seed     int64   `json:"seed"`
	Temporal bool    `json:"temporal"` // per-user split by time (false: seeded random order)
	Users    []int32 `json:"users"`    // the sampled (evaluated) users, ascending; all users for "random" and "kfold"
	Train    []int32 `json:"train"`    // training rows, ascending
	Test     []int32 `json:"test"`     // test rows, ascending

	// The paper protocol's parameters (zero for the others).
	MinRatings  int     `json:"min_ratings,omitempty"`
	MaxRatings  int     `json:"max_ratings,omitempty"`
	TrainFrac   float64 `json:"train_frac,omitempty"`
	SampledOnly bool    `json:"sampled_only,omitempty"` // training rows are the sampled users' only

	// The random protocol's test share, and the k-fold protocol's fold.
	TestFrac float64 `json:"test_frac,omitempty"`
	Fold     int     `json:"fold,omitempty"`  // 0..Folds-1
	Folds    int     `json:"folds,omitempty"` // k
}

// String describes the split in one line, as a report would.
func (s *Split) String() string {
	var b strings.Builder
	switch s.Protocol {
	case ProtocolPaper:
		fmt.Fprintf(&b, "paper protocol: %d users with %d–%d ratings, ", len(s.Users), s.MinRatings, s.MaxRatings)
		pct := int(s.TrainFrac*100 + 0.5)
		if s.Temporal {
			fmt.Fprintf(&b, "per-user temporal split %d/%d (oldest %d%% train)", pct, 100-pct, pct)
		} else {
			fmt.Fprintf(&b, "per-user random split %d/%d (no timestamps used)", pct, 100-pct)
		}
		if s.SampledOnly {
			b.WriteString(", training on the sampled users only")
		}
	case ProtocolRandom:
		fmt.Fprintf(&b, "global random split, %g%% test", s.TestFrac*100)
	case ProtocolKFold:
		fmt.Fprintf(&b, "%d-fold cross-validation, fold %d", s.Folds, s.Fold+1)
	default:
		fmt.Fprintf(&b, "%s split", s.Protocol)
	}
	fmt.Fprintf(&b, ", seed %d: %d train rows, %d test rows", s.Seed, len(s.Train), len(s.Test))
	return b.String()
}

// Validate checks the split against d: users and rows in range and strictly
// ascending, training and test rows disjoint, and for the paper protocol
// every test row a sampled user's.
func (s *Split) Validate(d *dataset.Dataset) error {
	n := d.Ratings.Len()
	if err := ascending("users", s.Users, d.NumUsers()); err != nil {
		return err
	}
	if err := ascending("train rows", s.Train, n); err != nil {
		return err
	}
	if err := ascending("test rows", s.Test, n); err != nil {
		return err
	}
	for i, j := 0, 0; i < len(s.Train) && j < len(s.Test); {
		switch {
		case s.Train[i] < s.Test[j]:
			i++
		case s.Train[i] > s.Test[j]:
			j++
		default:
			return fmt.Errorf("split: row %d is both a training and a test row", s.Train[i])
		}
	}
	if s.Protocol == ProtocolPaper {
		for _, row := range s.Test {
			u := d.Ratings.User[row]
			if _, ok := slices.BinarySearch(s.Users, u); !ok {
				return fmt.Errorf("split: test row %d belongs to user %d, who is not sampled", row, u)
			}
		}
	}
	return nil
}

func ascending(what string, s []int32, n int) error {
	for k, v := range s {
		if v < 0 || int(v) >= n {
			return fmt.Errorf("split: %s[%d] = %d is out of range [0, %d)", what, k, v, n)
		}
		if k > 0 && v <= s[k-1] {
			return fmt.Errorf("split: %s are not strictly ascending at [%d] (%d after %d)", what, k, v, s[k-1])
		}
	}
	return nil
}

// ByUser groups rows by user: the result has one slice per user of d (nil
// for users without rows), each holding that user's rows in the order given.
// The slices share one backing array.
func ByUser(d *dataset.Dataset, rows []int32) [][]int32 {
	users := d.Ratings.User
	count := make([]int32, d.NumUsers()+1)
	for _, r := range rows {
		count[users[r]+1]++
	}
	for u := 1; u < len(count); u++ {
		count[u] += count[u-1]
	}
	flat := make([]int32, len(rows))
	next := slices.Clone(count[:len(count)-1])
	for _, r := range rows {
		u := users[r]
		flat[next[u]] = r
		next[u]++
	}
	out := make([][]int32, d.NumUsers())
	for u := range out {
		if count[u] < count[u+1] {
			out[u] = flat[count[u]:count[u+1]:count[u+1]]
		}
	}
	return out
}

// SortByTime sorts rows in place by rating time, ties broken by row index,
// so a user's history reads oldest first. Without timestamps rows are sorted
// by index.
func SortByTime(d *dataset.Dataset, rows []int32) {
	if !d.HasTime() {
		slices.Sort(rows)
		return
	}
	t := d.Ratings.Time
	slices.SortFunc(rows, func(a, b int32) int {
		if c := cmp.Compare(t[a], t[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
}

// complement returns the rows in [0, n) that are not in sorted, both ascending.
func complement(sorted []int32, n int) []int32 {
	out := make([]int32, 0, n-len(sorted))
	j := 0
	for r := range int32(n) {
		if j < len(sorted) && sorted[j] == r {
			j++
			continue
		}
		out = append(out, r)
	}
	return out
}
