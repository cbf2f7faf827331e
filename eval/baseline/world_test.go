package baseline

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/usersim/usersim/dataset"
)

// world is a generated rating dataset with known parameters:
// r = mu + bu[u] + bi[i] + <P[u], Q[i]> + noise, clamped to 1..5 (continuous
// scale, so no rounding noise).
type world struct {
	d      *dataset.Dataset
	mu     float64
	bu, bi []float64
	rank   int
	p, q   []float64
	noise  float64
}

// truth returns the noiseless rating of (u, i).
func (w *world) truth(u, i int) float64 {
	v := w.mu + w.bu[u] + w.bi[i]
	for f := range w.rank {
		v += w.p[u*w.rank+f] * w.q[i*w.rank+f]
	}
	return v
}

// newWorld builds a world of nu users and ni items where each pair is rated
// with probability density. biasStd and factorStd set the spread of the
// biases and of each latent factor.
func newWorld(seed uint64, nu, ni, rank int, density, biasStd, factorStd, noise float64) *world {
	rng := rand.New(rand.NewPCG(seed, 7))
	w := &world{mu: 3.4, rank: rank, noise: noise,
		bu: make([]float64, nu), bi: make([]float64, ni),
		p: make([]float64, nu*rank), q: make([]float64, ni*rank)}
	for u := range w.bu {
		w.bu[u] = biasStd * rng.NormFloat64()
	}
	for i := range w.bi {
		w.bi[i] = biasStd * rng.NormFloat64()
	}
	for k := range w.p {
		w.p[k] = factorStd * rng.NormFloat64()
	}
	for k := range w.q {
		w.q[k] = factorStd * rng.NormFloat64()
	}
	d := &dataset.Dataset{Name: "world", Scale: dataset.Scale{Min: 1, Max: 5}}
	for u := range nu {
		d.AddUser(dataset.User{ID: strconv.Itoa(u)})
	}
	for i := range ni {
		d.AddItem(dataset.Item{ID: strconv.Itoa(i)})
	}
	for u := range nu {
		for i := range ni {
			if rng.Float64() >= density {
				continue
			}
			v := w.truth(u, i) + noise*rng.NormFloat64()
			v = math.Min(5, math.Max(1, v))
			d.Append(int32(u), int32(i), float32(v), 0, false)
		}
	}
	w.d = d
	return w
}

// holdout splits all rows into train and test at random (test share frac).
func holdout(d *dataset.Dataset, frac float64, seed uint64) (train, test []int32) {
	rng := rand.New(rand.NewPCG(seed, 9))
	for row := range d.Ratings.Len() {
		if rng.Float64() < frac {
			test = append(test, int32(row))
		} else {
			train = append(train, int32(row))
		}
	}
	return train, test
}

func allRows(d *dataset.Dataset) []int32 {
	rows := make([]int32, d.Ratings.Len())
	for k := range rows {
		rows[k] = int32(k)
	}
	return rows
}

func rmseOn(p Predictor, d *dataset.Dataset, rows []int32) float64 {
	var s float64
	for _, row := range rows {
		e := p.Predict(d.Ratings.User[row], d.Ratings.Item[row]) - float64(d.Ratings.Value[row])
		s += e * e
	}
	return math.Sqrt(s / float64(len(rows)))
}
