package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// f16Value is an independent decoding of a half-precision bit pattern.
func f16Value(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	case 0:
		return sign * math.Ldexp(m, -24)
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func TestF16ToF32Exhaustive(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	for _, im := range append([]Impl{Reference}, fastImpls()...) {
		prev := SetImpl(im)
		dst := make([]float32, len(src))
		F16ToF32(dst, src)
		SetImpl(prev)
		for i, h := range src {
			want := f16Value(h)
			got := dst[i]
			if math.IsNaN(want) {
				// NaN: payload kept, quiet bit set.
				wantBits := uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(h&0x3ff)<<13
				if math.Float32bits(got) != wantBits {
					t.Fatalf("%v: F16ToF32(%#04x) = %#08x, want %#08x", im, h, math.Float32bits(got), wantBits)
				}
				continue
			}
			if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
				t.Fatalf("%v: F16ToF32(%#04x) = %g, want %g", im, h, got, want)
			}
		}
	}
}

func TestF32ToF16(t *testing.T) {
	tests := []struct {
		in   uint32 // float32 bits
		want uint16
	}{
		{0x3f800000, 0x3c00},                 // 1
		{0x80000000, 0x8000},                 // -0
		{0x477fe000, 0x7bff},                 // 65504, the largest half
		{0x477fefff, 0x7bff},                 // just below the tie with Inf
		{0x477ff000, 0x7c00},                 // 65520: tie, rounds to even = Inf
		{0x7f800000, 0x7c00},                 // +Inf
		{0xff800000, 0xfc00},                 // -Inf
		{0x7fc00000, 0x7e00},                 // quiet NaN
		{0x7f800001, 0x7e00},                 // signalling NaN: quietened
		{0x7fa00000, 0x7f00},                 // NaN payload kept
		{0x38800000, 0x0400},                 // 2^-14, smallest normal
		{0x387fc000, 0x03ff},                 // largest subnormal
		{0x33800000, 0x0001},                 // 2^-24, smallest subnormal
		{0x33000000, 0x0000},                 // 2^-25: tie, rounds to even = 0
		{0x33000001, 0x0001},                 // just above the tie
		{0x33c00000, 0x0002},                 // 1.5·2^-24: tie, rounds to even = 2
		{0x3f801000, 0x3c00},                 // 1+2^-11: tie, stays even
		{0x3f803000, 0x3c02},                 // 1+3·2^-11: tie, rounds up to even
		{0x3f801001, 0x3c01},                 // just above a tie
		{0x00000001, 0x0000},                 // float32 subnormal
		{0xc0490fdb, 0xc248},                 // -π
		{math.Float32bits(0.1), 0x2e66},      // 0.1
		{math.Float32bits(-1e-6), 0x8011},    // subnormal half
		{math.Float32bits(1e10), 0x7c00},     // overflow
		{math.Float32bits(6.1e-5), 0x03ff},   // rounds to the largest subnormal
		{math.Float32bits(6.1035e-5), 0x400}, // rounds up into the normals
	}
	for _, im := range append([]Impl{Reference}, fastImpls()...) {
		prev := SetImpl(im)
		// Run each case at every position of an 8-wide vector, plus a tail.
		for _, tc := range tests {
			src := make([]float32, 11)
			for i := range src {
				src[i] = math.Float32frombits(tc.in)
			}
			dst := make([]uint16, len(src))
			F32ToF16(dst, src)
			for i, got := range dst {
				if got != tc.want {
					t.Errorf("%v: F32ToF16(%#08x)[%d] = %#04x, want %#04x", im, tc.in, i, got, tc.want)
				}
			}
		}
		SetImpl(prev)
	}
}

func TestF16RoundTripAndFastMatchesReference(t *testing.T) {
	// Every non-NaN half survives half -> float32 -> half.
	for h := 0; h < 1<<16; h++ {
		if got := f32ToF16(f16ToF32(uint16(h))); got != uint16(h) && h&0x7fff <= 0x7c00 {
			t.Fatalf("round trip %#04x -> %#04x", h, got)
		}
	}
	if !haveAVX2 {
		t.Skip("no F16C")
	}
	r := rand.New(rand.NewPCG(7, 7))
	src := make([]float32, 1<<16)
	for i := range src {
		switch i % 3 {
		case 0:
			src[i] = math.Float32frombits(r.Uint32()) // any pattern
		case 1:
			// Near the half range, where rounding happens.
			src[i] = math.Float32frombits(r.Uint32N(0x10000000) + 0x30000000 | r.Uint32()&0x80000000)
		default:
			src[i] = float32(r.NormFloat64())
		}
	}
	want := make([]uint16, len(src))
	for i, f := range src {
		want[i] = f32ToF16(f)
	}
	defer SetImpl(SetImpl(AVX2))
	got := make([]uint16, len(src))
	F32ToF16(got, src)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("F32ToF16(%#08x): F16C %#04x, reference %#04x", math.Float32bits(src[i]), got[i], want[i])
		}
	}
}

func TestBF16(t *testing.T) {
	tests := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80}, // below the tie
		{0x7f7fffff, 0x7f80}, // largest float32 rounds to Inf
		{0xff800000, 0xff80}, // -Inf
		{0x7fc00001, 0x7fc0}, // NaN
		{0x7f800001, 0x7fc0}, // signalling NaN: quietened, not Inf
		{0xffc00000, 0xffc0}, // -NaN
		{0x00000001, 0x0000}, // tiny subnormal
		{0x00018000, 0x0002}, // subnormal tie to even
		{0x80000000, 0x8000}, // -0
	}
	src := make([]float32, len(tests))
	for i, tc := range tests {
		src[i] = math.Float32frombits(tc.in)
	}
	dst := make([]uint16, len(src))
	F32ToBF16(dst, src)
	for i, tc := range tests {
		if dst[i] != tc.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", tc.in, dst[i], tc.want)
		}
	}
	back := make([]float32, 1<<16)
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	BF16ToF32(back, all)
	for i, f := range back {
		if math.Float32bits(f) != uint32(i)<<16 {
			t.Fatalf("BF16ToF32(%#04x) = %#08x", i, math.Float32bits(f))
		}
	}
	// Round trip of every non-NaN bfloat16.
	again := make([]uint16, len(back))
	F32ToBF16(again, back)
	for i := range again {
		if again[i] != uint16(i) && i&0x7fff <= 0x7f80 {
			t.Fatalf("bfloat16 round trip %#04x -> %#04x", i, again[i])
		}
	}
}
