package generate

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/slm"
)

type silent struct{}

func (silent) Push(int) string { return "" }
func (silent) Flush() string   { return "" }

// BenchmarkBatch compares generating 4 sequences of 16 tokens one after
// another with generating them in one batch, on a random model of
// SmolLM2-135M's width with 6 layers.
func BenchmarkBatch(b *testing.B) {
	cfg := slm.Config{Arch: "llama", Hidden: 576, Layers: 6, Heads: 9, KVHeads: 3, HeadDim: 64, FFN: 1536,
		Vocab: 49152, NormEps: 1e-5, RopeTheta: 100000, RopeDim: 64, RopeStyle: slm.RopeNeoX,
		TiedEmbeddings: true, BOS: 1, EOS: []int{2}, MaxContext: 8192}
	m, err := slm.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.InitRandom(rand.New(rand.NewPCG(1, 2)), 0.02); err != nil {
		b.Fatal(err)
	}
	never := func(int) bool { return false }
	const n, gen = 4, 16
	prompts := make([][]int, n)
	for i := range prompts {
		prompts[i] = []int{1, 100 + i, 200 + i, 300 + i, 400 + i, 500 + i, 600 + i, 700 + i}
	}
	opt := Options{MaxTokens: gen, IgnoreEOS: true}
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			for _, p := range prompts {
				if _, err := run(context.Background(), m, never, silent{}, p, 0, opt, nil); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n*gen*b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			seqs := make([]*seq, n)
			for i, p := range prompts {
				seqs[i] = newSeq(Request{Prompt: p, Options: opt}, never, silent{}, 0)
			}
			if _, err := runBatch(context.Background(), m, seqs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*gen*b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}
