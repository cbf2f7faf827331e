package persona

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// randomizedSVD returns the top k right singular vectors (k × cols) and
// singular values of the sparse matrix rows (n × cols) by the randomized
// range finder of Halko, Martinsson and Tropp (2011): a Gaussian sketch with
// 10 extra columns, 4 power iterations re-orthonormalised each time, and an
// exact SVD of the small projected matrix. Each vector's sign is fixed so
// that its largest-magnitude entry is positive.
func randomizedSVD(ctx context.Context, rows [][]entry, cols, k int, seed int64) ([][]float32, []float64, error) {
	n := len(rows)
	if k <= 0 || n == 0 || cols == 0 {
		return nil, nil, errors.New("empty matrix or no components")
	}
	l := min(k+10, n, cols)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5bd1e995))
	// omega: cols × l Gaussian.
	omega := make([]float64, cols*l)
	for i := range omega {
		omega[i] = rng.NormFloat64()
	}
	y := make([]float64, n*l) // A·omega
	mulA(rows, omega, l, y)
	if err := orthonormalize(y, n, l); err != nil {
		return nil, nil, err
	}
	z := make([]float64, cols*l) // Aᵀ·y
	for range 4 {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		mulAt(rows, y, l, z, cols)
		if err := orthonormalize(z, cols, l); err != nil {
			return nil, nil, err
		}
		mulA(rows, z, l, y)
		if err := orthonormalize(y, n, l); err != nil {
			return nil, nil, err
		}
	}
	// B = Qᵀ A (l × cols), i.e. Bᵀ = Aᵀ Q.
	mulAt(rows, y, l, z, cols)
	b := mat.NewDense(l, cols, nil)
	for j := range cols {
		for c := range l {
			b.Set(c, j, z[j*l+c])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(b, mat.SVDThinV) {
		return nil, nil, errors.New("SVD of the projected matrix did not converge")
	}
	vals := svd.Values(nil)
	var v mat.Dense
	svd.VTo(&v) // cols × l
	comp := make([][]float32, k)
	for c := range k {
		vec := make([]float32, cols)
		var big float64
		for j := range cols {
			f := v.At(j, c)
			if math.Abs(f) > math.Abs(big) {
				big = f
			}
		}
		sign := 1.0
		if big < 0 {
			sign = -1
		}
		for j := range cols {
			vec[j] = float32(sign * v.At(j, c))
		}
		comp[c] = vec
	}
	return comp, vals[:k], nil
}

// mulA sets out (n × l, row-major) to A·m where m is cols × l.
func mulA(rows [][]entry, m []float64, l int, out []float64) {
	clear(out)
	for i, r := range rows {
		o := out[i*l : (i+1)*l]
		for _, e := range r {
			mr := m[e.j*l : (e.j+1)*l]
			for c := range o {
				o[c] += e.v * mr[c]
			}
		}
	}
}

// mulAt sets out (cols × l) to Aᵀ·m where m is n × l.
func mulAt(rows [][]entry, m []float64, l int, out []float64, cols int) {
	clear(out[:cols*l])
	for i, r := range rows {
		mr := m[i*l : (i+1)*l]
		for _, e := range r {
			o := out[e.j*l : (e.j+1)*l]
			for c := range o {
				o[c] += e.v * mr[c]
			}
		}
	}
}

// orthonormalize turns the l columns of the n × l row-major matrix a into an
// orthonormal basis of their span by modified Gram–Schmidt, twice for
// stability. A column that vanishes (rank deficiency) is replaced by a unit
// vector orthogonal to the others.
func orthonormalize(a []float64, n, l int) error {
	col := func(c int, f func(i int, p *float64)) {
		for i := range n {
			f(i, &a[i*l+c])
		}
	}
	for range 2 {
		for c := range l {
			for p := range c {
				var dot float64
				for i := range n {
					dot += a[i*l+c] * a[i*l+p]
				}
				col(c, func(i int, x *float64) { *x -= dot * a[i*l+p] })
			}
			var ss float64
			col(c, func(_ int, x *float64) { ss += *x * *x })
			if ss < 1e-24 {
				// Replace by the first coordinate vector orthogonal enough
				// to the previous columns.
				found := false
				for e := 0; e < n && !found; e++ {
					col(c, func(i int, x *float64) {
						*x = 0
						if i == e {
							*x = 1
						}
					})
					for p := range c {
						var dot float64
						for i := range n {
							dot += a[i*l+c] * a[i*l+p]
						}
						col(c, func(i int, x *float64) { *x -= dot * a[i*l+p] })
					}
					ss = 0
					col(c, func(_ int, x *float64) { ss += *x * *x })
					found = ss > 1e-6
				}
				if !found {
					return errors.New("rank-deficient sketch")
				}
			}
			inv := 1 / math.Sqrt(ss)
			col(c, func(_ int, x *float64) { *x *= inv })
		}
	}
	return nil
}
