package slm

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/tokenizer"
)

// compactCorpus generates a small corpus in the rating-prompt format.
func compactCorpus(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	genres := []string{"Comedy", "Drama", "Action", "Thriller", "Romance", "Horror", "Sci-Fi"}
	words := []string{"liked", "the", "story", "acting", "was", "slow", "funny", "great", "boring", "music", "ending", "characters"}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "TASK: predict how user %d rates the movie.\nYOUR MEMORIES\n", rng.IntN(300))
		for range 2 {
			fmt.Fprintf(&b, "MY MEMORY: Movie %d (%d), %s: I rated it %d because", rng.IntN(1000), 1950+rng.IntN(70), genres[rng.IntN(len(genres))], 1+rng.IntN(5))
			for range 3 + rng.IntN(5) {
				b.WriteString(" " + words[rng.IntN(len(words))])
			}
			b.WriteString(".\n")
		}
		fmt.Fprintf(&b, "MOVIE: Movie %d (%d), %s, average %.1f\nRATING: %d\n\n", i%1000, 1950+rng.IntN(70), genres[rng.IntN(len(genres))], 1+4*rng.Float64(), 1+rng.IntN(5))
	}
	return b.String()
}

func smallInitOptions(vocab int) InitOptions {
	to := CompactTokenizerOptions()
	to.VocabSize = vocab
	return InitOptions{Model: CompactOptions{Preset: "tiny", Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, Context: 256}, Tokenizer: to, Seed: 7}
}

func TestCompactPresetParams(t *testing.T) {
	// The counts documented on compactPresets (vocab 4096, tied embeddings).
	want := map[string]int64{"tiny": 1_311_872, "small": 4_000_000, "base": 11_015_040}
	for _, p := range CompactPresets() {
		cfg, err := CompactConfig(CompactOptions{Preset: p.Name, Vocab: 4096, BOS: 1, EOS: []int{2}})
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		m, err := New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		got := m.Info().Params
		if got != want[p.Name] || CompactParams(cfg) != got {
			t.Errorf("%s: Info().Params %d, CompactParams %d, documented %d", p.Name, got, CompactParams(cfg), want[p.Name])
		}
		if cfg.FFN%64 != 0 || cfg.FFN < 8*cfg.Hidden/3 || cfg.FFN >= 8*cfg.Hidden/3+64 {
			t.Errorf("%s: ffn %d for hidden %d", p.Name, cfg.FFN, cfg.Hidden)
		}
		if !cfg.TiedEmbeddings || cfg.RopeTheta != 10000 || cfg.NormEps != 1e-5 || cfg.Arch != "llama" || cfg.KVHeads >= cfg.Heads {
			t.Errorf("%s: config %+v", p.Name, cfg)
		}
	}
	if cfg, _ := CompactConfig(CompactOptions{Vocab: 100}); cfg.Hidden != 256 {
		t.Errorf("default preset hidden %d, want small's 256", cfg.Hidden)
	}
}

func TestCompactFFN(t *testing.T) {
	for _, c := range []struct{ hidden, want int }{{64, 192}, {128, 384}, {256, 704}, {384, 1024}, {576, 1536}} {
		if got := CompactFFN(c.hidden); got != c.want {
			t.Errorf("CompactFFN(%d) = %d, want %d", c.hidden, got, c.want)
		}
	}
}

func TestCompactConfigOverridesAndErrors(t *testing.T) {
	cfg, err := CompactConfig(CompactOptions{Preset: "small", Hidden: 192, Layers: 3, Heads: 6, KVHeads: 2, FFN: 500, Context: 128, Vocab: 300, BOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := CompactConfig(CompactOptions{Preset: "small", Heads: 2, Vocab: 10}); err != nil || c.KVHeads != 2 {
		t.Errorf("heads 2 on small (kv 4): kv %d, %v; want 2", c.KVHeads, err)
	}
	if c, err := CompactConfig(CompactOptions{Preset: "small", Heads: 16, Vocab: 10}); err != nil || c.KVHeads != 4 {
		t.Errorf("heads 16 on small (kv 4): kv %d, %v; want 4", c.KVHeads, err)
	}
	if cfg.Hidden != 192 || cfg.Layers != 3 || cfg.Heads != 6 || cfg.KVHeads != 2 || cfg.HeadDim != 32 || cfg.FFN != 500 || cfg.MaxContext != 128 || cfg.BOS != -1 {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	for _, c := range []struct {
		name string
		opt  CompactOptions
		want string
	}{
		{"preset", CompactOptions{Preset: "huge", Vocab: 10}, `unknown preset "huge"`},
		{"vocab", CompactOptions{}, "vocab 0"},
		{"negative", CompactOptions{Layers: -1, Vocab: 10}, "layers -1"},
		{"heads", CompactOptions{Hidden: 100, Heads: 3, Vocab: 10}, "not a multiple of heads 3"},
		{"kv", CompactOptions{Heads: 8, KVHeads: 3, Vocab: 10}, "not a multiple of kv-heads 3"},
		{"odd head", CompactOptions{Hidden: 36, Heads: 4, KVHeads: 4, Vocab: 10}, "must be even"},
		{"eos", CompactOptions{Vocab: 10, EOS: []int{10}}, "eos 10 outside"},
		{"bos", CompactOptions{Vocab: 10, BOS: 12}, "bos 12 outside"},
		{"bos negative", CompactOptions{Vocab: 10, BOS: -2}, "bos -2 outside"},
	} {
		_, err := CompactConfig(c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

func TestInitPretrainStatistics(t *testing.T) {
	cfg, err := CompactConfig(CompactOptions{Preset: "small", Layers: 8, Vocab: 1000})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitPretrain(rand.New(rand.NewPCG(1, 2)), 0.02); err != nil {
		t.Fatal(err)
	}
	stdOf := func(w []float32) float64 {
		var s, s2 float64
		for _, v := range w {
			s += float64(v)
			s2 += float64(v) * float64(v)
		}
		n := float64(len(w))
		return math.Sqrt(s2/n - (s/n)*(s/n))
	}
	resid := 0.02 / math.Sqrt(16)
	ly := m.Layers[5]
	for _, c := range []struct {
		name string
		w    []float32
		want float64
	}{
		{"embed", m.Embed.W, 0.02}, {"q", ly.Attn.Q.W, 0.02}, {"k", ly.Attn.K.W, 0.02}, {"gate", ly.MLP.Gate.W, 0.02},
		{"o", ly.Attn.O.W, resid}, {"down", ly.MLP.Down.W, resid},
	} {
		if got := stdOf(c.w); math.Abs(got-c.want) > 0.03*c.want {
			t.Errorf("%s: std %.5f, want %.5f", c.name, got, c.want)
		}
	}
	for _, w := range [][]float32{ly.AttnNorm.W, ly.MLPNorm.W, m.Norm.W} {
		for _, v := range w {
			if v != 1 {
				t.Fatalf("norm weight %v, want 1", v)
			}
		}
	}
	if err := m.InitPretrain(rand.New(rand.NewPCG(1, 2)), 0); err == nil {
		t.Error("std 0: no error")
	}
}

func TestInitCompactRoundTrip(t *testing.T) {
	corpus := compactCorpus(300, 1)
	dir := filepath.Join(t.TempDir(), "base")
	opt := smallInitOptions(600)
	res, err := InitCompact(context.Background(), strings.NewReader(corpus), dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		} else if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", f, st.Mode().Perm())
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(dir)); len(ents) != 1 {
		t.Errorf("temporary files left beside the model: %v", ents)
	}
	m, tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Vocab != tok.VocabSize() || m.Config.Vocab != tok.VocabSize() || res.Params != m.Info().Params || res.Params != CompactParams(res.Config) {
		t.Errorf("vocab %d/%d/%d, params %d/%d", res.Vocab, tok.VocabSize(), m.Config.Vocab, res.Params, m.Info().Params)
	}
	c := m.Config
	if c.Hidden != 64 || c.Layers != 2 || c.Heads != 4 || c.KVHeads != 2 || c.FFN != 192 || c.MaxContext != 256 || !c.TiedEmbeddings ||
		c.BOS != tok.BOS() || len(c.EOS) != 1 || c.EOS[0] != tok.EOS() || c.RopeTheta != 10000 || c.NormEps != 1e-5 {
		t.Errorf("loaded config %+v", c)
	}
	if res.CharsPerToken < 1.5 || res.SampleBytes != int64(len(corpus)) {
		t.Errorf("chars/token %.2f on %d bytes", res.CharsPerToken, res.SampleBytes)
	}

	// Weights bit-exact: the same init in memory.
	want, err := New(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := want.InitPretrain(rand.New(rand.NewPCG(opt.Seed, compactSeedStream)), 0.02); err != nil {
		t.Fatal(err)
	}
	same := func(name string, a, b []float32) {
		if len(a) != len(b) {
			t.Fatalf("%s: %d vs %d values", name, len(a), len(b))
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s[%d]: %v, want %v", name, i, a[i], b[i])
			}
		}
	}
	same("embed", m.Embed.W, want.Embed.W)
	same("norm", m.Norm.W, want.Norm.W)
	for l := range want.Layers {
		g, w := &m.Layers[l], &want.Layers[l]
		same("q", g.Attn.Q.W, w.Attn.Q.W)
		same("k", g.Attn.K.W, w.Attn.K.W)
		same("v", g.Attn.V.W, w.Attn.V.W)
		same("o", g.Attn.O.W, w.Attn.O.W)
		same("gate", g.MLP.Gate.W, w.MLP.Gate.W)
		same("up", g.MLP.Up.W, w.MLP.Up.W)
		same("down", g.MLP.Down.W, w.MLP.Down.W)
		same("attn norm", g.AttnNorm.W, w.AttnNorm.W)
		same("mlp norm", g.MLPNorm.W, w.MLPNorm.W)
	}

	// Forced keywords are single tokens of the saved tokenizer, digits are
	// one per token, and the corpus round-trips.
	for _, kw := range CompactKeywords {
		ids, err := tok.Encode("x "+kw+" 4", tokenizer.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		id, ok := tok.ID(kw)
		if !ok || !containsID(ids, id) {
			t.Errorf("%q: not a single token (ids %v, id %d %v)", kw, ids, id, ok)
		}
	}
	ids, err := tok.Encode("RATING: 345", tokenizer.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ids); n != 4 {
		t.Errorf(`"RATING: 345" = %d tokens %v, want RATING:, " 3", "4", "5"`, n, ids)
	}
	text := corpus[:2000]
	ids, err = tok.Encode(text, tokenizer.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tok.Decode(ids); err != nil || got != text {
		t.Errorf("decode(encode(corpus)) differs: %v", err)
	}

	// At init the model is near-uniform: loss ≈ ln(vocab), finite logits.
	seq := append([]int{tok.BOS()}, ids[:200]...)
	loss, n, err := m.Loss(context.Background(), []TrainSeq{{Tokens: seq}})
	if err != nil {
		t.Fatal(err)
	}
	mean, lnV := loss/float64(n), math.Log(float64(tok.VocabSize()))
	if math.Abs(mean-lnV) > 0.05*lnV {
		t.Errorf("loss at init %.4f, want ≈ ln(vocab) = %.4f", mean, lnV)
	}
	logits, err := m.Forward(context.Background(), []Sequence{{Cache: m.NewCache(), Tokens: seq[:50], Logits: LogitsAll}})
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range logits[0] {
		for _, v := range row {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 5 {
				t.Fatalf("logit %v at init", v)
			}
		}
	}
}

func containsID(ids []int, id int) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestInitCompactDeterministic(t *testing.T) {
	corpus := compactCorpus(200, 2)
	root := t.TempDir()
	init := func(name string, seed uint64) string {
		opt := smallInitOptions(500)
		opt.Seed = seed
		dir := filepath.Join(root, name)
		if _, err := InitCompact(context.Background(), strings.NewReader(corpus), dir, opt); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b, c := init("a", 3), init("b", 3), init("c", 4)
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		da, _ := os.ReadFile(filepath.Join(a, f))
		db, _ := os.ReadFile(filepath.Join(b, f))
		dc, _ := os.ReadFile(filepath.Join(c, f))
		if len(da) == 0 || !bytes.Equal(da, db) {
			t.Errorf("%s differs between two inits with the same seed", f)
		}
		if f == "model.safetensors" && bytes.Equal(da, dc) {
			t.Errorf("%s: seeds 3 and 4 gave the same weights", f)
		}
	}
}

func TestInitCompactErrors(t *testing.T) {
	ctx := context.Background()
	corpus := compactCorpus(20, 3)
	root := t.TempDir()
	full := filepath.Join(root, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	bad := smallInitOptions(300)
	bad.Model.Heads = 3
	noEOS := smallInitOptions(300)
	noEOS.Tokenizer.EOS = ""
	for _, c := range []struct {
		name   string
		ctx    context.Context
		corpus string
		dir    string
		opt    InitOptions
		want   string
	}{
		{"empty corpus", ctx, " \n", filepath.Join(root, "a"), smallInitOptions(300), "corpus is empty"},
		{"invalid utf8", ctx, "ab\xffc", filepath.Join(root, "a"), smallInitOptions(300), "not valid UTF-8"},
		{"not empty", ctx, corpus, full, smallInitOptions(300), "not empty"},
		{"not a dir", ctx, corpus, file, smallInitOptions(300), "not a directory"},
		{"bad heads", ctx, corpus, filepath.Join(root, "a"), bad, "heads 3"},
		{"no eos", ctx, corpus, filepath.Join(root, "a"), noEOS, "EOS"},
		{"canceled", canceled, corpus, filepath.Join(root, "a"), smallInitOptions(300), "canceled"},
		{"no dir", ctx, corpus, "", smallInitOptions(300), "no output directory"},
	} {
		_, err := InitCompact(c.ctx, strings.NewReader(c.corpus), c.dir, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(full, "x")); err != nil || string(b) != "keep" {
		t.Errorf("a refused init touched the existing directory: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !os.IsNotExist(err) {
		t.Errorf("failed inits left %s: %v", filepath.Join(root, "a"), err)
	}
	// Overwrite replaces the directory whole; an empty directory is used.
	opt := smallInitOptions(300)
	opt.Overwrite = true
	if _, err := InitCompact(ctx, strings.NewReader(corpus), full, opt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(full, "x")); !os.IsNotExist(err) {
		t.Error("overwrite kept an old file")
	}
	if _, _, err := Load(full); err != nil {
		t.Error(err)
	}
	empty := filepath.Join(root, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := InitCompact(ctx, strings.NewReader(corpus), empty, smallInitOptions(300)); err != nil {
		t.Errorf("empty directory: %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 3 {
		t.Errorf("directory holds %d entries, want full, file, empty and no temporaries: %v", len(ents), ents)
	}
}

// BenchmarkCompactForward measures the forward pass of the compact presets
// at a 4096-token vocabulary, 4 sequences of 256 tokens, 2 threads: "loss"
// is Loss with every token a target (what pretraining runs forward; a full
// training step costs about three times as much), "prefill" is Forward with
// the last position's logits only, which shows the cost of the loss over
// the vocabulary, and "train" is a pretraining pass (LossAndGradWith with
// base gradients: forward and full backward, no optimizer). GFLOPS (loss
// and train) counts 2 FLOPs per weight and token forward, 6 for training.
//
//	go test -run '^$' -bench CompactForward -benchtime 5x -count 3 ./slm/
func BenchmarkCompactForward(b *testing.B) {
	prev := kernels.Threads()
	kernels.SetThreads(2)
	defer kernels.SetThreads(prev)
	for _, p := range CompactPresets() {
		cfg, err := CompactConfig(CompactOptions{Preset: p.Name, Vocab: 4096, BOS: 1, EOS: []int{2}})
		if err != nil {
			b.Fatal(err)
		}
		m, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := m.InitPretrain(rand.New(rand.NewPCG(1, 1)), 0.02); err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(2, 2))
		const seqs, T = 4, 256
		batch := make([]TrainSeq, seqs)
		for i := range batch {
			toks := make([]int, T)
			for j := range toks {
				toks[j] = rng.IntN(cfg.Vocab)
			}
			batch[i] = TrainSeq{Tokens: toks}
		}
		g, err := m.NewGrads()
		if err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{"loss", "prefill", "train"} {
			b.Run(p.Name+"/"+mode, func(b *testing.B) {
				for range b.N {
					var err error
					switch mode {
					case "loss":
						_, _, err = m.Loss(context.Background(), batch)
					case "train":
						_, _, err = m.LossAndGradWith(context.Background(), batch, TrainOptions{Base: g})
					default:
						fb := make([]Sequence, seqs)
						for i := range fb {
							fb[i] = Sequence{Cache: m.NewCache(), Tokens: batch[i].Tokens}
						}
						_, err = m.Forward(context.Background(), fb)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				s := b.Elapsed().Seconds()
				b.ReportMetric(float64(seqs*T*b.N)/s, "tok/s")
				switch mode {
				case "loss":
					b.ReportMetric(float64(2*CompactParams(cfg)*seqs*T*int64(b.N))/s/1e9, "GFLOPS")
				case "train":
					b.ReportMetric(float64(6*CompactParams(cfg)*seqs*T*int64(b.N))/s/1e9, "GFLOPS")
				}
			})
		}
	}
}
