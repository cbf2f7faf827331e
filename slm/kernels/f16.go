package kernels

import "math"

// F16ToF32 converts IEEE 754 half-precision values (as bit patterns) to
// float32. The conversion is exact; NaNs stay NaNs with their payload and
// the quiet bit set, as the F16C instruction does.
func F16ToF32(dst []float32, src []uint16) {
	checkLen("F16ToF32", "dst", len(dst), len(src))
	n := 0
	if useAsm() {
		n = len(src) &^ 7
		if n > 0 {
			f16ToF32F16C(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = f16ToF32(src[i])
	}
}

// F32ToF16 converts float32 values to half precision, rounding to nearest
// even; values too large become ±Inf, NaNs stay (quiet) NaNs.
func F32ToF16(dst []uint16, src []float32) {
	checkLen("F32ToF16", "dst", len(dst), len(src))
	n := 0
	if useAsm() {
		n = len(src) &^ 7
		if n > 0 {
			f32ToF16F16C(&dst[0], &src[0], n)
		}
	}
	for i := n; i < len(src); i++ {
		dst[i] = f32ToF16(src[i])
	}
}

// BF16ToF32 converts bfloat16 bit patterns to float32 (exact).
func BF16ToF32(dst []float32, src []uint16) {
	checkLen("BF16ToF32", "dst", len(dst), len(src))
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// F32ToBF16 converts float32 values to bfloat16, rounding to nearest even;
// NaNs stay (quiet) NaNs.
func F32ToBF16(dst []uint16, src []float32) {
	checkLen("F32ToBF16", "dst", len(dst), len(src))
	for i, f := range src {
		dst[i] = f32ToBF16(f)
	}
}

// f16ToF32 is the reference conversion of one half-precision value.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f:
		if mant != 0 {
			return math.Float32frombits(sign | 0x7fc00000 | mant<<13)
		}
		return math.Float32frombits(sign | 0x7f800000)
	case 0:
		// Zero or subnormal: mant × 2⁻²⁴, exact in float32.
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// f32ToF16 is the reference conversion of one float32 to half precision.
func f32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	exp := int(u>>23) & 0xff
	mant := u & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Half subnormal (or zero): the value in units of 2⁻²⁴ is
		// m >> (14-e) with m the 24-bit significand.
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++ // may carry into the smallest normal: still the right encoding
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is correct, up to Inf
	}
	return sign | uint16(h)
}

func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
