package tensor

import (
	"math"
	"testing"
)

func TestF16Known(t *testing.T) {
	tests := []struct {
		h uint16
		f float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.333251953125},
		{0x7bff, 65504}, {0x0400, 6.103515625e-05}, {0x0001, 5.960464477539063e-08},
		{0x03ff, 6.097555160522461e-05}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	}
	for _, tt := range tests {
		if got := F16ToF32(tt.h); got != tt.f {
			t.Errorf("F16ToF32(%#04x) = %g, want %g", tt.h, got, tt.f)
		}
		if got := F32ToF16(tt.f); got != tt.h {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tt.f, got, tt.h)
		}
	}
	if got := F32ToF16(float32(math.Copysign(0, -1))); got != 0x8000 {
		t.Errorf("F32ToF16(-0) = %#04x", got)
	}
	if !math.IsNaN(float64(F16ToF32(F32ToF16(float32(math.NaN()))))) {
		t.Error("NaN does not survive F16")
	}
	// Rounding at the top of the range and below the smallest subnormal.
	for _, tt := range []struct {
		f float32
		h uint16
	}{
		{65519.99, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, {-1e10, 0xfc00},
		{float32(math.Ldexp(1, -25)), 0x0000},                      // half of the smallest subnormal: tie to even (0)
		{math.Nextafter32(float32(math.Ldexp(1, -25)), 1), 0x0001}, // just above: rounds up
		{float32(math.Ldexp(1.5, -24)), 0x0002},                    // tie between 1 and 2: even (2)
		{1e-10, 0x0000},
	} {
		if got := F32ToF16(tt.f); got != tt.h {
			t.Errorf("F32ToF16(%g) = %#04x, want %#04x", tt.f, got, tt.h)
		}
	}
}

// TestF16Exhaustive checks every binary16 value: the round trip is the
// identity, and the float32 midpoint between two neighbours rounds to the
// even one while values just off the midpoint round to the nearer one.
func TestF16Exhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Fatalf("%#04x decodes to NaN", h)
			}
			continue
		}
		if got := F32ToF16(f); got != uint16(h) {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, f, got)
		}
	}
	for h := uint16(0); h < 0x7bff; h++ { // positive finite neighbours h, h+1
		a, b := F16ToF32(h), F16ToF32(h+1)
		mid := (a + b) / 2 // exact in float32
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		if got := F32ToF16(mid); got != even {
			t.Fatalf("midpoint of %#04x,%#04x = %g -> %#04x, want %#04x", h, h+1, mid, got, even)
		}
		if got := F32ToF16(math.Nextafter32(mid, 0)); got != h {
			t.Fatalf("below midpoint of %#04x -> %#04x", h, got)
		}
		if got := F32ToF16(math.Nextafter32(mid, 1e9)); got != h+1 {
			t.Fatalf("above midpoint of %#04x -> %#04x", h, got)
		}
		if got := F32ToF16(-mid); got != even|0x8000 {
			t.Fatalf("negative midpoint %g -> %#04x", -mid, got)
		}
	}
}

func TestBF16(t *testing.T) {
	tests := []struct {
		bits uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81}, // above tie
		{0x7f7fffff, 0x7f80}, // max float rounds to +Inf
		{0x00000001, 0x0000}, // tiny subnormal
		{0x80000000, 0x8000},
		{0x7f800000, 0x7f80},
	}
	for _, tt := range tests {
		if got := F32ToBF16(math.Float32frombits(tt.bits)); got != tt.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", tt.bits, got, tt.want)
		}
	}
	if got := F32ToBF16(math.Float32frombits(0x7f800001)); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("signalling NaN -> %#04x, want a NaN", got)
	}
	for h := 0; h < 1<<16; h++ {
		f := BF16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if got := F32ToBF16(f); got != uint16(h) {
			t.Fatalf("BF16 round trip %#04x -> %#04x", h, got)
		}
	}
}

func TestF8(t *testing.T) {
	for v, want := range map[uint8]float32{
		0x38: 1, 0xb8: -1, 0x7e: 448, 0x01: float32(math.Ldexp(1, -9)), 0x08: float32(math.Ldexp(1, -6)),
	} {
		if got := f8e4m3ToF32(v); got != want {
			t.Errorf("E4M3 %#02x = %g, want %g", v, got, want)
		}
	}
	if !math.IsNaN(float64(f8e4m3ToF32(0x7f))) {
		t.Error("E4M3 0x7f is not NaN")
	}
	for v, want := range map[uint8]float32{0x3c: 1, 0xc0: -2, 0x7b: 57344, 0x01: float32(math.Ldexp(1, -16))} {
		if got := f8e5m2ToF32(v); got != want {
			t.Errorf("E5M2 %#02x = %g, want %g", v, got, want)
		}
	}
}

func TestF16Table(t *testing.T) {
	tab := f16Table()
	for h := 0; h < 1<<16; h++ {
		a, b := math.Float32bits(tab[h]), math.Float32bits(F16ToF32(uint16(h)))
		if a != b {
			t.Fatalf("table[%#04x] = %#08x, want %#08x", h, a, b)
		}
	}
}
