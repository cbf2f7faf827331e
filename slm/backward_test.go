package slm

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/slm/lora"
)

// The backward pass is checked against central finite differences computed
// in float64, on float64 re-implementations of each operation (ref_test.go
// and below) that share no code with the float32 forward and backward.
//
// Tolerance: the analytic gradients are computed in float32, whose rounding
// gives relative errors around 1e-6 of the largest gradient (the PEFT golden
// measured 1.3e-7 for torch float32 at max |grad| 0.23); the float64 central
// differences with h = 1e-5 have truncation errors near 1e-10. A bound of
// 1e-4 of the largest gradient (plus 1e-7 absolute) leaves a 100× margin,
// while a missing or wrong term changes gradients by a sizable fraction of
// their size.

const fdStep = 1e-5

// checkGrad compares analytic float32 gradients with float64 ones.
func checkGrad[F float32 | float64](t *testing.T, what string, got []F, want []float64) {
	t.Helper()
	var mx float64
	for _, w := range want {
		mx = math.Max(mx, math.Abs(w))
	}
	if mx == 0 {
		t.Fatalf("%s: reference gradient is all zero (test does not test)", what)
	}
	tol := 1e-4*mx + 1e-7
	bad := 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol || math.IsNaN(float64(got[i])) {
			if bad < 5 {
				t.Errorf("%s[%d]: analytic %.9g, finite difference %.9g (tolerance %.3g)", what, i, float64(got[i]), want[i], tol)
			}
			bad++
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d entries off", what, bad, len(want))
	}
}

// fdGrad returns dF/dx by central differences, perturbing x in place.
func fdGrad(x []float64, f func() float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		v := x[i]
		x[i] = v + fdStep
		fp := f()
		x[i] = v - fdStep
		fm := f()
		x[i] = v
		g[i] = (fp - fm) / (2 * fdStep)
	}
	return g
}

func randVec(rng *rand.Rand, n int, std float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64() * std
	}
	return v
}

func f32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// f64 converts to float64 exactly.
func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// dotF64 is Σ a·b.
func dotF64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func TestRMSNormBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, d = 3, 24
	const eps = 1e-5
	x := randVec(rng, n*d, 1)
	w := f32(randVec(rng, d, 0.3))
	for i := range w {
		w[i]++
	}
	dy := randVec(rng, n*d, 1)
	norm := RMSNorm{W: w}
	dx := make([]float32, n*d)
	norm.Backward(dx, f32(x), f32(dy), n, eps)
	want := fdGrad(x, func() float64 {
		var s float64
		for i := 0; i < n; i++ {
			s += dotF64(dy[i*d:(i+1)*d], refNorm(x[i*d:(i+1)*d], w, eps))
		}
		return s
	})
	checkGrad(t, "dx", dx, want)
}

func TestRopeBackward(t *testing.T) {
	for _, style := range []RopeStyle{RopeNeoX, RopeInterleaved} {
		t.Run(style.String(), func(t *testing.T) {
			cfg := Config{Arch: "llama", Hidden: 32, Layers: 1, Heads: 4, KVHeads: 2, HeadDim: 8, FFN: 16, Vocab: 16,
				NormEps: 1e-5, RopeTheta: 1e4, RopeDim: 8, RopeStyle: style, MaxContext: 64}
			m := randomModel(t, cfg, 1)
			rng := rand.New(rand.NewPCG(2, 2))
			pos := []int{0, 3, 17, 40}
			n, heads, hd := len(pos), cfg.Heads, cfg.HeadDim
			p := &batchPlan{n: n, pos: pos}
			p.cos, p.sin = m.ropeTables(pos)
			x := randVec(rng, n*heads*hd, 1)
			dy := randVec(rng, n*heads*hd, 1)
			// The forward rotation, in float32, agrees with the reference.
			y := f32(x)
			m.rope(y, n, heads, p)
			dx := f32(dy)
			m.ropeBackward(dx, n, heads, p)
			want := fdGrad(x, func() float64 {
				v := append([]float64(nil), x...)
				for t := 0; t < n; t++ {
					for h := 0; h < heads; h++ {
						refRope(&cfg, v[(t*heads+h)*hd:(t*heads+h+1)*hd], pos[t])
					}
				}
				return dotF64(dy, v)
			})
			checkGrad(t, "dx", dx, want)
		})
	}
}

// refAttention is causal grouped-query attention over one sequence in
// float64: q is [t×QDim], k and v [t×KVDim] (after RoPE).
func refAttention(c *Config, t int, q, k, v []float64) []float64 {
	hd, qd, kd := c.HeadDim, c.QDim(), c.KVDim()
	out := make([]float64, t*qd)
	for i := 0; i < t; i++ {
		for h := 0; h < c.Heads; h++ {
			kh := h / (c.Heads / c.KVHeads)
			lo := 0
			if c.SlidingWindow > 0 {
				lo = max(0, i-c.SlidingWindow+1)
			}
			sc := make([]float64, i+1)
			mx := math.Inf(-1)
			for j := lo; j <= i; j++ {
				sc[j] = dotF64(q[i*qd+h*hd:i*qd+(h+1)*hd], k[j*kd+kh*hd:j*kd+(kh+1)*hd]) / math.Sqrt(float64(hd))
				mx = math.Max(mx, sc[j])
			}
			var sum float64
			for j := lo; j <= i; j++ {
				sc[j] = math.Exp(sc[j] - mx)
				sum += sc[j]
			}
			for j := lo; j <= i; j++ {
				for d := 0; d < hd; d++ {
					out[i*qd+h*hd+d] += sc[j] / sum * v[j*kd+kh*hd+d]
				}
			}
		}
	}
	return out
}

func TestAttentionBackward(t *testing.T) {
	for _, tc := range []struct {
		name   string
		t, win int
	}{{"causal", 11, 0}, {"sliding window", 11, 4}, {"chunks", attnChunk + 9, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.t > 100 && testing.Short() {
				t.Skip("long sequence")
			}
			cfg := Config{Heads: 6, KVHeads: 2, HeadDim: 4, SlidingWindow: tc.win}
			rng := rand.New(rand.NewPCG(3, 3))
			T, qd, kd := tc.t, cfg.QDim(), cfg.KVDim()
			q, k, v := randVec(rng, T*qd, 1), randVec(rng, T*kd, 1), randVec(rng, T*kd, 1)
			dout := randVec(rng, T*qd, 1)
			dq, dk, dv := make([]float32, T*qd), make([]float32, T*kd), make([]float32, T*kd)
			attendBackward(&cfg, T, f32(q), f32(k), f32(v), f32(dout), dq, dk, dv)
			f := func() float64 { return dotF64(dout, refAttention(&cfg, T, q, k, v)) }
			checkGrad(t, "dq", dq, fdGrad(q, f))
			checkGrad(t, "dk", dk, fdGrad(k, f))
			checkGrad(t, "dv", dv, fdGrad(v, f))
		})
	}
}

func TestSiLUMulBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n = 40
	g, u, da := randVec(rng, n, 2), randVec(rng, n, 1), randVec(rng, n, 1)
	dg, du := make([]float32, n), make([]float32, n)
	siluMulBackward(dg, du, f32(da), f32(g), f32(u))
	f := func() float64 {
		var s float64
		for i := range g {
			s += da[i] * g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		return s
	}
	checkGrad(t, "dgate", dg, fdGrad(g, f))
	checkGrad(t, "dup", du, fdGrad(u, f))
}

// TestOutputLossBackward checks the final norm, the output projection and
// the cross-entropy: loss and gradient at the final hidden states.
func TestOutputLossBackward(t *testing.T) {
	for _, tied := range []bool{false, true} {
		cfg := Config{Arch: "llama", Hidden: 16, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 8, FFN: 16, Vocab: 200,
			NormEps: 1e-6, RopeTheta: 1e4, RopeDim: 8, MaxContext: 64, TiedEmbeddings: tied}
		m := randomModel(t, cfg, 5)
		m.output().W = f32(randVec(rand.New(rand.NewPCG(6, 6)), cfg.Vocab*cfg.Hidden, 0.5))
		rng := rand.New(rand.NewPCG(7, 7))
		const n = 5
		x := randVec(rng, n*cfg.Hidden, 1)
		targets := []target{{0, 3}, {2, 199}, {3, 0}, {4, 3}}
		dx := make([]float32, n*cfg.Hidden)
		loss := m.outputLoss(f32(x), targets, dx, nil)
		W := denseW(t, m.output())
		ref := func() float64 {
			var s float64
			for _, tg := range targets {
				d := cfg.Hidden
				logits := refLinear(W, nil, refNorm(x[tg.row*d:(tg.row+1)*d], m.Norm.W, cfg.NormEps))
				mx := math.Inf(-1)
				for _, v := range logits {
					mx = math.Max(mx, v)
				}
				var z float64
				for _, v := range logits {
					z += math.Exp(v - mx)
				}
				s += mx + math.Log(z) - logits[tg.tok]
			}
			return s
		}
		if d := math.Abs(loss - ref()); d > 1e-5 {
			t.Errorf("tied=%v: loss %g, reference %g", tied, loss, ref())
		}
		checkGrad(t, "dx", dx, fdGrad(x, ref))
		for i := cfg.Hidden; i < 2*cfg.Hidden; i++ {
			if dx[i] != 0 {
				t.Fatalf("row 1 is no target but has gradient %g", dx[i])
			}
		}
	}
}

// lcfgs are the small architectures the whole-model checks run on.
func lcfgs() map[string]Config {
	base := Config{Arch: "llama", Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 8, FFN: 48, Vocab: 64,
		NormEps: 1e-6, RopeTheta: 1e4, RopeDim: 8, RopeStyle: RopeNeoX, BOS: 1, MaxContext: 256}
	inter := base
	inter.RopeStyle = RopeInterleaved
	inter.NormEps = 1e-5
	qwen := base
	qwen.Arch, qwen.QKVBias, qwen.TiedEmbeddings, qwen.RopeTheta = "qwen2", true, true, 1e6
	phi := base
	phi.Arch, phi.FusedQKV, phi.FusedGateUp, phi.SlidingWindow = "phi3", true, true, 5
	phi.Heads, phi.HeadDim, phi.RopeDim = 8, 4, 4 // 8 query heads over 2 kv heads
	return map[string]Config{"llama": base, "llama-interleaved": inter, "qwen2": qwen, "phi3": phi}
}

// newTestAdapter targets every projection of m with rank r and non-zero A
// and B (PEFT's init_lora_weights=false), so that every gradient is live.
func newTestAdapter(t testing.TB, m *Model, r int, seed uint64) *lora.Adapter {
	t.Helper()
	lc := lora.NewConfig("test", r, float64(2*r), lora.AllLinear)
	lc.Init = lora.InitNone
	a, err := lora.New(lc, m.Config.LoRABase(), seed)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range a.Pairs() {
		for i := range p.B {
			p.B[i] *= 0.2
		}
	}
	return a
}

// ref64 is a float64 copy of a model and of its adapters' matrices.
type ref64 struct {
	m    *Model
	w    map[*Linear][][]float64
	bias map[*Linear][]float64  // float64 copies of the biases
	nw   map[*RMSNorm][]float64 // and of the norm weights

	ab  map[*lora.Pair][2][]float64 // A, B
	emb [][]float64
	// The sequence being run and its dropout masks by layer and module,
	// drawn as LossAndGrad draws them.
	seq   TrainSeq
	masks map[[2]int][]float32
}

func newRef64(t *testing.T, m *Model, adapters ...*lora.Adapter) *ref64 {
	r := &ref64{m: m, w: map[*Linear][][]float64{}, ab: map[*lora.Pair][2][]float64{},
		bias: map[*Linear][]float64{}, nw: map[*RMSNorm][]float64{}}
	for _, l := range m.linears() {
		r.w[l] = denseW(t, l)
		if l.Bias != nil {
			r.bias[l] = f64(l.Bias)
		}
	}
	r.nw[&m.Norm] = f64(m.Norm.W)
	for i := range m.Layers {
		ly := &m.Layers[i]
		r.nw[&ly.AttnNorm] = f64(ly.AttnNorm.W)
		r.nw[&ly.MLPNorm] = f64(ly.MLPNorm.W)
	}
	r.emb = r.w[&m.Embed]
	for _, a := range adapters {
		if a == nil {
			continue
		}
		for _, p := range a.Pairs() {
			r.ab[p] = [2][]float64{f64(p.A), f64(p.B)}
		}
	}
	return r
}

// proj is x·Wᵀ + b + s·B·(A·(x∘mask)) for row i.
func (r *ref64) proj(l *Linear, a *lora.Adapter, layer int, mod lora.Module, x []float64, i int) []float64 {
	y := refLinear(r.w[l], nil, x)
	for i, b := range r.bias[l] {
		y[i] += b
	}
	if a == nil {
		return y
	}
	p := a.Pair(layer, mod)
	if p == nil {
		return y
	}
	ab := r.ab[p]
	if prob := a.Config.Dropout; prob > 0 {
		key := [2]int{layer, int(mod)}
		mask, ok := r.masks[key]
		if !ok {
			mask = make([]float32, len(r.seq.Tokens)*p.In)
			lora.DropoutMask(mask, prob, rand.New(rand.NewPCG(r.seq.Seed, uint64(layer)<<8|uint64(mod))))
			r.masks[key] = mask
		}
		xd := make([]float64, len(x))
		for j, v := range x {
			xd[j] = v * float64(mask[i*p.In+j])
		}
		x = xd
	}
	ax := make([]float64, p.R)
	for i := range ax {
		ax[i] = dotF64(ab[0][i*p.In:(i+1)*p.In], x)
	}
	for o := range y {
		y[o] += float64(p.Scale) * dotF64(ab[1][o*p.R:(o+1)*p.R], ax)
	}
	return y
}

// loss is the summed masked cross-entropy of one sequence, in float64.
func (r *ref64) loss(s TrainSeq) float64 {
	m, c, a := r.m, &r.m.Config, s.Adapter
	r.seq, r.masks = s, map[[2]int][]float32{}
	T, qd, kd := len(s.Tokens), c.QDim(), c.KVDim()
	h := make([][]float64, T)
	for i, tok := range s.Tokens {
		h[i] = append([]float64(nil), r.emb[tok]...)
	}
	for l := range m.Layers {
		ly := &m.Layers[l]
		q, k, v := make([]float64, T*qd), make([]float64, T*kd), make([]float64, T*kd)
		for i := range h {
			x := refNorm64(h[i], r.nw[&ly.AttnNorm], c.NormEps)
			var qi, ki, vi []float64
			if c.FusedQKV {
				all := r.proj(&ly.Attn.QKV, a, l, lora.QKV, x, i)
				qi, ki, vi = all[:qd], all[qd:qd+kd], all[qd+kd:]
			} else {
				qi = r.proj(&ly.Attn.Q, a, l, lora.Q, x, i)
				ki = r.proj(&ly.Attn.K, a, l, lora.K, x, i)
				vi = r.proj(&ly.Attn.V, a, l, lora.V, x, i)
			}
			for hh := 0; hh < c.Heads; hh++ {
				refRope(c, qi[hh*c.HeadDim:(hh+1)*c.HeadDim], i)
			}
			for hh := 0; hh < c.KVHeads; hh++ {
				refRope(c, ki[hh*c.HeadDim:(hh+1)*c.HeadDim], i)
			}
			copy(q[i*qd:], qi)
			copy(k[i*kd:], ki)
			copy(v[i*kd:], vi)
		}
		att := refAttention(c, T, q, k, v)
		for i := range h {
			o := r.proj(&ly.Attn.O, a, l, lora.O, att[i*qd:(i+1)*qd], i)
			for d := range o {
				h[i][d] += o[d]
			}
			x := refNorm64(h[i], r.nw[&ly.MLPNorm], c.NormEps)
			var g, u []float64
			if c.FusedGateUp {
				all := r.proj(&ly.MLP.GateUp, a, l, lora.GateUp, x, i)
				g, u = all[:c.FFN], all[c.FFN:]
			} else {
				g = r.proj(&ly.MLP.Gate, a, l, lora.Gate, x, i)
				u = r.proj(&ly.MLP.Up, a, l, lora.Up, x, i)
			}
			for j := range g {
				g[j] = g[j] / (1 + math.Exp(-g[j])) * u[j]
			}
			dn := r.proj(&ly.MLP.Down, a, l, lora.Down, g, i)
			for d := range dn {
				h[i][d] += dn[d]
			}
		}
	}
	out := r.w[m.output()]
	var loss float64
	for i := 1; i < T; i++ {
		if s.Mask != nil && !s.Mask[i] {
			continue
		}
		logits := refLinear(out, nil, refNorm64(h[i-1], r.nw[&m.Norm], c.NormEps))
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = math.Max(mx, v)
		}
		var z float64
		for _, v := range logits {
			z += math.Exp(v - mx)
		}
		loss += mx + math.Log(z) - logits[s.Tokens[i]]
	}
	return loss
}

// trainBatch returns two sequences with prompt-masked answers.
func trainBatch(rng *rand.Rand, vocab int, a *lora.Adapter) []TrainSeq {
	mk := func(n, prompt int) TrainSeq {
		s := TrainSeq{Tokens: randomTokens(rng, n, vocab), Mask: make([]bool, n), Adapter: a}
		for i := prompt; i < n; i++ {
			s.Mask[i] = true
		}
		return s
	}
	return []TrainSeq{mk(11, 6), mk(7, 2)}
}

// TestLoRAGradFD checks dLoss/dA and dLoss/dB of a 2-layer model with LoRA
// on all seven projections (Phi-3: the fused qkv and gate_up) against
// float64 finite differences, on llama (NeoX and interleaved RoPE), qwen2
// (biases, tied output) and phi3 (fused projections, sliding window)
// layouts, over a batch of two masked sequences; and on llama with
// lora_dropout 0.3 (fixed masks). -short checks a random sample of 40
// entries per tensor.
func TestLoRAGradFD(t *testing.T) {
	ctx := context.Background()
	cases := lcfgs()
	cases["llama-dropout"] = cases["llama"]
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 11)
			a := newTestAdapter(t, m, 2, 12)
			rng := rand.New(rand.NewPCG(13, 13))
			batch := trainBatch(rng, cfg.Vocab, a)
			if name == "llama-dropout" {
				a.Config.Dropout = 0.3
				batch[0].Seed, batch[1].Seed = 5, 6
			}
			before := snapshotWeights(m)
			sum, ntok, err := m.LossAndGrad(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if ntok != 5+5 {
				t.Fatalf("%d target tokens, want 10", ntok)
			}
			r := newRef64(t, m, a)
			refLoss := func() float64 {
				var s float64
				for _, sq := range batch {
					s += r.loss(sq)
				}
				return s
			}
			if d := math.Abs(sum - refLoss()); d > 1e-4 {
				t.Errorf("loss %.9g, float64 reference %.9g", sum, refLoss())
			}
			eval, evn, err := m.Loss(ctx, batch)
			if name == "llama-dropout" {
				// Loss runs without dropout (eval mode): it must differ.
				if err != nil || evn != ntok || math.Abs(eval-sum) < 1e-3 {
					t.Errorf("Loss = %g, %d, %v: dropout has no effect on LossAndGrad's %g", eval, evn, err, sum)
				}
			} else if err != nil || evn != ntok || math.Abs(eval-sum) > 1e-9 {
				t.Errorf("Loss = %g, %d, %v; LossAndGrad gave %g, %d", eval, evn, err, sum, ntok)
			}
			pairs := a.Pairs()
			if len(pairs) != 2*len(cfg.LoRABase().Modules()) {
				t.Fatalf("%d adapted projections", len(pairs))
			}
			for _, p := range pairs {
				ab := r.ab[p]
				for k, g := range [][]float32{p.GA, p.GB} {
					x := ab[k]
					idx := make([]int, len(x))
					for i := range idx {
						idx[i] = i
					}
					if testing.Short() && len(idx) > 40 {
						rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
						idx = idx[:40]
					}
					got := make([]float32, len(idx))
					want := make([]float64, len(idx))
					for j, i := range idx {
						got[j] = g[i]
						v := x[i]
						x[i] = v + fdStep
						fp := refLoss()
						x[i] = v - fdStep
						fm := refLoss()
						x[i] = v
						want[j] = (fp - fm) / (2 * fdStep)
					}
					checkGrad(t, p.Name()+[]string{".A", ".B"}[k], got, want)
				}
			}
			if !equalSnapshots(before, snapshotWeights(m)) {
				t.Error("the backward changed base weights")
			}
		})
	}
}

func equalSnapshots(a, b [][]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

func TestExpf(t *testing.T) {
	var worst float64
	for x := float32(-87); x <= 88; x += 0.0137 {
		want := math.Exp(float64(x))
		if d := math.Abs(float64(expf(x))-want) / want; d > worst {
			worst = d
		}
	}
	t.Logf("max relative error %.3g", worst)
	if worst > 3e-7 {
		t.Errorf("expf relative error up to %g", worst)
	}
	if expf(100) != float32(math.Inf(1)) || expf(-100) != 0 {
		t.Error("expf out of range")
	}
}
