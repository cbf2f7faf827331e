package eval

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Interval is a confidence interval [Lo, Hi] at level Level.
type Interval struct {
	Lo    Float   `json:"lo"`
	Hi    Float   `json:"hi"`
	Level float64 `json:"level"`
}

// BootstrapCI holds percentile-bootstrap intervals for the headline metrics.
type BootstrapCI struct {
	Resamples int      `json:"resamples"`
	RMSE      Interval `json:"rmse"`
	MAE       Interval `json:"mae"`
	URR       Interval `json:"urr"`
}

// Bootstrap returns percentile confidence intervals for RMSE, MAE and URR by
// resampling users with replacement: each replicate draws as many users as
// there are, and pools all test rows of every drawn user. Users, not rows,
// are the unit because one user's test rows are correlated (same taste, same
// rating habits); resampling rows would give intervals that are too narrow.
// The same seed draws the same users for every predictor evaluated on the
// same test rows, so intervals of different predictors are comparable.
// users[k] is the user of test row k.
func Bootstrap(users []int32, pred, truth []float64, resamples int, level float64, seed int64) BootstrapCI {
	g := groupByUser(users, pred, truth)
	slices.SortFunc(g, func(a, b userSums) int { return int(a.user) - int(b.user) })
	nan := Float(math.NaN())
	ci := BootstrapCI{Resamples: resamples,
		RMSE: Interval{nan, nan, level}, MAE: Interval{nan, nan, level}, URR: Interval{nan, nan, level}}
	if resamples <= 0 || len(g) == 0 {
		return ci
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x626f6f74)) // "boot"
	rmse := make([]float64, 0, resamples)
	mae := make([]float64, 0, resamples)
	urr := make([]float64, 0, resamples)
	for range resamples {
		var n, inval int
		var sse, sae float64
		for range g {
			s := &g[rng.IntN(len(g))]
			n += s.n
			inval += s.inval
			sse += s.sse
			sae += s.sae
		}
		urr = append(urr, float64(inval)/float64(n))
		if v := n - inval; v > 0 {
			rmse = append(rmse, math.Sqrt(sse/float64(v)))
			mae = append(mae, sae/float64(v))
		}
	}
	lo, hi := (1-level)/2, 1-(1-level)/2
	pct := func(v []float64) Interval {
		if len(v) == 0 {
			return Interval{nan, nan, level}
		}
		slices.Sort(v)
		return Interval{Float(quantile(v, lo)), Float(quantile(v, hi)), level}
	}
	ci.RMSE, ci.MAE, ci.URR = pct(rmse), pct(mae), pct(urr)
	return ci
}

// Comparison is a predictor's difference from a reference predictor on the
// same test rows, with paired user-level bootstrap intervals: each replicate
// draws one set of users and scores both predictors on it, so the shared
// difficulty of those users cancels out. A negative delta means the
// predictor has the lower error.
type Comparison struct {
	Reference string   `json:"reference"`
	DeltaRMSE Float    `json:"delta_rmse"`
	RMSECI    Interval `json:"delta_rmse_ci"`
	DeltaMAE  Float    `json:"delta_mae"`
	MAECI     Interval `json:"delta_mae_ci"`
}

// PairedBootstrap compares pred with ref (both answering the test rows of
// users[k] with truth[k]): RMSE(pred) − RMSE(ref) and the same for MAE,
// each predictor's errors over its own valid answers, with percentile
// intervals from resampling users.
func PairedBootstrap(users []int32, pred, ref, truth []float64, resamples int, level float64, seed int64) Comparison {
	nan := Float(math.NaN())
	c := Comparison{
		DeltaRMSE: Float(RMSE(pred, truth) - RMSE(ref, truth)),
		DeltaMAE:  Float(MAE(pred, truth) - MAE(ref, truth)),
		RMSECI:    Interval{nan, nan, level}, MAECI: Interval{nan, nan, level},
	}
	a := groupByUser(users, pred, truth)
	b := groupByUser(users, ref, truth) // same users in the same order
	if resamples <= 0 || len(a) == 0 {
		return c
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x70616972)) // "pair"
	dr := make([]float64, 0, resamples)
	dm := make([]float64, 0, resamples)
	for range resamples {
		var va, vb int
		var sa, sb, ma, mb float64
		for range a {
			g := rng.IntN(len(a))
			va += a[g].n - a[g].inval
			vb += b[g].n - b[g].inval
			sa += a[g].sse
			sb += b[g].sse
			ma += a[g].sae
			mb += b[g].sae
		}
		if va > 0 && vb > 0 {
			dr = append(dr, math.Sqrt(sa/float64(va))-math.Sqrt(sb/float64(vb)))
			dm = append(dm, ma/float64(va)-mb/float64(vb))
		}
	}
	lo, hi := (1-level)/2, 1-(1-level)/2
	if len(dr) > 0 {
		slices.Sort(dr)
		slices.Sort(dm)
		c.RMSECI = Interval{Float(quantile(dr, lo)), Float(quantile(dr, hi)), level}
		c.MAECI = Interval{Float(quantile(dm, lo)), Float(quantile(dm, hi)), level}
	}
	return c
}
