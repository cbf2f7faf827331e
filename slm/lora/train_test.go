package lora_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/train"
)

// frozenLinear is a toy objective: a frozen base projection W plus the
// adapter's q_proj pair must fit targets made by a hidden rank-2 update of
// W. The loss per row is ½‖y − target‖².
type frozenLinear struct {
	pair    *lora.Pair
	params  []*train.Param
	w       []float32
	x, tgt  []float32 // examples × In, examples × Out
	in, out int
}

func (f *frozenLinear) Params() []*train.Param { return f.params }
func (f *frozenLinear) Len() int               { return len(f.x) / f.in }

func (f *frozenLinear) LossAndGrad(ctx context.Context, b train.Batch) (train.Loss, error) {
	n := len(b.Indices)
	x := make([]float32, n*f.in)
	for r, i := range b.Indices {
		copy(x[r*f.in:], f.x[i*f.in:(i+1)*f.in])
	}
	y := make([]float32, n*f.out)
	kernels.MatMulNT(y, x, f.w, n, f.out, f.in)
	xa := make([]float32, n*f.pair.R)
	f.pair.Apply(y, xa, x, n)
	var loss train.Loss
	dy := make([]float32, n*f.out)
	for r, i := range b.Indices {
		for j := 0; j < f.out; j++ {
			e := y[r*f.out+j] - f.tgt[i*f.out+j]
			dy[r*f.out+j] = e
			loss.Sum += 0.5 * float64(e) * float64(e)
		}
	}
	loss.Tokens = n
	f.pair.Backward(nil, nil, nil, dy, x, xa, nil, n)
	return loss, nil
}

func TestTrainAdapter(t *testing.T) {
	const in, out, examples = 12, 16, 64
	base := lora.Base{Layers: 1, Hidden: in, QDim: out, KVDim: 4, FFN: 8}
	ad, err := lora.New(lora.NewConfig("toy", 4, 8, "q_proj"), base, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	w := randVec(rng, out*in, 0.3)
	frozen := slices.Clone(w)
	// Hidden target: W + u·vᵀ of rank 2.
	truth := &lora.Pair{Out: out, In: in, R: 2, Scale: 1, A: randVec(rng, 2*in, 0.5), B: randVec(rng, out*2, 0.5)}
	x := randVec(rng, examples*in, 1)
	tgt := make([]float32, examples*out)
	kernels.MatMulNT(tgt, x, w, examples, out, in)
	truth.Apply(tgt, nil, x, examples)

	obj := &frozenLinear{pair: ad.Pair(0, lora.Q), params: ad.Params(), w: w, x: x, tgt: tgt, in: in, out: out}
	if len(obj.params) != 2 || obj.params[0].Name != "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" {
		t.Fatalf("params %v", obj.params)
	}
	cfg := train.DefaultConfig(300, 16, 0.02)
	cfg.WeightDecay = 0
	cfg.NoProgress = true
	res, err := train.Train(context.Background(), obj, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.Train[0].Loss, res.Train[len(res.Train)-1].Loss
	t.Logf("loss %g → %g", first, last)
	if last > 1e-3*first {
		t.Errorf("loss %g → %g", first, last)
	}
	if !bitsEqual(w, frozen) {
		t.Error("the base weight changed")
	}
}
