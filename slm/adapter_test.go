package slm

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tensor"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train"
)

// TestMixedAdapterBatch checks that a batch mixing sequences of two
// adapters and of the bare base (one adapter on two non-adjacent
// sequences) gives each sequence the logits, loss and adapter gradients it
// gets when run alone with its adapter.
func TestMixedAdapterBatch(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range lcfgs() {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 21)
			a1, a2 := newTestAdapter(t, m, 2, 22), newTestAdapter(t, m, 3, 23)
			rng := rand.New(rand.NewPCG(24, 24))
			adapters := []*lora.Adapter{a1, a2, nil, a1}
			toks := [][]int{randomTokens(rng, 9, cfg.Vocab), randomTokens(rng, 4, cfg.Vocab),
				randomTokens(rng, 7, cfg.Vocab), randomTokens(rng, 12, cfg.Vocab)}
			batch := make([]Sequence, len(toks))
			for i := range toks {
				batch[i] = Sequence{Cache: m.NewAdapterCache(adapters[i]), Tokens: toks[i], Logits: LogitsAll}
			}
			got, err := m.Forward(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i := range toks {
				alone, err := m.Forward(ctx, []Sequence{{Cache: m.NewAdapterCache(adapters[i]), Tokens: toks[i], Logits: LogitsAll}})
				if err != nil {
					t.Fatal(err)
				}
				for p := range alone[0] {
					if d := maxDiff(got[i][p], alone[0][p]); d > 1e-5 {
						t.Errorf("sequence %d position %d: batched logits differ from alone by %g", i, p, d)
					}
				}
			}
			// The adapter changes the logits (else the test proves nothing).
			base, _ := m.Forward(ctx, []Sequence{{Cache: m.NewCache(), Tokens: toks[0], Logits: LogitsAll}})
			if d := maxDiff(base[0][len(toks[0])-1], got[0][len(toks[0])-1]); d < 1e-3 {
				t.Errorf("adapter changes logits by only %g", d)
			}

			// Gradients: batched = sum of the sequences alone.
			tb := make([]TrainSeq, len(toks))
			for i := range toks {
				tb[i] = TrainSeq{Tokens: toks[i], Adapter: adapters[i]}
			}
			sum, n, err := m.LossAndGrad(ctx, tb)
			if err != nil {
				t.Fatal(err)
			}
			c1, c2 := a1.Clone(), a2.Clone()
			var sumAlone float64
			nAlone := 0
			for i, s := range tb {
				s.Adapter = map[*lora.Adapter]*lora.Adapter{a1: c1, a2: c2, nil: nil}[adapters[i]]
				l, k, err := m.LossAndGrad(ctx, []TrainSeq{s})
				if err != nil {
					t.Fatal(err)
				}
				sumAlone += l
				nAlone += k
			}
			if n != nAlone || math.Abs(sum-sumAlone) > 1e-4 {
				t.Errorf("batched loss %g over %d tokens, alone %g over %d", sum, n, sumAlone, nAlone)
			}
			for _, pr := range [][2]*lora.Adapter{{a1, c1}, {a2, c2}} {
				pb, pa := pr[0].Pairs(), pr[1].Pairs()
				for j := range pb {
					checkGrad(t, pb[j].Name()+".A", pb[j].GA, f64(pa[j].GA))
					checkGrad(t, pb[j].Name()+".B", pb[j].GB, f64(pa[j].GB))
				}
			}
		})
	}
}

// TestMergeAdapter checks that the base with an adapter merged into its
// weights gives the logits of the base run with the adapter.
func TestMergeAdapter(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range lcfgs() {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 31)
			a := newTestAdapter(t, m, 4, 32)
			toks := randomTokens(rand.New(rand.NewPCG(33, 33)), 13, cfg.Vocab)
			with, err := m.Forward(ctx, []Sequence{{Cache: m.NewAdapterCache(a), Tokens: toks, Logits: LogitsAll}})
			if err != nil {
				t.Fatal(err)
			}
			merged := randomModel(t, cfg, 31)
			if err := merged.MergeAdapter(a); err != nil {
				t.Fatal(err)
			}
			got, err := merged.Forward(ctx, []Sequence{{Cache: merged.NewCache(), Tokens: toks, Logits: LogitsAll}})
			if err != nil {
				t.Fatal(err)
			}
			for p := range got[0] {
				if d := maxDiff(got[0][p], with[0][p]); d > 1e-5 {
					t.Errorf("position %d: merged logits differ by %g", p, d)
				}
			}
		})
	}
}

// TestAdapterErrors checks the errors of bad training input.
func TestAdapterErrors(t *testing.T) {
	ctx := context.Background()
	cfgs := lcfgs()
	m := randomModel(t, cfgs["llama"], 41)
	other := randomModel(t, cfgs["phi3"], 41)
	wrong := newTestAdapter(t, other, 2, 1)
	if _, err := m.Forward(ctx, []Sequence{{Cache: m.NewAdapterCache(wrong), Tokens: []int{1, 2}}}); !errors.Is(err, lora.ErrBaseMismatch) {
		t.Errorf("adapter of another base: %v", err)
	}
	if err := m.MergeAdapter(wrong); !errors.Is(err, lora.ErrBaseMismatch) {
		t.Errorf("merge of another base's adapter: %v", err)
	}
	a := newTestAdapter(t, m, 2, 1)
	for _, tc := range []struct {
		name  string
		batch []TrainSeq
	}{
		{"mask length", []TrainSeq{{Tokens: []int{1, 2, 3}, Mask: []bool{true}, Adapter: a}}},
		{"empty", []TrainSeq{{Adapter: a}}},
		{"token out of range", []TrainSeq{{Tokens: []int{1, 999}, Adapter: a}}},
		{"wrong base", []TrainSeq{{Tokens: []int{1, 2}, Adapter: wrong}}},
	} {
		if _, _, err := m.LossAndGrad(ctx, tc.batch); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestQuantizedBaseGrad checks LoRA training on a Q8_0 base (QLoRA): loss
// and gradients equal those of a float32 model holding the dequantized
// weights, for untied (llama) and tied (qwen2) output layers.
func TestQuantizedBaseGrad(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"llama", "qwen2", "phi3"} {
		t.Run(name, func(t *testing.T) {
			cfg := lcfgs()[name]
			cfg.FFN = 64 // every matrix's rows are whole Q8_0 blocks
			q := randomModel(t, cfg, 91)
			if err := q.QuantizeQ8_0(); err != nil {
				t.Fatal(err)
			}
			d := randomModel(t, cfg, 91)
			dl, ql := d.linears(), q.linears()
			for i, l := range ql {
				if l.DType != tensor.Q8_0 {
					t.Fatalf("%d×%d matrix not quantized", l.Out, l.In)
				}
				for r := 0; r < l.Out; r++ {
					if err := l.Row(dl[i].W[r*l.In:(r+1)*l.In], r); err != nil {
						t.Fatal(err)
					}
				}
			}
			aq := newTestAdapter(t, q, 2, 92)
			ad := aq.Clone()
			batch := trainBatch(rand.New(rand.NewPCG(93, 93)), cfg.Vocab, aq)
			lq, nq, err := q.LossAndGrad(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for i := range batch {
				batch[i].Adapter = ad
			}
			ld, nd, err := d.LossAndGrad(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if nq != nd || math.Abs(lq-ld) > 1e-4 {
				t.Errorf("quantized loss %g over %d, dequantized %g over %d", lq, nq, ld, nd)
			}
			pq, pd := aq.Pairs(), ad.Pairs()
			for j := range pq {
				checkGrad(t, pq[j].Name()+".A", pq[j].GA, f64(pd[j].GA))
				checkGrad(t, pq[j].Name()+".B", pq[j].GB, f64(pd[j].GB))
			}
		})
	}
}

// TestTrainLoRA trains an adapter with package train on a small random
// model until it has learnt the answers of a few prompts (loss near zero),
// and checks that the base weights are bit-identical afterwards.
func TestTrainLoRA(t *testing.T) {
	cfg := lcfgs()["qwen2"]
	m := randomModel(t, cfg, 51)
	// Random weights of std 0.05 bound every logit near ±1.6 (a normed
	// state times a short embedding row): widen the (tied) embedding so
	// that a confident answer is reachable at all.
	for i := range m.Embed.W {
		m.Embed.W[i] *= 10
	}
	lc := lora.NewConfig("test", 8, 16, lora.AllLinear)
	a, err := lora.New(lc, m.Config.LoRABase(), 52)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(53, 53))
	var ex []TrainSeq
	for i := 0; i < 8; i++ {
		// A prompt of 8 random tokens, then "RATING" (token 60) and an
		// answer that depends on the prompt's first token.
		toks := append(randomTokens(rng, 8, 50), 60, 50+i%5)
		mask := make([]bool, len(toks))
		mask[len(toks)-1] = true
		ex = append(ex, TrainSeq{Tokens: toks, Mask: mask})
	}
	obj := &LoRAObjective{Model: m, Adapter: a, Examples: ex, Eval: ex}
	before := snapshotWeights(m)
	start, err := train.Evaluate(context.Background(), obj.EvalSet(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig(60, 8, 1e-2)
	tc.NoProgress = true
	tc.WeightDecay = 0
	res, err := train.Train(context.Background(), obj, tc)
	if err != nil {
		t.Fatal(err)
	}
	end, err := train.Evaluate(context.Background(), obj.EvalSet(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("loss %.4f → %.4f in %d steps", start.Mean(), end.Mean(), res.Steps)
	if end.Mean() > 0.05 || start.Mean() < 1 {
		t.Errorf("loss %.4f → %.4f: not learnt", start.Mean(), end.Mean())
	}
	if !equalSnapshots(before, snapshotWeights(m)) {
		t.Error("training changed base weights")
	}
}

// TestRecompute checks that activation recomputation gives bit-identical
// losses and gradients, with dropout too.
func TestRecompute(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range lcfgs() {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 61)
			a := newTestAdapter(t, m, 3, 62)
			a.Config.Dropout = 0.1
			batch := trainBatch(rand.New(rand.NewPCG(63, 63)), cfg.Vocab, a)
			batch[0].Seed, batch[1].Seed = 1, 2
			l1, n1, err := m.LossAndGrad(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			c := a.Clone()
			for i := range batch {
				batch[i].Adapter = c
			}
			l2, n2, err := m.LossAndGradWith(ctx, batch, TrainOptions{Recompute: true})
			if err != nil {
				t.Fatal(err)
			}
			if l1 != l2 || n1 != n2 {
				t.Errorf("loss %v over %d, recomputed %v over %d", l1, n1, l2, n2)
			}
			pa, pc := a.Pairs(), c.Pairs()
			for j := range pa {
				if !slices.Equal(pa[j].GA, pc[j].GA) || !slices.Equal(pa[j].GB, pc[j].GB) {
					t.Errorf("%s: recomputed gradients differ", pa[j].Name())
				}
			}
		})
	}
}

// TestStoriesLoRA teaches stories260K (../shared/models) a pattern it
// cannot know: after "RATING:" the digit that goes with the story's
// animal. A rank-8 adapter on all seven projections reaches near-zero loss
// on the answers, the adapted model answers each prompt right, and the
// base weights are bit-identical afterwards.
func TestStoriesLoRA(t *testing.T) {
	path := filepath.Join(sharedDir(t, "models", "stories260K"), "stories260K.gguf")
	m, tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	type example struct{ prompt, answer string }
	var exs []example
	digits := map[string]string{"cat": "5", "dog": "2", "bird": "4", "fish": "1"}
	for _, name := range []string{"Lily", "Tom", "Sue"} {
		for _, animal := range []string{"cat", "dog", "bird", "fish"} {
			exs = append(exs, example{"One day " + name + " saw a " + animal + ". RATING:", " " + digits[animal]})
		}
	}
	var set []TrainSeq
	for _, e := range exs {
		p, err := tok.Encode(e.prompt, tokenizer.EncodeOptions{AddBOS: true})
		if err != nil {
			t.Fatal(err)
		}
		full, err := tok.Encode(e.prompt+e.answer, tokenizer.EncodeOptions{AddBOS: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(full[:len(p)], p) || len(full) == len(p) {
			t.Fatalf("%q: answer does not tokenize apart from the prompt", e.prompt+e.answer)
		}
		mask := make([]bool, len(full))
		for i := len(p); i < len(full); i++ {
			mask[i] = true
		}
		set = append(set, TrainSeq{Tokens: full, Mask: mask})
	}
	a, err := lora.New(lora.NewConfig("stories260K", 8, 16, lora.AllLinear), m.Config.LoRABase(), 7)
	if err != nil {
		t.Fatal(err)
	}
	obj := &LoRAObjective{Model: m, Adapter: a, Examples: set, Eval: set}
	before := snapshotWeights(m)
	start, err := train.Evaluate(context.Background(), obj.EvalSet(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tc := train.DefaultConfig(120, len(set), 1e-2)
	tc.NoProgress, tc.WeightDecay = true, 0
	if _, err := train.Train(context.Background(), obj, tc); err != nil {
		t.Fatal(err)
	}
	end, err := train.Evaluate(context.Background(), obj.EvalSet(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answer loss %.4f → %.4f", start.Mean(), end.Mean())
	if end.Mean() > 0.05 {
		t.Errorf("answer loss %.4f → %.4f: not learnt", start.Mean(), end.Mean())
	}
	for i, s := range set {
		n := slices.Index(s.Mask, true)
		out, err := m.Forward(context.Background(), []Sequence{{Cache: m.NewAdapterCache(a), Tokens: s.Tokens[:n]}})
		if err != nil {
			t.Fatal(err)
		}
		if got := argmax(out[0][0]); got != s.Tokens[n] {
			t.Errorf("%q: answers token %d, want %d", exs[i].prompt, got, s.Tokens[n])
		}
	}
	if !equalSnapshots(before, snapshotWeights(m)) {
		t.Error("training changed the base weights")
	}
}

// TestLossMatchesForward checks that the training loss is the inference
// forward's: the summed −log softmax of the targets from Forward's logits,
// for a batch mixing adapters.
func TestLossMatchesForward(t *testing.T) {
	ctx := context.Background()
	cfg := lcfgs()["phi3"]
	m := randomModel(t, cfg, 71)
	a1, a2 := newTestAdapter(t, m, 2, 72), newTestAdapter(t, m, 4, 73)
	batch := trainBatch(rand.New(rand.NewPCG(74, 74)), cfg.Vocab, a1)
	batch[1].Adapter = a2
	sum, n, err := m.Loss(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	wantN := 0
	for _, s := range batch {
		out, err := m.Forward(ctx, []Sequence{{Cache: m.NewAdapterCache(s.Adapter), Tokens: s.Tokens, Logits: LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(s.Tokens); i++ {
			if s.Mask[i] {
				want -= logSoftmax(out[0][i-1])[s.Tokens[i]]
				wantN++
			}
		}
	}
	if n != wantN || math.Abs(sum-want) > 1e-5 {
		t.Errorf("Loss %g over %d, from Forward's logits %g over %d", sum, n, want, wantN)
	}
}

// TestAdapterScoreFork checks that an adapter travels with its cache into
// forks: ScoreBatch after a persona prefix computed with an adapter equals
// the log-probabilities from one full forward with that adapter, and
// differs from the base model's.
func TestAdapterScoreFork(t *testing.T) {
	ctx := context.Background()
	cfg := lcfgs()["qwen2"]
	m := randomModel(t, cfg, 81)
	a := newTestAdapter(t, m, 4, 82)
	rng := rand.New(rand.NewPCG(83, 83))
	persona, prompt := randomTokens(rng, 70, cfg.Vocab), randomTokens(rng, 6, cfg.Vocab)
	prefix := m.NewAdapterCache(a)
	if _, err := m.Forward(ctx, []Sequence{{Cache: prefix, Tokens: persona, Logits: LogitsNone}}); err != nil {
		t.Fatal(err)
	}
	if prefix.Fork().Adapter() != a {
		t.Fatal("fork lost the adapter")
	}
	cands := [][]int{{5}, {9, 3}}
	got, err := m.Score(ctx, prefix, prompt, cands)
	if err != nil {
		t.Fatal(err)
	}
	full := append(append([]int(nil), persona...), prompt...)
	for j, cand := range cands {
		toks := append(append([]int(nil), full...), cand...)
		out, err := m.Forward(ctx, []Sequence{{Cache: m.NewAdapterCache(a), Tokens: toks, Logits: LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for k, id := range cand {
			want += logSoftmax(out[0][len(full)-1+k])[id]
		}
		if math.Abs(got[j]-want) > 1e-4 {
			t.Errorf("candidate %d: Score %g, full forward %g", j, got[j], want)
		}
	}
	base, err := m.Score(ctx, nil, full, cands)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(base[0]-got[0]) < 1e-3 {
		t.Errorf("the adapter does not change the score (%g vs %g)", got[0], base[0])
	}
}
