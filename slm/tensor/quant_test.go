package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func h16(f float32) []byte { return binary.LittleEndian.AppendUint16(nil, F32ToF16(f)) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func rep(v byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = v
	}
	return b
}

func deq(t *testing.T, d DType, b []byte) []float32 {
	t.Helper()
	y := make([]float32, len(b)/d.BlockBytes()*d.BlockSize())
	if err := Dequantize(y, b, d); err != nil {
		t.Fatalf("Dequantize %v: %v", d, err)
	}
	return y
}

// TestDequantizeKnown decodes hand-built blocks whose values are worked out
// by hand from the ggml layouts.
func TestDequantizeKnown(t *testing.T) {
	type check struct {
		i    int
		want float32
	}
	qs := rep(0, 16)
	qs[0] = 0x9f // lo 15, hi 9
	qs[5] = 0x08 // lo 8, hi 0
	q8 := make([]byte, 32)
	for i := range q8 {
		q8[i] = byte(int8(i - 16))
	}
	q8[31] = 0x80 // -128

	// Q5: element 0 gets the high bit (qh bit 0), element 16+5 too (bit 21).
	qh5 := binary.LittleEndian.AppendUint32(nil, 1|1<<21)

	// K-quant blocks.
	// Q4_K: d=0.5, dmin=0.25, scales: sub-block 0 sc=2,m=4; sub-block 1 sc=3,m=1;
	// sub-block 4 (upper encoding) sc=5|1<<4=21, m=6|2<<4=38.
	sc4 := make([]byte, 12)
	sc4[0], sc4[4] = 2, 4
	sc4[1], sc4[5] = 3, 1
	sc4[8] = 5 | 6<<4 // low bits of scale 4 and min 4
	sc4[0] |= 1 << 6  // high bits of scale 4
	sc4[4] |= 2 << 6  // high bits of min 4
	q4k := rep(0, 128)
	q4k[0] = 0x7a    // element 0: 10, element 32: 7
	q4k[64+3] = 0x0f // element 128+3: 15 (chunk 2 = sub-blocks 4,5)
	q4kBlock := cat(h16(0.5), h16(0.25), sc4, q4k)

	// Q6_K: d=2, scales[0]=3, scales[2]=-1, scales[8+6]=5.
	ql := rep(0, 128)
	qh := rep(0, 64)
	sc6 := rep(0, 16)
	sc6[0], sc6[2], sc6[14] = 3, byte(0xff), 5
	ql[0] = 0x05      // element 0 low nibble 5
	qh[0] = 0x02      // element 0 high bits 2 -> q = 5|32 = 37 -> 5
	ql[32] = 0x0c     // element 32 low nibble 12, high bits (qh[0]>>2)&3 = 0 -> q=12-32=-20
	ql[64+63] = 0xf0  // second half: element 128+96+31 uses ql[64+32+31]>>4 = 15
	qh[32+31] = 0xc0  // and (qh>>6)&3 = 3 -> q = 15|48 = 63 -> 31, scale sc[8+1+6]
	sc6[8+1+6] = 0xfe // -2
	q6kBlock := cat(ql, qh, sc6, h16(2))

	// Q2_K: d=1, dmin=0.5; scales[0] = sc 3, m 2; scales[1] = sc 1, m 4.
	sc2 := rep(0, 16)
	sc2[0], sc2[1] = 0x23, 0x41
	q2 := rep(0, 64)
	q2[0] = 0b11_10_01_00 // element 0 q=0, element 32 q=1, element 64 q=2, element 96 q=3
	q2[16] = 0x03         // element 16 q=3 (scale 1)
	sc2[2], sc2[4], sc2[6] = 0x01, 0x01, 0x11
	q2kBlock := cat(sc2, q2, h16(1), h16(0.5))

	// Q3_K: d=0.5. Scale 0 = 34 (-> 2): low nibble 2 in byte 0, high bits 2 in byte 8 bits 0-1.
	// Scale 1 = 10 (-> -22). Scale 10 = 39 (-> 7): low nibble 7 in byte 2's high nibble, high
	// bits 2 in byte 10 bits 4-5.
	hm := rep(0, 32)
	hm[0] = 0x01 // element 0 has its high bit -> no -4
	q3 := rep(0, 64)
	q3[0] = 0x03    // element 0: q=3
	q3[16+1] = 0x01 // element 17: q=1, no high bit -> -3, scale index 1
	q3[32+1] = 0x0c // element 128+32+1 (h=1, j=1, l=1): q=(b>>2)&3 = 3, scale 8+2+0 = 10
	sc3 := make([]byte, 12)
	sc3[0] = 2 | 8<<4 // scale 0 low = 2, scale 8 low = 8
	sc3[1] = 0x0a     // scale 1 low = 10 (-> 10 with high 0 = 10, minus 32 = -22)
	sc3[2] = 7 << 4   // scale 10 low = 7
	sc3[8] = 2        // scale 0 high = 2 -> 34
	sc3[10] = 2 << 4  // scale 10 high bits: byte 8+10%4=10, shift 2*(10/4)=4 -> 2 -> 39
	q3kBlock := cat(hm, q3, sc3, h16(0.5))

	// Q5_K: d=1, dmin=1, scale 0 = 2 min 3, scale 1 = 1 min 0.
	sc5 := make([]byte, 12)
	sc5[0], sc5[4] = 2, 3
	sc5[1] = 1
	qh5k := rep(0, 32)
	qh5k[0] = 0x01 | 0x02 // element 0 and element 32 high bits
	ql5 := rep(0, 128)
	ql5[0] = 0x31 // element 0: 1+16 = 17, element 32: 3+16 = 19
	q5kBlock := cat(h16(1), h16(1), sc5, qh5k, ql5)

	// Q8_K: d=0.125 float32.
	q8k := cat(binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.125)), q8, rep(0, QK_K-32), rep(0, 32))

	tests := []struct {
		d      DType
		block  []byte
		checks []check
	}{
		{Q4_0, cat(h16(0.5), qs), []check{{0, 3.5}, {16, 0.5}, {5, 0}, {21, -4}, {1, -4}}},
		{Q4_1, cat(h16(2), h16(-1), qs), []check{{0, 29}, {16, 17}, {5, 15}, {21, -1}}},
		{Q5_0, cat(h16(1), qh5, qs), []check{{0, 15}, {16, -7}, {5, -8}, {21, 0}, {1, -16}}},
		{Q5_1, cat(h16(1), h16(0.5), qh5, qs), []check{{0, 31.5}, {16, 9.5}, {5, 8.5}, {21, 16.5}}},
		{Q8_0, cat(h16(0.25), q8), []check{{0, -4}, {16, 0}, {17, 0.25}, {31, -32}}},
		{Q8_1, cat(h16(0.25), h16(99), q8), []check{{0, -4}, {17, 0.25}, {31, -32}}},
		{Q4_K, q4kBlock, []check{{0, 0.5*2*10 - 0.25*4}, {1, -1}, {32, 0.5*3*7 - 0.25*1}, {128 + 3, 0.5*21*15 - 0.25*38}, {128, -0.25 * 38}}},
		{Q6_K, q6kBlock, []check{{0, 2 * 3 * 5}, {32, 2 * -1 * -20}, {1, 2 * 3 * -32}, {128 + 96 + 31, 2 * -2 * 31}}},
		{Q2_K, q2kBlock, []check{{0, -1}, {32, 1*1 - 0.5*0}, {16, 1*1*3 - 0.5*4}, {64, 1*1*2 - 0.5*0}, {96, 1*1*3 - 0.5*1}}},
		{Q3_K, q3kBlock, []check{{0, 0.5 * 2 * 3}, {1, 0.5 * 2 * -4}, {17, 0.5 * -22 * -3}, {128 + 32 + 1, 0.5 * 7 * (3 - 4)}}},
		{Q5_K, q5kBlock, []check{{0, 2*17 - 3}, {32, 1 * 19}, {1, -3}}},
		{Q8_K, q8k, []check{{0, -2}, {17, 0.125}, {31, -16}, {200, 0}}},
	}
	for _, tt := range tests {
		if len(tt.block) != tt.d.BlockBytes() {
			t.Fatalf("%v: test block has %d bytes, want %d", tt.d, len(tt.block), tt.d.BlockBytes())
		}
		y := deq(t, tt.d, tt.block)
		for _, c := range tt.checks {
			if y[c.i] != c.want {
				t.Errorf("%v: y[%d] = %g, want %g", tt.d, c.i, y[c.i], c.want)
			}
		}
	}
}

// The element-wise formulas below restate each K-quant layout per output
// index (which byte, which bits, which scale), independently of the
// loop structure of the implementation.

func q4kScale(s []byte, sb int) (sc, m float32) {
	if sb < 4 {
		return float32(s[sb] & 63), float32(s[sb+4] & 63)
	}
	return float32(s[sb+4]&0xf | (s[sb-4]>>6)<<4), float32(s[sb+4]>>4 | (s[sb]>>6)<<4)
}

func elemQ4K(b []byte, i int) float32 {
	d, dmin := f16(b), f16(b[2:])
	c, r := i/64, i%64
	q := b[16+32*c+r%32]
	if r < 32 {
		q &= 0xf
	} else {
		q >>= 4
	}
	sc, m := q4kScale(b[4:16], 2*c+r/32)
	return d*sc*float32(q) - dmin*m
}

func elemQ5K(b []byte, i int) float32 {
	d, dmin := f16(b), f16(b[2:])
	c, r := i/64, i%64
	q := b[48+32*c+r%32]
	if r < 32 {
		q &= 0xf
	} else {
		q >>= 4
	}
	hi := (b[16+r%32] >> uint(2*c+r/32)) & 1
	sc, m := q4kScale(b[4:16], 2*c+r/32)
	return d*sc*float32(q|hi<<4) - dmin*m
}

func elemQ6K(b []byte, i int) float32 {
	h, r := i/128, i%128
	qq, l := r/32, r%32
	lo := b[64*h+l+32*(qq&1)]
	if qq >= 2 {
		lo >>= 4
	}
	lo &= 0xf
	hi := (b[128+32*h+l] >> uint(2*qq)) & 3
	sc := int8(b[192+8*h+l/16+2*qq])
	return f16(b[208:]) * float32(sc) * float32(int(lo|hi<<4)-32)
}

func elemQ2K(b []byte, i int) float32 {
	h, r := i/128, i%128
	j, l := r/32, r%32
	q := (b[16+32*h+l] >> uint(2*j)) & 3
	sc := b[8*h+2*j+l/16]
	return f16(b[80:])*float32(sc&0xf)*float32(q) - f16(b[82:])*float32(sc>>4)
}

func elemQ3K(b []byte, i int) float32 {
	h, r := i/128, i%128
	j, l := r/32, r%32
	q := int((b[32+32*h+l] >> uint(2*j)) & 3)
	if b[l]&(1<<uint(4*h+j)) == 0 {
		q -= 4
	}
	k := 8*h + 2*j + l/16
	s := b[96:108]
	var lo byte
	if k < 8 {
		lo = s[k] & 0xf
	} else {
		lo = s[k-8] >> 4
	}
	hi := (s[8+k%4] >> uint(2*(k/4))) & 3
	return f16(b[108:]) * float32(int(lo|hi<<4)-32) * float32(q)
}

func elemQ8K(b []byte, i int) float32 {
	return math.Float32frombits(binary.LittleEndian.Uint32(b)) * float32(int8(b[4+i]))
}

func TestDequantizeKQuantsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	elems := map[DType]func([]byte, int) float32{
		Q2_K: elemQ2K, Q3_K: elemQ3K, Q4_K: elemQ4K, Q5_K: elemQ5K, Q6_K: elemQ6K, Q8_K: elemQ8K,
	}
	// Offsets of the float16 scale fields, which must hold finite values.
	halfFields := map[DType][]int{Q2_K: {80, 82}, Q3_K: {108}, Q4_K: {0, 2}, Q5_K: {0, 2}, Q6_K: {208}}
	for d, elem := range elems {
		const nb = 3
		b := make([]byte, nb*d.BlockBytes())
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		for k := 0; k < nb; k++ {
			blk := b[k*d.BlockBytes():]
			for _, off := range halfFields[d] {
				copy(blk[off:], h16(float32(rng.NormFloat64())))
			}
			if d == Q8_K {
				binary.LittleEndian.PutUint32(blk, math.Float32bits(float32(rng.NormFloat64())))
			}
		}
		y := deq(t, d, b)
		for k := 0; k < nb; k++ {
			blk := b[k*d.BlockBytes() : (k+1)*d.BlockBytes()]
			for i := 0; i < QK_K; i++ {
				want := elem(blk, i)
				got := y[k*QK_K+i]
				if math.Abs(float64(got-want)) > 1e-6*math.Max(1, math.Abs(float64(want))) {
					t.Fatalf("%v block %d element %d: got %g, want %g", d, k, i, got, want)
				}
			}
		}
	}
}

func TestDequantizePlain(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		d    DType
		b    []byte
		want []float32
	}{
		{F32, le.AppendUint32(le.AppendUint32(nil, math.Float32bits(1.5)), math.Float32bits(-2)), []float32{1.5, -2}},
		{F16, cat(h16(0.5), h16(-3)), []float32{0.5, -3}},
		{BF16, []byte{0x80, 0x3f, 0x00, 0xc0}, []float32{1, -2}},
		{F64, le.AppendUint64(nil, math.Float64bits(0.25)), []float32{0.25}},
		{I8, []byte{0xff, 5}, []float32{-1, 5}},
		{I16, []byte{0xfe, 0xff}, []float32{-2}},
		{I32, []byte{0xfd, 0xff, 0xff, 0xff}, []float32{-3}},
		{I64, le.AppendUint64(nil, uint64(1<<40)), []float32{1 << 40}},
		{U8, []byte{200}, []float32{200}},
		{U16, []byte{0xff, 0xff}, []float32{65535}},
		{U32, []byte{0, 0, 0, 0x80}, []float32{1 << 31}},
		{U64, le.AppendUint64(nil, 3), []float32{3}},
		{Bool, []byte{0, 1, 7}, []float32{0, 1, 1}},
		{F8_E4M3, []byte{0x38}, []float32{1}},
		{F8_E5M2, []byte{0xc0}, []float32{-2}},
	}
	for _, tt := range tests {
		y := deq(t, tt.d, tt.b)
		for i := range tt.want {
			if y[i] != tt.want[i] {
				t.Errorf("%v: y[%d] = %g, want %g", tt.d, i, y[i], tt.want[i])
			}
		}
	}
}

func TestDequantizeLengthChecks(t *testing.T) {
	tests := []struct {
		n, src int
		d      DType
		want   string
	}{
		{32, 33, Q8_0, "need 34 bytes, have 33"},
		{31, 34, Q8_0, "not a multiple"},
		{4, 15, F32, "need 16 bytes"},
		{1, 1, Invalid, "invalid dtype"},
	}
	for _, tt := range tests {
		err := Dequantize(make([]float32, tt.n), make([]byte, tt.src), tt.d)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Dequantize(%d, %dB, %v) = %v, want %q", tt.n, tt.src, tt.d, err, tt.want)
		}
		err = Quantize(make([]byte, tt.src), make([]float32, tt.n), tt.d)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Quantize(%dB, %d, %v) = %v, want %q", tt.src, tt.n, tt.d, err, tt.want)
		}
	}
	if err := Quantize(make([]byte, 176), make([]float32, 256), Q5_K); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("Quantize Q5_K: %v", err)
	}
}

// TestQuantizeQ8_0Rounding checks ggml's rounding: d = amax/127 stored as
// F16 and q = roundf(x/d), halves away from zero.
func TestQuantizeQ8_0Rounding(t *testing.T) {
	x := make([]float32, 32)
	x[0], x[1], x[2], x[3], x[4] = 127, -63.5, 0.5, -0.5, 2.49
	b := make([]byte, 34)
	if err := Quantize(b, x, Q8_0); err != nil {
		t.Fatal(err)
	}
	want := cat(h16(1), []byte{127, byte(0x100 - 64), 1, 0xff, 2}, rep(0, 27))
	for i := range want {
		if b[i] != want[i] {
			t.Fatalf("Q8_0 block byte %d = %#02x, want %#02x (block % x)", i, b[i], want[i], b)
		}
	}
	// An all-zero block has d = 0 and zero quants.
	if err := Quantize(b, make([]float32, 32), Q8_0); err != nil {
		t.Fatal(err)
	}
	for i, v := range b {
		if v != 0 {
			t.Fatalf("zero block byte %d = %#x", i, v)
		}
	}
}

func TestQuantizeErrorBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 32 * 64
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()))
	}
	// Per-block bound in units of the block's max |x|: half a quantization
	// step plus the F16 rounding of the scale (2^-11 relative) times the
	// largest quant.
	bounds := map[DType]float64{
		Q8_0: 0.5/127 + 1.0/2048 + 1e-6,
		Q8_1: 0.5/127 + 1.0/2048 + 1e-6,
		Q4_0: 1.0/8 + 8.0/2048 + 1e-6, // the quant opposite the max is clamped to 15 (31): a full step
		Q5_0: 1.0/16 + 16.0/2048 + 1e-6,
		Q4_1: 1.0/15 + 32.0/2048 + 1e-6, // range ≤ 2·amax; min stored in F16 too
		Q5_1: 1.0/31 + 64.0/2048 + 1e-6,
		Q8_K: 0.5/127 + 1e-6,
		F16:  1.0 / 2048,
		BF16: 1.0 / 256,
		F32:  0,
		F64:  0,
	}
	for d, bound := range bounds {
		b := make([]byte, n/d.BlockSize()*d.BlockBytes())
		if err := Quantize(b, x, d); err != nil {
			t.Fatalf("Quantize %v: %v", d, err)
		}
		y := deq(t, d, b)
		bs := d.BlockSize()
		worst := 0.0
		for k := 0; k < n/bs; k++ {
			blk := x[k*bs : (k+1)*bs]
			amax, _ := absMax(blk)
			for i, v := range blk {
				scale := float64(amax)
				if bs == 1 {
					scale = math.Abs(float64(v))
				}
				e := math.Abs(float64(y[k*bs+i] - v))
				slack := 0.0
				if d == F16 {
					slack = 0x1p-25 // F16 subnormals have an absolute, not relative, error
				}
				if e > bound*scale+slack {
					t.Fatalf("%v: block %d elem %d: x=%g y=%g error %g > %g·%g", d, k, i, v, y[k*bs+i], e, bound, scale)
				}
				if scale > 0 {
					worst = max(worst, e/scale)
				}
			}
		}
		t.Logf("%v: worst relative error %.3g (bound %.3g)", d, worst, bound)
	}
}

func TestQuantizeQ8KSums(t *testing.T) {
	x := make([]float32, QK_K)
	for i := range x {
		x[i] = float32(i%37) - 18
	}
	b := make([]byte, Q8_K.BlockBytes())
	if err := Quantize(b, x, Q8_K); err != nil {
		t.Fatal(err)
	}
	for j := 0; j < QK_K/16; j++ {
		sum := 0
		for l := 0; l < 16; l++ {
			sum += int(int8(b[4+16*j+l]))
		}
		if got := int(int16(binary.LittleEndian.Uint16(b[4+QK_K+2*j:]))); got != sum {
			t.Errorf("bsums[%d] = %d, want %d", j, got, sum)
		}
	}
	// max |x| = 18 at x = -18: iscale = -127/-18, q(-18) = -127.
	if q := int8(b[4+0]); q != -127 {
		t.Errorf("q[0] = %d, want -127", q)
	}
}

// TestQuantizeKQuants checks Q4_K and Q6_K by their root-mean-square error
// on Gaussian data (ggml's quantize-stats reports about 0.05σ for Q4_K and
// 0.01σ for Q6_K) and by the max error per sub-block.
func TestQuantizeKQuants(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = QK_K * 64
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := 0; i < QK_K; i++ { // one block with an offset, one all-positive, one zero
		x[QK_K+i] += 3
		x[2*QK_K+i] = abs32(x[2*QK_K+i])
		x[3*QK_K+i] = 0
	}
	for _, tt := range []struct {
		d        DType
		rmse     float64 // relative to σ = 1
		maxStep  float64 // max error in units of the sub-block's range
		subBlock int
	}{
		{Q4_K, 0.08, 0.2, 32},
		{Q6_K, 0.02, 0.05, 16},
	} {
		b := make([]byte, n/QK_K*tt.d.BlockBytes())
		if err := Quantize(b, x, tt.d); err != nil {
			t.Fatal(err)
		}
		y := deq(t, tt.d, b)
		var se float64
		for i := range x {
			e := float64(y[i] - x[i])
			se += e * e
		}
		rmse := math.Sqrt(se / n)
		t.Logf("%v: RMSE %.4f", tt.d, rmse)
		if rmse > tt.rmse {
			t.Errorf("%v: RMSE %.4f > %.4f", tt.d, rmse, tt.rmse)
		}
		for s := 0; s < n; s += tt.subBlock {
			lo, hi := minMax(x[s : s+tt.subBlock])
			span := float64(max(hi, 0) - min(lo, 0))
			for i := s; i < s+tt.subBlock; i++ {
				if e := math.Abs(float64(y[i] - x[i])); e > tt.maxStep*span+1e-6 {
					t.Fatalf("%v: element %d: x=%g y=%g, error %g > %g·%g", tt.d, i, x[i], y[i], e, tt.maxStep, span)
				}
			}
		}
		for i := 3 * QK_K; i < 4*QK_K; i++ {
			if y[i] != 0 {
				t.Fatalf("%v: zero block decodes to %g at %d", tt.d, y[i], i)
			}
		}
	}
}
