package eval

import (
	"math"
	"slices"
)

// RMSE returns the root mean squared error of the valid predictions against
// truth, and NaN when no prediction is valid. pred and truth have equal
// length.
func RMSE(pred, truth []float64) float64 {
	var s float64
	var n int
	for k, p := range pred {
		if IsValid(p) {
			d := p - truth[k]
			s += d * d
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return math.Sqrt(s / float64(n))
}

// MAE returns the mean absolute error of the valid predictions against
// truth, and NaN when no prediction is valid.
func MAE(pred, truth []float64) float64 {
	var s float64
	var n int
	for k, p := range pred {
		if IsValid(p) {
			s += math.Abs(p - truth[k])
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return s / float64(n)
}

// URR returns the unrelated-response rate: the share of predictions that
// are invalid (0 for an empty slice).
func URR(pred []float64) float64 {
	if len(pred) == 0 {
		return 0
	}
	var n int
	for _, p := range pred {
		if !IsValid(p) {
			n++
		}
	}
	return float64(n) / float64(len(pred))
}

// UserMetric is one user's error over that user's test rows.
type UserMetric struct {
	User    int32 `json:"user"`
	N       int   `json:"n"`       // test rows
	Invalid int   `json:"invalid"` // of which invalid answers
	RMSE    Float `json:"rmse"`    // over valid answers; null when none
	MAE     Float `json:"mae"`
}

// userSums are the sufficient statistics of one user's test rows.
type userSums struct {
	user     int32
	n, inval int
	sse, sae float64
}

// groupByUser accumulates per-user sums, users in order of first appearance.
func groupByUser(users []int32, pred, truth []float64) []userSums {
	idx := make(map[int32]int)
	var out []userSums
	for k, u := range users {
		g, ok := idx[u]
		if !ok {
			g = len(out)
			idx[u] = g
			out = append(out, userSums{user: u})
		}
		s := &out[g]
		s.n++
		if p := pred[k]; IsValid(p) {
			d := p - truth[k]
			s.sse += d * d
			s.sae += math.Abs(d)
		} else {
			s.inval++
		}
	}
	return out
}

// PerUser returns each user's RMSE and MAE over their valid answers, users in
// ascending order. users[k] is the user of test row k.
func PerUser(users []int32, pred, truth []float64) []UserMetric {
	g := groupByUser(users, pred, truth)
	out := make([]UserMetric, len(g))
	for k, s := range g {
		m := UserMetric{User: s.user, N: s.n, Invalid: s.inval, RMSE: Float(math.NaN()), MAE: Float(math.NaN())}
		if v := s.n - s.inval; v > 0 {
			m.RMSE = Float(math.Sqrt(s.sse / float64(v)))
			m.MAE = Float(s.sae / float64(v))
		}
		out[k] = m
	}
	slices.SortFunc(out, func(a, b UserMetric) int { return int(a.User) - int(b.User) })
	return out
}

// Summary describes a distribution of values (NaNs ignored).
type Summary struct {
	N      int   `json:"n"`
	Mean   Float `json:"mean"`
	Std    Float `json:"std"` // population standard deviation
	Min    Float `json:"min"`
	P10    Float `json:"p10"`
	P25    Float `json:"p25"`
	Median Float `json:"median"`
	P75    Float `json:"p75"`
	P90    Float `json:"p90"`
	Max    Float `json:"max"`
}

// Summarize returns the mean, spread and quantiles (linear interpolation
// between order statistics) of the non-NaN values.
func Summarize(xs []float64) Summary {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	nan := Float(math.NaN())
	s := Summary{N: len(v), Mean: nan, Std: nan, Min: nan, P10: nan, P25: nan, Median: nan, P75: nan, P90: nan, Max: nan}
	if len(v) == 0 {
		return s
	}
	slices.Sort(v)
	m, sd := meanStd(v)
	s.Mean, s.Std = Float(m), Float(sd)
	s.Min, s.Max = Float(v[0]), Float(v[len(v)-1])
	s.P10 = Float(quantile(v, 0.10))
	s.P25 = Float(quantile(v, 0.25))
	s.Median = Float(quantile(v, 0.5))
	s.P75 = Float(quantile(v, 0.75))
	s.P90 = Float(quantile(v, 0.90))
	return s
}

// meanStd returns the mean and population standard deviation.
func meanStd(v []float64) (mean, std float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(std / float64(len(v)))
}

// quantile returns the q-quantile of sorted v by linear interpolation
// (numpy's default, "type 7").
func quantile(sorted []float64, q float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	h := q * float64(n-1)
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}
