package slm

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/usersim/usersim/slm/kernels"
)

// smolConfig is SmolLM2-135M's shape (layers may be reduced).
func smolConfig(layers int) Config {
	return Config{Arch: "llama", Hidden: 576, Layers: layers, Heads: 9, KVHeads: 3, HeadDim: 64, FFN: 1536,
		Vocab: 49152, NormEps: 1e-5, RopeTheta: 100000, RopeDim: 64, RopeStyle: RopeNeoX,
		TiedEmbeddings: true, BOS: 1, EOS: []int{2}, MaxContext: 8192}
}

// testConfigs are the architectures every forward property is checked on.
func testConfigs(t *testing.T) map[string]Config {
	layers := 30
	if testing.Short() {
		layers = 2
	}
	qwen := Config{Arch: "qwen2", Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 128, Vocab: 512,
		NormEps: 1e-6, RopeTheta: 1e6, RopeDim: 16, RopeStyle: RopeNeoX, QKVBias: true, TiedEmbeddings: true,
		BOS: -1, MaxContext: 4096}
	phi := Config{Arch: "phi3", Hidden: 96, Layers: 2, Heads: 6, KVHeads: 2, HeadDim: 16, FFN: 160, Vocab: 300,
		NormEps: 1e-5, RopeTheta: 1e4, RopeDim: 16, RopeStyle: RopeNeoX, FusedQKV: true, FusedGateUp: true,
		SlidingWindow: 37, BOS: 1, MaxContext: 4096}
	gguf := Config{Arch: "llama", Hidden: 64, Layers: 3, Heads: 8, KVHeads: 4, HeadDim: 8, FFN: 96, Vocab: 256,
		NormEps: 1e-5, RopeTheta: 1e4, RopeDim: 8, RopeStyle: RopeInterleaved, BOS: 1, MaxContext: 512,
		RopeScaling: RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalContext: 64}}
	return map[string]Config{"smol": smolConfig(layers), "qwen2": qwen, "phi3": phi, "llama-interleaved": gguf}
}

func randomModel(t testing.TB, cfg Config, seed uint64) *Model {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitRandom(rand.New(rand.NewPCG(seed, 1)), 0.05); err != nil {
		t.Fatal(err)
	}
	return m
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

// runAll feeds tokens to a fresh cache in chunks of the given sizes and
// returns the logits of every position.
func runAll(t *testing.T, m *Model, c *Cache, tokens []int, chunk int) [][]float32 {
	t.Helper()
	var rows [][]float32
	for i := 0; i < len(tokens); i += chunk {
		out, err := m.Forward(context.Background(), []Sequence{{Cache: c, Tokens: tokens[i:min(i+chunk, len(tokens))], Logits: LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, out[0]...)
	}
	return rows
}

func TestForwardMatchesReference(t *testing.T) {
	for name, cfg := range testConfigs(t) {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 1)
			rng := rand.New(rand.NewPCG(2, 2))
			n := 300 // several attention chunks; passes phi3's sliding window of 37
			if name == "smol" {
				n = 6
			}
			toks := randomTokens(rng, n, cfg.Vocab)
			want := refForward(t, m, toks)
			got := runAll(t, m, m.NewCache(), toks, len(toks))
			for i := range want {
				if d := maxDiff(got[i], want[i]); d > 1e-4 {
					t.Errorf("position %d: max |Δlogit| %g vs float64 reference", i, d)
				}
				if argmax(got[i]) != argmax(want[i]) {
					t.Errorf("position %d: argmax %d, reference %d", i, argmax(got[i]), argmax(want[i]))
				}
			}
		})
	}
}

// TestForwardConsistency checks that cached = recomputed, batched =
// one-by-one, forked prefix = recomputed, and fast kernels = reference
// kernels, on every test architecture.
func TestForwardConsistency(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range testConfigs(t) {
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 3)
			rng := rand.New(rand.NewPCG(4, 4))
			prefix := randomTokens(rng, 70, cfg.Vocab) // crosses a cache block
			a := append(append([]int(nil), prefix...), randomTokens(rng, 9, cfg.Vocab)...)
			b := append(append([]int(nil), prefix...), randomTokens(rng, 5, cfg.Vocab)...)
			c := randomTokens(rng, 3, cfg.Vocab)

			full := runAll(t, m, m.NewCache(), a, len(a))
			check := func(what string, got [][]float32, want [][]float32) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
				}
				for i := range want {
					// float32 summation order differs: relative 1e-5 (the
					// reference kernels' long sequential sums: 5e-5).
					rel := 1e-5
					if what == "reference kernels" {
						rel = 5e-5
					}
					tol := rel * max(1, maxDiff(want[i], make([]float32, len(want[i]))))
					if d := maxDiff(got[i], want[i]); d > tol {
						t.Errorf("%s: position %d: max |Δlogit| %g", what, i, d)
						return
					}
				}
			}
			check("one token at a time (KV cache)", runAll(t, m, m.NewCache(), a, 1), full)
			check("chunks of 13", runAll(t, m, m.NewCache(), a, 13), full)

			// Prefix computed once, forked into two continuations; the parent
			// continues too.
			pc := m.NewCache()
			if _, err := m.Forward(ctx, []Sequence{{Cache: pc, Tokens: prefix, Logits: LogitsNone}}); err != nil {
				t.Fatal(err)
			}
			fa, fb := pc.Fork(), pc.Fork()
			outB, err := m.Forward(ctx, []Sequence{{Cache: fb, Tokens: b[len(prefix):], Logits: LogitsAll}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Forward(ctx, []Sequence{{Cache: pc, Tokens: c, Logits: LogitsNone}}); err != nil {
				t.Fatal(err)
			}
			outA, err := m.Forward(ctx, []Sequence{{Cache: fa, Tokens: a[len(prefix):], Logits: LogitsAll}})
			if err != nil {
				t.Fatal(err)
			}
			check("forked prefix (a)", outA[0], full[len(prefix):])
			fullB := runAll(t, m, m.NewCache(), b, len(b))
			check("forked prefix (b)", outB[0], fullB[len(prefix):])

			// One batch mixing a prefill, a decode step and a forked decode.
			d1 := m.NewCache()
			runAll(t, m, d1, a[:20], 20)
			f2 := pc.Fork()
			f2.Truncate(len(prefix))
			out, err := m.Forward(ctx, []Sequence{
				{Cache: m.NewCache(), Tokens: b, Logits: LogitsAll},
				{Cache: d1, Tokens: a[20:21], Logits: LogitsLast},
				{Cache: f2, Tokens: a[len(prefix) : len(prefix)+2], Logits: LogitsLast},
			})
			if err != nil {
				t.Fatal(err)
			}
			check("batched prefill", out[0], fullB)
			check("batched decode", out[1], full[20:21])
			check("batched forked decode after truncate", out[2], full[len(prefix)+1:len(prefix)+2])

			// Reference kernels give the same logits.
			prev := kernels.SetImpl(kernels.Reference)
			ref := runAll(t, m, m.NewCache(), a[:17], 17)
			kernels.SetImpl(prev)
			check("reference kernels", ref, full[:17])
		})
	}
}

func TestForwardErrors(t *testing.T) {
	cfg := testConfigs(t)["qwen2"]
	m := randomModel(t, cfg, 1)
	c := m.NewCache()
	ctx := context.Background()
	cases := []struct {
		name  string
		batch []Sequence
	}{
		{"token out of range", []Sequence{{Cache: c, Tokens: []int{cfg.Vocab}}}},
		{"negative token", []Sequence{{Cache: c, Tokens: []int{-1}}}},
		{"no cache", []Sequence{{Tokens: []int{1}}}},
		{"shared cache", []Sequence{{Cache: c, Tokens: []int{1}}, {Cache: c, Tokens: []int{2}}}},
		{"no tokens no logits", []Sequence{{Cache: c}}},
		{"context exceeded", []Sequence{{Cache: c, Tokens: make([]int, cfg.MaxContext+1)}}},
	}
	for _, tc := range cases {
		if _, err := m.Forward(ctx, tc.batch); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if c.Len() != 0 {
		t.Errorf("failed batches changed the cache: len %d", c.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Forward(cctx, []Sequence{{Cache: c, Tokens: []int{1}}}); err == nil {
		t.Error("cancelled context: no error")
	}
}
