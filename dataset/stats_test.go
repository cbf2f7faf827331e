package dataset

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
)

func TestComputeStats(t *testing.T) {
	d := &Dataset{Name: "t", Scale: FiveStars}
	for _, id := range []string{"a", "b", "c"} {
		d.AddUser(User{ID: id})
	}
	for _, id := range []string{"x", "y", "z", "unrated"} {
		d.AddItem(Item{ID: id})
	}
	// a: 3 ratings, b: 1, c: 0.
	rows := []struct {
		u, i int32
		v    float32
		t    int64
	}{{0, 0, 5, 100}, {0, 1, 4, 86400 * 365}, {0, 2, 4, 300}, {1, 0, 1, 50}}
	for _, r := range rows {
		d.Append(r.u, r.i, r.v, r.t, true)
	}
	s := ComputeStats(d)
	if s.Ratings != 4 || s.Users != 3 || s.RatedUsers != 2 || s.Items != 4 || s.RatedItems != 3 {
		t.Errorf("counts %+v", s)
	}
	if math.Abs(s.Density-4.0/6) > 1e-12 || math.Abs(s.Sparsity-1.0/3) > 1e-12 {
		t.Errorf("density %v sparsity %v", s.Density, s.Sparsity)
	}
	if s.Mean != 3.5 || s.PerUser != (Dist{Min: 1, Median: 2, Mean: 2, Max: 3}) || s.PerItem != (Dist{Min: 1, Median: 1, Mean: 4.0 / 3, Max: 2}) {
		t.Errorf("mean %v per user %+v per item %+v", s.Mean, s.PerUser, s.PerItem)
	}
	want := []int{1, 0, 0, 2, 1}
	for k, b := range s.Histogram {
		if b.Value != float64(k+1) || b.Count != want[k] {
			t.Errorf("bin %d = %+v, want value %d count %d", k, b, k+1, want[k])
		}
	}
	if s.First.Unix() != 50 || s.Last.Unix() != 86400*365 {
		t.Errorf("time range %v %v", s.First, s.Last)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ratings           4", "1970-01-01 to 1971-01-01", "median 2"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("text lacks %q:\n%s", w, buf.String())
		}
	}
	if !regexp.MustCompile(`\n +4 +2 +50\.0% +#{25}\n`).MatchString(buf.String()) {
		t.Errorf("histogram bar for 4 missing:\n%s", buf.String())
	}
	j, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(j), `"rated_items":3`) || !strings.Contains(string(j), `"per_user":{"min":1,"median":2,"mean":2,"max":3}`) {
		t.Errorf("json %s %v", j, err)
	}
	if thousands(1000209) != "1,000,209" || thousands(-1234) != "-1,234" || thousands(12) != "12" {
		t.Error("thousands")
	}
}

func TestStatsEmptyAndHalfStars(t *testing.T) {
	s := ComputeStats(&Dataset{Scale: HalfStarsFive})
	if s.Ratings != 0 || len(s.Histogram) != 10 || s.Sparsity != 0 {
		t.Errorf("empty: %+v", s)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil || !strings.Contains(buf.String(), "no timestamps") {
		t.Errorf("%v %s", err, buf.String())
	}
}

func TestStatsML1MShared(t *testing.T) {
	d, err := Load(context.Background(), "ml-1m", sharedtest.Path(t, "data", "ml-1m"))
	if err != nil {
		t.Fatal(err)
	}
	s := ComputeStats(d)
	if s.PerUser.Min != 20 || s.PerUser.Max != 2314 || s.RatedItems != 3706 || s.Histogram[3].Count != 348971 {
		t.Errorf("stats %+v", s)
	}
	if got := 100 * s.Sparsity; got < 95.52 || got > 95.54 {
		t.Errorf("sparsity %.3f%%, want 95.53%%", got)
	}
}
