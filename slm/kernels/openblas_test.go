//go:build openblas

package kernels

// The OpenBLAS comparison (cgo; not part of the default build):
//
//	apt-get install libopenblas-dev
//	go test -tags openblas -run XXX -bench MatMulNT ./slm/kernels/
//
// adds impl=openblas to BenchmarkMatMulNT.

import (
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/slm/kernels/internal/openblas"
)

func init() {
	extraMatMulNT = append(extraMatMulNT, extraImpl{"openblas", openblas.SetThreads, openblas.SgemmNT})
}

func TestOpenBLASAgrees(t *testing.T) {
	t.Logf("OpenBLAS core: %s", openblas.Core())
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
