package slm

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tensor"
	"github.com/usersim/usersim/train"
)

// Grads holds the gradients of a model's base weights, one buffer per
// tensor: every projection's weight and bias, every RMSNorm weight, the
// embedding table and the untied output. Passed as TrainOptions.Base, it
// switches the backward pass from LoRA-only to full (pretraining or full
// fine-tuning): the same code, which then also accumulates dW = dyᵀ·x for
// each projection, the bias and norm-weight gradients, the output layer's
// gradient and the embedding rows' (scatter-added by token id; a tied
// output adds into the same buffer).
type Grads struct {
	lin    map[*Linear]*linearGrad
	norm   map[*RMSNorm][]float32
	params []*train.Param
}

type linearGrad struct{ w, bias []float32 }

// NewGrads allocates zeroed gradient buffers for every weight of m. The
// weights must be float32 held in memory (not quantized, not a read-only
// file mapping): the returned Params alias them, so an optimizer updates
// the model in place.
func (m *Model) NewGrads() (*Grads, error) {
	if m.closer != nil {
		return nil, errors.New("base gradients: the weights are a read-only file mapping (LoadOptions.Mmap); load a copy")
	}
	specs, err := m.specs()
	if err != nil {
		return nil, fmt.Errorf("base gradients: %w", err)
	}
	g := &Grads{lin: map[*Linear]*linearGrad{}, norm: map[*RMSNorm][]float32{}}
	for _, s := range specs {
		switch {
		case s.Linear != nil:
			l := s.Linear
			if l.DType != tensor.F32 || len(l.W) != l.Out*l.In {
				return nil, fmt.Errorf("base gradients: %s is %s, not float32 (full training needs float32 weights)", s.HF, l.DType)
			}
			lg := &linearGrad{w: make([]float32, len(l.W))}
			g.lin[l] = lg
			g.params = append(g.params, &train.Param{Name: s.HF, W: l.W, G: lg.w})
		case s.Bias:
			lg := g.lin[s.Owner]
			if lg == nil {
				return nil, fmt.Errorf("base gradients: bias %s before its weight", s.HF)
			}
			lg.bias = make([]float32, len(*s.Vec))
			g.params = append(g.params, &train.Param{Name: s.HF, W: *s.Vec, G: lg.bias, NoDecay: true})
		case s.Vec != nil:
			// RMSNorm weight: find its owner by address.
			n := m.normOf(s.Vec)
			if n == nil {
				return nil, fmt.Errorf("base gradients: %s: unknown vector", s.HF)
			}
			gw := make([]float32, len(n.W))
			g.norm[n] = gw
			g.params = append(g.params, &train.Param{Name: s.HF, W: n.W, G: gw, NoDecay: true})
		}
	}
	return g, nil
}

// normOf returns the RMSNorm whose weight slice v points to.
func (m *Model) normOf(v *[]float32) *RMSNorm {
	if v == &m.Norm.W {
		return &m.Norm
	}
	for i := range m.Layers {
		ly := &m.Layers[i]
		switch v {
		case &ly.AttnNorm.W:
			return &ly.AttnNorm
		case &ly.MLPNorm.W:
			return &ly.MLPNorm
		}
	}
	return nil
}

// Params returns the weights with their gradients for package train, named
// by their Hugging Face tensor names (the same slices every call). Biases
// and norm weights are marked NoDecay.
func (g *Grads) Params() []*train.Param { return g.params }

// Zero clears every gradient.
func (g *Grads) Zero() {
	for _, p := range g.params {
		clear(p.G)
	}
}

// linear accumulates the gradient of projection l, y = x·Wᵀ + b over n
// rows, given dy: dW += dyᵀ·x, db += Σ rows of dy.
func (g *Grads) linear(l *Linear, dy, x []float32, n int) {
	lg := g.lin[l]
	if lg == nil {
		panic("slm: base gradients of another model") // NewGrads covers every Linear
	}
	kernels.MatMulTNAcc(lg.w, dy[:n*l.Out], x[:n*l.In], l.Out, l.In, n)
	if lg.bias != nil {
		for i := 0; i < n; i++ {
			kernels.Axpy(1, dy[i*l.Out:(i+1)*l.Out], lg.bias)
		}
	}
}

// rmsNorm accumulates the gradient of an RMSNorm's weight over n rows:
// with y_j = x_j·r·w_j, dw_j += Σ rows dy_j·x_j·r. Rows go in order, so the
// sum is deterministic.
func (g *Grads) rmsNorm(r *RMSNorm, x, dy []float32, n int, eps float32) {
	dw := g.norm[r]
	if dw == nil {
		panic("slm: base gradients of another model")
	}
	d := len(r.W)
	for i := 0; i < n; i++ {
		xs, dys := x[i*d:(i+1)*d], dy[i*d:(i+1)*d]
		rf := float32(rmsScale(xs, eps))
		for j, v := range xs {
			dw[j] += dys[j] * v * rf
		}
	}
}

// embed scatter-adds the gradient at the embedding lookup's output (n rows
// of Hidden) into the rows of the tokens looked up.
func (g *Grads) embed(m *Model, tokens []int, dx []float32) {
	d := m.Config.Hidden
	lg := g.lin[&m.Embed]
	for t, tok := range tokens {
		kernels.Axpy(1, dx[t*d:(t+1)*d], lg.w[tok*d:(tok+1)*d])
	}
}

// FullObjective trains every weight of a model (pretraining, full
// fine-tuning): a train.Objective over Examples whose Params are the
// model's own weights with Grads' buffers. Examples' Adapter fields must be
// nil. Build it with NewFullObjective.
type FullObjective struct {
	Model    *Model
	Examples []TrainSeq
	Eval     []TrainSeq
	// Options are passed to LossAndGradWith (Base is set to Grads).
	Options TrainOptions
	Grads   *Grads
}

// NewFullObjective returns the objective training all of m's weights on
// examples, with eval as its held-out set (nil: none).
func NewFullObjective(m *Model, examples, eval []TrainSeq, o TrainOptions) (*FullObjective, error) {
	for i, s := range examples {
		if s.Adapter != nil {
			return nil, fmt.Errorf("full objective: example %d has an adapter", i)
		}
	}
	g, err := m.NewGrads()
	if err != nil {
		return nil, err
	}
	o.Base = g
	return &FullObjective{Model: m, Examples: examples, Eval: eval, Options: o, Grads: g}, nil
}

// Params returns the model's weights and their gradients.
func (o *FullObjective) Params() []*train.Param { return o.Grads.Params() }

// Len is the number of training examples.
func (o *FullObjective) Len() int { return len(o.Examples) }

// LossAndGrad runs the batch's examples forward and backward and adds the
// gradient of their summed loss into every weight's gradient.
func (o *FullObjective) LossAndGrad(ctx context.Context, b train.Batch) (train.Loss, error) {
	batch, err := pickSeqs(o.Examples, b, nil)
	if err != nil {
		return train.Loss{}, err
	}
	opt := o.Options
	opt.Base = o.Grads
	sum, n, err := o.Model.LossAndGradWith(ctx, batch, opt)
	return train.Loss{Sum: sum, Tokens: n}, err
}

// EvalSet returns the held-out examples as a train.Evaluator.
func (o *FullObjective) EvalSet() train.Evaluator { return fullEval{o} }

type fullEval struct{ o *FullObjective }

func (e fullEval) Len() int { return len(e.o.Eval) }

func (e fullEval) Loss(ctx context.Context, b train.Batch) (train.Loss, error) {
	batch, err := pickSeqs(e.o.Eval, b, nil)
	if err != nil {
		return train.Loss{}, err
	}
	sum, n, err := e.o.Model.Loss(ctx, batch)
	return train.Loss{Sum: sum, Tokens: n}, err
}

// rmsScale is 1/sqrt(mean(x²) + eps), in float64.
func rmsScale(x []float32, eps float32) float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
}

// pickSeqs returns the examples of set that b names, each running with
// adapter a (nil: the base alone) and a dropout seed drawn from b's.
func pickSeqs(set []TrainSeq, b train.Batch, a *lora.Adapter) ([]TrainSeq, error) {
	batch := make([]TrainSeq, len(b.Indices))
	for i, k := range b.Indices {
		if k < 0 || k >= len(set) {
			return nil, fmt.Errorf("objective: example %d of %d", k, len(set))
		}
		batch[i] = set[k]
		batch[i].Adapter = a
		batch[i].Seed = b.Seed + uint64(i)*0x9e3779b97f4a7c15
	}
	return batch, nil
}
