package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestQ8_0KnownBlock(t *testing.T) {
	blk := make([]byte, SizeQ8_0)
	blk[0], blk[1] = 0x00, 0x38 // d = 0.5
	for j := 0; j < 32; j++ {
		blk[2+j] = byte(int8(j*8 - 128))
	}
	got := make([]float32, 32)
	DequantizeQ8_0(got, blk)
	for j, v := range got {
		if want := 0.5 * float32(j*8-128); v != want {
			t.Fatalf("w[%d] = %g, want %g", j, v, want)
		}
	}
}

func TestQ4_0KnownBlock(t *testing.T) {
	blk := make([]byte, SizeQ4_0)
	blk[0], blk[1] = 0x00, 0xc0 // d = -2
	for j := 0; j < 16; j++ {
		blk[2+j] = byte(j) | byte(15-j)<<4
	}
	got := make([]float32, 32)
	DequantizeQ4_0(got, blk)
	for j := 0; j < 16; j++ {
		if want := -2 * float32(j-8); got[j] != want {
			t.Fatalf("w[%d] = %g, want %g", j, got[j], want)
		}
		if want := -2 * float32(15-j-8); got[16+j] != want {
			t.Fatalf("w[%d] = %g, want %g", 16+j, got[16+j], want)
		}
	}
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	x := randSlice(r, 32*64)
	x[0], x[40] = 0, 1e-9 // a zero and a tiny value
	for i := 64; i < 96; i++ {
		x[i] = 0 // an all-zero block
	}
	for _, tc := range []struct {
		name       string
		size, lev  int
		steps      float64 // error bound in quantization steps
		quant      func([]byte, []float32)
		dequantize func([]float32, []byte)
	}{
		{"Q8_0", SizeQ8_0, 127, 0.5, QuantizeQ8_0, DequantizeQ8_0},
		{"Q4_0", SizeQ4_0, 8, 1, QuantizeQ4_0, DequantizeQ4_0},
	} {
		q := make([]byte, len(x)/32*tc.size)
		tc.quant(q, x)
		y := make([]float32, len(x))
		tc.dequantize(y, q)
		for b := 0; b < len(x)/32; b++ {
			var amax float64
			for _, v := range x[32*b : 32*b+32] {
				amax = max(amax, math.Abs(float64(v)))
			}
			// Half a quantization step (Q4_0: a whole step, as the
			// value opposite in sign to the largest one clamps at 7·d),
			// plus the float16 rounding of d.
			lim := amax/float64(tc.lev)*tc.steps + amax/float64(tc.lev)*float64(tc.lev+1)/1024
			for j := 32 * b; j < 32*b+32; j++ {
				if d := math.Abs(float64(x[j] - y[j])); d > lim {
					t.Fatalf("%s: x[%d] = %g came back %g (limit %g)", tc.name, j, x[j], y[j], lim)
				}
			}
		}
	}
}

// encodeQ4K packs one Q4_K super-block from its parts, the inverse of the
// layout described in ggml's quantize_row_q4_K_ref.
func encodeQ4K(d, dmin uint16, sc, mn [8]byte, q [256]byte) []byte {
	b := make([]byte, SizeQ4K)
	b[0], b[1], b[2], b[3] = byte(d), byte(d>>8), byte(dmin), byte(dmin>>8)
	s := b[4:16]
	for j := 0; j < 8; j++ {
		if j < 4 {
			s[j] = sc[j]
			s[j+4] = mn[j]
		} else {
			s[j+4] = sc[j]&0xf | (mn[j]&0xf)<<4
			s[j-4] |= (sc[j] >> 4) << 6
			s[j] |= (mn[j] >> 4) << 6
		}
	}
	for i, v := range q {
		chunk, l, hi := i/64, i%32, i%64 >= 32
		if hi {
			b[16+32*chunk+l] |= v << 4
		} else {
			b[16+32*chunk+l] |= v
		}
	}
	return b
}

func TestQ4KLayout(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var sc, mn [8]byte
	var q [256]byte
	for j := range sc {
		sc[j], mn[j] = byte(r.IntN(64)), byte(r.IntN(64))
	}
	for i := range q {
		q[i] = byte(r.IntN(16))
	}
	blk := encodeQ4K(0x3c00, 0x3800, sc, mn, q) // d = 1, dmin = 0.5
	got := make([]float32, 256)
	DequantizeQ4K(got, blk)
	for i, v := range got {
		want := float32(sc[i/32])*float32(q[i]) - 0.5*float32(mn[i/32])
		if v != want {
			t.Fatalf("w[%d] = %g, want %g", i, v, want)
		}
	}
}

// encodeQ6K packs one Q6_K super-block: weight i is q[i]-32 times scale
// sc[i/16] times d.
func encodeQ6K(d uint16, sc [16]int8, q [256]byte) []byte {
	b := make([]byte, SizeQ6K)
	for i, v := range q {
		h, rem := i/128, i%128
		quad, l := rem/32, rem%32
		lo := v & 0xf
		switch quad {
		case 0:
			b[64*h+l] |= lo
		case 1:
			b[64*h+32+l] |= lo
		case 2:
			b[64*h+l] |= lo << 4
		case 3:
			b[64*h+32+l] |= lo << 4
		}
		b[128+32*h+l] |= (v >> 4) << (2 * quad)
	}
	for j, s := range sc {
		b[192+j] = byte(s)
	}
	b[208], b[209] = byte(d), byte(d>>8)
	return b
}

func TestQ6KLayout(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	var sc [16]int8
	var q [256]byte
	for j := range sc {
		sc[j] = int8(r.IntN(256) - 128)
	}
	for i := range q {
		q[i] = byte(r.IntN(64))
	}
	blk := encodeQ6K(0x3400, sc, q) // d = 0.25
	got := make([]float32, 256)
	DequantizeQ6K(got, blk)
	for i, v := range got {
		want := 0.25 * float32(sc[i/16]) * float32(int(q[i])-32)
		if v != want {
			t.Fatalf("w[%d] = %g, want %g", i, v, want)
		}
	}
}

// randQuant returns n rows of k weights in the given format with random
// contents and sane float16 scales.
func randQuant(r *rand.Rand, q quantType, n, k int) []byte {
	if q.block == 32 {
		w := randSlice(r, n*k)
		b := make([]byte, n*k/32*q.size)
		if q.size == SizeQ8_0 {
			QuantizeQ8_0(b, w)
		} else {
			QuantizeQ4_0(b, w)
		}
		return b
	}
	b := make([]byte, n*k/q.block*q.size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for s := 0; s < len(b); s += q.size {
		h := f32ToF16(float32(r.Float64()*0.01 + 0.001))
		if q.size == SizeQ4K {
			m := f32ToF16(float32(r.Float64() * 0.01))
			b[s], b[s+1], b[s+2], b[s+3] = byte(h), byte(h>>8), byte(m), byte(m>>8)
		} else {
			b[s+208], b[s+209] = byte(h), byte(h>>8)
		}
	}
	return b
}

func TestMatMulQuant(t *testing.T) {
	types := []struct {
		q      quantType
		matmul func(c, a []float32, b []byte, m, n, k int)
		ks     []int
	}{
		{qQ8_0, MatMulNTQ8_0, []int{32, 96, 576}},
		{qQ4_0, MatMulNTQ4_0, []int{32, 96, 576}},
		{qQ4K, MatMulNTQ4K, []int{256, 512}},
		{qQ6K, MatMulNTQ6K, []int{256, 512}},
	}
	ms := []int{1, 2, 3, 4, 5, 7, 17, 130}
	ns := []int{1, 3, 17, 300}
	withImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 11))
		for _, tp := range types {
			for _, k := range tp.ks {
				for _, m := range ms {
					for _, n := range ns {
						if testing.Short() && m*n*k > 1<<20 {
							continue
						}
						a := randSlice(r, m*k)
						b := randQuant(r, tp.q, n, k)
						w := make([]float32, n*k)
						tp.q.dequant(w, b)
						want := make([]float32, m*n)
						refMatMulNT(want, a, w, m, n, k, false)
						abs := make([]float32, m*n)
						refMatMulNT(abs, absSlice(a), absSlice(w), m, n, k, false)
						got := randSlice(r, m*n+3)
						tail := append([]float32(nil), got[m*n:]...)
						tp.matmul(got[:m*n], a, b, m, n, k)
						checkClose(t, fmt.Sprintf("%s m=%d n=%d k=%d", tp.q.name, m, n, k), got[:m*n], want, abs, k)
						for i, v := range tail {
							if got[m*n+i] != v {
								t.Fatalf("%s wrote past c", tp.q.name)
							}
						}
					}
				}
			}
		}
	})
}

func TestQuantizeKRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	x := randSlice(r, 256*8)
	for i := 256; i < 512; i++ {
		x[i] = 0 // an all-zero super-block
	}
	for i := 512; i < 768; i++ {
		x[i] = float32(math.Abs(float64(x[i]))) + 1 // all positive: min 0
	}
	t.Run("Q4K", func(t *testing.T) {
		q := make([]byte, len(x)/256*SizeQ4K)
		QuantizeQ4K(q, x)
		y := make([]float32, len(x))
		DequantizeQ4K(y, q)
		for s := 0; s < len(x)/32; s++ {
			lo, hi := float32(0), float32(0)
			for _, v := range x[32*s : 32*s+32] {
				lo, hi = min(lo, v), max(hi, v)
			}
			// Half a step of the sub-block's range over 15, plus the
			// 6-bit rounding of its scale and min (relative 1/63 of the
			// super-block's largest, times 15 and 1).
			sb := s / 8 * 8
			var maxRange, maxMin float32
			for u := sb; u < sb+8; u++ {
				l, h := float32(0), float32(0)
				for _, v := range x[32*u : 32*u+32] {
					l, h = min(l, v), max(h, v)
				}
				maxRange, maxMin = max(maxRange, h-l), max(maxMin, -l)
			}
			lim := float64((hi-lo)/15/2 + maxRange/63/2 + maxMin/63/2 + 1e-6)
			for i := 32 * s; i < 32*s+32; i++ {
				if d := math.Abs(float64(x[i] - y[i])); d > lim*1.05 {
					t.Fatalf("x[%d] = %g came back %g (limit %g)", i, x[i], y[i], lim)
				}
			}
		}
	})
	t.Run("Q6K", func(t *testing.T) {
		q := make([]byte, len(x)/256*SizeQ6K)
		QuantizeQ6K(q, x)
		y := make([]float32, len(x))
		DequantizeQ6K(y, q)
		for s := 0; s < len(x)/16; s++ {
			var amax, smax float64
			for _, v := range x[16*s : 16*s+16] {
				amax = max(amax, math.Abs(float64(v)))
			}
			for _, v := range x[s/16*256 : s/16*256+256] {
				smax = max(smax, math.Abs(float64(v)))
			}
			lim := amax/31/2 + smax/31/127/2*32 + 1e-6
			for i := 16 * s; i < 16*s+16; i++ {
				if d := math.Abs(float64(x[i] - y[i])); d > lim*1.05 {
					t.Fatalf("x[%d] = %g came back %g (limit %g)", i, x[i], y[i], lim)
				}
			}
		}
	})
}

// TestDequantAsmExact checks the assembly dequantizers of the prefill path
// against the Go ones, bit for bit.
func TestDequantAsmExact(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(13, 13))
	for _, tc := range []struct {
		q   quantType
		asm func(dst *float32, b *byte, nb int)
	}{
		{qQ8_0, dequantQ8_0AVX2},
		{qQ4K, dequantQ4KAVX2},
		{qQ6K, dequantQ6KAVX2},
	} {
		const n, k = 5, 512
		b := randQuant(r, tc.q, n, k)
		want := make([]float32, n*k)
		tc.q.dequant(want, b)
		got := make([]float32, n*k+1)
		got[n*k] = 42
		tc.asm(&got[0], &b[0], n*k/tc.q.block)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: [%d] = %g, want %g", tc.q.name, i, got[i], want[i])
			}
		}
		if got[n*k] != 42 {
			t.Fatalf("%s wrote past the end", tc.q.name)
		}
	}
}
