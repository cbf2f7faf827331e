package slm

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refNorm64 is refNorm with float64 weights (which finite differences
// perturb).
func refNorm64(x, w []float64, eps float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * r * w[i]
	}
	return y
}

// logSumExp returns log Σ exp(x) in float64 (the reference of softmaxNLL).
func logSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

// refSlot returns, for entry i of the named base tensor, the float64 value
// the reference model reads.
func (r *ref64) slot(t *testing.T, name string, i int) *float64 {
	t.Helper()
	specs, err := r.m.specs()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if s.HF != name {
			continue
		}
		switch {
		case s.Linear != nil:
			return &r.w[s.Linear][i/s.Linear.In][i%s.Linear.In]
		case s.Bias:
			return &r.bias[s.Owner][i]
		default:
			return &r.nw[r.m.normOf(s.Vec)][i]
		}
	}
	t.Fatalf("no tensor %s", name)
	return nil
}

// TestBaseGradFD checks the gradients of every base weight of a 2-layer
// model (each projection's weight, the q/k/v biases of qwen2, the RMSNorm
// weights, the embedding table and the output, tied for qwen2, untied for
// llama and phi3, fused projections for phi3) against float64 central
// differences, over a batch of two masked sequences, on a sample of each
// tensor's entries (all the entries of the embedding row of a token that
// occurs, plus random ones).
func TestBaseGradFD(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range lcfgs() {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 21)
			rng := rand.New(rand.NewPCG(22, 22))
			// Norm weights and biases away from their trivial values.
			for _, p := range mustGrads(t, m).Params() {
				if p.NoDecay {
					for i := range p.W {
						p.W[i] += float32(rng.NormFloat64() * 0.3)
					}
				}
			}
			batch := trainBatch(rng, cfg.Vocab, nil)
			g := mustGrads(t, m)
			sum, _, err := m.LossAndGradWith(ctx, batch, TrainOptions{Base: g})
			if err != nil {
				t.Fatal(err)
			}
			r := newRef64(t, m)
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
			names := map[string]bool{}
			per := 60
			if testing.Short() {
				per = 25
			}
			for _, p := range g.Params() {
				names[p.Name] = true
				idx := rng.Perm(len(p.W))[:min(per, len(p.W))]
				if p.Name == "model.embed_tokens.weight" {
					tok := batch[0].Tokens[3]
					for j := 0; j < cfg.Hidden; j++ {
						idx = append(idx, tok*cfg.Hidden+j)
					}
				}
				got := make([]float32, len(idx))
				want := make([]float64, len(idx))
				for j, i := range idx {
					got[j] = p.G[i]
					x := r.slot(t, p.Name, i)
					v := *x
					*x = v + fdStep
					fp := refLoss()
					*x = v - fdStep
					fm := refLoss()
					*x = v
					want[j] = (fp - fm) / (2 * fdStep)
				}
				checkGrad(t, p.Name, got, want)
			}
			for _, want := range []string{"model.embed_tokens.weight", "model.norm.weight",
				"model.layers.1.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
				"model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.down_proj.weight"} {
				if !names[want] {
					t.Errorf("no parameter %s", want)
				}
			}
			if cfg.QKVBias && !names["model.layers.0.self_attn.q_proj.bias"] {
				t.Error("no q bias parameter")
			}
			if !cfg.TiedEmbeddings && !names["lm_head.weight"] {
				t.Error("no lm_head parameter")
			}
			if cfg.TiedEmbeddings && names["lm_head.weight"] {
				t.Error("tied model has an lm_head parameter")
			}
		})
	}
}

func mustGrads(t testing.TB, m *Model) *Grads {
	t.Helper()
	g, err := m.NewGrads()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestBaseGradsOff checks that the base gradients change nothing when off
// and nothing of a LoRA pass when on: without Base the buffers stay zero
// and the weights untouched; with it the loss and the adapter's gradients
// are bit-identical to the LoRA-only pass, with recomputation or not.
func TestBaseGradsOff(t *testing.T) {
	ctx := context.Background()
	for _, recompute := range []bool{false, true} {
		cfg := lcfgs()["qwen2"]
		m := randomModel(t, cfg, 31)
		a := newTestAdapter(t, m, 2, 32)
		batch := trainBatch(rand.New(rand.NewPCG(33, 33)), cfg.Vocab, a)
		g := mustGrads(t, m)
		before := snapshotWeights(m)
		l1, n1, err := m.LossAndGradWith(ctx, batch, TrainOptions{Recompute: recompute})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range g.Params() {
			for _, v := range p.G {
				if v != 0 {
					t.Fatalf("%s: gradient without Base", p.Name)
				}
			}
		}
		var ga [][]float32
		for _, p := range a.Pairs() {
			ga = append(ga, append([]float32(nil), p.GA...), append([]float32(nil), p.GB...))
			clear(p.GA)
			clear(p.GB)
		}
		l2, n2, err := m.LossAndGradWith(ctx, batch, TrainOptions{Recompute: recompute, Base: g})
		if err != nil {
			t.Fatal(err)
		}
		if l1 != l2 || n1 != n2 {
			t.Errorf("loss %v/%d without base gradients, %v/%d with", l1, n1, l2, n2)
		}
		k := 0
		for _, p := range a.Pairs() {
			for _, pair := range [][2][]float32{{ga[k], p.GA}, {ga[k+1], p.GB}} {
				for i := range pair[0] {
					if pair[0][i] != pair[1][i] {
						t.Fatalf("%s: adapter gradient changed by base gradients", p.Name())
					}
				}
			}
			k += 2
		}
		var nz bool
		for _, p := range g.Params() {
			for _, v := range p.G {
				nz = nz || v != 0
			}
		}
		if !nz {
			t.Error("Base got no gradient")
		}
		if !equalSnapshots(before, snapshotWeights(m)) {
			t.Error("a backward changed base weights")
		}
	}
}

func TestNewGradsErrors(t *testing.T) {
	cfg := lcfgs()["llama"]
	m := randomModel(t, cfg, 41)
	if err := m.QuantizeQ8_0(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewGrads(); err == nil || !strings.Contains(err.Error(), "not float32") {
		t.Errorf("quantized model: %v", err)
	}
	other := randomModel(t, cfg, 42)
	_, _, err := randomModel(t, cfg, 43).LossAndGradWith(context.Background(),
		[]TrainSeq{{Tokens: []int{1, 2, 3}}}, TrainOptions{Base: mustGrads(t, other)})
	if err == nil {
		t.Error("gradients of another model accepted")
	}
}

// TestSoftmaxNLL compares the vectorised float32 loss with the float64
// logsumexp on rows from flat to very confident, for likely, random and
// unlikely targets: within 1e-6 relative, and the probabilities within
// 5e-5 relative (the kernel sums in float32).
func TestSoftmaxNLL(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 51))
	worst := 0.0
	for _, v := range []int{7, 64, 2048, 49152} {
		for _, scale := range []float64{0.01, 1, 5, 30} {
			for trial := 0; trial < 6; trial++ {
				row := f32(randVec(rng, v, scale))
				tok := rng.IntN(v)
				switch trial % 3 {
				case 1: // the most likely token
					for j := range row {
						if row[j] > row[tok] {
							tok = j
						}
					}
				case 2: // the least likely one
					for j := range row {
						if row[j] < row[tok] {
							tok = j
						}
					}
				}
				lse := logSumExp(row)
				// log1p(Σ_{j≠tok} e^(x_j − x_tok)): accurate also where
				// lse − x_tok cancels (a confident prediction).
				var rest float64
				for j, x := range row {
					if j != tok {
						rest += math.Exp(float64(x) - float64(row[tok]))
					}
				}
				want := math.Log1p(rest)
				orig := append([]float32(nil), row...)
				got := softmaxNLL(row, tok)
				rel := math.Abs(got-want) / want
				if rel > worst && testing.Verbose() {
					t.Logf("V=%d scale=%g trial %d: rel %.3g nll %.3g", v, scale, trial, rel, want)
				}
				worst = max(worst, rel)
				// Per-token losses under 1e-12 nats count absolutely (the
				// float32 exponentials underflow where float64 ones do not).
				if rel > 1e-6 && math.Abs(got-want) > 1e-12 {
					t.Errorf("V=%d scale=%g trial %d: nll %.12g, float64 %.12g (relative %.2g)", v, scale, trial, got, want, rel)
				}
				for j, p := range row {
					// The kernel sums the exponentials in float32: the
					// probabilities are good to about 2e-5 relative (V=49152).
					if e := math.Exp(float64(orig[j]) - lse); math.Abs(float64(p)-e) > 5e-5*e+1e-12 {
						t.Fatalf("V=%d scale=%g: p[%d] = %g, want %g", v, scale, j, p, math.Exp(float64(orig[j])-lse))
					}
				}
			}
		}
	}
	t.Logf("worst relative error %.3g", worst)
}

// BenchmarkSoftmaxNLL compares the vectorised loss row with the float64
// one it replaced (logsumexp and the softmax with math.Exp).
func BenchmarkSoftmaxNLL(b *testing.B) {
	rng := rand.New(rand.NewPCG(61, 61))
	src := f32(randVec(rng, 4096, 3))
	row := make([]float32, len(src))
	b.Run("float32-vector", func(b *testing.B) {
		for b.Loop() {
			copy(row, src)
			softmaxNLL(row, 17)
		}
	})
	b.Run("float64-scalar", func(b *testing.B) {
		for b.Loop() {
			copy(row, src)
			lse := logSumExp(row)
			for j, v := range row {
				row[j] = float32(math.Exp(float64(v) - lse))
			}
		}
	})
}

// TestBaseGradsRecompute checks that activation recomputation gives the
// same base gradients, bit for bit.
func TestBaseGradsRecompute(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range lcfgs() {
		m := randomModel(t, cfg, 81)
		batch := trainBatch(rand.New(rand.NewPCG(82, 82)), cfg.Vocab, nil)
		var gs [2]*Grads
		for i, rc := range []bool{false, true} {
			gs[i] = mustGrads(t, m)
			if _, _, err := m.LossAndGradWith(ctx, batch, TrainOptions{Recompute: rc, Base: gs[i]}); err != nil {
				t.Fatal(err)
			}
		}
		for k, p := range gs[0].Params() {
			q := gs[1].Params()[k]
			for i := range p.G {
				if math.Float32bits(p.G[i]) != math.Float32bits(q.G[i]) {
					t.Fatalf("%s: %s[%d] = %g, with recomputation %g", name, p.Name, i, p.G[i], q.G[i])
				}
			}
		}
	}
}
