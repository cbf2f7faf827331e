package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Quantize stores the float32 values of src as type d in dst, using the
// rounding of ggml's reference quantize_row_*_ref functions. len(src) must
// be a multiple of d.BlockSize() and len(dst) exactly the storage size of
// len(src) elements.
//
// Supported: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q4_K,
// Q6_K and Q8_K. Q4_K and Q6_K follow ggml's reference algorithms (an
// iterative least-squares scale search) but are checked against error
// bounds here, not against ggml's bytes. Q2_K, Q3_K and Q5_K are not
// implemented.
func Quantize(dst []byte, src []float32, d DType) error {
	if err := checkLen(len(src), dst, d); err != nil {
		return fmt.Errorf("quantize: %w", err)
	}
	le := binary.LittleEndian
	switch d {
	case F32:
		for i, v := range src {
			le.PutUint32(dst[4*i:], math.Float32bits(v))
		}
		return nil
	case F16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], F32ToF16(v))
		}
		return nil
	case BF16:
		for i, v := range src {
			le.PutUint16(dst[2*i:], F32ToBF16(v))
		}
		return nil
	case F64:
		for i, v := range src {
			le.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
		return nil
	}
	q := blockQuantizers[d]
	if q == nil {
		return fmt.Errorf("quantize: %v is not supported", d)
	}
	bs, bb := d.BlockSize(), d.BlockBytes()
	for i := 0; i < len(src)/bs; i++ {
		q(dst[i*bb:(i+1)*bb], src[i*bs:(i+1)*bs])
	}
	return nil
}

var blockQuantizers = map[DType]func(b []byte, x []float32){
	Q4_0: quantQ4_0,
	Q4_1: quantQ4_1,
	Q5_0: quantQ5_0,
	Q5_1: quantQ5_1,
	Q8_0: quantQ8_0,
	Q8_1: quantQ8_1,
	Q8_K: quantQ8K,
	Q4_K: quantQ4K,
	Q6_K: quantQ6K,
}

func putF16(b []byte, v float32) { binary.LittleEndian.PutUint16(b, F32ToF16(v)) }

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// roundAway rounds half away from zero, like C's roundf.
func roundAway(v float32) int { return int(math.Round(float64(v))) }

// absMax returns the largest |x| and the signed value that has it (the
// first one on ties).
func absMax(x []float32) (amax, max float32) {
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, max = a, v
		}
	}
	return amax, max
}

func minMax(x []float32) (lo, hi float32) {
	lo, hi = math.MaxFloat32, -math.MaxFloat32
	for _, v := range x {
		lo = min(lo, v)
		hi = max(hi, v)
	}
	return lo, hi
}

func inv(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

func quantQ8_0(b []byte, x []float32) {
	amax, _ := absMax(x)
	d := amax / 127
	id := inv(d)
	putF16(b, d)
	for j, v := range x {
		b[2+j] = byte(int8(roundAway(v * id)))
	}
}

func quantQ8_1(b []byte, x []float32) {
	amax, _ := absMax(x)
	d := amax / 127
	id := inv(d)
	sum := 0
	for j, v := range x {
		q := roundAway(v * id)
		b[4+j] = byte(int8(q))
		sum += q
	}
	putF16(b, d)
	putF16(b[2:], float32(sum)*d)
}

func quantQ4_0(b []byte, x []float32) {
	_, mx := absMax(x)
	d := mx / -8
	id := inv(d)
	putF16(b, d)
	for j := 0; j < 16; j++ {
		x0 := min(15, int8(float32(x[j]*id)+8.5))
		x1 := min(15, int8(float32(x[16+j]*id)+8.5))
		b[2+j] = byte(x0) | byte(x1)<<4
	}
}

func quantQ4_1(b []byte, x []float32) {
	lo, hi := minMax(x)
	d := (hi - lo) / 15
	id := inv(d)
	putF16(b, d)
	putF16(b[2:], lo)
	for j := 0; j < 16; j++ {
		x0 := min(15, int8(float32((x[j]-lo)*id)+0.5))
		x1 := min(15, int8(float32((x[16+j]-lo)*id)+0.5))
		b[4+j] = byte(x0) | byte(x1)<<4
	}
}

func quantQ5_0(b []byte, x []float32) {
	_, mx := absMax(x)
	d := mx / -16
	id := inv(d)
	putF16(b, d)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := uint32(min(31, int8(float32(x[j]*id)+16.5)))
		x1 := uint32(min(31, int8(float32(x[16+j]*id)+16.5)))
		b[6+j] = byte(x0&0xf) | byte(x1&0xf)<<4
		qh |= (x0 & 0x10) >> 4 << uint(j)
		qh |= (x1 & 0x10) >> 4 << uint(j+16)
	}
	binary.LittleEndian.PutUint32(b[2:], qh)
}

func quantQ5_1(b []byte, x []float32) {
	lo, hi := minMax(x)
	d := (hi - lo) / 31
	id := inv(d)
	putF16(b, d)
	putF16(b[2:], lo)
	var qh uint32
	for j := 0; j < 16; j++ {
		x0 := uint32(int8(float32((x[j]-lo)*id) + 0.5))
		x1 := uint32(int8(float32((x[16+j]-lo)*id) + 0.5))
		b[8+j] = byte(x0&0xf) | byte(x1&0xf)<<4
		qh |= (x0 & 0x10) >> 4 << uint(j)
		qh |= (x1 & 0x10) >> 4 << uint(j+16)
	}
	binary.LittleEndian.PutUint32(b[4:], qh)
}

// nearestInt rounds half to even, as ggml's nearest_int does with its
// 1.5·2^23 trick.
func nearestInt(v float32) int { return int(math.RoundToEven(float64(v))) }

func quantQ8K(b []byte, x []float32) {
	clear(b)
	amax, mx := absMax(x)
	if amax == 0 {
		return
	}
	iscale := -127 / mx
	for j, v := range x {
		b[4+j] = byte(int8(min(127, nearestInt(iscale*v))))
	}
	for j := 0; j < QK_K/16; j++ {
		sum := 0
		for l := 0; l < 16; l++ {
			sum += int(int8(b[4+16*j+l]))
		}
		binary.LittleEndian.PutUint16(b[4+QK_K+2*j:], uint16(int16(sum)))
	}
	binary.LittleEndian.PutUint32(b, math.Float32bits(1/iscale))
}
