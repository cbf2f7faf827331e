package agent

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/slm"
)

// BenchmarkScore compares ways of rating 18 prompts (3 users of different
// adapters × 6 items) on a random model of hidden width 128, 4 layers:
// batched with each user's shared prefix forked, batched recomputing whole
// prompts, and one prompt per call with the prefix.
func BenchmarkScore(b *testing.B) {
	ctx := context.Background()
	w := newWorld(b, dataset.FiveStars)
	tm := newTinyModel(b, w)
	cfg, err := slm.CompactConfig(slm.CompactOptions{Preset: "tiny", Hidden: 128, Layers: 4, Heads: 4, KVHeads: 2,
		Vocab: tm.tok.VocabSize(), BOS: tm.tok.BOS(), EOS: []int{tm.tok.EOS()}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := slm.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.InitRandom(rand.New(rand.NewPCG(1, 1)), 0.05); err != nil {
		b.Fatal(err)
	}
	tm2 := newTinyModelFor(b, tm, m)
	p, l := newLocalPool(b, w, tm2, Config{})
	var prompts []Prompt
	for _, u := range []string{"u1", "u2", "u3"} {
		a, _ := p.Agent(u)
		for _, it := range w.d.Items {
			pr, err := a.RatingPrompt(it.ID)
			if err != nil {
				b.Fatal(err)
			}
			prompts = append(prompts, pr)
		}
	}
	whole := make([]Prompt, len(prompts))
	for i, pr := range prompts {
		pr.Prefix = 0
		whole[i] = pr
	}
	toks, shared := 0, 0
	for _, pr := range prompts {
		c, rest, err := l.start(ctx, pr)
		if err != nil {
			b.Fatal(err)
		}
		toks += c.Len() + len(rest)
		shared += c.Len()
	}
	b.Logf("%d prompts, %d tokens in all, %d of them in shared prefixes", len(prompts), toks, shared)
	b.Run("batch-prefix", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Score(ctx, prompts, p.answers); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch-whole", func(b *testing.B) {
		for b.Loop() {
			if _, err := l.Score(ctx, whole, p.answers); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("single-prefix", func(b *testing.B) {
		for b.Loop() {
			for _, pr := range prompts {
				if _, err := l.Score(ctx, []Prompt{pr}, p.answers); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
