package kernels

import "testing"

// BenchmarkMicroKernel measures the assembly micro-kernel alone on packed
// panels that stay in L1: the ceiling for the blocked GEMM.
func BenchmarkMicroKernel(b *testing.B) {
	if !haveAVX2 {
		b.Skip("no AVX2")
	}
	const kc = 256
	a := make([]float32, mr*kc)
	p := make([]float32, nr*kc)
	c := make([]float32, mr*nr)
	loop(b, 2*mr*nr*kc, func() { gemmKernel6x16(kc, &a[0], &p[0], &c[0], nr, 1) })
}
