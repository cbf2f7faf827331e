package slm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/usersim/usersim/slm/tensor"
	"github.com/usersim/usersim/slm/tokenizer"
)

// CompactPreset is a named size of the compact default base: the model
// usersim creates, tokenizes for and pretrains when the user gives no model
// (DESIGN.md §4).
//
// Why these sizes. The base must see at least one full pass over its
// corpus in pretraining (notes/compact-base-prototype.md: a base that saw
// 9% of one pass, then frozen, made every LoRA predict a constant), on 2
// cores, in minutes; so the engine's training speed decides how large it can
// be. A training step costs about three forward passes (2N FLOPs per token
// forward, 4N backward, for N weights). BenchmarkCompactForward measured the
// forward pass with the loss over every position (what pretraining runs) at
// a 4096-token vocabulary, 4×256 tokens, 2 threads, on the shared
// development machine (load 3.5–4.5, medians of two runs of 3):
//
//	preset  params  forward tok/s   ≈ training tok/s   one pass of 2.9M tokens
//	tiny    1.3M    5,200–8,900     1,700–3,000        16–28 min
//	small   4.0M    3,800–5,300     1,300–1,800        27–37 min
//	base    11.0M   1,800–2,600       600–900          54–80 min
//
// 2.9M tokens is the rating prompts of the paper's ml-100k training pool
// (17k prompts of about 170 tokens); the prototype's richer corpus was 6.5M.
// Scaling the 135M model's prefill speed by parameters would promise tens of
// thousands of tokens/s for a 1–2M model; these small models run far below
// that because their narrow matrices keep the kernels at 15–40 GFLOPS
// instead of ~100, and because the loss over the vocabulary is a fixed cost
// per token: for tiny, Forward with the last logits only runs at 13,000 tok/s
// against 5,200 with the loss (measured when the loss row was scalar
// float64 math.Exp, half of tiny's forward time in a profile; it now uses
// the vector float32 exponential). So "tiny" is the size that
// sees a full pass of a ml-100k-sized prompt corpus in minutes today,
// "small" (the default) the one to use once the loss is vectorised or the
// corpus is smaller, and "base" is for longer runs. All use a context of
// 512 (base: 1024), enough for a prompt with its memories.
type CompactPreset struct {
	Name    string `json:"name"`
	Hidden  int    `json:"hidden"`
	Layers  int    `json:"layers"`
	Heads   int    `json:"heads"`
	KVHeads int    `json:"kv_heads"`
	Context int    `json:"context"`
}

// compactPresets are the sizes of the compact base. FFN is always
// CompactFFN(Hidden). Parameter counts with a 4096-token vocabulary and
// tied embeddings: tiny 1,311,872; small 4,000,000; base 11,015,040.
var compactPresets = []CompactPreset{
	{Name: "tiny", Hidden: 128, Layers: 4, Heads: 4, KVHeads: 2, Context: 512},
	{Name: "small", Hidden: 256, Layers: 4, Heads: 8, KVHeads: 4, Context: 512},
	{Name: "base", Hidden: 384, Layers: 6, Heads: 6, KVHeads: 2, Context: 1024},
}

// DefaultCompactPreset is the preset used when CompactOptions.Preset is "".
const DefaultCompactPreset = "small"

// CompactPresets returns the named sizes of the compact base, smallest first.
func CompactPresets() []CompactPreset {
	return append([]CompactPreset(nil), compactPresets...)
}

// CompactFFN returns the SwiGLU inner width for a model width: 8/3 of it
// (the same number of MLP weights as a 4× GELU MLP), rounded up to a
// multiple of 64 as Llama's reference implementation does.
func CompactFFN(hidden int) int {
	f := (8*hidden + 2) / 3
	return (f + 63) / 64 * 64
}

// CompactOptions choose the size of a compact base. Zero fields take the
// preset's value.
type CompactOptions struct {
	// Preset is "tiny", "small" or "base" ("" means DefaultCompactPreset).
	Preset string `json:"preset"`
	// Overrides of the preset; 0 keeps the preset's value. FFN 0 means
	// CompactFFN(Hidden). When Heads is set and KVHeads is not, the preset's
	// KV heads are kept if they divide Heads, else KVHeads = Heads.
	Hidden  int `json:"hidden,omitempty"`
	Layers  int `json:"layers,omitempty"`
	Heads   int `json:"heads,omitempty"`
	KVHeads int `json:"kv_heads,omitempty"`
	FFN     int `json:"ffn,omitempty"`
	Context int `json:"context,omitempty"`

	// Vocab is the number of token ids (from the tokenizer); required.
	Vocab int `json:"vocab"`
	// BOS is the beginning-of-sequence id (-1: none); EOS the end ids.
	BOS int   `json:"bos"`
	EOS []int `json:"eos"`
}

// CompactConfig returns the Llama-architecture config of a compact base:
// RMSNorm (eps 1e-5), RoPE (theta 10000, Hugging Face's rotate_half
// layout), grouped-query attention, SwiGLU, tied embeddings, no biases.
func CompactConfig(opt CompactOptions) (Config, error) {
	name := opt.Preset
	if name == "" {
		name = DefaultCompactPreset
	}
	var p *CompactPreset
	names := make([]string, len(compactPresets))
	for i := range compactPresets {
		names[i] = compactPresets[i].Name
		if compactPresets[i].Name == name {
			p = &compactPresets[i]
		}
	}
	if p == nil {
		return Config{}, fmt.Errorf("compact model: unknown preset %q (want %s)", name, strings.Join(names, ", "))
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden", opt.Hidden}, {"layers", opt.Layers}, {"heads", opt.Heads}, {"kv-heads", opt.KVHeads}, {"ffn", opt.FFN}, {"context", opt.Context}} {
		if f.v < 0 {
			return Config{}, fmt.Errorf("compact model: %s %d: must be positive (0 keeps the preset's)", f.name, f.v)
		}
	}
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		return def
	}
	hidden := pick(opt.Hidden, p.Hidden)
	heads := pick(opt.Heads, p.Heads)
	kv := pick(opt.KVHeads, p.KVHeads)
	if opt.Heads > 0 && opt.KVHeads == 0 && heads%kv != 0 {
		kv = heads // heads changed to a count the preset's KV heads do not divide
	}
	cfg := Config{
		Arch:           "llama",
		Hidden:         hidden,
		Layers:         pick(opt.Layers, p.Layers),
		Heads:          heads,
		KVHeads:        kv,
		FFN:            pick(opt.FFN, CompactFFN(hidden)),
		Vocab:          opt.Vocab,
		NormEps:        1e-5,
		RopeTheta:      10000,
		RopeStyle:      RopeNeoX,
		TiedEmbeddings: true,
		BOS:            opt.BOS,
		EOS:            append([]int(nil), opt.EOS...),
		MaxContext:     pick(opt.Context, p.Context),
	}
	switch {
	case opt.Vocab <= 0:
		return Config{}, fmt.Errorf("compact model: vocab %d: must be positive (the tokenizer's size)", opt.Vocab)
	case hidden%heads != 0:
		return Config{}, fmt.Errorf("compact model: hidden %d is not a multiple of heads %d", hidden, heads)
	case heads%kv != 0:
		return Config{}, fmt.Errorf("compact model: heads %d is not a multiple of kv-heads %d", heads, kv)
	case (hidden/heads)%2 != 0:
		return Config{}, fmt.Errorf("compact model: head width %d (hidden %d / heads %d) must be even for RoPE", hidden/heads, hidden, heads)
	case opt.BOS < -1 || opt.BOS >= opt.Vocab:
		return Config{}, fmt.Errorf("compact model: bos %d outside the vocabulary of %d", opt.BOS, opt.Vocab)
	}
	for _, e := range opt.EOS {
		if e < 0 || e >= opt.Vocab {
			return Config{}, fmt.Errorf("compact model: eos %d outside the vocabulary of %d", e, opt.Vocab)
		}
	}
	cfg.HeadDim = hidden / heads
	cfg.RopeDim = cfg.HeadDim
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("compact model: %w", err)
	}
	return cfg, nil
}

// CompactParams returns the number of weights of a model of config cfg
// (a tied embedding counted once), as Info().Params counts them.
func CompactParams(cfg Config) int64 {
	d, q, kv, f := int64(cfg.Hidden), int64(cfg.QDim()), int64(cfg.KVDim()), int64(cfg.FFN)
	layer := d*q + 2*d*kv + q*d + 3*d*f + 2*d
	n := int64(cfg.Layers)*layer + int64(cfg.Vocab)*d + d
	if !cfg.TiedEmbeddings {
		n += int64(cfg.Vocab) * d
	}
	return n
}

// InitPretrain initialises m for pretraining as the GPT-2 and Llama
// reference implementations do: every weight matrix N(0, std²) (std 0.02 is
// theirs), the projections that write into the residual stream (attention
// output and MLP down) scaled further by 1/sqrt(2·layers) so the residual's
// variance does not grow with depth, norm weights 1 and biases 0. The
// weights are drawn from rng in a fixed order (embedding, then each layer's
// q, k, v, o, gate, up, down, then an untied output), so a seed gives the
// same model.
func (m *Model) InitPretrain(rng *rand.Rand, std float32) error {
	if !(std > 0) || math.IsInf(float64(std), 0) {
		return fmt.Errorf("init: std %v: must be positive and finite", std)
	}
	resid := std / float32(math.Sqrt(2*float64(max(m.Config.Layers, 1))))
	fill := func(name string, l *Linear, s float32) error {
		if l.Out*l.In == 0 {
			return nil // absent in this layout (fused or unfused)
		}
		if l.DType != tensor.F32 || len(l.W) != l.Out*l.In {
			return fmt.Errorf("init %s: weights are %v, not float32", name, l.DType)
		}
		for i := range l.W {
			l.W[i] = float32(rng.NormFloat64()) * s
		}
		for i := range l.Bias {
			l.Bias[i] = 0
		}
		return nil
	}
	ones := func(w []float32) {
		for i := range w {
			w[i] = 1
		}
	}
	if err := fill("embedding", &m.Embed, std); err != nil {
		return err
	}
	for i := range m.Layers {
		ly := &m.Layers[i]
		at, mlp := &ly.Attn, &ly.MLP
		for _, w := range []struct {
			name string
			l    *Linear
			s    float32
		}{
			{"q", &at.Q, std}, {"k", &at.K, std}, {"v", &at.V, std}, {"qkv", &at.QKV, std}, {"o", &at.O, resid},
			{"gate", &mlp.Gate, std}, {"up", &mlp.Up, std}, {"gate_up", &mlp.GateUp, std}, {"down", &mlp.Down, resid},
		} {
			if err := fill(fmt.Sprintf("layer %d %s", i, w.name), w.l, w.s); err != nil {
				return err
			}
		}
		ones(ly.AttnNorm.W)
		ones(ly.MLPNorm.W)
	}
	ones(m.Norm.W)
	if !m.Config.TiedEmbeddings {
		return fill("output", &m.Output, std)
	}
	return nil
}

// CompactKeywords are the template keywords of the rating prompt that the
// compact base's tokenizer keeps as single tokens by default.
var CompactKeywords = []string{"RATING:", "MOVIE:", "MY MEMORY:", "YOUR MEMORIES", "TASK:"}

// CompactTokenizerOptions returns the tokenizer options of the compact base:
// tokenizer.DefaultTrainOptions (4096 ids, <|bos|>/<|eos|>/<|pad|>, digits
// one per token, BOS added) with CompactKeywords forced to single tokens.
func CompactTokenizerOptions() tokenizer.TrainOptions {
	o := tokenizer.DefaultTrainOptions()
	o.Forced = append([]string(nil), CompactKeywords...)
	return o
}

// InitOptions configure InitCompact.
type InitOptions struct {
	// Model is the size; its Vocab, BOS and EOS are set from the tokenizer.
	Model CompactOptions
	// Tokenizer configures the BPE training; a zero VocabSize means
	// CompactTokenizerOptions(). ModelMaxLength 0 is set to the context.
	Tokenizer tokenizer.TrainOptions
	// Seed draws the initial weights; Std is their standard deviation
	// (0 means 0.02).
	Seed uint64
	Std  float32
	// Overwrite replaces an existing non-empty directory; without it such a
	// directory is an error (an empty or missing one is fine).
	Overwrite bool
	// CharsPerTokenSample bounds the corpus bytes encoded to measure chars per
	// token (0 means 8 MiB; negative skips the measurement).
	CharsPerTokenSample int
}

// InitResult describes a compact base written by InitCompact.
type InitResult struct {
	Dir           string               `json:"dir"`
	Config        Config               `json:"config"`
	Params        int64                `json:"params"`
	Vocab         int                  `json:"vocab"`
	CorpusBytes   int64                `json:"corpus_bytes"`
	CharsPerToken float64              `json:"chars_per_token"` // on the first CharsPerTokenSample bytes
	SampleBytes   int64                `json:"sample_bytes"`    // bytes CharsPerToken was measured on
	Tokenizer     tokenizer.TrainStats `json:"tokenizer"`
	Duration      time.Duration        `json:"duration_ns"`
}

// InitCompact creates the compact default base in dir: it trains a
// byte-level BPE tokenizer on the corpus, builds the config of opt.Model
// with the tokenizer's vocabulary and special ids, initialises the weights
// with InitPretrain from opt.Seed, and writes a Hugging Face directory
// (config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
// generation_config.json) that Load reads. The directory appears whole or
// not at all: the files are written into a temporary directory beside it,
// which is then renamed.
//
// The corpus is read into memory once (it is also encoded to measure the
// tokenizer's characters per token).
func InitCompact(ctx context.Context, corpus io.Reader, dir string, opt InitOptions) (*InitResult, error) {
	start := time.Now()
	if dir == "" {
		return nil, errors.New("init compact model: no output directory")
	}
	if corpus == nil {
		return nil, errors.New("init compact model: no corpus")
	}
	if err := checkOutDir(dir, opt.Overwrite); err != nil {
		return nil, err
	}
	std := opt.Std
	if std == 0 {
		std = 0.02
	}
	if !(std > 0) || math.IsInf(float64(std), 0) {
		return nil, fmt.Errorf("init compact model: std %v: must be positive and finite", opt.Std)
	}
	// Check the size options before the (slow) tokenizer training.
	probe := opt.Model
	probe.Vocab, probe.BOS, probe.EOS = 1<<20, -1, nil
	pcfg, err := CompactConfig(probe)
	if err != nil {
		return nil, fmt.Errorf("init compact model: %w", err)
	}

	text, err := io.ReadAll(corpus)
	if err != nil {
		return nil, fmt.Errorf("init compact model: read corpus: %w", err)
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return nil, errors.New("init compact model: the corpus is empty")
	}
	if !utf8.Valid(text) {
		return nil, errors.New("init compact model: the corpus is not valid UTF-8")
	}
	topt := opt.Tokenizer
	if topt.VocabSize == 0 {
		topt = CompactTokenizerOptions()
	}
	if topt.EOS == "" {
		return nil, errors.New("init compact model: the tokenizer options need an EOS token")
	}
	if topt.ModelMaxLength == 0 {
		topt.ModelMaxLength = pcfg.MaxContext
	}
	trained, err := tokenizer.Train(ctx, bytes.NewReader(text), topt)
	if err != nil {
		return nil, fmt.Errorf("init compact model: train tokenizer: %w", err)
	}
	tok := trained.Tokenizer()
	mo := opt.Model
	mo.Vocab, mo.BOS, mo.EOS = tok.VocabSize(), tok.BOS(), tok.EOSIDs()
	cfg, err := CompactConfig(mo)
	if err != nil {
		return nil, fmt.Errorf("init compact model: %w", err)
	}
	m, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("init compact model: %w", err)
	}
	if err := m.InitPretrain(rand.New(rand.NewPCG(opt.Seed, compactSeedStream)), std); err != nil {
		return nil, fmt.Errorf("init compact model: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("init compact model: %w", err)
	}

	res := &InitResult{Dir: dir, Config: cfg, Params: m.Info().Params, Vocab: cfg.Vocab,
		CorpusBytes: int64(len(text)), Tokenizer: trained.Stats()}
	if opt.CharsPerTokenSample >= 0 {
		n := opt.CharsPerTokenSample
		if n == 0 {
			n = 8 << 20
		}
		res.CharsPerToken, res.SampleBytes, err = charsPerToken(ctx, tok, text, n)
		if err != nil {
			return nil, fmt.Errorf("init compact model: %w", err)
		}
	}
	if err := writeCompactDir(dir, m, tok, trained, opt.Overwrite); err != nil {
		return nil, fmt.Errorf("init compact model: %w", err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// checkOutDir fails when dir exists and is not an empty directory, unless
// overwrite is set (then it must still be a directory).
func checkOutDir(dir string, overwrite bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("init compact model: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("init compact model: %s exists and is not a directory", dir)
	}
	if overwrite {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("init compact model: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("init compact model: %s exists and is not empty (overwrite to replace it)", dir)
	}
	return nil
}

// charsPerToken encodes the first limit bytes of text (cut at a line end)
// line by line and returns characters per token and the bytes measured.
func charsPerToken(ctx context.Context, tok *tokenizer.Tokenizer, text []byte, limit int) (float64, int64, error) {
	if len(text) > limit {
		cut := bytes.LastIndexByte(text[:limit], '\n')
		if cut <= 0 {
			cut = limit
			for cut > 0 && !utf8.RuneStart(text[cut]) {
				cut--
			}
		}
		text = text[:cut]
	}
	var chars, toks int
	for i, line := range strings.SplitAfter(string(text), "\n") {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
		}
		if line == "" {
			continue
		}
		ids, err := tok.Encode(line, tokenizer.EncodeOptions{})
		if err != nil {
			return 0, 0, fmt.Errorf("encode corpus: %w", err)
		}
		chars += utf8.RuneCountInString(line)
		toks += len(ids)
	}
	if toks == 0 {
		return 0, int64(len(text)), nil
	}
	return float64(chars) / float64(toks), int64(len(text)), nil
}

// writeCompactDir writes the model directory into a temporary directory
// beside dir and renames it into place.
func writeCompactDir(dir string, m *Model, tok *tokenizer.Tokenizer, trained *tokenizer.Trained, overwrite bool) (err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := m.WriteHF(tmp, SaveOptions{}); err != nil {
		return err
	}
	if err := addPadToConfig(filepath.Join(tmp, "config.json"), tok.PAD()); err != nil {
		return err
	}
	if err := tokenizer.WriteHFDir(tmp, trained); err != nil {
		return err
	}
	gen := map[string]any{"_from_model_config": true}
	if b := tok.BOS(); b >= 0 {
		gen["bos_token_id"] = b
	}
	if e := tok.EOSIDs(); len(e) == 1 {
		gen["eos_token_id"] = e[0]
	} else if len(e) > 1 {
		gen["eos_token_id"] = e
	}
	if p := tok.PAD(); p >= 0 {
		gen["pad_token_id"] = p
	}
	data, err := json.MarshalIndent(gen, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(tmp, "generation_config.json"), append(data, '\n')); err != nil {
		return err
	}
	// Temporary files are created 0600; the model is readable as any
	// downloaded checkpoint is.
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Chmod(filepath.Join(tmp, e.Name()), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// Move the finished directory into place. An existing directory (empty,
	// or any with overwrite) is moved aside first and removed after.
	var old string
	if _, serr := os.Stat(dir); serr == nil {
		if !overwrite {
			if err := os.Remove(dir); err != nil { // empty, checked before
				return fmt.Errorf("replace %s: %w", dir, err)
			}
		} else {
			old = tmp + ".old"
			if err := os.Rename(dir, old); err != nil {
				return fmt.Errorf("replace %s: %w", dir, err)
			}
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("write %s: %w", dir, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	if d, derr := os.Open(parent); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// addPadToConfig adds pad_token_id to a written config.json, as Hugging
// Face checkpoints with a padding token carry it.
func addPadToConfig(path string, pad int) error {
	if pad < 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m["pad_token_id"] = pad
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(out, '\n'))
}

// compactSeedStream is the second PCG word of InitCompact's generator
// ("compact" in ASCII), so the seed alone picks the weights.
const compactSeedStream = 0x636f6d70616374
