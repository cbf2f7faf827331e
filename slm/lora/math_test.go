package lora_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
)

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// refLoss is the float64 reference: L = Σ g ⊙ s·(((x⊙mask)·Aᵀ)·Bᵀ) over n rows.
func refLoss(x, mask, a, b, g []float64, n, in, out, r int, s float64) float64 {
	var L float64
	for i := 0; i < n; i++ {
		xa := make([]float64, r)
		for k := 0; k < r; k++ {
			for j := 0; j < in; j++ {
				xv := x[i*in+j]
				if mask != nil {
					xv *= mask[i*in+j]
				}
				xa[k] += xv * a[k*in+j]
			}
		}
		for o := 0; o < out; o++ {
			var y float64
			for k := 0; k < r; k++ {
				y += xa[k] * b[o*r+k]
			}
			L += g[i*out+o] * s * y
		}
	}
	return L
}

// TestBackwardFiniteDifferences checks Backward's dA, dB and dx against
// central differences of the float64 reference loss (exact up to float64
// rounding, since the loss is linear in each variable).
func TestBackwardFiniteDifferences(t *testing.T) {
	for _, tt := range []struct {
		name           string
		n, in, out, r  int
		scale, dropout float64
	}{
		{"small", 3, 5, 7, 2, 2, 0},
		{"rank1", 1, 4, 3, 1, 0.5, 0},
		{"wide", 9, 33, 17, 8, 4 / math.Sqrt(8), 0},
		{"dropout", 5, 12, 10, 4, 1, 0.3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			p := &lora.Pair{Out: tt.out, In: tt.in, R: tt.r, Scale: float32(tt.scale),
				A: randVec(rng, tt.r*tt.in, 1), B: randVec(rng, tt.out*tt.r, 1)}
			p.GA, p.GB = make([]float32, len(p.A)), make([]float32, len(p.B))
			x := randVec(rng, tt.n*tt.in, 1)
			g := randVec(rng, tt.n*tt.out, 1) // dLoss/dy
			var mask []float32
			xd := x
			if tt.dropout > 0 {
				mask = make([]float32, len(x))
				lora.DropoutMask(mask, tt.dropout, rng)
				xd = make([]float32, len(x))
				for i := range x {
					xd[i] = x[i] * mask[i]
				}
			}
			y := make([]float32, tt.n*tt.out)
			xa := make([]float32, tt.n*tt.r)
			p.Apply(y, xa, xd, tt.n)
			// Backward accumulates: start from non-zero gradients.
			for i := range p.GA {
				p.GA[i] = 1
			}
			dx := make([]float32, len(x))
			for i := range dx {
				dx[i] = -1
			}
			p.Backward(dx, nil, nil, g, xd, xa, mask, tt.n)

			x64, a64, b64, g64 := f64(x), f64(p.A), f64(p.B), f64(g)
			var m64 []float64
			if mask != nil {
				m64 = f64(mask)
			}
			L := func() float64 {
				return refLoss(x64, m64, a64, b64, g64, tt.n, tt.in, tt.out, tt.r, float64(p.Scale))
			}
			// y itself against the reference: Σ g⊙y = L.
			var ly float64
			for i := range y {
				ly += float64(g[i]) * float64(y[i])
			}
			if l := L(); math.Abs(ly-l) > 1e-4*(1+math.Abs(l)) {
				t.Errorf("Apply: Σg·y = %g, reference %g", ly, l)
			}
			check := func(what string, v []float64, got []float32, offset float64) {
				t.Helper()
				const h = 1e-3
				for i := range v {
					old := v[i]
					v[i] = old + h
					lp := L()
					v[i] = old - h
					lm := L()
					v[i] = old
					fd := (lp - lm) / (2 * h)
					if d := float64(got[i]) - offset - fd; math.Abs(d) > 1e-4*(1+math.Abs(fd)) {
						t.Fatalf("%s[%d] = %g, finite difference %g", what, i, float64(got[i])-offset, fd)
					}
				}
			}
			check("dA", a64, p.GA, 1)
			check("dB", b64, p.GB, 0)
			check("dx", x64, dx, -1)
		})
	}
}

// TestMergeEqualsApply: x·(W + s·B·A)ᵀ = x·Wᵀ + Apply, and Unmerge restores W.
func TestMergeEqualsApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, in, out, r = 6, 40, 24, 8
	p := &lora.Pair{Out: out, In: in, R: r, Scale: 0.75, A: randVec(rng, r*in, 0.3), B: randVec(rng, out*r, 0.3)}
	w := randVec(rng, out*in, 0.2)
	x := randVec(rng, n*in, 1)
	want := make([]float32, n*out)
	kernels.MatMulNT(want, x, w, n, out, in)
	p.Apply(want, nil, x, n)

	merged := append([]float32(nil), w...)
	p.Merge(merged)
	got := make([]float32, n*out)
	kernels.MatMulNT(got, x, merged, n, out, in)
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("merged[%d] = %g, base+adapter %g", i, got[i], want[i])
		}
	}
	p.Unmerge(merged)
	for i := range w {
		if math.Abs(float64(merged[i]-w[i])) > 1e-6 {
			t.Fatalf("unmerge[%d] = %g, base %g", i, merged[i], w[i])
		}
	}
}

func TestDropoutMask(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := make([]float32, 100000)
	lora.DropoutMask(m, 0.25, rng)
	zeros := 0
	for _, v := range m {
		switch v {
		case 0:
			zeros++
		case float32(1 / 0.75):
		default:
			t.Fatalf("mask value %g", v)
		}
	}
	if f := float64(zeros) / float64(len(m)); math.Abs(f-0.25) > 0.01 {
		t.Errorf("dropped fraction %g, want 0.25", f)
	}
}

func BenchmarkApplyBackward(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, in, out, r = 256, 576, 576, 16
	p := &lora.Pair{Out: out, In: in, R: r, Scale: 2, A: randVec(rng, r*in, 0.1), B: randVec(rng, out*r, 0.1),
		GA: make([]float32, r*in), GB: make([]float32, out*r)}
	x, y, dy, dx := randVec(rng, n*in, 1), make([]float32, n*out), randVec(rng, n*out, 1), make([]float32, n*in)
	xa := make([]float32, n*r)
	b.SetBytes(0)
	for b.Loop() {
		p.Apply(y, xa, x, n)
		p.Backward(dx, nil, nil, dy, x, xa, nil, n)
	}
	flops := 2.0 * n * r * (in + out) * 3 // apply 1×, backward 2×
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}

// TestApplySegments: a batch mixing sequences of different adapters (and
// one without) equals each sequence run alone with its own adapter.
func TestApplySegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const in, out = 10, 6
	mk := func(r int, scale float32) *lora.Pair {
		return &lora.Pair{Out: out, In: in, R: r, Scale: scale, A: randVec(rng, r*in, 0.5), B: randVec(rng, out*r, 0.5)}
	}
	alice, bob := mk(2, 2), mk(4, 0.5)
	segs := []lora.Segment{{alice, 0, 3}, {nil, 3, 2}, {bob, 5, 1}, {alice, 6, 4}}
	const rows = 10
	x := randVec(rng, rows*in, 1)
	// The adapters' part is compared bit for bit, so y starts at zero here;
	// the shared base product (whose rounding depends on the batch's row
	// count in the kernels) is added to both sides alike in the engine.
	y := make([]float32, rows*out)
	xa := make([]float32, lora.XASize(segs))
	if err := lora.ApplySegments(y, xa, x, in, out, segs); err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, s := range segs {
		alone := make([]float32, s.N*out)
		xs := x[s.Start*in : (s.Start+s.N)*in]
		if s.Pair != nil {
			sxa := make([]float32, s.N*s.Pair.R)
			s.Pair.Apply(alone, sxa, xs, s.N)
			if !bitsEqual(sxa, xa[off:off+len(sxa)]) {
				t.Errorf("segment at %d: xa differs", s.Start)
			}
			off += len(sxa)
		}
		if !bitsEqual(alone, y[s.Start*out:(s.Start+s.N)*out]) {
			t.Errorf("segment at %d differs from the sequence alone", s.Start)
		}
	}
	if err := lora.ApplySegments(y, nil, x, in, out, []lora.Segment{{alice, 8, 3}}); err == nil {
		t.Error("segment past the batch accepted")
	}
	if err := lora.ApplySegments(y, nil, x, in+1, out, []lora.Segment{{alice, 0, 1}}); err == nil {
		t.Error("adapter of the wrong width accepted")
	}
}
