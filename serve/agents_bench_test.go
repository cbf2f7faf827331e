package serve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/usersim/usersim/agent"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/train/raft"
)

// BenchmarkAgentRate rates two items per call from 8 concurrent callers over
// the users of two personas, on a Local backend directly and through a
// BatchBackend that merges the callers' prompts into shared forward passes.
// The model is random, 2 layers of SmolLM2-135M's width (576), with the
// agent world's tokenizer. Run with -benchtime 24x: one op is ~0.1 s here.
func BenchmarkAgentRate(b *testing.B) {
	aw := newAgentWorld(b)
	cfg, err := slm.CompactConfig(slm.CompactOptions{Preset: "tiny", Hidden: 576, Layers: 2, Heads: 9, KVHeads: 3, Context: 2048,
		Vocab: aw.tok.VocabSize(), BOS: aw.tok.BOS(), EOS: []int{aw.tok.EOS()}})
	if err != nil {
		b.Fatal(err)
	}
	m, err := slm.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.InitRandom(rand.New(rand.NewPCG(5, 6)), 0.05); err != nil {
		b.Fatal(err)
	}
	set, err := lora.NewSet(cfg.LoRABase())
	if err != nil {
		b.Fatal(err)
	}
	for k := range 2 {
		a, err := lora.New(lora.NewConfig("bench", 8, 16, lora.AllLinear), cfg.LoRABase(), uint64(k+1))
		if err != nil {
			b.Fatal(err)
		}
		if err := set.Add(fmt.Sprintf("persona-%d", k), a); err != nil {
			b.Fatal(err)
		}
	}
	for _, batched := range []bool{false, true} {
		name := "direct"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			l, err := agent.NewLocal(m, aw.tok, set)
			if err != nil {
				b.Fatal(err)
			}
			var backend agent.Backend = l
			if batched {
				bb := NewBatchBackend(l, 0, 0)
				defer bb.Close()
				backend = bb
			}
			pool, err := agent.NewPool(aw.in, raft.Options{}, backend, agent.Config{Adapter: agent.PersonaAdapters("persona-%d")})
			if err != nil {
				b.Fatal(err)
			}
			// Warm the users' shared prefixes.
			for _, u := range aw.profiled {
				a, err := pool.Agent(u)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.Rate(context.Background(), aw.d.Items[0].ID); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(4) // 8 callers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					a, _ := pool.Agent(aw.profiled[i%len(aw.profiled)])
					items := []string{aw.d.Items[i%len(aw.d.Items)].ID, aw.d.Items[(i+7)%len(aw.d.Items)].ID}
					if _, err := a.RateMany(context.Background(), items); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*2)/b.Elapsed().Seconds(), "ratings/s")
		})
	}
}
