//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

//go:generate go run ./internal/asmgen -out kernels_amd64.s

// haveAVX2 reports whether the CPU (and OS) support the AVX2, FMA and F16C
// instructions the assembly kernels use.
var haveAVX2 = cpu.X86.HasAVX && cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

//go:noescape
func gemmKernel6x16(kc int, a, b, c *float32, ldc int, acc int)

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func dot4AVX2(a, b *float32, ldb, k int, out *float32)

//go:noescape
func axpyAVX2(alpha float32, x, y *float32, n int)

//go:noescape
func scaleAVX2(alpha float32, x *float32, n int)

//go:noescape
func dotQ8_0AVX2(a *float32, b *byte, nb int) float32

//go:noescape
func f16ToF32F16C(dst *float32, src *uint16, n int)

//go:noescape
func f32ToF16F16C(dst *uint16, src *float32, n int)

//go:noescape
func transPack8(dst *float32, ldd int, src *float32, lds int, n int)

//go:noescape
func dequantQ8_0AVX2(dst *float32, src *byte, nb int)

//go:noescape
func dotQ6KAVX2(a *float32, b *byte, nsb int) float32

//go:noescape
func dotQ4_0AVX2(a *float32, b *byte, nb int) float32

//go:noescape
func expSumAVX2(dst, src *float32, n int, shift float32) float32

//go:noescape
func siluMulAVX2(out, gate, up *float32, n int)

//go:noescape
func dotQ4KFullAVX2(a *float32, b *byte, asums *float32, nsb int) float32

//go:noescape
func dequantQ4KAVX2(dst *float32, b *byte, nsb int)

//go:noescape
func dequantQ6KAVX2(dst *float32, b *byte, nsb int)
