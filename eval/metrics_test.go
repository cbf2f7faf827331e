package eval

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/usersim/usersim/dataset"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestPointMetricsHandComputed(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name           string
		pred, truth    []float64
		rmse, mae, urr float64
	}{
		// errors -1, 0, 3 over valid answers; one invalid of four.
		{"mixed", []float64{1, 2, nan, 4}, []float64{2, 2, 3, 1}, math.Sqrt(10.0 / 3), 4.0 / 3, 0.25},
		{"perfect", []float64{3, 4}, []float64{3, 4}, 0, 0, 0},
		{"inf is invalid", []float64{math.Inf(1), 5}, []float64{1, 4}, 1, 1, 0.5},
		{"all invalid", []float64{nan, nan}, []float64{1, 2}, nan, nan, 1},
		{"empty", nil, nil, nan, nan, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what string, got, want float64) {
				if !(near(got, want) || math.IsNaN(got) && math.IsNaN(want)) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("RMSE", RMSE(tc.pred, tc.truth), tc.rmse)
			check("MAE", MAE(tc.pred, tc.truth), tc.mae)
			check("URR", URR(tc.pred), tc.urr)
		})
	}
}

func TestPerUser(t *testing.T) {
	users := []int32{7, 3, 7, 3, 3}
	pred := []float64{4, 1, 2, math.NaN(), 5}
	truth := []float64{5, 1, 5, 2, 3}
	got := PerUser(users, pred, truth)
	if len(got) != 2 || got[0].User != 3 || got[1].User != 7 {
		t.Fatalf("users %+v, want 3 then 7", got)
	}
	// user 3: errors 0, (invalid), 2 → RMSE √2, MAE 1; user 7: errors 1, 3 → RMSE √5, MAE 2.
	if u := got[0]; u.N != 3 || u.Invalid != 1 || !near(float64(u.RMSE), math.Sqrt2) || !near(float64(u.MAE), 1) {
		t.Errorf("user 3: %+v", u)
	}
	if u := got[1]; u.N != 2 || u.Invalid != 0 || !near(float64(u.RMSE), math.Sqrt(5)) || !near(float64(u.MAE), 2) {
		t.Errorf("user 7: %+v", u)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]float64{4, 1, math.NaN(), 3, 2})
	want := map[string]float64{"mean": 2.5, "median": 2.5, "p25": 1.75, "p75": 3.25, "min": 1, "max": 4, "std": math.Sqrt(1.25)}
	got := map[string]float64{"mean": float64(s.Mean), "median": float64(s.Median), "p25": float64(s.P25),
		"p75": float64(s.P75), "min": float64(s.Min), "max": float64(s.Max), "std": float64(s.Std)}
	for k, w := range want {
		if !near(got[k], w) {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
	if s.N != 4 {
		t.Errorf("N = %d, want 4", s.N)
	}
	if e := Summarize(nil); e.N != 0 || !math.IsNaN(float64(e.Median)) {
		t.Errorf("empty summary %+v", e)
	}
}

func TestHistogram(t *testing.T) {
	tests := []struct {
		name        string
		pred, truth []float64
		pred5       []int
		tv, emd     float64
	}{
		// All answers 5 (4.6 rounds to 5), truth uniform on 1..4:
		// TV = 1; EMD = .25+.5+.75+1 = 2.5 = mean shift 5 − 2.5.
		{"skewed to five", []float64{5, 4.6, 5, 5}, []float64{1, 2, 3, 4}, []int{0, 0, 0, 0, 4}, 1, 2.5},
		// Same distribution, different pairing: both distances 0.
		{"same histogram", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, []int{1, 1, 1, 1, 0}, 0, 0},
		// One of two answers moved by one star; invalid ignored.
		{"one off", []float64{3, 4, math.NaN()}, []float64{3, 3, 3}, []int{0, 0, 1, 1, 0}, 0.5, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := CompareHistograms(dataset.FiveStars, tc.pred, tc.truth)
			for k, c := range tc.pred5 {
				if h.Pred[k] != c {
					t.Fatalf("pred histogram %v, want %v", h.Pred, tc.pred5)
				}
			}
			if !near(float64(h.TV), tc.tv) || !near(float64(h.EMD), tc.emd) {
				t.Errorf("TV %v EMD %v, want %v %v", h.TV, h.EMD, tc.tv, tc.emd)
			}
		})
	}
	h := CompareHistograms(dataset.FiveStars, []float64{5, 5, 4}, []float64{3, 4, 5})
	if !near(float64(h.PredMean), 14.0/3) || !near(float64(h.TrueMean), 4) || !near(float64(h.TrueStd), math.Sqrt(2.0/3)) {
		t.Errorf("means/std: %+v", h)
	}
	// Half-star scale: 0.5..5 has 10 values; 3.74 rounds to 3.5.
	h = CompareHistograms(dataset.HalfStarsFive, []float64{3.74}, []float64{3.5})
	if len(h.Values) != 10 || h.Pred[6] != 1 || h.TV != 0 {
		t.Errorf("half stars: %+v", h)
	}
	// Continuous scale: ten bins.
	h = CompareHistograms(dataset.Scale{Min: 0, Max: 1}, []float64{0.05, 0.95}, []float64{0.01, 1})
	if len(h.Values) != 10 || h.Pred[0] != 1 || h.Pred[9] != 1 || h.True[9] != 1 {
		t.Errorf("continuous: %+v", h)
	}
}

func TestBootstrap(t *testing.T) {
	// 50 users with different error levels, 10 rows each.
	var users []int32
	var pred, truth []float64
	for u := range 50 {
		for r := range 10 {
			users = append(users, int32(u))
			truth = append(truth, 3)
			e := float64(u%5) * 0.3 * float64(1-2*(r%2))
			p := 3 + e
			if u == 0 && r == 0 {
				p = math.NaN()
			}
			pred = append(pred, p)
		}
	}
	ci := Bootstrap(users, pred, truth, 500, 0.95, 1)
	rmse, mae, urr := RMSE(pred, truth), MAE(pred, truth), URR(pred)
	for _, c := range []struct {
		name string
		iv   Interval
		v    float64
	}{{"RMSE", ci.RMSE, rmse}, {"MAE", ci.MAE, mae}, {"URR", ci.URR, urr}} {
		if !(float64(c.iv.Lo) <= c.v && c.v <= float64(c.iv.Hi)) {
			t.Errorf("%s CI [%v, %v] does not cover the estimate %v", c.name, c.iv.Lo, c.iv.Hi, c.v)
		}
		if !(c.iv.Hi > c.iv.Lo) {
			t.Errorf("%s CI [%v, %v] is degenerate", c.name, c.iv.Lo, c.iv.Hi)
		}
	}
	if again := Bootstrap(users, pred, truth, 500, 0.95, 1); again != ci {
		t.Error("same seed gave a different interval")
	}
	if other := Bootstrap(users, pred, truth, 500, 0.95, 2); other == ci {
		t.Error("different seeds gave identical intervals")
	}
	// A 50% interval is narrower than a 95% one.
	narrow := Bootstrap(users, pred, truth, 500, 0.5, 1)
	if !(narrow.RMSE.Hi-narrow.RMSE.Lo < ci.RMSE.Hi-ci.RMSE.Lo) {
		t.Error("a 50% interval is not narrower than a 95% one")
	}
	if z := Bootstrap(users, pred, truth, 0, 0.95, 1); !math.IsNaN(float64(z.RMSE.Lo)) {
		t.Error("zero resamples should give no interval")
	}
}

func TestBootstrapResamplesUsersNotRows(t *testing.T) {
	// Two users: one always exact, one always off by 2, many rows each. A
	// row-level bootstrap would give a tiny interval around √2; a user-level
	// one sees only 2 units and must span from 0 (both draws the exact user)
	// to 2 (both the bad user) at the 95% level.
	var users []int32
	var pred, truth []float64
	for u := range 2 {
		for range 200 {
			users = append(users, int32(u))
			truth = append(truth, 3)
			pred = append(pred, 3+2*float64(u))
		}
	}
	ci := Bootstrap(users, pred, truth, 400, 0.95, 3)
	if ci.RMSE.Lo != 0 || ci.RMSE.Hi != 2 {
		t.Errorf("RMSE CI [%v, %v], want [0, 2] when resampling 2 users", ci.RMSE.Lo, ci.RMSE.Hi)
	}
}

func TestFloatJSON(t *testing.T) {
	in := struct {
		A, B Float
	}{Float(math.NaN()), 1.25}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"A":null,"B":1.25}` {
		t.Fatalf("got %s", b)
	}
	var out struct{ A, B Float }
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(out.A)) || out.B != 1.25 {
		t.Errorf("round trip %+v", out)
	}
}

func TestPairedBootstrap(t *testing.T) {
	var users []int32
	var ref, better, truth []float64
	for u := range 40 {
		for r := range 5 {
			users = append(users, int32(u))
			truth = append(truth, 3)
			e := 0.5 + float64(u%7)*0.2 // users differ a lot in difficulty
			if r%2 == 1 {
				e = -e
			}
			ref = append(ref, 3+e)
			better = append(better, 3+0.9*e) // 10% less error for every user
		}
	}
	same := PairedBootstrap(users, ref, ref, truth, 200, 0.95, 1)
	if same.DeltaRMSE != 0 || same.RMSECI.Lo != 0 || same.RMSECI.Hi != 0 {
		t.Errorf("identical predictors: %+v", same)
	}
	c := PairedBootstrap(users, better, ref, truth, 200, 0.95, 1)
	want := 0.9*RMSE(ref, truth) - RMSE(ref, truth)
	if !near(float64(c.DeltaRMSE), want) || !(c.RMSECI.Hi < 0) || !(c.MAECI.Hi < 0) {
		t.Errorf("uniformly better predictor: %+v, want delta %v with an interval below 0", c, want)
	}

}
