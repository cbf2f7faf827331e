package eval

import (
	"math"
	"slices"
	"testing"
)

func TestPerGroup(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name   string
		users  []int32
		pred   []float64
		truth  []float64
		groups map[int32]string
		want   []GroupMetric
	}{
		{name: "no groups", users: []int32{0}, pred: []float64{1}, truth: []float64{2}},
		{name: "no test row grouped", users: []int32{0}, pred: []float64{1}, truth: []float64{2},
			groups: map[int32]string{5: "persona-1"}},
		{
			// persona-10 holds users 1 and 2: errors 1, 3 (user 1) and 0
			// (user 2): RMSE √(10/3), MAE 4/3. persona-2 holds user 0 with
			// one invalid answer (counted in Rows only) and error 2. User 3
			// has no group, user 4 an empty label: both left out.
			name:   "two groups",
			users:  []int32{0, 0, 1, 1, 2, 3, 4},
			pred:   []float64{nan, 3, 2, 5, 4, 1, 1},
			truth:  []float64{4, 5, 3, 2, 4, 5, 5},
			groups: map[int32]string{0: "persona-2", 1: "persona-10", 2: "persona-10", 4: "", 9: "persona-1"},
			want: []GroupMetric{
				{Group: "persona-2", Users: 1, Rows: 2, RMSE: 2, MAE: 2},
				{Group: "persona-10", Users: 2, Rows: 3, RMSE: Float(math.Sqrt(10.0 / 3)), MAE: 4.0 / 3},
			},
		},
		{name: "only invalid answers", users: []int32{7, 7}, pred: []float64{nan, math.Inf(1)}, truth: []float64{1, 2},
			groups: map[int32]string{7: "g"},
			want:   []GroupMetric{{Group: "g", Users: 1, Rows: 2, RMSE: Float(nan), MAE: Float(nan)}}},
	}
	same := func(a, b Float) bool {
		x, y := float64(a), float64(b)
		return (math.IsNaN(x) && math.IsNaN(y)) || math.Abs(x-y) < 1e-12
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PerGroup(tt.users, tt.pred, tt.truth, tt.groups)
			if len(got) != len(tt.want) || (tt.want == nil && got != nil) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for k, g := range got {
				w := tt.want[k]
				if g.Group != w.Group || g.Users != w.Users || g.Rows != w.Rows || !same(g.RMSE, w.RMSE) || !same(g.MAE, w.MAE) {
					t.Errorf("group %d: got %+v, want %+v", k, g, w)
				}
			}
		})
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"persona-2", "persona-10", -1},
		{"persona-10", "persona-2", 1},
		{"persona-2", "persona-2", 0},
		{"a", "b", -1},
		{"a2b", "a10a", -1},
		{"a10b", "a10a", 1},
		{"x", "x1", -1},
		{"x9", "x", 1},
		{"7", "07", 1}, // equal numbers: plain string order keeps the order total
		{"007", "8", -1},
		{"", "a", -1},
		{"k99999999999999999999999", "k100000000000000000000000", -1}, // no overflow
	}
	for _, tt := range tests {
		if got := naturalCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := naturalCompare(tt.b, tt.a); got != -tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
	labels := []string{"persona-10", "persona-1", "user-3", "persona-2", "persona-0", "persona-100"}
	slices.SortFunc(labels, naturalCompare)
	want := []string{"persona-0", "persona-1", "persona-2", "persona-10", "persona-100", "user-3"}
	if !slices.Equal(labels, want) {
		t.Errorf("sorted %v, want %v", labels, want)
	}
}

func TestFormatting(t *testing.T) {
	tests := []struct{ got, want string }{
		{params(0), ""},
		{params(-3), ""},
		{params(9999), "9999"},
		{params(12_345), "12.3k"},
		{params(1_234_567), "1.23M"},
		{params(7_000_000_000), "7.00B"},
		{seconds(0), ""},
		{seconds(math.NaN()), ""},
		{seconds(12.34), "12.3"},
		{rate(0, 1), ""},
		{rate(10, 0), ""},
		{rate(10, 4), "2.5"},
		{rate(999, 10), "99.9"},
		{rate(9996, 10), "1000"},
		{rate(99_999, 10), "10k"},
		{rate(5_000_000, 2), "2.5M"},
		{mdText("a|b\n*c*"), `a\|b \*c\*`},
		{mdText("<img src=x>"), `\<img src=x\>`},
		{esc("a<b & \"c\"\x00"), "a&lt;b &amp; &#34;c&#34;\uFFFD"},
		{num(math.NaN()), "0"},
		{num(-0.01), "0"},
		{num(12.345), "12.3"},
	}
	for k, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", k, tt.got, tt.want)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		n      int
	}{{0.81, 0.97, 6}, {0, 1, 4}, {0.5, 0.5, 6}, {-3, 7, 5}, {1e-4, 3e-4, 6}, {100, 12345, 6}}
	for _, tt := range tests {
		ticks := niceTicks(tt.lo, tt.hi, tt.n)
		if len(ticks) < 2 || ticks[0] > tt.lo || ticks[len(ticks)-1] < tt.hi || len(ticks) > 2*tt.n+2 {
			t.Errorf("niceTicks(%g, %g, %d) = %v", tt.lo, tt.hi, tt.n, ticks)
		}
		for k := 1; k < len(ticks); k++ {
			if d := ticks[k] - ticks[k-1]; math.Abs(d-(ticks[1]-ticks[0])) > 1e-9*math.Abs(d) {
				t.Errorf("niceTicks(%g, %g): uneven %v", tt.lo, tt.hi, ticks)
			}
		}
	}
}
