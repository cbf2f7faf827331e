package baseline

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/usersim/usersim/dataset"
)

// KNNBaseline is item-based k-nearest-neighbours with baselines, as
// Surprise's KNNBaseline with sim_options {name: pearson_baseline,
// user_based: false}:
//
//	r̂_ui = b_ui + Σ_{j∈N^k_i(u)} s_ij (r_uj − b_uj) / Σ_{j∈N^k_i(u)} s_ij
//
// where b_ui = μ + b_u + b_i are the ALS baselines (as Bias), and N^k_i(u)
// are the K items rated by u most similar to i, keeping only positive
// similarities. When fewer than MinK neighbours remain the prediction is the
// baseline. The similarity is the shrunk Pearson-baseline correlation over
// the users who rated both items:
//
//	s_ij = (n_ij − 1)/(n_ij − 1 + Shrinkage) · Σ d_ui d_uj / √(Σ d_ui² · Σ d_uj²),  d_ui = r_ui − b_ui
//
// and 0 when fewer than two users rated both. The item–item similarity matrix
// is dense (float32, NumItems² entries: 55 MB for MovieLens-1M).
type KNNBaseline struct {
	K         int     // neighbours; default 40
	MinK      int     // minimum neighbours; default 1
	Shrinkage float64 // default 100
	BslEpochs int     // ALS sweeps for the baselines; default 10
	BslRegU   float64 // default 15
	BslRegI   float64 // default 10
	// MaxMatrixBytes bounds the similarity matrix (4·NumItems² bytes);
	// Fit fails with a clear error above it. Default 4 GiB (about 32,000
	// items); MovieLens-25M's 59,047 items would need 13.9 GB.
	MaxMatrixBytes int64

	b   baselines
	sim []float32 // nItems × nItems
	dev []float32 // r − b_ui for each training rating, by-user order
}

// NewKNNBaseline returns an item-based KNNBaseline with Surprise's defaults.
func NewKNNBaseline() *KNNBaseline {
	return &KNNBaseline{K: 40, MinK: 1, Shrinkage: 100, BslEpochs: 10, BslRegU: 15, BslRegI: 10, MaxMatrixBytes: 4 << 30}
}

// Name returns "item-knn".
func (m *KNNBaseline) Name() string { return "item-knn" }

// Fit computes the baselines and the item–item similarities.
func (m *KNNBaseline) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	if m.K <= 0 || m.MinK < 0 || m.Shrinkage < 0 {
		return fmt.Errorf("item-knn: invalid settings (k %d, min_k %d, shrinkage %g)", m.K, m.MinK, m.Shrinkage)
	}
	if d != nil && m.MaxMatrixBytes > 0 {
		if need := 4 * int64(d.NumItems()) * int64(d.NumItems()); need > m.MaxMatrixBytes {
			return fmt.Errorf("item-knn: %d items need a %.1f GB similarity matrix, over the %.1f GB limit (MaxMatrixBytes)",
				d.NumItems(), float64(need)/1e9, float64(m.MaxMatrixBytes)/1e9)
		}
	}
	t, err := newTrainSet(d, train)
	if err != nil {
		return fmt.Errorf("item-knn: %w", err)
	}
	m.b, m.sim, m.dev = baselines{}, nil, nil
	bl, err := fitBaselinesALS(ctx, t, m.BslEpochs, m.BslRegU, m.BslRegI)
	if err != nil {
		return fmt.Errorf("item-knn: %w", err)
	}
	dev := make([]float32, len(t.uItem))
	for u := range t.nUsers {
		for p := t.uPtr[u]; p < t.uPtr[u+1]; p++ {
			dev[p] = float32(float64(t.uVal[p]) - bl.estimate(int32(u), t.uItem[p]))
		}
	}
	sim, err := pearsonBaseline(ctx, t, dev, m.Shrinkage)
	if err != nil {
		return fmt.Errorf("item-knn: %w", err)
	}
	m.b, m.sim, m.dev = bl, sim, dev
	return nil
}

// pearsonBaseline fills the dense item–item similarity matrix row by row,
// rows in parallel. Row i accumulates, for every user u who rated i and
// every item j that u rated, the products of baseline deviations.
func pearsonBaseline(ctx context.Context, t *trainSet, dev []float32, shrink float64) ([]float32, error) {
	n := t.nItems
	sim := make([]float32, n*n)
	workers := min(runtime.GOMAXPROCS(0), max(1, n/64))
	var wg sync.WaitGroup
	rows := make(chan int, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prods := make([]float64, n)
			sqi := make([]float64, n)
			sqj := make([]float64, n)
			freq := make([]int32, n)
			touched := make([]int32, 0, n)
			for i := range rows {
				for q := t.iPtr[i]; q < t.iPtr[i+1]; q++ {
					u := t.iUser[q]
					di := float64(dev[t.iRow[q]])
					for p := t.uPtr[u]; p < t.uPtr[u+1]; p++ {
						j := t.uItem[p]
						dj := float64(dev[p])
						if freq[j] == 0 {
							touched = append(touched, j)
						}
						freq[j]++
						prods[j] += di * dj
						sqi[j] += di * di
						sqj[j] += dj * dj
					}
				}
				row := sim[i*n : i*n+n]
				for _, j := range touched {
					if f := freq[j]; f >= 2 {
						den := math.Sqrt(sqi[j] * sqj[j])
						if den > 0 {
							s := prods[j] / den * float64(f-1) / (float64(f-1) + shrink)
							row[j] = float32(s)
						}
					}
					prods[j], sqi[j], sqj[j], freq[j] = 0, 0, 0, 0
				}
				touched = touched[:0]
				row[i] = 1
			}
		}()
	}
	var ctxErr error
	for i := range n {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				ctxErr = fmt.Errorf("similarities interrupted at item %d: %w", i, err)
				break
			}
		}
		rows <- i
	}
	close(rows)
	wg.Wait()
	if ctxErr != nil {
		return nil, ctxErr
	}
	return sim, nil
}

// neighbour is a candidate item in a prediction.
type neighbour struct {
	sim, dev float32
}

// Predict returns the baseline plus the similarity-weighted mean deviation
// of the K most similar positively correlated items the user rated, clamped
// to the scale. For an unknown user or item it returns the baseline.
func (m *KNNBaseline) Predict(user, item int32) float64 {
	t := m.b.t
	if t == nil {
		return math.NaN()
	}
	est := m.b.estimate(user, item)
	if !t.knownUser(user) || !t.knownItem(item) {
		return clampTo(t.scale, est)
	}
	n := t.nItems
	row := m.sim[int(item)*n : int(item)*n+n]
	lo, hi := t.uPtr[user], t.uPtr[user+1]
	nb := make([]neighbour, 0, hi-lo)
	for p := lo; p < hi; p++ {
		if s := row[t.uItem[p]]; s > 0 {
			nb = append(nb, neighbour{s, m.dev[p]})
		}
	}
	if len(nb) > m.K {
		slices.SortStableFunc(nb, func(a, b neighbour) int { return cmp.Compare(b.sim, a.sim) })
		nb = nb[:m.K]
	}
	if len(nb) < m.MinK || len(nb) == 0 {
		return clampTo(t.scale, est)
	}
	var num, den float64
	for _, x := range nb {
		num += float64(x.sim) * float64(x.dev)
		den += float64(x.sim)
	}
	return clampTo(t.scale, est+num/den)
}
