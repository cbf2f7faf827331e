package synth

import (
	"fmt"
	"math"
)

// prepare caches per-item features the model needs.
func (w *World) prepare() {
	w.once.Do(func() {
		idx := make(map[string]int, len(w.Truth.Genres))
		for g, name := range w.Truth.Genres {
			idx[name] = g
		}
		items := w.Dataset.Items
		w.itemGenres = make([][]int, len(items))
		w.yearZ = make([]float64, len(items))
		for i := range items {
			for _, name := range items[i].Genres {
				if g, ok := idx[name]; ok {
					w.itemGenres[i] = append(w.itemGenres[i], g)
				}
			}
			w.yearZ[i] = (float64(items[i].Year) - w.Truth.YearMean) / w.Truth.YearSD
		}
	})
}

// Taste returns user u's latent taste t_ui for item i in stars (see the
// package documentation).
func (w *World) Taste(u, i int32) float64 {
	w.prepare()
	ut := &w.Truth.Users[u]
	p := &w.Truth.Personas[ut.Persona]
	var genre float64
	if gs := w.itemGenres[i]; len(gs) > 0 {
		for _, g := range gs {
			genre += p.GenreAffinity[g] + ut.GenreDeviation[g]
		}
		genre /= float64(len(gs))
	}
	return ut.TasteStrength * (genre + p.EraSlope*w.yearZ[i] + p.PopularityAffinity*w.Truth.Items[i].Popularity)
}

// Mean returns the latent mean of u's rating of i before noise and rounding:
// GlobalMean + b_u + q_i + t_ui.
func (w *World) Mean(u, i int32) float64 {
	return w.Truth.Config.GlobalMean + w.Truth.Users[u].Bias + w.Truth.Items[i].Quality + w.Taste(u, i)
}

// Expected returns E[r|u,i], the expected rating after noise, rounding and
// clipping: the best prediction of u's rating of i in squared error.
func (w *World) Expected(u, i int32) float64 {
	mean, _, _ := snapMoments(w.Mean(u, i), w.Truth.NoiseSigma, w.Dataset.Scale.Values())
	return mean
}

// NoiseFloorOf returns the noise floor over the given rows of the ratings
// table (all rows when rows is nil), e.g. over a split's test rows.
func (w *World) NoiseFloorOf(rows []int32) NoiseFloor {
	vals := w.Dataset.Scale.Values()
	rt := &w.Dataset.Ratings
	n := len(rows)
	if rows == nil {
		n = rt.Len()
	}
	var f NoiseFloor
	var vsum, msum, rse, rae float64
	for k := range n {
		row := int32(k)
		if rows != nil {
			row = rows[k]
		}
		u, i := rt.User[row], rt.Item[row]
		mean, variance, mad := snapMoments(w.Mean(u, i), w.Truth.NoiseSigma, vals)
		vsum += variance
		msum += mad
		e := float64(rt.Value[row]) - mean
		rse += e * e
		rae += math.Abs(e)
	}
	f.Rows = n
	if n > 0 {
		fn := float64(n)
		f.RMSE, f.MAE = math.Sqrt(vsum/fn), msum/fn
		f.RealisedRMSE, f.RealisedMAE = math.Sqrt(rse/fn), rae/fn
	}
	return f
}

// snapMoments returns the mean, variance and mean absolute deviation from
// the mean of Snap(m + ε), ε ~ N(0, sigma²), where Snap rounds to the nearest
// of vals (ascending) and clips to its ends. The probability of each value is
// the normal mass between the midpoints around it.
func snapMoments(m, sigma float64, vals []float64) (mean, variance, mad float64) {
	if len(vals) == 0 {
		return m, sigma * sigma, sigma * math.Sqrt(2/math.Pi)
	}
	var buf [16]float64
	probs := buf[:0]
	if len(vals) > len(buf) {
		probs = make([]float64, 0, len(vals))
	}
	cdf := func(x float64) float64 {
		if sigma == 0 {
			if m < x {
				return 1
			}
			return 0
		}
		return 0.5 * math.Erfc(-(x-m)/(sigma*math.Sqrt2))
	}
	lo := 0.0
	for k := range vals {
		hi := 1.0
		if k+1 < len(vals) {
			hi = cdf((vals[k] + vals[k+1]) / 2)
		}
		probs = append(probs, hi-lo)
		lo = hi
	}
	for k, p := range probs {
		mean += p * vals[k]
	}
	for k, p := range probs {
		d := vals[k] - mean
		variance += p * d * d
		mad += p * math.Abs(d)
	}
	return mean, variance, mad
}

// check verifies that the truth fits the dataset it describes.
func (w *World) check() error {
	t, d := &w.Truth, w.Dataset
	if t.Version != TruthVersion {
		return fmt.Errorf("truth version %d, want %d", t.Version, TruthVersion)
	}
	if len(t.Users) != d.NumUsers() || len(t.Items) != d.NumItems() {
		return fmt.Errorf("truth has %d users and %d items, dataset %d and %d", len(t.Users), len(t.Items), d.NumUsers(), d.NumItems())
	}
	if len(t.Genres) == 0 {
		return fmt.Errorf("truth lists no genres")
	}
	if !(t.NoiseSigma >= 0) || !(t.YearSD > 0) {
		return fmt.Errorf("truth has noise_sigma %v and year_sd %v", t.NoiseSigma, t.YearSD)
	}
	for p := range t.Personas {
		if len(t.Personas[p].GenreAffinity) != len(t.Genres) {
			return fmt.Errorf("persona %d: %d genre affinities for %d genres", p, len(t.Personas[p].GenreAffinity), len(t.Genres))
		}
	}
	for u := range t.Users {
		ut := &t.Users[u]
		if ut.Persona < 0 || ut.Persona >= len(t.Personas) {
			return fmt.Errorf("user %s: persona %d out of range", ut.ID, ut.Persona)
		}
		if len(ut.GenreDeviation) != len(t.Genres) {
			return fmt.Errorf("user %s: %d genre deviations for %d genres", ut.ID, len(ut.GenreDeviation), len(t.Genres))
		}
	}
	return nil
}
