package persona

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// KMeansOptions tune KMeans. The zero value of every field but K takes its
// default.
type KMeansOptions struct {
	K       int   // number of clusters (required, 1..n)
	NInit   int   // restarts from independent k-means++ seeds; default 10
	MaxIter int   // Lloyd iterations per restart; default 300
	Seed    int64 // the result is a function of the data, the options and Seed
	// Tol stops a restart when the centroids move less than Tol times the
	// mean per-dimension variance of the data (summed squared shift), as
	// scikit-learn does; default 1e-4. Negative: iterate until no label
	// changes (or MaxIter).
	Tol float64
	// Workers bounds the goroutines; default runtime.GOMAXPROCS(0). The
	// result does not depend on it.
	Workers int
	// Dense turns off the sparse path: by default, when at most a fifth of
	// the entries are non-zero (tf-idf vectors), distances are computed
	// from the non-zeros as |x|² − 2x·c + |c|². The two paths round
	// differently, so their results may differ in the last bits.
	Dense bool
}

func (o *KMeansOptions) fill() {
	if o.NInit <= 0 {
		o.NInit = 10
	}
	if o.MaxIter <= 0 {
		o.MaxIter = 300
	}
	if o.Tol == 0 {
		o.Tol = 1e-4
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
}

// Clustering is the outcome of KMeans: the best restart's centroids and
// labels.
type Clustering struct {
	K         int         `json:"k"`
	Dim       int         `json:"dim"`
	Centroids [][]float32 `json:"centroids"`
	Labels    []int       `json:"labels"`  // cluster of each input vector
	Sizes     []int       `json:"sizes"`   // vectors per cluster
	Inertia   float64     `json:"inertia"` // sum of squared distances to the nearest centroid
	// Iterations and Converged describe the winning restart; Restart is its
	// index (0-based).
	Iterations int  `json:"iterations"`
	Converged  bool `json:"converged"`
	Restart    int  `json:"restart"`
}

// Assign returns the cluster whose centroid is nearest to v and the squared
// Euclidean distance to it. Ties go to the lower cluster index.
func (c *Clustering) Assign(v []float32) (int, float64, error) {
	if len(c.Centroids) == 0 {
		return 0, 0, errors.New("persona: assign: clustering has no centroids")
	}
	if len(v) != c.Dim {
		return 0, 0, fmt.Errorf("persona: assign: vector has %d dimensions, centroids %d", len(v), c.Dim)
	}
	best, bd := nearest(v, c.Centroids)
	return best, float64(bd), nil
}

// chunkRows is the fixed work unit of the parallel loops. Partial sums are
// combined in chunk order, so results do not depend on the worker count.
const chunkRows = 128

// KMeans clusters the rows of x (all of the same length) into opt.K clusters
// with k-means++ seeding (greedy, 2+ln K candidates per step, as
// scikit-learn) and Lloyd iterations, keeping the restart with the lowest
// inertia (ties: the lowest restart index). A cluster that empties takes the
// vector farthest from its own centroid. Restarts run in parallel when there
// are at least as many as workers, otherwise the assignment step does; either
// way the result is the same for a seed whatever the number of workers.
func KMeans(ctx context.Context, x [][]float32, opt KMeansOptions) (*Clustering, error) {
	opt.fill()
	n := len(x)
	if n == 0 {
		return nil, errors.New("persona: k-means: no vectors")
	}
	if opt.K < 1 || opt.K > n {
		return nil, fmt.Errorf("persona: k-means: K = %d, want 1..%d (the number of vectors)", opt.K, n)
	}
	d := len(x[0])
	if d == 0 {
		return nil, errors.New("persona: k-means: vectors have no dimensions")
	}
	for i, v := range x {
		if len(v) != d {
			return nil, fmt.Errorf("persona: k-means: vector %d has %d dimensions, vector 0 has %d", i, len(v), d)
		}
		for j, f := range v {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return nil, fmt.Errorf("persona: k-means: vector %d, dimension %d is %v", i, j, f)
			}
		}
	}
	tol := -1.0
	if opt.Tol > 0 {
		tol = opt.Tol * meanVariance(x)
	}
	pts := newPoints(x, !opt.Dense)

	results := make([]*Clustering, opt.NInit)
	errs := make([]error, opt.NInit)
	if opt.Workers > 1 && opt.NInit >= opt.Workers {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(opt.Workers, opt.NInit) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					r := int(next.Add(1) - 1)
					if r >= opt.NInit {
						return
					}
					results[r], errs[r] = lloyd(ctx, pts, opt, r, tol, 1)
				}
			}()
		}
		wg.Wait()
	} else {
		for r := range opt.NInit {
			results[r], errs[r] = lloyd(ctx, pts, opt, r, tol, opt.Workers)
		}
	}
	var best *Clustering
	for r, c := range results {
		if errs[r] != nil {
			return nil, errs[r]
		}
		if best == nil || c.Inertia < best.Inertia {
			best = c
		}
	}
	return best, nil
}

// meanVariance is the mean over dimensions of the per-dimension variance.
func meanVariance(x [][]float32) float64 {
	d := len(x[0])
	mean := make([]float64, d)
	for _, v := range x {
		for j, f := range v {
			mean[j] += float64(f)
		}
	}
	for j := range mean {
		mean[j] /= float64(len(x))
	}
	var s float64
	for _, v := range x {
		for j, f := range v {
			e := float64(f) - mean[j]
			s += e * e
		}
	}
	return s / float64(len(x)*d)
}

// restartRNG gives restart r its own random stream.
func restartRNG(seed int64, r int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15^uint64(r)))
}

// lloyd runs one restart.
func lloyd(ctx context.Context, pts *points, opt KMeansOptions, r int, tol float64, workers int) (*Clustering, error) {
	x := pts.x
	n, d, k := len(x), len(x[0]), opt.K
	rng := restartRNG(opt.Seed, r)
	cent := seedPlusPlus(pts, k, rng)
	labels := make([]int, n)
	for i := range labels {
		labels[i] = -1
	}
	dist := make([]float32, n)
	sums := make([]float64, k*d)
	counts := make([]int, k)
	c := &Clustering{K: k, Dim: d, Restart: r}
	for it := 0; ; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed, inertia := assignAll(pts, cent, labels, dist, workers)
		c.Inertia, c.Iterations = inertia, it
		if it > 0 && changed == 0 {
			c.Converged = true
			break
		}
		if it == opt.MaxIter {
			break
		}
		fixEmpty(labels, dist, counts, k)
		shift := updateCentroids(pts, labels, cent, sums, counts)
		if tol >= 0 && shift <= tol {
			// Labels must match the final centroids.
			_, c.Inertia = assignAll(pts, cent, labels, dist, workers)
			c.Iterations, c.Converged = it+1, true
			break
		}
	}
	c.Sizes = make([]int, k)
	for _, l := range labels {
		c.Sizes[l]++
	}
	if slices.Contains(c.Sizes, 0) {
		// Fewer distinct vectors than clusters: a cluster emptied again
		// when its member went back to an equally near centroid. Give it a
		// member so that every persona has users.
		fixEmpty(labels, dist, counts, k)
		updateCentroids(pts, labels, cent, sums, counts)
		c.Inertia = 0
		norms := sqNorms(cent)
		for i := range x {
			c.Inertia += float64(pts.dist(i, cent[labels[i]], norms[labels[i]]))
		}
		copy(c.Sizes, counts)
	}
	c.Centroids, c.Labels = cent, labels
	return c, nil
}

// seedPlusPlus picks k initial centroids by greedy k-means++.
func seedPlusPlus(pts *points, k int, rng *rand.Rand) [][]float32 {
	x := pts.x
	n := len(x)
	trials := 2 + int(math.Log(float64(k)))
	cent := make([][]float32, 0, k)
	first := rng.IntN(n)
	cent = append(cent, clone(x[first]))
	closest := make([]float64, n)
	var pot float64
	cn := sqNorm(cent[0])
	for i := range x {
		closest[i] = float64(pts.dist(i, cent[0], cn))
		pot += closest[i]
	}
	cum := make([]float64, n)
	cand := make([]float64, n)
	bestCand := make([]float64, n)
	for len(cent) < k {
		var s float64
		for i, c := range closest {
			s += c
			cum[i] = s
		}
		best, bestPot := -1, math.Inf(1)
		for range trials {
			var idx int
			if s <= 0 {
				idx = rng.IntN(n) // every point sits on a centroid
			} else {
				u := rng.Float64() * s
				lo, hi := 0, n-1
				for lo < hi {
					mid := (lo + hi) / 2
					if cum[mid] <= u {
						lo = mid + 1
					} else {
						hi = mid
					}
				}
				idx = lo
			}
			var p float64
			cn := sqNorm(x[idx])
			for i := range x {
				cand[i] = min(closest[i], float64(pts.dist(i, x[idx], cn)))
				p += cand[i]
			}
			if p < bestPot {
				best, bestPot = idx, p
				copy(bestCand, cand)
			}
		}
		cent = append(cent, clone(x[best]))
		copy(closest, bestCand)
	}
	return cent
}

// assignAll sets each vector's nearest centroid and squared distance and
// returns how many labels changed and the inertia.
func assignAll(pts *points, cent [][]float32, labels []int, dist []float32, workers int) (int, float64) {
	n := len(pts.x)
	norms := sqNorms(cent)
	nChunks := (n + chunkRows - 1) / chunkRows
	changed := make([]int, nChunks)
	inertia := make([]float64, nChunks)
	do := func(c int) {
		lo, hi := c*chunkRows, min(n, (c+1)*chunkRows)
		var ch int
		var in float64
		for i := lo; i < hi; i++ {
			l, dd := pts.nearest(i, cent, norms)
			if l != labels[i] {
				ch++
				labels[i] = l
			}
			dist[i] = dd
			in += float64(dd)
		}
		changed[c], inertia[c] = ch, in
	}
	parallel(nChunks, workers, do)
	var ch int
	var in float64
	for c := range nChunks {
		ch += changed[c]
		in += inertia[c]
	}
	return ch, in
}

// parallel calls do(0..n-1) on up to workers goroutines.
func parallel(n, workers int, do func(int)) {
	if workers <= 1 || n <= 1 {
		for c := range n {
			do(c)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= n {
					return
				}
				do(c)
			}
		}()
	}
	wg.Wait()
}

// fixEmpty gives every empty cluster the vector farthest from its centroid
// (among clusters with more than one member), lowest index first on ties.
func fixEmpty(labels []int, dist []float32, counts []int, k int) {
	clear(counts)
	for _, l := range labels {
		counts[l]++
	}
	for c := range k {
		if counts[c] > 0 {
			continue
		}
		far := -1
		for i, dd := range dist {
			if counts[labels[i]] > 1 && (far < 0 || dd > dist[far]) {
				far = i
			}
		}
		if far < 0 {
			return // fewer distinct members than clusters; cannot happen for K <= n
		}
		counts[labels[far]]--
		labels[far] = c
		counts[c] = 1
		dist[far] = 0
	}
}

// updateCentroids moves each centroid to its members' mean and returns the
// summed squared shift. Every cluster has a member (fixEmpty ran).
func updateCentroids(pts *points, labels []int, cent [][]float32, sums []float64, counts []int) float64 {
	x := pts.x
	d := len(x[0])
	clear(sums)
	clear(counts)
	for i, v := range x {
		l := labels[i]
		counts[l]++
		s := sums[l*d : (l+1)*d]
		if pts.idx != nil {
			for k, j := range pts.idx[i] {
				s[j] += float64(pts.val[i][k])
			}
			continue
		}
		for j, f := range v {
			s[j] += float64(f)
		}
	}
	var shift float64
	for c, cv := range cent {
		if counts[c] == 0 {
			continue
		}
		s := sums[c*d : (c+1)*d]
		inv := 1 / float64(counts[c])
		for j := range cv {
			nv := float32(s[j] * inv)
			e := float64(nv - cv[j])
			shift += e * e
			cv[j] = nv
		}
	}
	return shift
}

// points are the vectors k-means clusters, with their non-zeros when
// sparse enough to be worth it.
type points struct {
	x    [][]float32
	idx  [][]int32 // nil: dense
	val  [][]float32
	norm []float32 // squared norms of the rows (sparse only)
}

// maxSparseDensity is the largest share of non-zeros for the sparse path.
const maxSparseDensity = 0.2

func newPoints(x [][]float32, allowSparse bool) *points {
	p := &points{x: x}
	if !allowSparse {
		return p
	}
	var nnz int
	for _, v := range x {
		for _, f := range v {
			if f != 0 {
				nnz++
			}
		}
	}
	if float64(nnz) > maxSparseDensity*float64(len(x)*len(x[0])) {
		return p
	}
	p.idx = make([][]int32, len(x))
	p.val = make([][]float32, len(x))
	p.norm = make([]float32, len(x))
	for i, v := range x {
		for j, f := range v {
			if f != 0 {
				p.idx[i] = append(p.idx[i], int32(j))
				p.val[i] = append(p.val[i], f)
			}
		}
		p.norm[i] = sqNorm(v)
	}
	return p
}

// dist is the squared distance of row i to c, whose squared norm is cn.
func (p *points) dist(i int, c []float32, cn float32) float32 {
	if p.idx == nil {
		return sqDist(p.x[i], c)
	}
	var dot float32
	val := p.val[i]
	for k, j := range p.idx[i] {
		dot += val[k] * c[j]
	}
	return max(0, p.norm[i]-2*dot+cn)
}

// nearest returns the centroid nearest to row i and the squared distance,
// the lower index on ties.
func (p *points) nearest(i int, cent [][]float32, norms []float32) (int, float32) {
	best, bd := 0, p.dist(i, cent[0], norms[0])
	for c := 1; c < len(cent); c++ {
		if dd := p.dist(i, cent[c], norms[c]); dd < bd {
			best, bd = c, dd
		}
	}
	return best, bd
}

func sqNorm(v []float32) float32 {
	var s float32
	for _, f := range v {
		s += f * f
	}
	return s
}

func sqNorms(cent [][]float32) []float32 {
	out := make([]float32, len(cent))
	for c, v := range cent {
		out[c] = sqNorm(v)
	}
	return out
}

// nearest returns the index of the centroid nearest to v and the squared
// distance, the lower index on ties.
func nearest(v []float32, cent [][]float32) (int, float32) {
	best, bd := 0, sqDist(v, cent[0])
	for c := 1; c < len(cent); c++ {
		if dd := sqDist(v, cent[c]); dd < bd {
			best, bd = c, dd
		}
	}
	return best, bd
}

// sqDist is the squared Euclidean distance of two equal-length vectors.
func sqDist(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		e0 := a[i] - b[i]
		e1 := a[i+1] - b[i+1]
		e2 := a[i+2] - b[i+2]
		e3 := a[i+3] - b[i+3]
		s0 += e0 * e0
		s1 += e1 * e1
		s2 += e2 * e2
		s3 += e3 * e3
	}
	for ; i < len(a); i++ {
		e := a[i] - b[i]
		s0 += e * e
	}
	return (s0 + s1) + (s2 + s3)
}

func clone(v []float32) []float32 { return append([]float32(nil), v...) }
