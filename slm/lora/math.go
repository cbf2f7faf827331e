package lora

import (
	"fmt"
	"math/rand/v2"

	"github.com/usersim/usersim/slm/kernels"
)

// Apply adds the adapter's contribution to the n rows of y (n×p.Out):
// y += Scale·(x·Aᵀ)·Bᵀ for x of n×p.In. The intermediate x·Aᵀ is written to xa
// (n×p.R), which Backward needs; xa may be nil when no backward follows, in
// which case a temporary is allocated.
func (p *Pair) Apply(y, xa, x []float32, n int) {
	if n == 0 {
		return
	}
	if len(xa) < n*p.R {
		xa = make([]float32, n*p.R)
	}
	xa = xa[:n*p.R]
	kernels.MatMulNT(xa, x[:n*p.In], p.A, n, p.R, p.In)
	if p.Scale == 1 {
		kernels.MatMulNTAcc(y[:n*p.Out], xa, p.B, n, p.Out, p.R)
		return
	}
	// Scale the small n×r intermediate rather than the n×out product; the
	// unscaled xa is what Backward needs, so scale a copy.
	s := make([]float32, n*p.R)
	for i, v := range xa {
		s[i] = v * p.Scale
	}
	kernels.MatMulNTAcc(y[:n*p.Out], s, p.B, n, p.Out, p.R)
}

// Backward accumulates the gradients of a loss through Apply, given dy
// (n×p.Out), the loss gradient at y, and the x and xa Apply saw:
//
//	dB += Scale·dyᵀ·xa   (Out×R, into p.GB when dB is nil)
//	dA += Scale·(dy·B)ᵀ·x (R×In, into p.GA when dA is nil)
//	dx += Scale·(dy·B)·A  (n×In; skipped when dx is nil)
//
// With dropout, x is the dropped input Apply saw and mask (n×p.In, see
// DropoutMask) multiplies the contribution to dx; mask is nil without
// dropout. Gradients with respect to the base weight are not computed.
func (p *Pair) Backward(dx, dA, dB, dy, x, xa, mask []float32, n int) {
	if n == 0 {
		return
	}
	if dA == nil {
		dA = p.GA
	}
	if dB == nil {
		dB = p.GB
	}
	if len(dA) < p.R*p.In || len(dB) < p.Out*p.R {
		panic(fmt.Sprintf("lora: Backward of %s: gradient buffers too short (%d, %d for %d×%d and %d×%d)",
			p.Name(), len(dA), len(dB), p.R, p.In, p.Out, p.R))
	}
	dy, x, xa = dy[:n*p.Out], x[:n*p.In], xa[:n*p.R]
	// dxa = Scale·dy·B (n×R): every gradient below goes through it.
	dxa := make([]float32, n*p.R)
	kernels.MatMulNN(dxa, dy, p.B, n, p.R, p.Out)
	kernels.Scale(p.Scale, dxa)
	// dB += dyᵀ·(Scale·xa) = Scale·dyᵀ·xa.
	xs := make([]float32, n*p.R)
	for i, v := range xa {
		xs[i] = v * p.Scale
	}
	kernels.MatMulTNAcc(dB[:p.Out*p.R], dy, xs, p.Out, p.R, n)
	kernels.MatMulTNAcc(dA[:p.R*p.In], dxa, x, p.R, p.In, n)
	if dx == nil {
		return
	}
	if mask == nil {
		kernels.MatMulNNAcc(dx[:n*p.In], dxa, p.A, n, p.In, p.R)
		return
	}
	t := make([]float32, n*p.In)
	kernels.MatMulNN(t, dxa, p.A, n, p.In, p.R)
	for i, v := range t {
		dx[i] += v * mask[i]
	}
}

// DropoutMask fills mask with inverted-dropout factors: 0 with probability
// prob, 1/(1-prob) otherwise, as torch.nn.Dropout in training. Multiply the
// input by the mask before Apply and pass the mask to Backward.
func DropoutMask(mask []float32, prob float64, rng *rand.Rand) {
	keep := float32(1 / (1 - prob))
	for i := range mask {
		if rng.Float64() < prob {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
	}
}

// Merge adds the adapter into a base weight w (p.Out×p.In, row-major):
// w += Scale·B·A, so that x·wᵀ equals the base plus Apply up to rounding.
func (p *Pair) Merge(w []float32) { p.merge(w, p.Scale) }

// Unmerge subtracts what Merge added. Merge followed by Unmerge restores w up
// to float32 rounding, not bit for bit; keep a copy of the base where exact
// weights matter.
func (p *Pair) Unmerge(w []float32) { p.merge(w, -p.Scale) }

func (p *Pair) merge(w []float32, scale float32) {
	bs := make([]float32, len(p.B))
	for i, v := range p.B {
		bs[i] = v * scale
	}
	kernels.MatMulNNAcc(w[:p.Out*p.In], bs, p.A, p.Out, p.In, p.R)
}

// Segment is a run of consecutive rows of a batch that share one adapter:
// rows [Start, Start+N) use Pair, or no adapter when Pair is nil.
type Segment struct {
	Pair     *Pair
	Start, N int
}

// ApplySegments adds each segment's adapter to its rows of y (rows × out)
// for the input x (rows × in): the base product is computed once for the
// whole batch by the caller, and each sequence adds its own low-rank
// product. xa, when not nil, receives each segment's x·Aᵀ at
// xa, one segment after another (XASize values in all); pass nil when no
// backward follows. Every pair must have the given in and out widths.
func ApplySegments(y, xa, x []float32, in, out int, segs []Segment) error {
	off := 0
	for i, s := range segs {
		if s.Pair == nil || s.N == 0 {
			continue
		}
		if s.Pair.In != in || s.Pair.Out != out {
			return fmt.Errorf("lora: segment %d: adapter %s is %d×%d, the batch's projection %d×%d", i, s.Pair.Name(), s.Pair.Out, s.Pair.In, out, in)
		}
		if s.Start < 0 || (s.Start+s.N)*in > len(x) || (s.Start+s.N)*out > len(y) {
			return fmt.Errorf("lora: segment %d: rows [%d, %d) outside the batch", i, s.Start, s.Start+s.N)
		}
		var seg []float32
		if xa != nil {
			if off+s.N*s.Pair.R > len(xa) {
				return fmt.Errorf("lora: segment %d: xa holds %d values, need %d", i, len(xa), off+s.N*s.Pair.R)
			}
			seg = xa[off : off+s.N*s.Pair.R]
		}
		s.Pair.Apply(y[s.Start*out:], seg, x[s.Start*in:], s.N)
		off += s.N * s.Pair.R
	}
	return nil
}

// XASize is the length of the xa buffer ApplySegments fills: Σ N·R over the
// segments with an adapter, in order.
func XASize(segs []Segment) int {
	n := 0
	for _, s := range segs {
		if s.Pair != nil {
			n += s.N * s.Pair.R
		}
	}
	return n
}
