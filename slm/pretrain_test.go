package slm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train"
)

// patternCorpus is a small repetitive corpus: the same sentence shapes with
// a few names and ratings, as blank-line separated documents.
func patternCorpus(n int) string {
	names := []string{"alice", "bob", "carol", "dave"}
	films := []string{"heat", "alien", "fargo", "brazil", "up"}
	var b strings.Builder
	for i := 0; i < n; i++ {
		u, f := names[i%len(names)], films[(i/len(names))%len(films)]
		fmt.Fprintf(&b, "user %s watched %s. RATING: %d\n\n", u, f, 1+(len(u)+len(f))%5)
	}
	return b.String()
}

// tinyBase writes a compact base of 2 layers, width 64 and a 300-token
// BPE vocabulary trained on corpus into a temporary directory.
func tinyBase(t testing.TB, corpus string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	topt := CompactTokenizerOptions()
	topt.VocabSize = 300
	_, err := InitCompact(context.Background(), strings.NewReader(corpus), dir, InitOptions{
		Model:     CompactOptions{Preset: "tiny", Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, Context: 128},
		Tokenizer: topt, Seed: 1, CharsPerTokenSample: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func greedy(t *testing.T, m *Model, tok *tokenizer.Tokenizer, prompt string, n int) string {
	t.Helper()
	ids, err := tok.Encode(prompt, tokenizer.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids = append([]int{tok.BOS()}, ids...)
	c := m.NewCache()
	next := ids
	var out []int
	for range n {
		logits, err := m.Forward(context.Background(), []Sequence{{Cache: c, Tokens: next, Logits: LogitsLast}})
		if err != nil {
			t.Fatal(err)
		}
		row := logits[0][0]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out = append(out, best)
		next = []int{best}
	}
	s, err := tok.DecodeWith(out, tokenizer.DecodeOptions{Continuation: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPretrainLearnsCorpus pretrains a tiny model on a repetitive corpus:
// the loss ends far below ln(vocab), greedy generation continues a prompt
// with the corpus's sentence, and the written directory loads with the
// same weights.
func TestPretrainLearnsCorpus(t *testing.T) {
	corpus := patternCorpus(400)
	dir := tinyBase(t, corpus)
	m, tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Pretrain(context.Background(), m, tok, SplitDocuments(corpus), PretrainOptions{
		SeqLen: 64, Steps: 120, Batch: 8, LR: 1e-2, Seed: 3, NoProgress: true, OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	lnV := math.Log(float64(m.Config.Vocab))
	t.Logf("%d tokens, %d+%d sequences, loss %.3f → %.3f (ln V %.2f), eval %.3f, %.0f tokens/s",
		res.CorpusTokens, res.Sequences, res.EvalSequences, res.FirstLoss, res.LastLoss, lnV, res.EvalLoss, res.TokensPerSec)
	if res.FirstLoss < 0.8*lnV || res.LastLoss > 0.2*lnV || !(res.EvalLoss < 0.25*lnV) {
		t.Errorf("loss %.3f → %.3f, eval %.3f: not learned (ln V = %.2f)", res.FirstLoss, res.LastLoss, res.EvalLoss, lnV)
	}
	if got := greedy(t, m, tok, "user alice watched heat", 4); !strings.HasPrefix(got, ". RATING:") {
		t.Errorf("greedy continuation %q, want the corpus's \". RATING:\"", got)
	}
	for _, f := range []string{train.CurveCSV, train.CurveSVG} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	saved := filepath.Join(out, "model")
	if err := m.WritePretrained(saved, dir); err != nil {
		t.Fatal(err)
	}
	m2, tok2, err := Load(saved)
	if err != nil {
		t.Fatal(err)
	}
	if tok2.VocabSize() != tok.VocabSize() || !equalSnapshots(snapshotWeights(m), snapshotWeights(m2)) {
		t.Error("the written model differs from the trained one")
	}
}

// TestPretrainResume kills a pretraining run (cancels its context) midway,
// resumes it from its checkpoint, and checks that the final weights equal
// an uninterrupted run's bit for bit.
func TestPretrainResume(t *testing.T) {
	corpus := patternCorpus(120)
	dir := tinyBase(t, corpus)
	docs := SplitDocuments(corpus)
	opt := PretrainOptions{SeqLen: 32, Steps: 8, Batch: 4, MicroBatch: 2, LR: 5e-3, Seed: 9, NoProgress: true, EvalEvery: 3}

	straight, tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pretrain(context.Background(), straight, tok, docs, opt); err != nil {
		t.Fatal(err)
	}

	m, _, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	opt.CheckpointDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	opt.Logger = nil
	killAt := &cancelAfter{n: 9, cancel: cancel, calls: &calls} // during step 5 (2 micro-batches per step)
	res, err := pretrainHooked(ctx, m, tok, docs, opt, killAt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v (result %+v)", err, res)
	}
	m2, _, err := Load(dir) // a fresh process: the weights come from the checkpoint
	if err != nil {
		t.Fatal(err)
	}
	opt.Resume = true
	if _, err := Pretrain(context.Background(), m2, tok, docs, opt); err != nil {
		t.Fatal(err)
	}
	if !equalSnapshots(snapshotWeights(straight), snapshotWeights(m2)) {
		t.Error("resumed run's weights differ from the uninterrupted run's")
	}
	if equalSnapshots(snapshotWeights(m2), snapshotWeights(m)) && calls < 9 {
		t.Error("the run was not interrupted")
	}
}

// cancelAfter cancels a context on its n-th training call.
type cancelAfter struct {
	n      int
	calls  *int
	cancel context.CancelFunc
}

// pretrainHooked is Pretrain with a hook run before each LossAndGrad.
func pretrainHooked(ctx context.Context, m *Model, tok *tokenizer.Tokenizer, docs []string, opt PretrainOptions, h *cancelAfter) (*PretrainResult, error) {
	pretrainHook = func() {
		*h.calls++
		if *h.calls == h.n {
			h.cancel()
		}
	}
	defer func() { pretrainHook = nil }()
	return Pretrain(ctx, m, tok, docs, opt)
}

// TestLoRAResume trains an adapter 2N steps straight, and N steps, a
// cancel, and N more resumed from the checkpoint: the adapters are
// bit-identical.
func TestLoRAResume(t *testing.T) {
	ctx := context.Background()
	cfg := lcfgs()["llama"]
	m := randomModel(t, cfg, 71)
	mk := func() *lora.Adapter {
		lc := lora.NewConfig("test", 4, 8, lora.AllLinear)
		lc.Dropout = 0.1
		a, err := lora.New(lc, m.Config.LoRABase(), 72)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	var ex []TrainSeq
	for i := 0; i < 12; i++ {
		ex = append(ex, trainBatch(rand.New(rand.NewPCG(uint64(i), 73)), cfg.Vocab, nil)[0])
	}
	const n = 5
	conf := func(dir string) train.Config {
		c := train.DefaultConfig(2*n, 4, 1e-2)
		c.MicroBatch, c.Seed, c.NoProgress, c.CheckpointDir = 2, 7, true, dir
		return c
	}
	a1 := mk()
	if _, err := train.Train(ctx, &LoRAObjective{Model: m, Adapter: a1, Examples: ex}, conf("")); err != nil {
		t.Fatal(err)
	}
	a2 := mk()
	dir := t.TempDir()
	cctx, cancel := context.WithCancel(ctx)
	obj := &stopAfter{LoRAObjective: &LoRAObjective{Model: m, Adapter: a2, Examples: ex}, n: 2 * n, cancel: cancel}
	if _, err := train.Train(cctx, obj, conf(dir)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	a3 := mk() // a fresh adapter: the weights come from the checkpoint
	c := conf(dir)
	c.Resume = true
	if _, err := train.Train(ctx, &LoRAObjective{Model: m, Adapter: a3, Examples: ex}, c); err != nil {
		t.Fatal(err)
	}
	p1, p3 := a1.Pairs(), a3.Pairs()
	for i := range p1 {
		for k, xs := range [][2][]float32{{p1[i].A, p3[i].A}, {p1[i].B, p3[i].B}} {
			for j := range xs[0] {
				if math.Float32bits(xs[0][j]) != math.Float32bits(xs[1][j]) {
					t.Fatalf("%s %s[%d]: %g straight, %g resumed", p1[i].Name(), "AB"[k:k+1], j, xs[0][j], xs[1][j])
				}
			}
		}
	}
}

// stopAfter cancels training on its n-th LossAndGrad call (the first
// micro-batch of step n/2+1 with two per step).
type stopAfter struct {
	*LoRAObjective
	n, calls int
	cancel   context.CancelFunc
}

func (s *stopAfter) LossAndGrad(ctx context.Context, b train.Batch) (train.Loss, error) {
	s.calls++
	if s.calls == s.n+1 {
		s.cancel()
	}
	return s.LoRAObjective.LossAndGrad(ctx, b)
}
