//go:build openblas

package kernels

// The OpenBLAS comparison benchmark (cgo; not part of the default build):
//
//	apt-get install libopenblas-dev
//	go test -tags openblas -run XXX -bench . ./slm/kernels/

import (
	"fmt"
	"github.com/usersim/usersim/slm/kernels/internal/openblas"
	"math/rand/v2"
	"testing"
)

func TestOpenBLASAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	m, n, k := 70, 90, 130
	a, b := randSlice(r, m*k), randSlice(r, n*k)
	want, got := make([]float32, m*n), make([]float32, m*n)
	refMatMulNT(want, a, b, m, n, k, false)
	openblas.SgemmNT(got, a, b, m, n, k)
	abs := make([]float32, m*n)
	refMatMulNT(abs, absSlice(a), absSlice(b), m, n, k, false)
	checkClose(t, "openblas", got, want, abs, k)
}

// BenchmarkMatMulNTOpenBLAS is BenchmarkMatMulNT's shapes through OpenBLAS
// at 1 and 2 threads.
func BenchmarkMatMulNTOpenBLAS(b *testing.B) {
	openblas.SetThreads(1)
	b.Logf("OpenBLAS core: %s", openblas.Core())
	for _, s := range benchShapes {
		r := rand.New(rand.NewPCG(1, 1))
		a := randSlice(r, s.m*s.k)
		w := randSlice(r, s.n*s.k)
		c := make([]float32, s.m*s.n)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/openblas/threads=%d", s.name, th), func(b *testing.B) {
				openblas.SetThreads(th)
				loop(b, 2*float64(s.m)*float64(s.n)*float64(s.k), func() { openblas.SgemmNT(c, a, w, s.m, s.n, s.k) })
			})
		}
	}
}
