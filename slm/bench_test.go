package slm

import (
	"context"
	"sync"
	"testing"

	"github.com/usersim/usersim/slm/kernels"
)

// The benchmarks run the SmolLM2-135M-shaped random model (30 layers, hidden
// 576, 9 heads, 3 kv heads, MLP 1536, vocab 49152) on 2 threads, as
// llama.cpp's llama-bench was run on this machine (DESIGN.md §5):
//
//	go test -run '^$' -bench 'Prefill' -benchtime 3x -count 3 ./slm/
//	go test -run '^$' -bench 'Decode' -benchtime 40x -count 3 ./slm/
//	go test -run '^$' -bench 'ScoreRating' -benchtime 4x ./slm/

var (
	benchOnce   sync.Once
	benchModels map[string]*Model
)

func benchModel(b *testing.B, kind string) *Model {
	benchOnce.Do(func() {
		f32 := randomModel(b, smolConfig(30), 42)
		q8 := randomModel(b, smolConfig(30), 42)
		if err := q8.QuantizeQ8_0(); err != nil {
			b.Fatal(err)
		}
		benchModels = map[string]*Model{"F32": f32, "Q8_0": q8}
	})
	return benchModels[kind]
}

func BenchmarkPrefill512(b *testing.B) {
	for _, kind := range []string{"F32", "Q8_0"} {
		b.Run(kind, func(b *testing.B) {
			m := benchModel(b, kind)
			prev := kernels.Threads()
			kernels.SetThreads(2)
			defer kernels.SetThreads(prev)
			toks := make([]int, 512)
			for i := range toks {
				toks[i] = (i*7919 + 13) % m.Config.Vocab
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Forward(context.Background(), []Sequence{{Cache: m.NewCache(), Tokens: toks}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkDecode generates one token at a time after a 16-token prompt
// (b.N tokens in all, as llama-bench's tg test).
func BenchmarkDecode(b *testing.B) {
	for _, kind := range []string{"F32", "Q8_0"} {
		b.Run(kind, func(b *testing.B) {
			m := benchModel(b, kind)
			prev := kernels.Threads()
			kernels.SetThreads(2)
			defer kernels.SetThreads(prev)
			ctx := context.Background()
			c := m.NewCache()
			prompt := make([]int, 16)
			if _, err := m.Forward(ctx, []Sequence{{Cache: c, Tokens: prompt}}); err != nil {
				b.Fatal(err)
			}
			tok := 1
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := m.Forward(ctx, []Sequence{{Cache: c, Tokens: []int{tok}}})
				if err != nil {
					b.Fatal(err)
				}
				tok = argmax(out[0][0])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkScoreRating is the agents' workload: a 256-token persona prefix
// computed once and forked, then per rating a ~64-token item prompt and the
// distribution over five one-token answers; one at a time (Score) and eight
// prompts per batch (ScoreBatch).
func BenchmarkScoreRating(b *testing.B) {
	for _, kind := range []string{"F32", "Q8_0"} {
		b.Run(kind, func(b *testing.B) {
			m := benchModel(b, kind)
			prev := kernels.Threads()
			kernels.SetThreads(2)
			defer kernels.SetThreads(prev)
			ctx := context.Background()
			prefix := m.NewCache()
			toks := make([]int, 256+64)
			for i := range toks {
				toks[i] = (i*104729 + 7) % m.Config.Vocab
			}
			if _, err := m.Forward(ctx, []Sequence{{Cache: prefix, Tokens: toks[:256], Logits: LogitsNone}}); err != nil {
				b.Fatal(err)
			}
			cands := [][]int{{33}, {34}, {35}, {36}, {37}}
			b.Run("one", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := m.ScoreDistribution(ctx, prefix, toks[256:], cands); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ratings/s")
			})
			b.Run("batch8", func(b *testing.B) {
				prompts := make([][]int, 8)
				for i := range prompts {
					prompts[i] = toks[256-i:]
				}
				for i := 0; i < b.N; i++ {
					if _, err := m.ScoreBatch(ctx, prefix, prompts, cands); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(8*b.N)/b.Elapsed().Seconds(), "ratings/s")
			})
		})
	}
}

// BenchmarkDecodeBatch8 decodes 8 sequences at once (one token each per
// Forward): weights are read once per step for all 8, so throughput grows.
func BenchmarkDecodeBatch8(b *testing.B) {
	for _, kind := range []string{"F32", "Q8_0"} {
		b.Run(kind, func(b *testing.B) {
			m := benchModel(b, kind)
			prev := kernels.Threads()
			kernels.SetThreads(2)
			defer kernels.SetThreads(prev)
			ctx := context.Background()
			batch := make([]Sequence, 8)
			for i := range batch {
				batch[i] = Sequence{Cache: m.NewCache(), Tokens: make([]int, 16), Logits: LogitsNone}
			}
			if _, err := m.Forward(ctx, batch); err != nil {
				b.Fatal(err)
			}
			for i := range batch {
				batch[i].Tokens, batch[i].Logits = []int{i + 1}, LogitsLast
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := m.Forward(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				for j := range batch {
					batch[j].Tokens[0] = argmax(out[j][0])
				}
			}
			b.ReportMetric(float64(8*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
