package slm

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestScore(t *testing.T) {
	cfg := testConfigs(t)["qwen2"]
	m := randomModel(t, cfg, 7)
	rng := rand.New(rand.NewPCG(8, 8))
	prefix := randomTokens(rng, 20, cfg.Vocab)
	prompt := randomTokens(rng, 4, cfg.Vocab)
	cands := [][]int{{5}, {6, 7}, {5, 9, 11}, {300}}
	ctx := context.Background()

	pc := m.NewCache()
	if _, err := m.Forward(ctx, []Sequence{{Cache: pc, Tokens: prefix, Logits: LogitsNone}}); err != nil {
		t.Fatal(err)
	}
	got, err := m.Score(ctx, pc, prompt, cands)
	if err != nil {
		t.Fatal(err)
	}
	if pc.Len() != len(prefix) {
		t.Fatalf("Score changed the prefix cache: len %d", pc.Len())
	}
	base := append(append([]int(nil), prefix...), prompt...)
	for i, cand := range cands {
		seq := append(append([]int(nil), base...), cand...)
		logits := refForward(t, m, seq)
		var want float64
		for j, tok := range cand {
			want += refLogSoftmax(logits[len(base)-1+j])[tok]
		}
		if math.Abs(got[i]-want) > 1e-4 {
			t.Errorf("candidate %v: log-prob %g, reference %g", cand, got[i], want)
		}
	}
	p := Normalize(got)
	var sum float64
	for i := range p {
		sum += p[i]
		if math.Abs(math.Log(p[i])-(got[i]-got[0])-math.Log(p[0])) > 1e-9 {
			t.Errorf("Normalize: ratio of %d to 0 is off", i)
		}
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Errorf("distribution sums to %g", sum)
	}

	// With no prompt, Score uses the prefix's last logits when known.
	full := m.NewCache()
	if _, err := m.Forward(ctx, []Sequence{{Cache: full, Tokens: base, Logits: LogitsLast}}); err != nil {
		t.Fatal(err)
	}
	again, err := m.Score(ctx, full, nil, cands)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if math.Abs(again[i]-got[i]) > 1e-5 {
			t.Errorf("candidate %d: %g from the cached last logits, %g with the prompt", i, again[i], got[i])
		}
	}
	if _, err := m.Score(ctx, pc.Fork(), nil, cands); err == nil {
		t.Error("no prompt and no known last logits: no error")
	}
	for _, bad := range [][][]int{nil, {{}}, {{cfg.Vocab}}} {
		if _, err := m.Score(ctx, nil, prompt, bad); err == nil {
			t.Errorf("candidates %v: no error", bad)
		}
	}
}

func refLogSoftmax(x []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, v)
	}
	var s float64
	for _, v := range x {
		s += math.Exp(v - mx)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v - mx - math.Log(s)
	}
	return out
}

func TestHidden(t *testing.T) {
	cfg := testConfigs(t)["phi3"]
	m := randomModel(t, cfg, 12)
	toks := []int{3, 1, 4, 1, 5}
	h, err := m.Hidden(context.Background(), m.NewCache(), toks)
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Forward(context.Background(), []Sequence{{Cache: m.NewCache(), Tokens: toks, Logits: LogitsAll}})
	if err != nil {
		t.Fatal(err)
	}
	// Projecting the hidden states by the output matrix gives the logits.
	for i, row := range h {
		logits := make([]float32, cfg.Vocab)
		m.output().Forward(logits, row, 1)
		if d := maxDiff(logits, out[0][i]); d > 1e-5 {
			t.Errorf("position %d: hidden·Wᵀ differs from the logits by %g", i, d)
		}
	}
}

// TestScoreConcurrent scores from one shared prefix in several goroutines
// at once (run with -race): results equal the sequential ones.
func TestScoreConcurrent(t *testing.T) {
	cfg := testConfigs(t)["qwen2"]
	m := randomModel(t, cfg, 13)
	ctx := context.Background()
	prefix := m.NewCache()
	rng := rand.New(rand.NewPCG(1, 3))
	if _, err := m.Forward(ctx, []Sequence{{Cache: prefix, Tokens: randomTokens(rng, 100, cfg.Vocab), Logits: LogitsNone}}); err != nil {
		t.Fatal(err)
	}
	prompts := make([][]int, 8)
	want := make([][]float64, len(prompts))
	cands := [][]int{{1}, {2, 3}, {4}}
	for i := range prompts {
		prompts[i] = randomTokens(rng, 5+i, cfg.Vocab)
		var err error
		if want[i], err = m.Score(ctx, prefix, prompts[i], cands); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]float64, len(prompts))
	errs := make([]error, len(prompts))
	var wg sync.WaitGroup
	for i := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = m.Score(ctx, prefix, prompts[i], cands)
		}()
	}
	wg.Wait()
	for i := range prompts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for j := range cands {
			if math.Abs(got[i][j]-want[i][j]) > 1e-6 {
				t.Errorf("prompt %d candidate %d: %g concurrently, %g alone", i, j, got[i][j], want[i][j])
			}
		}
	}
}

func TestScoreBatch(t *testing.T) {
	cfg := testConfigs(t)["phi3"]
	m := randomModel(t, cfg, 14)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	prefix := m.NewCache()
	if _, err := m.Forward(ctx, []Sequence{{Cache: prefix, Tokens: randomTokens(rng, 30, cfg.Vocab), Logits: LogitsNone}}); err != nil {
		t.Fatal(err)
	}
	prompts := [][]int{randomTokens(rng, 7, cfg.Vocab), randomTokens(rng, 1, cfg.Vocab), randomTokens(rng, 12, cfg.Vocab)}
	cands := [][]int{{9}, {10, 11, 12}, {13, 14}}
	got, err := m.ScoreBatch(ctx, prefix, prompts, cands)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		want, err := m.Score(ctx, prefix, p, cands)
		if err != nil {
			t.Fatal(err)
		}
		for j := range cands {
			if math.Abs(got[i][j]-want[j]) > 1e-5 {
				t.Errorf("prompt %d candidate %d: batch %g, alone %g", i, j, got[i][j], want[j])
			}
		}
	}
	if _, err := m.ScoreBatch(ctx, prefix, nil, cands); err == nil {
		t.Error("no prompts: no error")
	}
}

// TestLastLogitsNotAliased checks that changing returned logits (as a
// sampler does) does not change what the cache remembers.
func TestLastLogitsNotAliased(t *testing.T) {
	cfg := testConfigs(t)["qwen2"]
	m := randomModel(t, cfg, 15)
	ctx := context.Background()
	c := m.NewCache()
	out, err := m.Forward(ctx, []Sequence{{Cache: c, Tokens: []int{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]float32(nil), out[0][0]...)
	for i := range out[0][0] {
		out[0][0][i] = 0
	}
	again, err := m.Forward(ctx, []Sequence{{Cache: c}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(again[0][0], want); d != 0 {
		t.Errorf("cached last logits changed by %g", d)
	}
}
