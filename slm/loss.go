package slm

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
)

// TrainSeq is one training example: a token sequence run from position 0,
// the tokens whose prediction counts in the loss, and the adapter it trains.
type TrainSeq struct {
	Tokens []int
	// Mask marks the target tokens: Tokens[i] with Mask[i] true is predicted
	// from the logits of position i-1 and adds −log p(Tokens[i]) to the
	// loss. This is Hugging Face's labels convention (labels = ids with the
	// prompt set to -100, shifted inside the loss), so Mask[0] is never
	// used. A nil Mask makes every token but the first a target.
	Mask []bool
	// Adapter is the LoRA adapter the sequence runs with and whose gradients
	// LossAndGrad accumulates; nil runs the base model alone.
	Adapter *lora.Adapter
	// Seed draws the masks of the adapter's lora_dropout in LossAndGrad
	// (when its Config.Dropout > 0): the same seed, the same masks. Loss
	// and inference apply no dropout, as PEFT in eval mode.
	Seed uint64
}

// lossChunk is how many target rows the output layer handles at once; it
// bounds the logits buffer (lossChunk × Vocab floats).
const lossChunk = 64

// LossAndGrad runs the batch forward and backward. It returns the summed
// cross-entropy of the target tokens of every sequence (see TrainSeq.Mask)
// and their number, and adds the gradient of that sum with respect to the
// A and B matrices of each sequence's adapter into the adapter's pairs'
// GA and GB (allocated when nil). Sequences of one batch may use different
// adapters, or the same one. The base model is frozen: its weights are read,
// never differentiated or written. Quantized bases (Q8_0, Q4_K, ...) train
// too, as QLoRA does: the backward dequantizes their weights on the fly.
//
// The sum (not the mean) matches package train's Objective, which divides
// by the step's token count; divide by ntok for the mean loss. Calls may
// run concurrently on one model, but not with a shared adapter. After an
// error (a cancelled ctx) the gradients may be partly accumulated.
func (m *Model) LossAndGrad(ctx context.Context, batch []TrainSeq) (loss float64, ntok int, err error) {
	return m.lossPass(ctx, batch, true, TrainOptions{})
}

// TrainOptions are the options of LossAndGradWith.
type TrainOptions struct {
	// Recompute keeps only each layer's input during the forward pass and
	// recomputes the layer's other activations just before its backward
	// (activation checkpointing per layer): activation memory drops from
	// about Layers × (8·Hidden + 3·FFN + …) floats per token to Layers ×
	// Hidden plus one layer's worth, for about one more forward pass of
	// compute. Results are bit-identical to a run without it.
	Recompute bool
	// Base, when not nil, switches the base gradients on: the backward also
	// accumulates the gradient of every base weight into Base (see Grads,
	// Model.NewGrads), for pretraining or full fine-tuning. The model's
	// weights must be float32. Without it the base is never differentiated.
	Base *Grads
}

// LossAndGradWith is LossAndGrad with options.
func (m *Model) LossAndGradWith(ctx context.Context, batch []TrainSeq, o TrainOptions) (loss float64, ntok int, err error) {
	return m.lossPass(ctx, batch, true, o)
}

// Loss is LossAndGrad without the backward pass (evaluation): the summed
// cross-entropy of the target tokens and their number.
func (m *Model) Loss(ctx context.Context, batch []TrainSeq) (loss float64, ntok int, err error) {
	return m.lossPass(ctx, batch, false, TrainOptions{})
}

// target is one predicted token: row of the batch and token id.
type target struct{ row, tok int }

func (m *Model) lossPass(ctx context.Context, batch []TrainSeq, grad bool, o TrainOptions) (float64, int, error) {
	cfg := &m.Config
	seqs := make([]Sequence, len(batch))
	var targets []target
	row := 0
	for i, s := range batch {
		if len(s.Tokens) == 0 {
			return 0, 0, fmt.Errorf("loss: sequence %d has no tokens", i)
		}
		if s.Mask != nil && len(s.Mask) != len(s.Tokens) {
			return 0, 0, fmt.Errorf("loss: sequence %d: mask of %d entries for %d tokens", i, len(s.Mask), len(s.Tokens))
		}
		for j := 1; j < len(s.Tokens); j++ {
			if s.Mask == nil || s.Mask[j] {
				targets = append(targets, target{row + j - 1, s.Tokens[j]})
			}
		}
		row += len(s.Tokens)
		seqs[i] = Sequence{Cache: m.NewAdapterCache(s.Adapter), Tokens: s.Tokens, Logits: LogitsNone, dropSeed: s.Seed}
	}
	if grad {
		for _, s := range batch {
			if s.Adapter == nil {
				continue
			}
			for _, p := range s.Adapter.Pairs() {
				if p.GA == nil {
					p.GA = make([]float32, len(p.A))
				}
				if p.GB == nil {
					p.GB = make([]float32, len(p.B))
				}
			}
		}
	}
	if grad && o.Base != nil {
		if o.Base.lin[&m.Embed] == nil {
			return 0, 0, errors.New("loss: the base gradients belong to another model")
		}
	}
	var keep *keeper
	if grad {
		keep = &keeper{recompute: o.Recompute}
	}
	_, x, p, err := m.forward(ctx, seqs, keep)
	if err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	var dx []float32
	if grad {
		dx = make([]float32, p.n*cfg.Hidden)
		p.grads = o.Base
	}
	loss := m.outputLoss(x, targets, dx, p.grads)
	if !grad || len(targets) == 0 {
		return loss, len(targets), nil
	}
	var dIn []float32
	for l := len(m.Layers) - 1; l >= 0; l-- {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		if l > 0 || p.grads != nil {
			dIn = make([]float32, p.n*cfg.Hidden)
		} else {
			dIn = nil
		}
		a := keep.acts[l]
		if keep.recompute {
			a = m.recomputeLayer(l, a.In, seqs, p)
		}
		m.Layers[l].Backward(m, l, a, dIn, dx, p)
		keep.acts[l] = nil // free as we go
		dx = dIn
	}
	if p.grads != nil {
		p.grads.embed(m, p.tokens, dx)
	}
	return loss, len(targets), nil
}

// recomputeLayer runs layer l's forward again from its input in, in
// training mode, and returns its activations. The sequences' caches are
// rewound for the call, so the keys and values are rewritten (with the same
// values) at their positions and attention sees the same keys as before.
func (m *Model) recomputeLayer(l int, in []float32, seqs []Sequence, p *batchPlan) *LayerActs {
	a := newLayerActs(&m.Config, p.n)
	a.train = true
	copy(a.In, in)
	for _, s := range seqs {
		s.Cache.n -= len(s.Tokens)
	}
	m.Layers[l].Forward(m, l, a, seqs, p)
	for _, s := range seqs {
		s.Cache.n += len(s.Tokens)
	}
	return a
}

// outputLoss is the output layer with the cross-entropy loss, only for the
// target rows: for each target, h = Norm(x[row]), logits = h·Wᵀ, loss +=
// logsumexp(logits) − logits[tok]. When dx is not nil it receives (adds) the
// gradient of the summed loss at x: dlogits = softmax(logits) − onehot(tok),
// dh = dlogits·W, then the final norm's backward. With g (base gradients)
// the output matrix (the embedding when tied) and the final norm's weight
// get their gradients too; otherwise they get none.
func (m *Model) outputLoss(x []float32, targets []target, dx []float32, g *Grads) float64 {
	cfg := &m.Config
	d, V := cfg.Hidden, cfg.Vocab
	out := m.output()
	var loss float64
	c := min(len(targets), lossChunk)
	h := make([]float32, c*d)
	xs := make([]float32, c*d)
	logits := make([]float32, c*V)
	dh := make([]float32, c*d)
	nlls := make([]float64, c)
	for t0 := 0; t0 < len(targets); t0 += lossChunk {
		ts := targets[t0:min(len(targets), t0+lossChunk)]
		r := len(ts)
		for i, tg := range ts {
			m.Norm.Forward(h[i*d:(i+1)*d], x[tg.row*d:(tg.row+1)*d], 1, cfg.NormEps)
		}
		out.Forward(logits[:r*V], h[:r*d], r)
		parallelFor(r, 1, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				row := logits[i*V : (i+1)*V]
				// row becomes softmax(row); summed below in order, for a
				// deterministic total.
				nlls[i] = softmaxNLL(row, ts[i].tok)
				if dx != nil {
					row[ts[i].tok] -= 1
				}
			}
		})
		for i := 0; i < r; i++ {
			loss += nlls[i]
		}
		if dx == nil {
			continue
		}
		clear(dh[:r*d])
		out.Backward(dh, logits, r)
		if g != nil {
			g.linear(out, logits, h, r)
			for i, tg := range ts {
				copy(xs[i*d:(i+1)*d], x[tg.row*d:(tg.row+1)*d])
			}
			g.rmsNorm(&m.Norm, xs, dh, r, cfg.NormEps)
		}
		for i, tg := range ts {
			m.Norm.Backward(dx[tg.row*d:(tg.row+1)*d], x[tg.row*d:(tg.row+1)*d], dh[i*d:(i+1)*d], 1, cfg.NormEps)
		}
	}
	return loss
}

// softmaxNLL replaces row (logits) by softmax(row) and returns
// −log softmax(row)[tok] = logsumexp(row) − row[tok].
//
// The exponentials are the float32 vector kernel's (kernels.Softmax);
// the loss is then formed in float64 from the probabilities p so that it
// keeps its relative accuracy (about 3e-7) both for a confident prediction
// and for a poor one: nll = log1p(Σ_{j≠tok} p_j / p_tok), where the
// normalisation's rounding cancels; when p_tok underflows, nll = (max −
// row[tok]) + log(Σ p / p_max) instead.
func softmaxNLL(row []float32, tok int) float64 {
	xt := row[tok]
	mx := row[0]
	for _, v := range row[1:] {
		mx = max(mx, v)
	}
	kernels.Softmax(row)
	// Sum the other tokens' probabilities (row[tok] set aside, so that a
	// small remainder next to p_tok ≈ 1 keeps its digits).
	pt32 := row[tok]
	row[tok] = 0
	var s0, s1, s2, s3 float64
	n := len(row) &^ 3
	for j := 0; j < n; j += 4 {
		s0 += float64(row[j])
		s1 += float64(row[j+1])
		s2 += float64(row[j+2])
		s3 += float64(row[j+3])
	}
	for j := n; j < len(row); j++ {
		s0 += float64(row[j])
	}
	rest := (s0 + s1) + (s2 + s3)
	row[tok] = pt32
	pt := float64(pt32)
	if pt > 1e-30 {
		return math.Log1p(rest / pt)
	}
	total := rest + pt
	var pm float32
	for _, v := range row {
		pm = max(pm, v)
	}
	return float64(mx) - float64(xt) + math.Log(total/float64(pm))
}
