package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// fastImpls lists the non-reference implementations this CPU runs.
func fastImpls() []Impl {
	if haveAVX2 {
		return []Impl{Generic, AVX2}
	}
	return []Impl{Generic}
}

// withImpl runs f once per fast implementation (and thread count), with
// the implementation forced.
func withImpl(t *testing.T, f func(t *testing.T)) {
	for _, im := range fastImpls() {
		for _, th := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("%v/threads=%d", im, th), func(t *testing.T) {
				prev := SetImpl(im)
				prevT := Threads()
				SetThreads(th)
				defer func() { SetImpl(prev); SetThreads(prevT) }()
				f(t)
			})
		}
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func absSlice(s []float32) []float32 {
	o := make([]float32, len(s))
	for i, v := range s {
		o[i] = float32(math.Abs(float64(v)))
	}
	return o
}

type variant struct {
	name string
	fast func(c, a, b []float32, m, n, k int)
	ref  func(c, a, b []float32, m, n, k int, acc bool)
	acc  bool
}

var variants = []variant{
	{"NT", MatMulNT, refMatMulNT, false},
	{"NN", MatMulNN, refMatMulNN, false},
	{"TN", MatMulTN, refMatMulTN, false},
	{"NTAcc", MatMulNTAcc, refMatMulNT, true},
	{"NNAcc", MatMulNNAcc, refMatMulNN, true},
	{"TNAcc", MatMulTNAcc, refMatMulTN, true},
}

// checkClose compares got with want elementwise against the bound
// tol·(k+2)·ε·Σ|a||b| + tiny (bound holds for any summation order).
func checkClose(t *testing.T, what string, got, want, absProd []float32, k int) {
	t.Helper()
	const eps = 1.0 / (1 << 23)
	bad := 0
	for i := range want {
		lim := 2*float64(k+2)*eps*float64(absProd[i]) + 1e-30
		if d := math.Abs(float64(got[i] - want[i])); !(d <= lim) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %g, want %g (|diff| %g > %g)", what, i, got[i], want[i], d, lim)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements wrong", what, bad, len(want))
	}
}

var shapeSizes = []int{1, 2, 5, 6, 7, 16, 17, 63, 65, 129}

func TestMatMul(t *testing.T) {
	type shape struct{ m, n, k int }
	var shapes []shape
	for _, m := range shapeSizes {
		for _, n := range shapeSizes {
			for _, k := range []int{1, 7, 17, 65} {
				shapes = append(shapes, shape{m, n, k})
			}
		}
	}
	// Shapes that cross the kc, mc and nc block edges.
	shapes = append(shapes, shape{150, 40, 300}, shape{7, 3100, 20}, shape{145, 33, 513}, shape{0, 5, 3}, shape{4, 0, 3}, shape{3, 4, 0})
	if testing.Short() {
		var keep []shape
		for i := 0; i < len(shapes); i += 3 {
			keep = append(keep, shapes[i])
		}
		shapes = keep
	}
	withImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, s := range shapes {
			for _, v := range variants {
				const extra = 5
				a := randSlice(r, s.m*s.k+extra)
				b := randSlice(r, s.n*s.k+extra)
				c0 := randSlice(r, s.m*s.n+extra)
				want := append([]float32(nil), c0...)
				v.ref(want, a, b, s.m, s.n, s.k, v.acc)
				absProd := make([]float32, s.m*s.n)
				v.ref(absProd, absSlice(a), absSlice(b), s.m, s.n, s.k, false)
				if v.acc {
					for i := range absProd {
						absProd[i] += float32(math.Abs(float64(c0[i])))
					}
				}
				got := append([]float32(nil), c0...)
				v.fast(got[:s.m*s.n], a, b, s.m, s.n, s.k)
				name := fmt.Sprintf("%s m=%d n=%d k=%d", v.name, s.m, s.n, s.k)
				checkClose(t, name, got[:s.m*s.n], want[:s.m*s.n], absProd, s.k)
				for i := s.m * s.n; i < len(got); i++ {
					if got[i] != c0[i] {
						t.Fatalf("%s: wrote past the end of c at %d", name, i)
					}
				}
			}
		}
	})
}

// TestConcurrentCalls runs kernels from several goroutines at once: the
// pooled packing buffers must never be shared between calls.
func TestConcurrentCalls(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		const m, n, k = 40, 70, 300
		errs := make(chan string, 8)
		for g := 0; g < 8; g++ {
			go func(seed uint64) {
				r := rand.New(rand.NewPCG(seed, seed))
				a, b := randSlice(r, m*k), randSlice(r, n*k)
				want := make([]float32, m*n)
				refMatMulNT(want, a, b, m, n, k, false)
				got := make([]float32, m*n)
				for it := 0; it < 20; it++ {
					MatMulNT(got, a, b, m, n, k)
					for i := range got {
						if math.Abs(float64(got[i]-want[i])) > 1e-3 {
							errs <- fmt.Sprintf("goroutine %d: [%d] = %g, want %g", seed, i, got[i], want[i])
							return
						}
					}
				}
				errs <- ""
			}(uint64(g))
		}
		for g := 0; g < 8; g++ {
			if e := <-errs; e != "" {
				t.Error(e)
			}
		}
	})
}
