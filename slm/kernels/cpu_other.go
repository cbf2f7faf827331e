//go:build !amd64 || purego

package kernels

// haveAVX2 is false off amd64 (or with the purego tag): the portable Go
// kernels run and the functions below are never called.
const haveAVX2 = false

func gemmKernel6x16(kc int, a, b, c *float32, ldc int, acc int)      { panic("kernels: no assembly") }
func dotAVX2(a, b *float32, n int) float32                           { panic("kernels: no assembly") }
func dot4AVX2(a, b *float32, ldb, k int, out *float32)               { panic("kernels: no assembly") }
func axpyAVX2(alpha float32, x, y *float32, n int)                   { panic("kernels: no assembly") }
func scaleAVX2(alpha float32, x *float32, n int)                     { panic("kernels: no assembly") }
func dotQ8_0AVX2(a *float32, b *byte, nb int) float32                { panic("kernels: no assembly") }
func f16ToF32F16C(dst *float32, src *uint16, n int)                  { panic("kernels: no assembly") }
func f32ToF16F16C(dst *uint16, src *float32, n int)                  { panic("kernels: no assembly") }
func transPack8(dst *float32, ldd int, src *float32, lds int, n int) { panic("kernels: no assembly") }
func dequantQ8_0AVX2(dst *float32, src *byte, nb int)                { panic("kernels: no assembly") }
func dotQ6KAVX2(a *float32, b *byte, nsb int) float32                { panic("kernels: no assembly") }
func dotQ4_0AVX2(a *float32, b *byte, nb int) float32                { panic("kernels: no assembly") }
func expSumAVX2(dst, src *float32, n int, shift float32) float32     { panic("kernels: no assembly") }
func siluMulAVX2(out, gate, up *float32, n int)                      { panic("kernels: no assembly") }
func dotQ4KFullAVX2(a *float32, b *byte, asums *float32, nsb int) float32 {
	panic("kernels: no assembly")
}
func dequantQ4KAVX2(dst *float32, b *byte, nsb int) { panic("kernels: no assembly") }
func dequantQ6KAVX2(dst *float32, b *byte, nsb int) { panic("kernels: no assembly") }
