package memory

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
)

// tiny builds a hand-checked dataset: 3 users, 4 items, 8 training rows
// (0..7) and one test row (8: u2 rates i3 1).
//
//	row user item value time     items: i0 Action 1995, i1 Comedy 1975,
//	0   u0   i0   5     1               i2 Action|Comedy 1999, i3 Drama 1940
//	1   u0   i1   1     2
//	2   u0   i2   4     3
//	3   u1   i0   4     1
//	4   u1   i1   2     2
//	5   u1   i3   3     3
//	6   u2   i0   3     2
//	7   u2   i2   2     1
//	8   u2   i3   1     3   (test)
func tiny(t testing.TB) (*dataset.Dataset, []int32) {
	t.Helper()
	d := &dataset.Dataset{Name: "tiny", Scale: dataset.FiveStars}
	for _, id := range []string{"u0", "u1", "u2"} {
		d.AddUser(dataset.User{ID: id})
	}
	d.AddItem(dataset.Item{ID: "i0", Title: "Zero", Year: 1995, Genres: []string{"Action"}})
	d.AddItem(dataset.Item{ID: "i1", Title: "One", Year: 1975, Genres: []string{"Comedy"}})
	d.AddItem(dataset.Item{ID: "i2", Title: "Two", Year: 1999, Genres: []string{"Action", "Comedy"}})
	d.AddItem(dataset.Item{ID: "i3", Title: "Three", Year: 1940, Genres: []string{"Drama"}})
	for _, r := range []struct {
		u, i int32
		v    float32
		t    int64
	}{{0, 0, 5, 1}, {0, 1, 1, 2}, {0, 2, 4, 3}, {1, 0, 4, 1}, {1, 1, 2, 2}, {1, 3, 3, 3}, {2, 0, 3, 2}, {2, 2, 2, 1}, {2, 3, 1, 3}} {
		d.Append(r.u, r.i, r.v, r.t, true)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	return d, []int32{0, 1, 2, 3, 4, 5, 6, 7}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestNewStatsTiny(t *testing.T) {
	d, train := tiny(t)
	st, err := NewStats(d, train, StatsOptions{Shrink: -1, MinItemRatings: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !near(st.GlobalMean, 3) {
		t.Errorf("global mean %v, want 3", st.GlobalMean)
	}
	for i, want := range []float64{4, 1.5, 3, 3} {
		if !near(st.ItemMean[i], want) {
			t.Errorf("item %d mean %v, want %v", i, st.ItemMean[i], want)
		}
	}
	if !slices.Equal(st.ItemCount, []int32{3, 2, 2, 1}) {
		t.Errorf("item counts %v", st.ItemCount)
	}
	for u, want := range []float64{10.0 / 3, 3, 2.5} {
		if !near(st.UserMean[u], want) {
			t.Errorf("user %d mean %v, want %v", u, st.UserMean[u], want)
		}
	}
	if !slices.Equal(st.Genres, []string{"Action", "Comedy", "Drama"}) {
		t.Errorf("genres %v", st.Genres)
	}
	if !slices.Equal(st.Eras, []string{"pre-1950", "1970s", "1990s"}) {
		t.Errorf("eras %v", st.Eras)
	}
	for u, want := range []float64{0.75, (0 + 0.25 + 0) / 3, 1} {
		if !near(st.Conformity[u], want) {
			t.Errorf("user %d conformity %v, want %v", u, st.Conformity[u], want)
		}
	}
	if !slices.Equal(st.Diversity, []int32{2, 3, 2}) {
		t.Errorf("diversity %v, want [2 3 2]", st.Diversity)
	}
	if h := st.History(2); !slices.Equal(h, []int32{7, 6}) {
		t.Errorf("history of u2 %v, want [7 6] (time order)", h)
	}
	// Popularity by rating mass: i3 (1) low, i1/i2 (2 each) mid, i0 (3) high.
	for i, want := range []int{TierHigh, TierMid, TierMid, TierLow} {
		if got := st.ItemPopTier(int32(i)); got != want {
			t.Errorf("item %d pop tier %d, want %d", i, got, want)
		}
	}
	for i, want := range []int{TierHigh, TierLow, TierMid, -1} {
		if got := st.ItemQualityTier(int32(i)); got != want {
			t.Errorf("item %d quality tier %d, want %d", i, got, want)
		}
	}
	us := st.User(0, -1)
	if !near(us.Genre[0].Value, 7.0/6) || us.Genre[0].Count != 2 {
		t.Errorf("u0 Action affinity %+v, want 7/6 over 2", us.Genre[0])
	}
	if !near(us.Genre[1].Value, -5.0/6) {
		t.Errorf("u0 Comedy affinity %+v, want -5/6", us.Genre[1])
	}
	if us.Genre[2].Count != 0 || us.Genre[2].Value != 0 {
		t.Errorf("u0 Drama affinity %+v, want none", us.Genre[2])
	}
	// Shrinkage divides by n + Shrink.
	st2, _ := NewStats(d, train, StatsOptions{Shrink: 2})
	if a := st2.User(0, -1).Genre[0]; !near(a.Value, 7.0/3/4) {
		t.Errorf("shrunk affinity %v, want %v", a.Value, 7.0/3/4)
	}
	// A prefix of the history.
	if p := st.User(2, 1); p.Count != 1 || !near(p.Mean, 2) {
		t.Errorf("u2 first rating: %+v", p)
	}
}

func TestNewStatsBadRows(t *testing.T) {
	d, _ := tiny(t)
	for _, train := range [][]int32{nil, {0, 99}, {-1}} {
		if _, err := NewStats(d, train, StatsOptions{}); err == nil {
			t.Errorf("train %v: no error", train)
		}
	}
}

func TestPercentile(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, 50, 2.5},
		{[]float64{1, 2, 3, 4, 5}, 60, 3.4},
		{[]float64{1, 2, 3, 4, 5}, 90, 4.6},
		{[]float64{7}, 33, 7},
		{nil, 50, 0},
	} {
		if got := percentile(c.xs, c.p); !near(got, c.want) {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.xs, c.p, got, c.want)
		}
	}
}

func TestTraitsLevels(t *testing.T) {
	d, train := tiny(t)
	st, err := NewStats(d, train, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := st.Cutoffs(PopulationAll, []int32{0, 1, 2})
	// Activity 3, 3, 2 → p60 = 3, p90 = 3.
	if c.Activity != [2]float64{3, 3} || c.Users != 3 {
		t.Fatalf("activity cut-offs %v (users %d)", c.Activity, c.Users)
	}
	// Conformity 0.75, 0.0833, 1 sorted [0.0833 0.75 1]: p25 = 0.4167, p80 = 0.9.
	if !near(c.Conformity[0], (0.25/3+0.75)/2) || !near(c.Conformity[1], 0.9) {
		t.Fatalf("conformity cut-offs %v", c.Conformity)
	}
	want := []Traits{
		{Activity: 3, ActivityLevel: Low, Conformity: 0.75, ConformityLevel: Medium, Diversity: 2, DiversityLevel: Low},
		{Activity: 3, ActivityLevel: Low, Conformity: 0.25 / 3, ConformityLevel: High, Diversity: 3, DiversityLevel: High},
		{Activity: 2, ActivityLevel: Low, Conformity: 1, ConformityLevel: Low, Diversity: 2, DiversityLevel: Low},
	}
	for u, w := range want {
		got := st.Traits(int32(u), c)
		if got.ActivityLevel != w.ActivityLevel || got.ConformityLevel != w.ConformityLevel || got.DiversityLevel != w.DiversityLevel ||
			got.Activity != w.Activity || got.Diversity != w.Diversity || !near(got.Conformity, w.Conformity) {
			t.Errorf("user %d traits %+v, want %+v", u, got, w)
		}
	}
	// Users without training rows are left out of the population.
	d.AddUser(dataset.User{ID: "u3"})
	st, _ = NewStats(d, train, StatsOptions{})
	if c := st.Cutoffs(PopulationAll, []int32{0, 1, 2, 3}); c.Users != 3 {
		t.Errorf("population %d users, want 3", c.Users)
	}
}

func TestCoverCount(t *testing.T) {
	for _, c := range []struct {
		counts []int
		want   int
	}{
		{[]int{10, 0, 0}, 1},
		{[]int{5, 5}, 2},
		{[]int{8, 1, 1}, 1},
		{[]int{7, 1, 1, 1}, 2},
		{[]int{0, 0}, 0},
	} {
		if got := coverCount(c.counts, 0.8); got != c.want {
			t.Errorf("coverCount(%v) = %d, want %d", c.counts, got, c.want)
		}
	}
}

// TestNoMetadata: items without genres or years (a generic CSV) give
// profiles that talk about no genre or era, and reasons all the same.
func TestNoMetadata(t *testing.T) {
	d := &dataset.Dataset{Name: "csv", Scale: dataset.HalfStarsFive}
	for u := range 4 {
		d.AddUser(dataset.User{ID: string(rune('a' + u))})
	}
	for i := range 30 {
		d.AddItem(dataset.Item{ID: string(rune('A' + i))})
	}
	var train []int32
	for u := range int32(4) {
		for i := range int32(30) {
			if (int(u)+int(i))%3 != 0 {
				train = append(train, int32(d.Ratings.Len()))
				d.Append(u, i, float32(0.5+float64((int(u)*7+int(i))%10)*0.5), 0, false)
			}
		}
	}
	s := &split.Split{Protocol: split.ProtocolRandom, Users: []int32{0, 1, 2, 3}, Train: train}
	ps, ms, err := DistillStats(context.Background(), d, s, StatsOptions{MinItemRatings: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if strings.Contains(p.Description, "genre") || strings.Contains(p.Description, "Genre") || strings.Contains(p.Description, "films from") {
			t.Errorf("user %s: %q", p.User, p.Description)
		}
	}
	for _, m := range ms {
		if m.Reason == "" || m.Time != 0 {
			t.Fatalf("%+v", m)
		}
		if m.Rating != math.Trunc(m.Rating) && !strings.Contains(m.Sentence("X"), ".5 because") {
			t.Errorf("half star lost: %q", m.Sentence("X"))
		}
	}
}
