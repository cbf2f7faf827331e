package slm

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tensor"
)

// LoRABase returns the dimensions a LoRA adapter of this model has (see
// package lora).
func (c *Config) LoRABase() lora.Base {
	return lora.Base{Layers: c.Layers, Hidden: c.Hidden, QDim: c.QDim(), KVDim: c.KVDim(), FFN: c.FFN,
		FusedQKV: c.FusedQKV, FusedGateUp: c.FusedGateUp}
}

// NewAdapterCache returns an empty cache whose sequence runs with adapter a:
// every projection a adapts adds a's low-rank product (y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ)
// for this sequence's tokens only, while the base matrix products stay shared
// with the other sequences of a batch. A nil adapter gives NewCache.
//
// The keys and values a cache holds depend on its adapter, so the adapter
// belongs to the cache: forks keep it, and a prefix computed with one
// adapter cannot silently continue with another. The adapter's weights must
// not change while caches filled with it are in use.
func (m *Model) NewAdapterCache(a *lora.Adapter) *Cache {
	c := m.NewCache()
	c.adapter = a
	return c
}

// Adapter returns the adapter the cache's sequence runs with (nil: none).
func (c *Cache) Adapter() *lora.Adapter { return c.adapter }

// checkAdapter reports whether a fits the model's shapes.
func (m *Model) checkAdapter(a *lora.Adapter) error {
	if want := m.Config.LoRABase(); a.Base != want {
		return fmt.Errorf("%w: adapter for %+v, model %+v", lora.ErrBaseMismatch, a.Base, want)
	}
	return nil
}

// adapterSeg is a run of consecutive rows of a batch that share an adapter.
type adapterSeg struct {
	a      *lora.Adapter
	lo, hi int
}

// project computes out = x·Wᵀ + b for all the batch's rows with the shared
// base weights, then adds, for each run of rows with an adapter that adapts
// module mod of layer l, its low-rank product. In a training forward the
// intermediates x·Aᵀ are kept in a.xa for projectBackward.
func (m *Model) project(lin *Linear, l int, mod lora.Module, out, x []float32, a *LayerActs, p *batchPlan) {
	lin.Forward(out, x, p.n)
	for si, sg := range p.segs {
		pr := sg.a.Pair(l, mod)
		if pr == nil {
			continue
		}
		rows := sg.hi - sg.lo
		xs := x[sg.lo*lin.In : sg.hi*lin.In]
		var xa []float32
		if a.train {
			if a.xa[mod] == nil {
				a.xa[mod] = make([][]float32, len(p.segs))
			}
			xa = make([]float32, rows*pr.R)
			a.xa[mod][si] = xa
			if prob := sg.a.Config.Dropout; prob > 0 {
				if a.drop[mod] == nil {
					a.drop[mod] = make([]dropped, len(p.segs))
				}
				d := p.dropout(sg, l, mod, pr.In, prob, xs)
				a.drop[mod][si] = d
				xs = d.x
			}
		}
		pr.Apply(out[sg.lo*lin.Out:sg.hi*lin.Out], xa, xs, rows)
	}
}

// dropped is an adapter's input after dropout, and the mask applied.
type dropped struct{ x, mask []float32 }

// dropout applies lora_dropout (probability prob) to x, the rows of segment
// sg at the input of module mod of layer l, as torch.nn.Dropout does in
// training. Each sequence draws its own mask from its seed, the layer and
// the module, so a sequence's masks do not depend on the rest of its batch.
func (p *batchPlan) dropout(sg adapterSeg, l int, mod lora.Module, in int, prob float64, x []float32) dropped {
	d := dropped{x: make([]float32, len(x)), mask: make([]float32, len(x))}
	for i, st := range p.start {
		end := p.n
		if i+1 < len(p.start) {
			end = p.start[i+1]
		}
		lo, hi := max(st, sg.lo), min(end, sg.hi)
		if lo >= hi {
			continue
		}
		rng := rand.New(rand.NewPCG(p.seeds[i], uint64(l)<<8|uint64(mod)))
		lora.DropoutMask(d.mask[(lo-sg.lo)*in:(hi-sg.lo)*in], prob, rng)
	}
	for i, v := range x {
		d.x[i] = v * d.mask[i]
	}
	return d
}

// projectBackward is project's backward: given dy (n×Out), the loss gradient
// at out, it adds into dx (n×In) the gradient at x, dy·W plus the adapters'
// share, unless dx is nil, and accumulates the gradients of the adapters'
// A and B into their pairs' GA and GB. The base weights get a gradient only
// with base gradients switched on (p.grads): dW += dyᵀ·x, db += Σ dy.
func (m *Model) projectBackward(lin *Linear, l int, mod lora.Module, dx, dy, x []float32, a *LayerActs, p *batchPlan) {
	if dx != nil {
		lin.Backward(dx, dy, p.n)
	}
	if p.grads != nil {
		p.grads.linear(lin, dy, x, p.n)
	}
	for si, sg := range p.segs {
		pr := sg.a.Pair(l, mod)
		if pr == nil {
			continue
		}
		var dxs []float32
		if dx != nil {
			dxs = dx[sg.lo*lin.In : sg.hi*lin.In]
		}
		xs, mask := x[sg.lo*lin.In:sg.hi*lin.In], []float32(nil)
		if a.drop[mod] != nil && a.drop[mod][si].mask != nil {
			xs, mask = a.drop[mod][si].x, a.drop[mod][si].mask
		}
		pr.Backward(dxs, nil, nil, dy[sg.lo*lin.Out:sg.hi*lin.Out], xs, a.xa[mod][si], mask, sg.hi-sg.lo)
	}
}

// linearOf returns the base projection that module mod of layer l
// adapts (nil when the model has no such projection).
func (m *Model) linearOf(l int, mod lora.Module) *Linear {
	if l < 0 || l >= len(m.Layers) {
		return nil
	}
	ly := &m.Layers[l]
	var lin *Linear
	switch mod {
	case lora.Q:
		lin = &ly.Attn.Q
	case lora.K:
		lin = &ly.Attn.K
	case lora.V:
		lin = &ly.Attn.V
	case lora.QKV:
		lin = &ly.Attn.QKV
	case lora.O:
		lin = &ly.Attn.O
	case lora.Gate:
		lin = &ly.MLP.Gate
	case lora.Up:
		lin = &ly.MLP.Up
	case lora.GateUp:
		lin = &ly.MLP.GateUp
	case lora.Down:
		lin = &ly.MLP.Down
	default:
		return nil
	}
	if lin.Out == 0 {
		return nil
	}
	return lin
}

// MergeAdapter adds a into the model's weights (W += s·B·A for every
// adapted projection), so that the model alone computes what it computed
// with the adapter, up to float32 rounding; save it with WriteHF or
// WriteGGUF as a full model. The weights must be float32. The model is
// changed in place: merge into a copy loaded for the purpose when the base
// must stay shared.
func (m *Model) MergeAdapter(a *lora.Adapter) error {
	if err := m.checkAdapter(a); err != nil {
		return fmt.Errorf("merge adapter: %w", err)
	}
	if m.closer != nil {
		return errors.New("merge adapter: the weights are a read-only file mapping (LoadOptions.Mmap); load a copy")
	}
	pairs := a.Pairs()
	for _, p := range pairs {
		lin := m.linearOf(p.Layer, p.Module)
		if lin == nil || lin.Out != p.Out || lin.In != p.In {
			return fmt.Errorf("merge adapter: %s: the model has no %d×%d projection there", p.Name(), p.Out, p.In)
		}
		if lin.DType != tensor.F32 || lin.W == nil {
			return fmt.Errorf("merge adapter: %s: weights are %s, not float32", p.Name(), lin.DType)
		}
	}
	for _, p := range pairs {
		p.Merge(m.linearOf(p.Layer, p.Module).W)
	}
	return nil
}
