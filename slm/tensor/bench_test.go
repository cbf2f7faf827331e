package tensor

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkDequantize measures the reference decoders on a 4096×4 tensor;
// b.SetBytes counts the float32 output.
func BenchmarkDequantize(b *testing.B) {
	const n = 4096 * 4
	rng := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, d := range []DType{F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K} {
		src := make([]byte, n/d.BlockSize()*d.BlockBytes())
		if err := Quantize(src, x, d); err != nil {
			b.Fatal(err)
		}
		dst := make([]float32, n)
		if d == F16 { // the bit-manipulation decoder, for comparison with the table
			b.Run("F16-bits", func(b *testing.B) {
				b.SetBytes(4 * n)
				for b.Loop() {
					for i := range dst {
						dst[i] = F16ToF32(uint16(src[2*i]) | uint16(src[2*i+1])<<8)
					}
				}
			})
		}
		b.Run(d.String(), func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				if err := Dequantize(dst, src, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkQuantize measures the quantizers; b.SetBytes counts the float32
// input.
func BenchmarkQuantize(b *testing.B) {
	const n = 4096 * 4
	rng := rand.New(rand.NewPCG(9, 10))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, d := range []DType{F16, BF16, Q8_0, Q4_K, Q6_K} {
		dst := make([]byte, n/d.BlockSize()*d.BlockBytes())
		b.Run(d.String(), func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				if err := Quantize(dst, x, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
