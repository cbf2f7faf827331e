package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// f16Table maps every binary16 value to its float32 value (256 KiB, built
// on first use): decoding F16 tensors by table is several times faster
// than by bit manipulation.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = F16ToF32(uint16(h))
	}
	return &t
})

// checkLen verifies that src holds exactly n elements of type d.
func checkLen(n int, src []byte, d DType) error {
	if !d.Valid() {
		return fmt.Errorf("tensor: invalid dtype %v", d)
	}
	want, err := d.RowBytes(n)
	if err != nil {
		return err
	}
	if len(src) != want {
		return fmt.Errorf("tensor: %d elements of %v need %d bytes, have %d", n, d, want, len(src))
	}
	return nil
}

func f16(b []byte) float32 { return F16ToF32(binary.LittleEndian.Uint16(b)) }

// Dequantize converts len(dst) elements of type d stored in src to float32.
// It is the readable reference for every type: len(dst) must be a multiple
// of d.BlockSize() and len(src) must be exactly the storage size of
// len(dst) elements. Q8_1's stored sum is ignored.
func Dequantize(dst []float32, src []byte, d DType) error {
	if err := checkLen(len(dst), src, d); err != nil {
		return fmt.Errorf("dequantize: %w", err)
	}
	le := binary.LittleEndian
	bb := d.BlockBytes()
	bs := d.BlockSize()
	switch d {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		tab := f16Table()
		for i := range dst {
			dst[i] = tab[le.Uint16(src[2*i:])]
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(le.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case I8:
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	case I16:
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(src[2*i:])))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(src[4*i:])))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(src[8*i:])))
		}
	case U8:
		for i := range dst {
			dst[i] = float32(src[i])
		}
	case U16:
		for i := range dst {
			dst[i] = float32(le.Uint16(src[2*i:]))
		}
	case U32:
		for i := range dst {
			dst[i] = float32(le.Uint32(src[4*i:]))
		}
	case U64:
		for i := range dst {
			dst[i] = float32(le.Uint64(src[8*i:]))
		}
	case Bool:
		for i := range dst {
			if src[i] != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	case F8_E4M3:
		for i := range dst {
			dst[i] = f8e4m3ToF32(src[i])
		}
	case F8_E5M2:
		for i := range dst {
			dst[i] = f8e5m2ToF32(src[i])
		}
	default:
		deq := blockDequantizers[d]
		if deq == nil {
			return fmt.Errorf("dequantize: %v is not supported", d)
		}
		for i := 0; i < len(dst)/bs; i++ {
			deq(dst[i*bs:(i+1)*bs], src[i*bb:(i+1)*bb])
		}
	}
	return nil
}

// blockDequantizers decode one block each; y has BlockSize elements and b
// BlockBytes bytes. The layouts are ggml's (ggml-common.h) and the
// arithmetic that of ggml's reference dequantize_row_* functions.
var blockDequantizers = map[DType]func(y []float32, b []byte){
	Q4_0: dequantQ4_0,
	Q4_1: dequantQ4_1,
	Q5_0: dequantQ5_0,
	Q5_1: dequantQ5_1,
	Q8_0: dequantQ8_0,
	Q8_1: dequantQ8_1,
	Q2_K: dequantQ2K,
	Q3_K: dequantQ3K,
	Q4_K: dequantQ4K,
	Q5_K: dequantQ5K,
	Q6_K: dequantQ6K,
	Q8_K: dequantQ8K,
}

// block_q4_0 { half d; uint8 qs[16] }: x[j] = (lo nibble - 8)·d, x[j+16] = (hi nibble - 8)·d.
func dequantQ4_0(y []float32, b []byte) {
	d := f16(b)
	qs := b[2:18]
	for j := 0; j < 16; j++ {
		y[j] = float32(int(qs[j]&0xf)-8) * d
		y[j+16] = float32(int(qs[j]>>4)-8) * d
	}
}

// block_q4_1 { half d, m; uint8 qs[16] }: x = q·d + m.
func dequantQ4_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qs := b[4:20]
	for j := 0; j < 16; j++ {
		y[j] = float32(qs[j]&0xf)*d + m
		y[j+16] = float32(qs[j]>>4)*d + m
	}
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16] }: 5-bit q = nibble | high bit from qh, minus 16.
func dequantQ5_0(y []float32, b []byte) {
	d := f16(b)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6:22]
	for j := 0; j < 16; j++ {
		h0 := ((qh >> uint(j)) << 4) & 0x10
		h1 := (qh >> uint(j+12)) & 0x10
		y[j] = float32(int32(uint32(qs[j]&0xf)|h0)-16) * d
		y[j+16] = float32(int32(uint32(qs[j]>>4)|h1)-16) * d
	}
}

// block_q5_1 { half d, m; uint8 qh[4]; uint8 qs[16] }: x = q·d + m.
func dequantQ5_1(y []float32, b []byte) {
	d, m := f16(b), f16(b[2:])
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8:24]
	for j := 0; j < 16; j++ {
		h0 := ((qh >> uint(j)) << 4) & 0x10
		h1 := (qh >> uint(j+12)) & 0x10
		y[j] = float32(uint32(qs[j]&0xf)|h0)*d + m
		y[j+16] = float32(uint32(qs[j]>>4)|h1)*d + m
	}
}

// block_q8_0 { half d; int8 qs[32] }: x = q·d.
func dequantQ8_0(y []float32, b []byte) {
	d := f16(b)
	for j := 0; j < 32; j++ {
		y[j] = float32(int8(b[2+j])) * d
	}
}

// block_q8_1 { half d, s; int8 qs[32] }: x = q·d (s = d·Σq is for dot products).
func dequantQ8_1(y []float32, b []byte) {
	d := f16(b)
	for j := 0; j < 32; j++ {
		y[j] = float32(int8(b[4+j])) * d
	}
}

// block_q2_K { uint8 scales[16]; uint8 qs[64]; half d, dmin }.
func dequantQ2K(y []float32, b []byte) {
	scales := b[0:16]
	q := b[16:80]
	d, dmin := f16(b[80:]), f16(b[82:])
	is := 0
	for n := 0; n < QK_K; n += 128 {
		shift := uint(0)
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				sc := scales[is]
				is++
				dl := d * float32(sc&0xf)
				ml := dmin * float32(sc>>4)
				for l := 0; l < 16; l++ {
					y[0] = dl*float32((q[l+16*half]>>shift)&3) - ml
					y = y[1:]
				}
			}
			shift += 2
		}
		q = q[32:]
	}
}

// block_q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d }.
func dequantQ3K(y []float32, b []byte) {
	hm := b[0:32]
	q := b[32:96]
	var scales [16]int8
	unpackQ3Scales(&scales, b[96:108])
	dAll := f16(b[108:])
	is := 0
	m := uint8(1)
	for n := 0; n < QK_K; n += 128 {
		shift := uint(0)
		for j := 0; j < 4; j++ {
			for half := 0; half < 2; half++ {
				dl := dAll * float32(int(scales[is])-32)
				is++
				for l := 16 * half; l < 16*half+16; l++ {
					v := int((q[l] >> shift) & 3)
					if hm[l]&m == 0 {
						v -= 4
					}
					y[0] = dl * float32(v)
					y = y[1:]
				}
			}
			shift += 2
			m <<= 1
		}
		q = q[32:]
	}
}

// unpackQ3Scales expands the twelve bytes of Q3_K's 6-bit scales into
// sixteen values in 0..63: the low four bits come from bytes 0..7 (low
// nibbles for scales 0..7, high nibbles for 8..15), the high two bits from
// bytes 8..11.
func unpackQ3Scales(dst *[16]int8, s []byte) {
	for i := 0; i < 16; i++ {
		var lo uint8
		if i < 8 {
			lo = s[i] & 0xf
		} else {
			lo = s[i-8] >> 4
		}
		hi := (s[8+i%4] >> (2 * uint(i/4))) & 3
		dst[i] = int8(lo | hi<<4)
	}
}

// scaleMinK4 returns the j-th 6-bit scale and min of a Q4_K/Q5_K block
// (ggml's get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0xf) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// block_q4_K { half d, dmin; uint8 scales[12]; uint8 qs[128] }.
func dequantQ4K(y []float32, b []byte) {
	d, dmin := f16(b), f16(b[2:])
	scales := b[4:16]
	q := b[16:144]
	is := 0
	for j := 0; j < QK_K; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			y[j+l] = d1*float32(q[l]&0xf) - m1
		}
		for l := 0; l < 32; l++ {
			y[j+32+l] = d2*float32(q[l]>>4) - m2
		}
		q = q[32:]
		is += 2
	}
}

// block_q5_K { half d, dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] }.
func dequantQ5K(y []float32, b []byte) {
	d, dmin := f16(b), f16(b[2:])
	scales := b[4:16]
	qh := b[16:48]
	ql := b[48:176]
	is := 0
	u1, u2 := uint8(1), uint8(2)
	for j := 0; j < QK_K; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := 0; l < 32; l++ {
			v := int(ql[l] & 0xf)
			if qh[l]&u1 != 0 {
				v += 16
			}
			y[j+l] = d1*float32(v) - m1
		}
		for l := 0; l < 32; l++ {
			v := int(ql[l] >> 4)
			if qh[l]&u2 != 0 {
				v += 16
			}
			y[j+32+l] = d2*float32(v) - m2
		}
		ql = ql[32:]
		is += 2
		u1 <<= 2
		u2 <<= 2
	}
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d }.
func dequantQ6K(y []float32, b []byte) {
	ql := b[0:128]
	qh := b[128:192]
	sc := b[192:208]
	d := f16(b[208:])
	for n := 0; n < QK_K; n += 128 {
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int((ql[l]&0xf)|((qh[l]>>0)&3)<<4) - 32
			q2 := int((ql[l+32]&0xf)|((qh[l]>>2)&3)<<4) - 32
			q3 := int((ql[l]>>4)|((qh[l]>>4)&3)<<4) - 32
			q4 := int((ql[l+32]>>4)|((qh[l]>>6)&3)<<4) - 32
			y[n+l] = d * float32(int8(sc[is])) * float32(q1)
			y[n+l+32] = d * float32(int8(sc[is+2])) * float32(q2)
			y[n+l+64] = d * float32(int8(sc[is+4])) * float32(q3)
			y[n+l+96] = d * float32(int8(sc[is+6])) * float32(q4)
		}
		ql = ql[64:]
		qh = qh[32:]
		sc = sc[8:]
	}
}

// block_q8_K { float d; int8 qs[256]; int16 bsums[16] }: x = q·d.
func dequantQ8K(y []float32, b []byte) {
	d := math.Float32frombits(binary.LittleEndian.Uint32(b))
	for j := 0; j < QK_K; j++ {
		y[j] = d * float32(int8(b[4+j]))
	}
}
