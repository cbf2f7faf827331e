package persona

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Silhouettes returns the mean silhouette coefficient (Euclidean distance) of
// each labelling of the rows of x, computed in one pass over the pairs so that
// a K-selection table costs about as much as one silhouette. sample lists the
// rows whose coefficients are averaged (nil: every row, the exact value);
// each sampled row is still compared with every row. A row alone in its
// cluster scores 0, as in scikit-learn; a labelling with one cluster scores 0.
func Silhouettes(ctx context.Context, x [][]float32, labelings [][]int, sample []int, workers int) ([]float64, error) {
	n := len(x)
	if sample == nil {
		sample = make([]int, n)
		for i := range sample {
			sample[i] = i
		}
	}
	ks := make([]int, len(labelings))
	counts := make([][]int, len(labelings))
	for l, lab := range labelings {
		if len(lab) != n {
			return nil, fmt.Errorf("persona: silhouette: labelling %d has %d labels for %d vectors", l, len(lab), n)
		}
		for _, c := range lab {
			if c < 0 {
				return nil, fmt.Errorf("persona: silhouette: labelling %d has a negative label", l)
			}
			ks[l] = max(ks[l], c+1)
		}
		counts[l] = make([]int, ks[l])
		for _, c := range lab {
			counts[l][c]++
		}
	}
	offs := make([]int, len(labelings)+1)
	for l, k := range ks {
		offs[l+1] = offs[l] + k
	}
	s := make([]float64, len(sample)*len(labelings))
	nChunks := (len(sample) + chunkRows - 1) / chunkRows
	var ctxErr error
	parallel(nChunks, workers, func(c int) {
		if ctx.Err() != nil {
			return
		}
		sums := make([]float64, offs[len(labelings)])
		for si := c * chunkRows; si < min(len(sample), (c+1)*chunkRows); si++ {
			i := sample[si]
			clear(sums)
			xi := x[i]
			for j, xj := range x {
				if j == i {
					continue
				}
				dd := math.Sqrt(float64(sqDist(xi, xj)))
				for l, lab := range labelings {
					sums[offs[l]+lab[j]] += dd
				}
			}
			for l, lab := range labelings {
				own := lab[i]
				if ks[l] < 2 || counts[l][own] < 2 {
					continue // s = 0
				}
				a := sums[offs[l]+own] / float64(counts[l][own]-1)
				b := math.Inf(1)
				for k := range ks[l] {
					if k != own && counts[l][k] > 0 {
						b = min(b, sums[offs[l]+k]/float64(counts[l][k]))
					}
				}
				if m := max(a, b); m > 0 && !math.IsInf(b, 1) {
					s[si*len(labelings)+l] = (b - a) / m
				}
			}
		}
	})
	if err := ctx.Err(); err != nil {
		ctxErr = err
	}
	if ctxErr != nil {
		return nil, ctxErr
	}
	out := make([]float64, len(labelings))
	for si := range sample {
		for l := range labelings {
			out[l] += s[si*len(labelings)+l]
		}
	}
	for l := range out {
		out[l] /= float64(len(sample))
	}
	return out, nil
}

// sampleRows draws m distinct rows of n, sorted, for a seed.
func sampleRows(n, m int, seed int64) []int {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5111))
	p := rng.Perm(n)[:m]
	// Sort for a cache-friendly, reproducible order.
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j] < p[j-1]; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
	return p
}

// AdjustedRand is the adjusted Rand index of two labellings of the same
// items (Hubert and Arabie 1985): 1 for identical partitions up to renaming,
// about 0 for independent ones.
func AdjustedRand(a, b []int) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("persona: adjusted Rand: %d and %d labels", len(a), len(b))
	}
	n := len(a)
	type pair struct{ x, y int }
	cont := map[pair]int{}
	ra, rb := map[int]int{}, map[int]int{}
	for i := range a {
		cont[pair{a[i], b[i]}]++
		ra[a[i]]++
		rb[b[i]]++
	}
	c2 := func(m int) float64 { return float64(m) * float64(m-1) / 2 }
	var index, sa, sb float64
	for _, m := range cont {
		index += c2(m)
	}
	for _, m := range ra {
		sa += c2(m)
	}
	for _, m := range rb {
		sb += c2(m)
	}
	expected := sa * sb / c2(n)
	maxIndex := (sa + sb) / 2
	if maxIndex == expected { // both trivial (one cluster each, or all singletons)
		return 1, nil
	}
	return (index - expected) / (maxIndex - expected), nil
}

// EtaSquared is the between-group share of the variance of values under the
// labels (the correlation ratio squared): 0 when every group has the same
// mean, 1 when the groups explain every difference. NaN values are left out;
// a constant variable gives 0.
func EtaSquared(values []float64, labels []int, k int) float64 {
	sum := make([]float64, k)
	cnt := make([]float64, k)
	var tot, n float64
	for i, v := range values {
		if math.IsNaN(v) {
			continue
		}
		sum[labels[i]] += v
		cnt[labels[i]]++
		tot += v
		n++
	}
	if n < 2 {
		return 0
	}
	mean := tot / n
	var ssTot float64
	for _, v := range values {
		if !math.IsNaN(v) {
			ssTot += (v - mean) * (v - mean)
		}
	}
	if ssTot <= 1e-12*n {
		return 0
	}
	var ssBetween float64
	for c := range k {
		if cnt[c] > 0 {
			m := sum[c] / cnt[c]
			ssBetween += cnt[c] * (m - mean) * (m - mean)
		}
	}
	return ssBetween / ssTot
}

// Elbow picks the elbow of a decreasing curve (inertia over K) by the
// kneedle rule without its smoothing: scale K and the curve to [0, 1], and
// take the point farthest below the chord from the first point to the last
// (the largest vertical gap, which is the distance to the chord up to a
// constant factor). It returns the index of that point, or -1 when there are
// fewer than three points or the curve has no bend below its chord.
func Elbow(ks []int, y []float64) int {
	if len(ks) < 3 || len(ks) != len(y) {
		return -1
	}
	k0, k1 := float64(ks[0]), float64(ks[len(ks)-1])
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range y {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi <= lo || k1 <= k0 {
		return -1
	}
	norm := func(v float64) float64 { return (v - lo) / (hi - lo) }
	y0, y1 := norm(y[0]), norm(y[len(y)-1])
	best, bestD := -1, 1e-9
	for i, v := range y {
		xn := (float64(ks[i]) - k0) / (k1 - k0)
		// For a decreasing curve the chord runs from (0, 1) to (1, 0) and
		// this is (1 − ŷ) − x̂.
		if d := y0 + (y1-y0)*xn - norm(v); d > bestD {
			best, bestD = i, d
		}
	}
	return best
}
