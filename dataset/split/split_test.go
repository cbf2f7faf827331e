package split

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// build makes a dataset in which user u has counts[u] ratings. Rows are
// interleaved across users; user u's j-th rating (j in time order) has time
// times(u, j) and item j. The rows of each user appear in a scrambled order
// so that row order and time order differ.
func build(counts []int, withTime bool, times func(u, j int) int64) *dataset.Dataset {
	d := &dataset.Dataset{Name: "test", Scale: dataset.FiveStars}
	maxc := 0
	for u, c := range counts {
		d.AddUser(dataset.User{ID: fmt.Sprint(u + 1)})
		maxc = max(maxc, c)
	}
	for i := range maxc {
		d.AddItem(dataset.Item{ID: fmt.Sprint(i + 1)})
	}
	for step := range maxc {
		for u, c := range counts {
			if step >= c {
				continue
			}
			j := (step*7 + 3) % c // a permutation of 0..c-1 when gcd(7, c) = 1
			if c%7 == 0 {
				j = c - 1 - step
			}
			d.Append(int32(u), int32(j), float32(1+j%5), times(u, j), withTime)
		}
	}
	return d
}

func distinctTimes(u, j int) int64 { return int64(1_000_000 + 1000*u + j) }

// counts returns n users with rating counts cycling through the given values.
func counts(n int, values ...int) []int {
	c := make([]int, n)
	for u := range c {
		c[u] = values[u%len(values)]
	}
	return c
}

func TestNumTrain(t *testing.T) {
	tests := []struct {
		n    int
		frac float64
		want int
	}{
		{100, 0.6, 60}, {101, 0.6, 60}, {102, 0.6, 61}, {199, 0.6, 119}, {200, 0.6, 120},
		{5, 0.6, 3}, {10, 0.6, 6}, {15, 0.6, 9}, {2, 0.6, 1}, {3, 0.6, 1},
		{10, 0.7, 7}, {10, 0.3, 3}, {3, 0.5, 1}, {10, 0.99, 9}, {10, 0.01, 1},
	}
	for _, tc := range tests {
		if got := NumTrain(tc.n, tc.frac); got != tc.want {
			t.Errorf("NumTrain(%d, %v) = %d, want %d", tc.n, tc.frac, got, tc.want)
		}
	}
	// floor(0.6·n) for every n a paper user can have, against integer arithmetic.
	for n := 2; n <= 1000; n++ {
		if got, want := NumTrain(n, 0.6), max(1, 6*n/10); got != want {
			t.Fatalf("NumTrain(%d, 0.6) = %d, want %d", n, got, want)
		}
	}
}

// checkPaper verifies the invariants of a paper split of d.
func checkPaper(t *testing.T, d *dataset.Dataset, s *Split, opt PaperOptions) {
	t.Helper()
	if err := s.Validate(d); err != nil {
		t.Fatal(err)
	}
	byUser := ByUser(d, append(slices.Clone(s.Train), s.Test...))
	testBy := ByUser(d, s.Test)
	trainBy := ByUser(d, s.Train)
	all := ByUser(d, complement(nil, d.Ratings.Len()))
	sampled := make(map[int32]bool)
	for _, u := range s.Users {
		sampled[u] = true
		n := len(all[u])
		if n < opt.MinRatings || n > opt.MaxRatings {
			t.Fatalf("sampled user %d has %d ratings, outside %d–%d", u, n, opt.MinRatings, opt.MaxRatings)
		}
		if len(testBy[u]) != n-NumTrain(n, opt.TrainFrac) || len(trainBy[u]) != NumTrain(n, opt.TrainFrac) {
			t.Fatalf("user %d: %d train and %d test rows of %d, want %d train", u, len(trainBy[u]), len(testBy[u]), n, NumTrain(n, opt.TrainFrac))
		}
		if s.Temporal {
			var newestTrain int64 = -1 << 62
			for _, r := range trainBy[u] {
				newestTrain = max(newestTrain, d.Ratings.Time[r])
			}
			for _, r := range testBy[u] {
				if d.Ratings.Time[r] < newestTrain {
					t.Fatalf("user %d: test row %d (time %d) is older than a training row (time %d)", u, r, d.Ratings.Time[r], newestTrain)
				}
			}
		}
	}
	for u := range d.NumUsers() {
		switch {
		case sampled[int32(u)]:
		case opt.SampledOnly:
			if len(byUser[u]) != 0 {
				t.Fatalf("user %d is not sampled but has %d rows in the split", u, len(byUser[u]))
			}
		default:
			if len(trainBy[u]) != len(all[u]) || len(testBy[u]) != 0 {
				t.Fatalf("unsampled user %d: %d train, %d test of %d rows; want all train", u, len(trainBy[u]), len(testBy[u]), len(all[u]))
			}
		}
	}
	if !opt.SampledOnly && len(s.Train)+len(s.Test) != d.Ratings.Len() {
		t.Fatalf("train %d + test %d != %d rows", len(s.Train), len(s.Test), d.Ratings.Len())
	}
}

func TestPaper(t *testing.T) {
	tests := []struct {
		name     string
		counts   []int
		withTime bool
		times    func(u, j int) int64
		opt      PaperOptions
		users    int
		temporal bool
	}{
		{"default", counts(400, 50, 100, 150, 200, 250), true, distinctTimes, PaperOptions{Seed: 1}, 200, true},
		{"sampled only", counts(400, 50, 100, 150, 200, 250), true, distinctTimes, PaperOptions{Seed: 1, SampledOnly: true}, 200, true},
		{"no timestamps", counts(400, 50, 100, 150, 200, 250), false, distinctTimes, PaperOptions{Seed: 1}, 200, false},
		{"ignore time", counts(400, 50, 100, 150, 200, 250), true, distinctTimes, PaperOptions{Seed: 1, IgnoreTime: true}, 200, false},
		{"all eligible", counts(30, 5, 10, 11, 12), true, distinctTimes,
			PaperOptions{MinRatings: 10, MaxRatings: 12, NumUsers: -1, TrainFrac: 0.5}, 22, true},
		{"allow fewer", counts(30, 5, 10, 11, 12), true, distinctTimes,
			PaperOptions{MinRatings: 10, MaxRatings: 12, NumUsers: 100, AllowFewer: true}, 22, true},
		{"equal times", counts(10, 100, 101), true, func(u, j int) int64 { return 42 }, PaperOptions{NumUsers: 4}, 4, true},
		{"coarse times", counts(12, 103, 150), true, func(u, j int) int64 { return int64(j / 7) }, PaperOptions{NumUsers: 12, TrainFrac: 0.65}, 12, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := build(tc.counts, tc.withTime, tc.times)
			s, err := Paper(d, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			opt := tc.opt
			if err := opt.fill(); err != nil {
				t.Fatal(err)
			}
			if len(s.Users) != tc.users || s.Temporal != tc.temporal || s.Protocol != ProtocolPaper {
				t.Fatalf("%d users, temporal %v, protocol %q; want %d, %v, paper", len(s.Users), s.Temporal, s.Protocol, tc.users, tc.temporal)
			}
			checkPaper(t, d, s, opt)
			again, err := Paper(d, tc.opt)
			if err != nil || !reflect.DeepEqual(s, again) {
				t.Fatalf("second run differs (err %v)", err)
			}
			if !strings.Contains(s.String(), map[bool]string{true: "temporal", false: "random"}[s.Temporal]) {
				t.Errorf("String() = %q", s.String())
			}
		})
	}
}

// TestPaperBoundary checks the exact 60/40 cut: a user's oldest
// floor(0.6·n) ratings train, ties in time broken by row order.
func TestPaperBoundary(t *testing.T) {
	for _, n := range []int{100, 101, 137, 200} {
		d := build([]int{n}, true, distinctTimes)
		s, err := Paper(d, PaperOptions{NumUsers: 1})
		if err != nil {
			t.Fatal(err)
		}
		k := NumTrain(n, 0.6)
		// Item j is the user's j-th rating in time order.
		for _, r := range s.Train {
			if int(d.Ratings.Item[r]) >= k {
				t.Fatalf("n=%d: rating %d in time order trains, only the first %d should", n, d.Ratings.Item[r], k)
			}
		}
		if len(s.Train) != k || len(s.Test) != n-k {
			t.Fatalf("n=%d: %d/%d, want %d/%d", n, len(s.Train), len(s.Test), k, n-k)
		}
	}
	// All times equal: the first floor(0.6·n) rows train.
	d := build([]int{100}, true, func(u, j int) int64 { return 7 })
	s, err := Paper(d, PaperOptions{NumUsers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := complement(nil, 60); !slices.Equal(s.Train, want) {
		t.Fatalf("equal times: train rows %v, want rows 0..59", s.Train)
	}
}

func TestPaperSeeds(t *testing.T) {
	d := build(counts(400, 120), true, distinctTimes)
	a, _ := Paper(d, PaperOptions{Seed: 1})
	b, _ := Paper(d, PaperOptions{Seed: 2})
	if slices.Equal(a.Users, b.Users) {
		t.Error("seeds 1 and 2 sample the same users")
	}
	// Without time, the seed also changes which rows of a user train.
	nd := build([]int{120}, false, distinctTimes)
	x, _ := Paper(nd, PaperOptions{Seed: 1, NumUsers: 1})
	y, _ := Paper(nd, PaperOptions{Seed: 2, NumUsers: 1})
	if slices.Equal(x.Train, y.Train) {
		t.Error("seeds 1 and 2 give the same per-user random split")
	}
}

func TestPaperErrors(t *testing.T) {
	d := build(counts(50, 120, 20), true, distinctTimes)
	tests := []struct {
		name string
		opt  PaperOptions
		want string
	}{
		{"too few eligible", PaperOptions{}, "25 users of test have 100–200 ratings, fewer than the 200"},
		{"none eligible", PaperOptions{MinRatings: 500, MaxRatings: 600, AllowFewer: true}, "no user"},
		{"min > max", PaperOptions{MinRatings: 50, MaxRatings: 40}, "max ratings"},
		{"min 1", PaperOptions{MinRatings: 1}, "min ratings"},
		{"frac", PaperOptions{TrainFrac: 1.5}, "train fraction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Paper(d, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRandom(t *testing.T) {
	for _, tc := range []struct {
		n        int
		frac     float64
		wantTest int
	}{{1000, 0.1, 100}, {1001, 0.1, 101}, {10, 0.25, 3}, {2, 0.1, 1}, {3, 0.99, 2}} {
		d := build([]int{tc.n}, false, distinctTimes)
		s, err := Random(d, tc.frac, 5)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(d); err != nil {
			t.Fatal(err)
		}
		if len(s.Test) != tc.wantTest || len(s.Train)+len(s.Test) != tc.n {
			t.Errorf("n=%d frac=%v: %d test, %d train; want %d test", tc.n, tc.frac, len(s.Test), len(s.Train), tc.wantTest)
		}
		again, _ := Random(d, tc.frac, 5)
		if !reflect.DeepEqual(s, again) {
			t.Errorf("n=%d: not deterministic", tc.n)
		}
	}
	d := build([]int{1000}, false, distinctTimes)
	a, _ := Random(d, 0.1, 1)
	b, _ := Random(d, 0.1, 2)
	if slices.Equal(a.Test, b.Test) {
		t.Error("seeds 1 and 2 give the same test rows")
	}
	for _, frac := range []float64{0, 1, -0.1} {
		if _, err := Random(d, frac, 1); err == nil {
			t.Errorf("test fraction %v accepted", frac)
		}
	}
}

func TestKFold(t *testing.T) {
	d := build(counts(7, 13, 20, 31), true, distinctTimes) // 139 rows
	n := d.Ratings.Len()
	folds, err := KFold(d, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, n)
	for f, s := range folds {
		if err := s.Validate(d); err != nil {
			t.Fatal(err)
		}
		want := n / 5
		if f < n%5 {
			want++
		}
		if len(s.Test) != want || len(s.Train) != n-want || s.Fold != f || s.Folds != 5 {
			t.Fatalf("fold %d: %d test, %d train (fold %d/%d); want %d test", f, len(s.Test), len(s.Train), s.Fold, s.Folds, want)
		}
		for _, r := range s.Test {
			seen[r]++
		}
	}
	for r, c := range seen {
		if c != 1 {
			t.Fatalf("row %d is a test row in %d folds, want 1", r, c)
		}
	}
	if _, err := KFold(d, 1, 0); err == nil {
		t.Error("k = 1 accepted")
	}
}

func TestByUserAndSortByTime(t *testing.T) {
	d := build([]int{3, 0, 4}, true, func(u, j int) int64 { return int64(10 - j) })
	g := ByUser(d, complement(nil, d.Ratings.Len()))
	if len(g) != 3 || len(g[0]) != 3 || g[1] != nil || len(g[2]) != 4 {
		t.Fatalf("ByUser: %v", g)
	}
	for u, rows := range g {
		for _, r := range rows {
			if d.Ratings.User[r] != int32(u) {
				t.Fatalf("row %d of user %d grouped under %d", r, d.Ratings.User[r], u)
			}
		}
		if !slices.IsSorted(rows) {
			t.Fatalf("user %d rows %v not in the given order", u, rows)
		}
		SortByTime(d, rows)
		for k := 1; k < len(rows); k++ {
			if d.Ratings.Time[rows[k]] < d.Ratings.Time[rows[k-1]] {
				t.Fatalf("SortByTime: %v", rows)
			}
		}
	}
}

func TestValidateRejects(t *testing.T) {
	d := build([]int{5, 5}, true, distinctTimes)
	tests := []struct {
		name string
		s    Split
		want string
	}{
		{"overlap", Split{Train: []int32{0, 1, 2}, Test: []int32{2, 3}}, "both"},
		{"unsorted", Split{Train: []int32{1, 0}}, "ascending"},
		{"out of range", Split{Test: []int32{10}}, "out of range"},
		{"user out of range", Split{Users: []int32{2}}, "out of range"},
		{"unsampled test row", Split{Protocol: ProtocolPaper, Users: []int32{0}, Test: complement(nil, 10)}, "not sampled"},
	}
	for _, tc := range tests {
		if err := tc.s.Validate(d); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
