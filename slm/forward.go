package slm

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
)

// Logits says for which of a sequence's new positions Forward returns logits.
type Logits int

const (
	LogitsLast Logits = iota // the last new position (next-token prediction)
	LogitsAll                // every new position (scoring, perplexity)
	LogitsNone               // none (filling a cache with a prefix)
)

// Sequence is one entry of a batch: new tokens to append to a cache.
type Sequence struct {
	Cache  *Cache
	Tokens []int
	Logits Logits

	// dropSeed seeds the adapter's dropout masks in a training forward.
	dropSeed uint64
}

// Forward runs the new tokens of every sequence through the model in one
// batch (prefills of many tokens and single-token decodes may be mixed),
// appends their keys and values to the sequences' caches, and returns, per
// sequence, the logits rows (each Vocab wide) of the positions requested.
//
// A sequence with no tokens and LogitsLast returns the logits of its cache's
// last position when an earlier Forward computed them.
//
// The model is not modified: several goroutines may call Forward at once,
// each with its own caches.
func (m *Model) Forward(ctx context.Context, batch []Sequence) ([][][]float32, error) {
	out, _, _, err := m.forward(ctx, batch, nil)
	return out, err
}

// batchPlan lays out a batch's tokens in one activation matrix.
type batchPlan struct {
	n      int       // tokens in the batch
	tokens []int     // [n]
	pos    []int     // [n] absolute position of each token
	start  []int     // [len(batch)] first row of each sequence
	rows   []int     // rows whose logits are returned, in order
	cos    []float32 // [n][RopeDim/2]
	sin    []float32
	segs   []adapterSeg // rows that run with an adapter
	seeds  []uint64     // [len(batch)] dropout seeds (training)
	// grads, set for a backward pass with base gradients switched on,
	// receives the gradients of the base weights.
	grads *Grads
}

func (m *Model) plan(batch []Sequence) (*batchPlan, error) {
	cfg := &m.Config
	p := &batchPlan{start: make([]int, len(batch)), seeds: make([]uint64, len(batch))}
	seen := make(map[*Cache]bool, len(batch))
	for i, s := range batch {
		if s.Cache == nil {
			return nil, fmt.Errorf("forward: sequence %d has no cache", i)
		}
		if seen[s.Cache] {
			return nil, fmt.Errorf("forward: sequence %d shares its cache with an earlier sequence of the batch (Fork it)", i)
		}
		seen[s.Cache] = true
		if s.Cache.layers != cfg.Layers || s.Cache.kvHeads != cfg.KVHeads || s.Cache.headDim != cfg.HeadDim {
			return nil, fmt.Errorf("forward: sequence %d: cache belongs to a model of another shape", i)
		}
		if s.Logits < LogitsLast || s.Logits > LogitsNone {
			return nil, fmt.Errorf("forward: sequence %d: unknown logits mode %d", i, s.Logits)
		}
		if len(s.Tokens) == 0 && s.Logits == LogitsLast && s.Cache.last == nil {
			return nil, fmt.Errorf("forward: sequence %d has no new tokens and no logits of its last position", i)
		}
		if end := s.Cache.n + len(s.Tokens); end > cfg.MaxContext {
			return nil, fmt.Errorf("forward: sequence %d: %d positions exceed the context length %d", i, end, cfg.MaxContext)
		}
		if a := s.Cache.adapter; a != nil {
			if err := m.checkAdapter(a); err != nil {
				return nil, fmt.Errorf("forward: sequence %d: %w", i, err)
			}
			if k := len(p.segs) - 1; k >= 0 && p.segs[k].a == a && p.segs[k].hi == p.n {
				p.segs[k].hi += len(s.Tokens)
			} else if len(s.Tokens) > 0 {
				p.segs = append(p.segs, adapterSeg{a: a, lo: p.n, hi: p.n + len(s.Tokens)})
			}
		}
		p.start[i] = p.n
		p.seeds[i] = s.dropSeed
		for j, t := range s.Tokens {
			if t < 0 || t >= cfg.Vocab {
				return nil, fmt.Errorf("forward: sequence %d token %d: id %d outside the vocabulary [0, %d)", i, j, t, cfg.Vocab)
			}
			p.tokens = append(p.tokens, t)
			p.pos = append(p.pos, s.Cache.n+j)
		}
		p.n += len(s.Tokens)
		switch {
		case s.Logits == LogitsAll:
			for j := range s.Tokens {
				p.rows = append(p.rows, p.start[i]+j)
			}
		case s.Logits == LogitsLast && len(s.Tokens) > 0:
			p.rows = append(p.rows, p.n-1)
		}
	}
	p.cos, p.sin = m.ropeTables(p.pos)
	return p, nil
}

// ropeTables computes cos and sin of every (position, pair) angle, in
// float64 and rounded once.
func (m *Model) ropeTables(pos []int) (cos, sin []float32) {
	cfg := &m.Config
	half := cfg.RopeDim / 2
	cos = make([]float32, len(pos)*half)
	sin = make([]float32, len(pos)*half)
	short, mul := cfg.invFreqs(false)
	long := short
	if cfg.RopeScaling.Type == "longrope" {
		long, _ = cfg.invFreqs(true)
	}
	for t, p := range pos {
		f := short
		if cfg.RopeScaling.Type == "longrope" && p >= cfg.RopeScaling.OriginalContext {
			f = long
		}
		for i := 0; i < half; i++ {
			s, c := math.Sincos(float64(p) * f[i])
			cos[t*half+i] = float32(c * mul)
			sin[t*half+i] = float32(s * mul)
		}
	}
	return cos, sin
}

// rope rotates the heads (each HeadDim wide) of the n rows of x (width
// heads*HeadDim) by the angles of their rows' positions.
func (m *Model) rope(x []float32, n, heads int, p *batchPlan) {
	cfg := &m.Config
	hd, half := cfg.HeadDim, cfg.RopeDim/2
	for t := 0; t < n; t++ {
		cos, sin := p.cos[t*half:(t+1)*half], p.sin[t*half:(t+1)*half]
		for h := 0; h < heads; h++ {
			v := x[(t*heads+h)*hd : (t*heads+h+1)*hd]
			if cfg.RopeStyle == RopeInterleaved {
				for i := 0; i < half; i++ {
					a, b := v[2*i], v[2*i+1]
					v[2*i] = a*cos[i] - b*sin[i]
					v[2*i+1] = a*sin[i] + b*cos[i]
				}
			} else {
				for i := 0; i < half; i++ {
					a, b := v[i], v[i+half]
					v[i] = a*cos[i] - b*sin[i]
					v[i+half] = b*cos[i] + a*sin[i]
				}
			}
		}
	}
}

// ropeBackward is rope's backward: the rotation is orthogonal, so the
// gradient at its input is the gradient at its output rotated back (by the
// negated angle), in place.
func (m *Model) ropeBackward(dx []float32, n, heads int, p *batchPlan) {
	cfg := &m.Config
	hd, half := cfg.HeadDim, cfg.RopeDim/2
	for t := 0; t < n; t++ {
		cos, sin := p.cos[t*half:(t+1)*half], p.sin[t*half:(t+1)*half]
		for h := 0; h < heads; h++ {
			v := dx[(t*heads+h)*hd : (t*heads+h+1)*hd]
			if cfg.RopeStyle == RopeInterleaved {
				for i := 0; i < half; i++ {
					a, b := v[2*i], v[2*i+1]
					v[2*i] = a*cos[i] + b*sin[i]
					v[2*i+1] = b*cos[i] - a*sin[i]
				}
			} else {
				for i := 0; i < half; i++ {
					a, b := v[i], v[i+half]
					v[i] = a*cos[i] + b*sin[i]
					v[i+half] = b*cos[i] - a*sin[i]
				}
			}
		}
	}
}

// LayerActs holds one layer's activations for the n tokens of a batch, row
// by row. Inference reuses one LayerActs for every layer; a backward pass
// (LoRA training) keeps one per layer and reads what its Backward needs.
// Attention probabilities are not kept; a backward recomputes them from Q
// and the cache.
type LayerActs struct {
	In      []float32 // residual stream entering the layer [n×Hidden]
	AttnIn  []float32 // AttnNorm(In) [n×Hidden]
	Q       []float32 // queries after RoPE [n×QDim]
	K, V    []float32 // keys after RoPE and values [n×KVDim]
	Att     []float32 // attention output, input of O [n×QDim]
	Mid     []float32 // In + O(Att) [n×Hidden]
	MLPIn   []float32 // MLPNorm(Mid) [n×Hidden]
	Gate    []float32 // [n×FFN]
	Up      []float32 // [n×FFN]
	Act     []float32 // silu(Gate)·Up, input of Down [n×FFN]
	Out     []float32 // Mid + Down(Act) [n×Hidden]
	scratch []float32 // fused projections' output

	// train is set for a forward that a backward follows: the adapters'
	// intermediates x·Aᵀ are then kept in xa[module][segment], and with
	// lora_dropout the dropped inputs and masks in drop[module][segment].
	train bool
	xa    [lora.NumModules][][]float32
	drop  [lora.NumModules][]dropped
}

func newLayerActs(c *Config, n int) *LayerActs {
	a := &LayerActs{
		In: make([]float32, n*c.Hidden), AttnIn: make([]float32, n*c.Hidden),
		Q: make([]float32, n*c.QDim()), K: make([]float32, n*c.KVDim()), V: make([]float32, n*c.KVDim()),
		Att: make([]float32, n*c.QDim()), Mid: make([]float32, n*c.Hidden), MLPIn: make([]float32, n*c.Hidden),
		Gate: make([]float32, n*c.FFN), Up: make([]float32, n*c.FFN), Act: make([]float32, n*c.FFN),
		Out: make([]float32, n*c.Hidden),
	}
	if c.FusedQKV || c.FusedGateUp {
		a.scratch = make([]float32, n*max(c.QDim()+2*c.KVDim(), 2*c.FFN))
	}
	return a
}

// keeper collects what a backward pass needs from a training forward: one
// LayerActs per layer, complete, or with recompute only each layer's input
// (In), from which the backward recomputes the rest one layer at a time.
type keeper struct {
	recompute bool
	acts      []*LayerActs
}

// forward runs the batch; when keep is non-nil it receives the activations
// of every layer (for a backward pass). The final hidden states (before the
// final norm) of all n tokens are returned too, and the batch's plan.
func (m *Model) forward(ctx context.Context, batch []Sequence, keep *keeper) ([][][]float32, []float32, *batchPlan, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	cfg := &m.Config
	p, err := m.plan(batch)
	if err != nil {
		return nil, nil, nil, err
	}
	n := p.n
	x := make([]float32, n*cfg.Hidden)
	for t, tok := range p.tokens {
		if err := m.Embed.Row(x[t*cfg.Hidden:(t+1)*cfg.Hidden], tok); err != nil {
			return nil, nil, nil, fmt.Errorf("forward: embedding of token %d: %w", tok, err)
		}
	}
	for _, s := range batch {
		s.Cache.grow(len(s.Tokens))
	}
	var acts *LayerActs
	if n > 0 {
		acts = newLayerActs(cfg, n)
		// With recomputation this one LayerActs serves every layer; it
		// runs in training mode all the same (lora_dropout applies).
		acts.train = keep != nil
	}
	for l := range m.Layers {
		if n == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			// Positions already written in earlier layers are not counted
			// (c.n is unchanged), so the caches stay consistent.
			return nil, nil, nil, err
		}
		switch {
		case keep != nil && keep.recompute:
			keep.acts = append(keep.acts, &LayerActs{In: slices.Clone(x)})
		case keep != nil:
			acts = newLayerActs(cfg, n)
			acts.train = true
			keep.acts = append(keep.acts, acts)
		}
		copy(acts.In, x)
		m.Layers[l].Forward(m, l, acts, batch, p)
		copy(x, acts.Out)
	}
	for _, s := range batch {
		s.Cache.n += len(s.Tokens)
		if len(s.Tokens) > 0 {
			s.Cache.last = nil
		}
	}
	// Final norm and output projection, only for the rows wanted.
	r := len(p.rows)
	h := make([]float32, r*cfg.Hidden)
	for i, row := range p.rows {
		m.Norm.Forward(h[i*cfg.Hidden:(i+1)*cfg.Hidden], x[row*cfg.Hidden:(row+1)*cfg.Hidden], 1, cfg.NormEps)
	}
	logits := make([]float32, r*cfg.Vocab)
	if r > 0 {
		m.output().Forward(logits, h, r)
	}
	out := make([][][]float32, len(batch))
	k := 0
	for i, s := range batch {
		var cnt int
		switch {
		case s.Logits == LogitsAll:
			cnt = len(s.Tokens)
		case s.Logits == LogitsLast && len(s.Tokens) > 0:
			cnt = 1
		case s.Logits == LogitsLast:
			out[i] = [][]float32{append([]float32(nil), s.Cache.last...)}
			continue
		}
		rows := make([][]float32, cnt)
		for j := range rows {
			rows[j] = logits[k*cfg.Vocab : (k+1)*cfg.Vocab : (k+1)*cfg.Vocab]
			k++
		}
		if cnt > 0 {
			// A copy: callers (samplers) may change the rows they get.
			s.Cache.last = append([]float32(nil), rows[cnt-1]...)
		}
		out[i] = rows
	}
	return out, x, p, nil
}

// Forward runs layer l on the batch: a.In must hold the residual stream; the
// result is left in a.Out. The keys and values of the new tokens are
// written into the sequences' caches.
func (ly *Layer) Forward(m *Model, l int, a *LayerActs, batch []Sequence, p *batchPlan) {
	cfg := &m.Config
	n := p.n
	ly.AttnNorm.Forward(a.AttnIn, a.In, n, cfg.NormEps)
	ly.Attn.Forward(m, l, a, batch, p)
	for i := range a.Mid {
		a.Mid[i] += a.In[i]
	}
	ly.MLPNorm.Forward(a.MLPIn, a.Mid, n, cfg.NormEps)
	ly.MLP.Forward(m, l, a, p)
	for i := range a.Out {
		a.Out[i] += a.Mid[i]
	}
}

// Backward propagates dOut, the loss gradient at a.Out (n×Hidden), back
// through layer l, whose Forward in a training pass left its activations in
// a. It accumulates the gradients of the adapters' A and B and, unless dIn
// is nil (layer 0 of a LoRA pass: no gradient for the embeddings is
// needed), writes the gradient at a.In into dIn. dOut is used as scratch.
// The base weights are read only; with base gradients switched on (a
// pretraining pass) their gradients are accumulated too.
func (ly *Layer) Backward(m *Model, l int, a *LayerActs, dIn, dOut []float32, p *batchPlan) {
	cfg := &m.Config
	n := p.n
	// Out = Mid + MLP(MLPNorm(Mid)): dMid = dOut + MLPNorm'ᵀ·MLP'ᵀ·dOut.
	dMLPIn := ly.MLP.Backward(m, l, a, dOut, p)
	dMid := dOut
	if p.grads != nil {
		p.grads.rmsNorm(&ly.MLPNorm, a.Mid, dMLPIn, n, cfg.NormEps)
	}
	ly.MLPNorm.Backward(dMid, a.Mid, dMLPIn, n, cfg.NormEps)
	// Mid = In + Attn(AttnNorm(In)).
	dAttnIn := ly.Attn.Backward(m, l, a, dMid, p, dIn != nil || p.grads != nil)
	if p.grads != nil {
		p.grads.rmsNorm(&ly.AttnNorm, a.In, dAttnIn, n, cfg.NormEps)
	}
	if dIn != nil {
		copy(dIn[:n*cfg.Hidden], dMid)
		ly.AttnNorm.Backward(dIn, a.In, dAttnIn, n, cfg.NormEps)
	}
}

// Forward projects a.AttnIn to queries, keys and values, applies RoPE,
// appends keys and values to the caches, attends, and writes O(attention)
// into a.Mid (the caller adds the residual).
func (at *Attention) Forward(m *Model, l int, a *LayerActs, batch []Sequence, p *batchPlan) {
	cfg := &m.Config
	n, qd, kd := p.n, cfg.QDim(), cfg.KVDim()
	if cfg.FusedQKV {
		w := qd + 2*kd
		m.project(&at.QKV, l, lora.QKV, a.scratch, a.AttnIn, a, p)
		for t := 0; t < n; t++ {
			row := a.scratch[t*w : (t+1)*w]
			copy(a.Q[t*qd:(t+1)*qd], row[:qd])
			copy(a.K[t*kd:(t+1)*kd], row[qd:qd+kd])
			copy(a.V[t*kd:(t+1)*kd], row[qd+kd:])
		}
	} else {
		m.project(&at.Q, l, lora.Q, a.Q, a.AttnIn, a, p)
		m.project(&at.K, l, lora.K, a.K, a.AttnIn, a, p)
		m.project(&at.V, l, lora.V, a.V, a.AttnIn, a, p)
	}
	m.rope(a.Q, n, cfg.Heads, p)
	m.rope(a.K, n, cfg.KVHeads, p)
	for i, s := range batch {
		for j := range s.Tokens {
			t := p.start[i] + j
			s.Cache.put(l, s.Cache.n+j, a.K[t*kd:(t+1)*kd], a.V[t*kd:(t+1)*kd])
		}
	}
	for i, s := range batch {
		if len(s.Tokens) > 0 {
			attend(cfg, l, s.Cache, s.Cache.n, len(s.Tokens), a.Q[p.start[i]*qd:], a.Att[p.start[i]*qd:])
		}
	}
	m.project(&at.O, l, lora.O, a.Mid, a.Att, a, p)
}

// Backward propagates dMid, the loss gradient at the attention block's
// output (n×Hidden), to the adapters of o, q, k, v (or qkv) and, when
// wantDx, returns the gradient at a.AttnIn (n×Hidden). Attention
// probabilities are recomputed from a.Q and a.K; every sequence of a
// training batch starts at position 0, so its keys and values are the rows
// of a.K and a.V.
func (at *Attention) Backward(m *Model, l int, a *LayerActs, dMid []float32, p *batchPlan, wantDx bool) []float32 {
	cfg := &m.Config
	n, qd, kd := p.n, cfg.QDim(), cfg.KVDim()
	dAtt := make([]float32, n*qd)
	m.projectBackward(&at.O, l, lora.O, dAtt, dMid, a.Att, a, p)
	dQ := make([]float32, n*qd)
	dK := make([]float32, n*kd)
	dV := make([]float32, n*kd)
	for i := range p.start {
		lo := p.start[i]
		hi := p.n
		if i+1 < len(p.start) {
			hi = p.start[i+1]
		}
		if hi > lo {
			attendBackward(cfg, hi-lo, a.Q[lo*qd:hi*qd], a.K[lo*kd:hi*kd], a.V[lo*kd:hi*kd], dAtt[lo*qd:hi*qd],
				dQ[lo*qd:hi*qd], dK[lo*kd:hi*kd], dV[lo*kd:hi*kd])
		}
	}
	m.ropeBackward(dQ, n, cfg.Heads, p)
	m.ropeBackward(dK, n, cfg.KVHeads, p)
	var dx []float32
	if wantDx {
		dx = make([]float32, n*cfg.Hidden)
	}
	if cfg.FusedQKV {
		w := qd + 2*kd
		d := make([]float32, n*w)
		for t := 0; t < n; t++ {
			row := d[t*w : (t+1)*w]
			copy(row[:qd], dQ[t*qd:(t+1)*qd])
			copy(row[qd:qd+kd], dK[t*kd:(t+1)*kd])
			copy(row[qd+kd:], dV[t*kd:(t+1)*kd])
		}
		m.projectBackward(&at.QKV, l, lora.QKV, dx, d, a.AttnIn, a, p)
	} else {
		m.projectBackward(&at.Q, l, lora.Q, dx, dQ, a.AttnIn, a, p)
		m.projectBackward(&at.K, l, lora.K, dx, dK, a.AttnIn, a, p)
		m.projectBackward(&at.V, l, lora.V, dx, dV, a.AttnIn, a, p)
	}
	return dx
}

// attnChunk is how many query positions attend computes at once: it bounds
// the score matrix and skips most of the masked keys in a long prefill.
const attnChunk = 128

// attend computes causal grouped-query attention for the t new tokens of
// one sequence at positions base..base+t-1, whose keys and values are in the
// cache already. q and out are [t×QDim]. Per kv head it gathers the keys and
// values, stacks the queries of the heads that share them, and uses matrix
// products: scores = Q·Kᵀ/sqrt(HeadDim), masked, softmax, times V. Queries
// go in chunks of attnChunk positions, each against the keys it can see.
func attend(cfg *Config, l int, c *Cache, base, t int, q, out []float32) {
	hd, qd := cfg.HeadDim, cfg.QDim()
	group := cfg.Heads / cfg.KVHeads
	w := cfg.SlidingWindow
	end := base + t // keys at [from, end)
	from := 0
	if w > 0 && base+1-w > 0 {
		from = base + 1 - w // the first new token sees [base+1-w, base]
	}
	L := end - from
	k := make([]float32, L*hd)
	v := make([]float32, L*hd)
	tc := min(t, attnChunk)
	qs := make([]float32, group*tc*hd)
	s := make([]float32, group*tc*L)
	o := make([]float32, group*tc*hd)
	scale := float32(1 / math.Sqrt(float64(hd)))
	for kh := 0; kh < cfg.KVHeads; kh++ {
		c.gather(l, kh, from, end, k, v)
		for i0 := 0; i0 < t; i0 += attnChunk {
			i1 := min(t, i0+attnChunk)
			n := i1 - i0
			// Keys [kLo, kHi) of k are visible to some query of the chunk.
			kLo, kHi := 0, base+i1-from
			if w > 0 {
				kLo = max(0, base+i0+1-w-from)
			}
			lc := kHi - kLo
			for g := 0; g < group; g++ {
				h := kh*group + g
				for i := i0; i < i1; i++ {
					copy(qs[(g*n+i-i0)*hd:(g*n+i-i0+1)*hd], q[i*qd+h*hd:i*qd+(h+1)*hd])
				}
			}
			kernels.MatMulNT(s[:group*n*lc], qs[:group*n*hd], k[kLo*hd:kHi*hd], group*n, lc, hd)
			parallelFor(group*n, max(1, 4096/lc), func(r0, r1 int) {
				for r := r0; r < r1; r++ {
					row := s[r*lc : (r+1)*lc]
					pos := base + i0 + r%n
					lo := 0
					if w > 0 {
						lo = max(0, pos+1-w-from-kLo)
					}
					hi := pos - from + 1 - kLo // keys [lo, hi) of the row are visible
					clear(row[:lo])
					kernels.Scale(scale, row[lo:hi])
					kernels.Softmax(row[lo:hi])
					clear(row[hi:])
				}
			})
			kernels.MatMulNN(o[:group*n*hd], s[:group*n*lc], v[kLo*hd:kHi*hd], group*n, hd, lc)
			for g := 0; g < group; g++ {
				h := kh*group + g
				for i := i0; i < i1; i++ {
					copy(out[i*qd+h*hd:i*qd+(h+1)*hd], o[(g*n+i-i0)*hd:(g*n+i-i0+1)*hd])
				}
			}
		}
	}
}

// attendBackward is attend's backward for one whole sequence of t tokens at
// positions 0..t-1: q, dout and dq are [t×QDim] (queries after RoPE), k, v,
// dk and dv [t×KVDim]; dq, dk and dv are overwritten. With P the attention
// probabilities (recomputed as attend computes them), O = P·V and S the
// scaled scores:
//
//	dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P∘(dP − rowsum(P∘dP)),
//	dQ = scale·dS·K,  dK = scale·dSᵀ·Q.
//
// Per kv head the queries of the heads that share it are stacked, and
// queries go in chunks of attnChunk positions, as in attend.
func attendBackward(cfg *Config, t int, q, k, v, dout, dq, dk, dv []float32) {
	hd, qd, kd := cfg.HeadDim, cfg.QDim(), cfg.KVDim()
	group := cfg.Heads / cfg.KVHeads
	w := cfg.SlidingWindow
	kb := make([]float32, t*hd)
	vb := make([]float32, t*hd)
	dkb := make([]float32, t*hd)
	dvb := make([]float32, t*hd)
	tc := min(t, attnChunk)
	qs := make([]float32, group*tc*hd)
	dos := make([]float32, group*tc*hd)
	dqs := make([]float32, group*tc*hd)
	s := make([]float32, group*tc*t)
	ds := make([]float32, group*tc*t)
	scale := float32(1 / math.Sqrt(float64(hd)))
	for kh := 0; kh < cfg.KVHeads; kh++ {
		for j := 0; j < t; j++ {
			copy(kb[j*hd:(j+1)*hd], k[j*kd+kh*hd:j*kd+(kh+1)*hd])
			copy(vb[j*hd:(j+1)*hd], v[j*kd+kh*hd:j*kd+(kh+1)*hd])
		}
		clear(dkb)
		clear(dvb)
		for i0 := 0; i0 < t; i0 += attnChunk {
			i1 := min(t, i0+attnChunk)
			n := i1 - i0
			lc := i1 // keys [0, i1) are visible to some query of the chunk
			gn := group * n
			for g := 0; g < group; g++ {
				h := kh*group + g
				for i := i0; i < i1; i++ {
					r := g*n + i - i0
					copy(qs[r*hd:(r+1)*hd], q[i*qd+h*hd:i*qd+(h+1)*hd])
					copy(dos[r*hd:(r+1)*hd], dout[i*qd+h*hd:i*qd+(h+1)*hd])
				}
			}
			sc, dsc := s[:gn*lc], ds[:gn*lc]
			kernels.MatMulNT(sc, qs[:gn*hd], kb[:lc*hd], gn, lc, hd)
			kernels.MatMulNT(dsc, dos[:gn*hd], vb[:lc*hd], gn, lc, hd) // dP
			parallelFor(gn, max(1, 4096/lc), func(r0, r1 int) {
				for r := r0; r < r1; r++ {
					row, drow := sc[r*lc:(r+1)*lc], dsc[r*lc:(r+1)*lc]
					pos := i0 + r%n
					lo := 0
					if w > 0 {
						lo = max(0, pos+1-w)
					}
					hi := pos + 1
					clear(row[:lo])
					kernels.Scale(scale, row[lo:hi])
					kernels.Softmax(row[lo:hi])
					clear(row[hi:])
					var dot float64
					for j := lo; j < hi; j++ {
						dot += float64(row[j]) * float64(drow[j])
					}
					d := float32(dot)
					clear(drow[:lo])
					for j := lo; j < hi; j++ {
						drow[j] = row[j] * (drow[j] - d) * scale
					}
					clear(drow[hi:])
				}
			})
			kernels.MatMulTNAcc(dvb[:lc*hd], sc, dos[:gn*hd], lc, hd, gn)
			kernels.MatMulTNAcc(dkb[:lc*hd], dsc, qs[:gn*hd], lc, hd, gn)
			kernels.MatMulNN(dqs[:gn*hd], dsc, kb[:lc*hd], gn, hd, lc)
			for g := 0; g < group; g++ {
				h := kh*group + g
				for i := i0; i < i1; i++ {
					r := g*n + i - i0
					copy(dq[i*qd+h*hd:i*qd+(h+1)*hd], dqs[r*hd:(r+1)*hd])
				}
			}
		}
		for j := 0; j < t; j++ {
			copy(dk[j*kd+kh*hd:j*kd+(kh+1)*hd], dkb[j*hd:(j+1)*hd])
			copy(dv[j*kd+kh*hd:j*kd+(kh+1)*hd], dvb[j*hd:(j+1)*hd])
		}
	}
}

// Forward computes a.Out = Down(silu(Gate(a.MLPIn))·Up(a.MLPIn)) for layer
// l (the caller adds the residual).
func (mlp *MLP) Forward(m *Model, l int, a *LayerActs, p *batchPlan) {
	cfg := &m.Config
	f, n := cfg.FFN, p.n
	if cfg.FusedGateUp {
		m.project(&mlp.GateUp, l, lora.GateUp, a.scratch, a.MLPIn, a, p)
		for t := 0; t < n; t++ {
			row := a.scratch[t*2*f : (t+1)*2*f]
			copy(a.Gate[t*f:(t+1)*f], row[:f])
			copy(a.Up[t*f:(t+1)*f], row[f:])
		}
	} else {
		m.project(&mlp.Gate, l, lora.Gate, a.Gate, a.MLPIn, a, p)
		m.project(&mlp.Up, l, lora.Up, a.Up, a.MLPIn, a, p)
	}
	parallelFor(n, max(1, 16384/f), func(lo, hi int) {
		kernels.SiLUMul(a.Act[lo*f:hi*f], a.Gate[lo*f:hi*f], a.Up[lo*f:hi*f])
	})
	m.project(&mlp.Down, l, lora.Down, a.Out, a.Act, a, p)
}

// Backward propagates dOut, the loss gradient at the MLP's output
// (n×Hidden), to the adapters of down, gate and up (or gate_up) and
// returns the gradient at a.MLPIn (n×Hidden). With act = silu(g)·u and
// σ the logistic function:
//
//	du = dact·silu(g),  dg = dact·u·σ(g)·(1 + g·(1−σ(g))).
func (mlp *MLP) Backward(m *Model, l int, a *LayerActs, dOut []float32, p *batchPlan) []float32 {
	cfg := &m.Config
	f, n := cfg.FFN, p.n
	dAct := make([]float32, n*f)
	m.projectBackward(&mlp.Down, l, lora.Down, dAct, dOut, a.Act, a, p)
	dGate := make([]float32, n*f)
	dUp := make([]float32, n*f)
	parallelFor(n, max(1, 16384/f), func(lo, hi int) {
		siluMulBackward(dGate[lo*f:hi*f], dUp[lo*f:hi*f], dAct[lo*f:hi*f], a.Gate[lo*f:hi*f], a.Up[lo*f:hi*f])
	})
	dx := make([]float32, n*cfg.Hidden)
	if cfg.FusedGateUp {
		d := make([]float32, n*2*f)
		for t := 0; t < n; t++ {
			copy(d[t*2*f:t*2*f+f], dGate[t*f:(t+1)*f])
			copy(d[t*2*f+f:(t+1)*2*f], dUp[t*f:(t+1)*f])
		}
		m.projectBackward(&mlp.GateUp, l, lora.GateUp, dx, d, a.MLPIn, a, p)
	} else {
		m.projectBackward(&mlp.Gate, l, lora.Gate, dx, dGate, a.MLPIn, a, p)
		m.projectBackward(&mlp.Up, l, lora.Up, dx, dUp, a.MLPIn, a, p)
	}
	return dx
}

// expf is e^x in float32 (Cephes' expf: a degree-7 polynomial after
// reducing x by multiples of ln 2; within 2 ulp), for the SwiGLU backward,
// where float64 math.Exp costs more than the rest of the loop.
func expf(x float32) float32 {
	switch {
	case x > 88:
		return float32(math.Inf(1))
	case x < -87:
		return 0
	}
	n := float32(math.Floor(float64(x*1.44269504088896341 + 0.5)))
	r := x - n*0.693359375 + n*2.12194440e-4
	p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+
		1.6666665459e-1)*r+5.0000001201e-1)*r*r + r + 1)
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// siluMulBackward writes the gradients at gate and up of
// act = silu(gate)·up, given dact.
func siluMulBackward(dgate, dup, dact, gate, up []float32) {
	for i, g := range gate {
		sg := 1 / (1 + expf(-g))
		dup[i] = dact[i] * g * sg
		dgate[i] = dact[i] * up[i] * sg * (1 + g*(1-sg))
	}
}

// Hidden runs tokens through the model, appending them to c, and returns
// the final hidden state (after the final norm, before the output
// projection) of every new position: one Hidden-wide row each, e.g. for
// embedding texts by a model's representations.
func (m *Model) Hidden(ctx context.Context, c *Cache, tokens []int) ([][]float32, error) {
	_, x, _, err := m.forward(ctx, []Sequence{{Cache: c, Tokens: tokens, Logits: LogitsNone}}, nil)
	if err != nil {
		return nil, err
	}
	d := m.Config.Hidden
	rows := make([][]float32, len(tokens))
	for i := range rows {
		rows[i] = make([]float32, d)
		m.Norm.Forward(rows[i], x[i*d:(i+1)*d], 1, m.Config.NormEps)
	}
	return rows, nil
}
