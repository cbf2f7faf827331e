package synth

import (
	"math"
	"testing"
)

// ratingStats summarises a world's ratings.
type ratingStats struct {
	mean, globalRMSE float64
	hist             [5]float64 // shares of 1..5 stars
}

func statsOf(w *World) ratingStats {
	var s ratingStats
	r := &w.Dataset.Ratings
	n := float64(r.Len())
	for _, v := range r.Value {
		s.mean += float64(v)
		s.hist[int(v)-1]++
	}
	s.mean /= n
	for _, v := range r.Value {
		s.globalRMSE += (float64(v) - s.mean) * (float64(v) - s.mean)
	}
	s.globalRMSE = math.Sqrt(s.globalRMSE / n)
	for k := range s.hist {
		s.hist[k] /= n
	}
	return s
}

// biasBaseline fits r ≈ mu + b_u + b_i by alternating regularised least
// squares (as Surprise's BaselineOnly: reg_i 10, reg_u 15, 10 rounds) on the
// rows with train[row] set and returns the RMSE on the others and the RMSE
// of the training mean on the others.
func biasBaseline(w *World, train []bool) (bias, global float64) {
	d := w.Dataset
	r := &d.Ratings
	var mu, n float64
	for k, v := range r.Value {
		if train[k] {
			mu += float64(v)
			n++
		}
	}
	mu /= n
	bu := make([]float64, d.NumUsers())
	bi := make([]float64, d.NumItems())
	su := make([]float64, d.NumUsers())
	cu := make([]float64, d.NumUsers())
	si := make([]float64, d.NumItems())
	ci := make([]float64, d.NumItems())
	for range 10 {
		clear(si)
		clear(ci)
		for k, v := range r.Value {
			if train[k] {
				si[r.Item[k]] += float64(v) - mu - bu[r.User[k]]
				ci[r.Item[k]]++
			}
		}
		for i := range bi {
			bi[i] = si[i] / (ci[i] + 10)
		}
		clear(su)
		clear(cu)
		for k, v := range r.Value {
			if train[k] {
				su[r.User[k]] += float64(v) - mu - bi[r.Item[k]]
				cu[r.User[k]]++
			}
		}
		for u := range bu {
			bu[u] = su[u] / (cu[u] + 15)
		}
	}
	var se, sg, m float64
	for k, v := range r.Value {
		if !train[k] {
			e := float64(v) - (mu + bu[r.User[k]] + bi[r.Item[k]])
			se += e * e
			sg += (float64(v) - mu) * (float64(v) - mu)
			m++
		}
	}
	return math.Sqrt(se / m), math.Sqrt(sg / m)
}

// holdout marks about 90% of rows as training rows, deterministically.
func holdout(n int) []bool {
	r := newRNG(99, 7)
	train := make([]bool, n)
	for k := range train {
		train[k] = r.float64() < 0.9
	}
	return train
}

func TestExplore(t *testing.T) {
	w, err := Generate(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := statsOf(w)
	bias, global := biasBaseline(w, holdout(w.Dataset.Ratings.Len()))
	t.Logf("rows %d mean %.3f sd %.3f hist %.3f", w.Dataset.Ratings.Len(), s.mean, s.globalRMSE, s.hist)
	t.Logf("floor %.3f/%.3f realised %.3f  bias %.3f global %.3f", w.Truth.NoiseFloor.RMSE, w.Truth.NoiseFloor.MAE, w.Truth.NoiseFloor.RealisedRMSE, bias, global)
	for p := range w.Truth.Personas {
		t.Logf("%s: %s", w.Truth.Personas[p].Name, w.Truth.Personas[p].Description)
	}
}
