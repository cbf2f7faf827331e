package slm

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

// randomBlocks returns rows×cols weights of quantized type d with random
// quants and small valid f16 scales.
func randomBlocks(t *testing.T, rng *rand.Rand, d tensor.DType, rows, cols int) []byte {
	t.Helper()
	rb, err := d.RowBytes(cols)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, rows*rb)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	f16 := func(off int, v float32) { binary.LittleEndian.PutUint16(b[off:], tensor.F32ToF16(v)) }
	bs := d.BlockBytes()
	for blk := 0; blk < len(b)/bs; blk++ {
		o := blk * bs
		switch d {
		case tensor.Q8_0, tensor.Q4_0:
			f16(o, 0.01+0.01*rng.Float32())
		case tensor.Q4_K:
			f16(o, 0.01+0.01*rng.Float32())
			f16(o+2, 0.005*rng.Float32())
		case tensor.Q6_K:
			f16(o+208, 0.001+0.001*rng.Float32())
		}
	}
	return b
}

// TestQuantizedLinear checks Linear.Forward and Row for every quantized
// type with a kernel against float32 products over the dequantized weights.
func TestQuantizedLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 21))
	const out, in, n = 40, 512, 5
	x := make([]float32, n*in)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for d := range quantKernels {
		t.Run(d.String(), func(t *testing.T) {
			l := Linear{Out: out, In: in, DType: d, Q: randomBlocks(t, rng, d, out, in)}
			w := make([]float32, out*in)
			for r := 0; r < out; r++ {
				if err := l.Row(w[r*in:(r+1)*in], r); err != nil {
					t.Fatal(err)
				}
			}
			full := make([]float32, out*in)
			if err := tensor.Dequantize(full, l.Q, d); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(w, full); d != 0 {
				t.Fatalf("Row differs from Dequantize by %g", d)
			}
			got := make([]float32, n*out)
			l.Forward(got, x, n)
			for i := 0; i < n; i++ {
				for j := 0; j < out; j++ {
					var want, mag float64
					for k := 0; k < in; k++ {
						p := float64(x[i*in+k]) * float64(w[j*in+k])
						want += p
						mag += max(p, -p)
					}
					// The kernels may round activations to 8 bits (as ggml
					// does): allow 0.2% of the sum of magnitudes.
					if diff := float64(got[i*out+j]) - want; diff > 0.002*mag || diff < -0.002*mag {
						t.Fatalf("row %d col %d: %g, want %g (Σ|terms| %g)", i, j, got[i*out+j], want, mag)
					}
				}
			}
		})
	}
}
