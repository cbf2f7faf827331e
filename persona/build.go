package persona

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
)

// Options tune Build.
type Options struct {
	// K fixes the number of personas; 0 selects it over KMin..KMax by the
	// elbow of the inertia (the silhouette is reported beside it).
	K    int `json:"k,omitempty"`
	KMin int `json:"k_min"` // default 2
	KMax int `json:"k_max"` // default 10 (capped at the number of users)

	NInit   int   `json:"n_init"`   // k-means restarts; default 10
	MaxIter int   `json:"max_iter"` // default 300
	Seed    int64 `json:"seed"`
	Workers int   `json:"-"` // default GOMAXPROCS; the result does not depend on it

	// SilhouetteExact is the most vectors whose silhouette is computed
	// exactly (default 10,000); beyond it SilhouetteSample rows (default
	// 2,000, drawn with Seed) are scored against every row.
	SilhouetteExact  int `json:"silhouette_exact"`
	SilhouetteSample int `json:"silhouette_sample"`
}

func (o *Options) fill() {
	if o.KMin <= 0 {
		o.KMin = 2
	}
	if o.KMax <= 0 {
		o.KMax = 10
	}
	if o.NInit <= 0 {
		o.NInit = 10
	}
	if o.MaxIter <= 0 {
		o.MaxIter = 300
	}
	if o.SilhouetteExact <= 0 {
		o.SilhouetteExact = 10000
	}
	if o.SilhouetteSample <= 0 {
		o.SilhouetteSample = 2000
	}
}

// KRow is one line of the K-selection table.
type KRow struct {
	K          int     `json:"k"`
	Inertia    float64 `json:"inertia"`
	Silhouette float64 `json:"silhouette"`
	Iterations int     `json:"iterations"`
	Converged  bool    `json:"converged"`
}

// Selection is how K was chosen.
type Selection struct {
	Table []KRow `json:"table"`
	// SilhouetteSampled says the silhouettes were computed on a sample.
	SilhouetteSampled bool `json:"silhouette_sampled,omitempty"`
	ElbowK            int  `json:"elbow_k"`      // 0 when the curve has no elbow
	SilhouetteK       int  `json:"silhouette_k"` // the K with the highest silhouette
	K                 int  `json:"k"`            // the chosen K
	// Method is "fixed" (K given), "elbow", or "silhouette" (no elbow).
	Method string `json:"method"`
}

// Cluster clusters vectors into personas: with opt.K fixed, one k-means;
// otherwise k-means for every K in KMin..KMax, the elbow of the inertia
// chooses (the highest silhouette when there is no elbow). It returns the
// chosen clustering and the table.
func Cluster(ctx context.Context, vectors [][]float32, opt Options) (*Clustering, Selection, error) {
	opt.fill()
	n := len(vectors)
	if n == 0 {
		return nil, Selection{}, errors.New("persona: no vectors to cluster")
	}
	var ks []int
	if opt.K > 0 {
		if opt.K > n {
			return nil, Selection{}, fmt.Errorf("persona: K = %d is more than the %d users", opt.K, n)
		}
		ks = []int{opt.K}
	} else {
		if opt.KMin > opt.KMax {
			return nil, Selection{}, fmt.Errorf("persona: K range %d:%d is empty", opt.KMin, opt.KMax)
		}
		for k := opt.KMin; k <= min(opt.KMax, n); k++ {
			ks = append(ks, k)
		}
		if len(ks) == 0 {
			return nil, Selection{}, fmt.Errorf("persona: K range %d:%d exceeds the %d users", opt.KMin, opt.KMax, n)
		}
	}
	runs := make([]*Clustering, len(ks))
	for i, k := range ks {
		c, err := KMeans(ctx, vectors, KMeansOptions{K: k, NInit: opt.NInit, MaxIter: opt.MaxIter, Seed: opt.Seed, Workers: opt.Workers})
		if err != nil {
			return nil, Selection{}, fmt.Errorf("persona: k-means with K = %d: %w", k, err)
		}
		slog.Debug("k-means", "k", k, "inertia", c.Inertia, "iterations", c.Iterations)
		runs[i] = c
	}
	labelings := make([][]int, len(runs))
	for i, c := range runs {
		labelings[i] = c.Labels
	}
	var sample []int
	sel := Selection{}
	if n > opt.SilhouetteExact {
		sample = sampleRows(n, min(n, opt.SilhouetteSample), opt.Seed)
		sel.SilhouetteSampled = true
	}
	sil, err := Silhouettes(ctx, vectors, labelings, sample, workers(opt.Workers))
	if err != nil {
		return nil, Selection{}, err
	}
	inertia := make([]float64, len(runs))
	bestSil := 0
	for i, c := range runs {
		sel.Table = append(sel.Table, KRow{K: c.K, Inertia: c.Inertia, Silhouette: sil[i], Iterations: c.Iterations, Converged: c.Converged})
		inertia[i] = c.Inertia
		if sil[i] > sil[bestSil] {
			bestSil = i
		}
	}
	sel.SilhouetteK = ks[bestSil]
	chosen := 0
	switch {
	case opt.K > 0:
		sel.Method = "fixed"
	default:
		if e := Elbow(ks, inertia); e >= 0 {
			sel.ElbowK, chosen, sel.Method = ks[e], e, "elbow"
		} else {
			chosen, sel.Method = bestSil, "silhouette"
		}
	}
	sel.K = ks[chosen]
	return runs[chosen], sel, nil
}

func workers(w int) int {
	if w > 0 {
		return w
	}
	return runtime.GOMAXPROCS(0)
}
