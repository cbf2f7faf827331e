package eval

import (
	"math"

	"github.com/usersim/usersim/dataset"
)

// Histogram compares the distribution of predicted ratings with that of the
// true ratings. Predictions are rounded to the nearest scale value before
// counting; the means and standard deviations use the unrounded values.
// LLM simulators tend to pile their answers onto the top of the scale; a
// PredMean above TrueMean with a small PredStd is the signature.
type Histogram struct {
	Values []float64 `json:"values"` // the scale's values, ascending
	Pred   []int     `json:"pred"`   // valid predictions per value (rounded)
	True   []int     `json:"true"`   // true ratings per value (all test rows)
	// TV is the total variation distance ½ Σ |p_k − t_k| between the two
	// normalised histograms, in [0, 1].
	TV Float `json:"tv"`
	// EMD is the Wasserstein-1 (earth mover's) distance between them, in
	// rating points: Σ_k |P_k − T_k| · step over the cumulative shares.
	EMD      Float `json:"emd"`
	PredMean Float `json:"pred_mean"`
	PredStd  Float `json:"pred_std"`
	TrueMean Float `json:"true_mean"`
	TrueStd  Float `json:"true_std"`
}

// CompareHistograms builds the histograms of valid predictions and of the
// truth on the scale's values. For a continuous scale (Step <= 0) it uses ten
// equal bins between Min and Max, labelled by their centres.
func CompareHistograms(s dataset.Scale, pred, truth []float64) Histogram {
	values := s.Values()
	bin := func(v float64) int {
		v = s.Snap(v)
		return int(math.Round((v - s.Min) / s.Step))
	}
	if len(values) == 0 {
		const nb = 10
		w := (s.Max - s.Min) / nb
		values = make([]float64, nb)
		for k := range values {
			values[k] = s.Min + (float64(k)+0.5)*w
		}
		bin = func(v float64) int {
			if w <= 0 {
				return 0
			}
			return min(nb-1, max(0, int((s.Clamp(v)-s.Min)/w)))
		}
	}
	h := Histogram{Values: values, Pred: make([]int, len(values)), True: make([]int, len(values))}
	var pv []float64
	for k, p := range pred {
		h.True[bin(truth[k])]++
		if IsValid(p) {
			h.Pred[bin(p)]++
			pv = append(pv, p)
		}
	}
	pm, ps := meanStd(pv)
	tm, ts := meanStd(truth)
	h.PredMean, h.PredStd, h.TrueMean, h.TrueStd = Float(pm), Float(ps), Float(tm), Float(ts)
	h.TV, h.EMD = Float(math.NaN()), Float(math.NaN())
	np, nt := float64(len(pv)), float64(len(truth))
	if np == 0 || nt == 0 {
		return h
	}
	var tv, emd, cp, ct float64
	for k := range values {
		p, t := float64(h.Pred[k])/np, float64(h.True[k])/nt
		tv += math.Abs(p - t)
		cp += p
		ct += t
		if k+1 < len(values) {
			emd += math.Abs(cp-ct) * (values[k+1] - values[k])
		}
	}
	h.TV, h.EMD = Float(tv/2), Float(emd)
	return h
}
