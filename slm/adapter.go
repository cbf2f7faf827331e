package slm

import (
	"errors"
	"fmt"

	"github.com/usersim/usersim/slm/kernels"
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
		var xa []float32
		if a.train {
			if a.xa[mod] == nil {
				a.xa[mod] = make([][]float32, len(p.segs))
			}
			xa = make([]float32, rows*pr.R)
			a.xa[mod][si] = xa
		}
		pr.Apply(out[sg.lo*lin.Out:sg.hi*lin.Out], xa, x[sg.lo*lin.In:sg.hi*lin.In], rows)
	}
}

// projectBackward is project's backward: given dy (n×Out), the loss gradient
// at out, it adds into dx (n×In) the gradient at x, dy·W plus the adapters'
// share, unless dx is nil, and accumulates the gradients of the adapters'
// A and B into their pairs' GA and GB. The base weights get no gradient.
func (m *Model) projectBackward(lin *Linear, l int, mod lora.Module, dx, dy, x []float32, a *LayerActs, p *batchPlan) {
	n := p.n
	if dx != nil {
		kernels.MatMulNNAcc(dx[:n*lin.In], dy[:n*lin.Out], lin.W, n, lin.In, lin.Out)
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
		pr.Backward(dxs, nil, nil, dy[sg.lo*lin.Out:sg.hi*lin.Out], x[sg.lo*lin.In:sg.hi*lin.In], a.xa[mod][si], nil, sg.hi-sg.lo)
	}
}

// errQuantTrain is returned when a backward would need float32 weights.
var errQuantTrain = errors.New("LoRA training needs float32 base weights")

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
