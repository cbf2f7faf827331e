package slm

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/usersim/usersim/slm/gguf"
)

// ggufSource serves the tensors of a GGUF file, shapes turned row-major.
type ggufSource struct{ f *gguf.File }

func (s ggufSource) tensor(name string) (rawTensor, bool, error) {
	if _, ok := s.f.Tensor(name); !ok {
		return rawTensor{}, false, nil
	}
	data, ti, err := s.f.TensorData(name)
	if err != nil {
		return rawTensor{}, false, err
	}
	return rawTensor{Shape: reverse(ti.Shape), DType: ti.Type, Data: data}, true, nil
}

func (s ggufSource) names() []string {
	n := make([]string, len(s.f.Tensors))
	for i, t := range s.f.Tensors {
		n[i] = t.Name
	}
	return n
}

// ggufIgnored are tensors that GGUF files carry besides the weights; the
// rope factors are read into the Config.
func ggufIgnored(name string) bool {
	return name == "rope_freqs.weight" || strings.HasPrefix(name, "rope_factors_")
}

// ConfigFromGGUF reads the architecture of a GGUF file of
// general.architecture llama (also Mistral and stories), qwen2 or phi3.
//
// RoPE style: llama files use RopeInterleaved, because llama.cpp's
// converter permutes the q and k rows; qwen2 and phi3 files are not
// permuted and use RopeNeoX. The output is tied when output.weight is
// absent. Llama 3's frequency scaling is read from the rope_freqs tensor,
// Phi-3's longrope factors from rope_factors_short/long.
func ConfigFromGGUF(f *gguf.File) (*Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, err
	}
	c := &Config{Arch: arch, RopeTheta: 10000, BOS: -1}
	switch arch {
	case "llama":
		c.RopeStyle = RopeInterleaved
	case "qwen2":
		c.RopeStyle, c.QKVBias = RopeNeoX, true
	case "phi3":
		c.RopeStyle, c.FusedQKV, c.FusedGateUp = RopeNeoX, true, true
	default:
		return nil, fmt.Errorf("gguf: unsupported general.architecture %q (supported: llama, qwen2, phi3)", arch)
	}
	need := func(key string, dst *int) error {
		v, err := f.Uint(arch + "." + key)
		if err != nil {
			return err
		}
		if v > math.MaxInt32 {
			return fmt.Errorf("gguf: %s.%s = %d is too large", arch, key, v)
		}
		*dst = int(v)
		return nil
	}
	optional := func(key string, dst *int) error {
		err := need(key, dst)
		if errors.Is(err, gguf.ErrNotFound) {
			return nil
		}
		return err
	}
	for _, k := range []struct {
		key string
		dst *int
	}{
		{"embedding_length", &c.Hidden}, {"block_count", &c.Layers}, {"feed_forward_length", &c.FFN},
		{"attention.head_count", &c.Heads}, {"context_length", &c.MaxContext},
	} {
		if err := need(k.key, k.dst); err != nil {
			return nil, err
		}
	}
	c.KVHeads = c.Heads
	if err := optional("attention.head_count_kv", &c.KVHeads); err != nil {
		return nil, err
	}
	if c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if err := optional("attention.key_length", &c.HeadDim); err != nil {
		return nil, err
	}
	c.RopeDim = c.HeadDim
	if err := optional("rope.dimension_count", &c.RopeDim); err != nil {
		return nil, err
	}
	if c.RopeDim != c.HeadDim {
		return nil, fmt.Errorf("gguf: partial rotary embeddings (%s.rope.dimension_count %d, head dim %d) are not supported", arch, c.RopeDim, c.HeadDim)
	}
	if err := optional("attention.sliding_window", &c.SlidingWindow); err != nil {
		return nil, err
	}
	eps, err := f.Float(arch + ".attention.layer_norm_rms_epsilon")
	if err != nil {
		return nil, err
	}
	c.NormEps = float32(eps)
	if v, err := f.Float(arch + ".rope.freq_base"); err == nil {
		c.RopeTheta = v
	} else if !errors.Is(err, gguf.ErrNotFound) {
		return nil, err
	}
	if err := ggufRopeScaling(f, arch, c); err != nil {
		return nil, err
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return nil, errors.New("gguf: tensor token_embd.weight: missing")
	}
	if len(emb.Shape) != 2 || emb.Shape[1] <= 0 || emb.Shape[1] > math.MaxInt32 {
		return nil, fmt.Errorf("gguf: tensor token_embd.weight: shape %v, want [hidden, vocab]", emb.Shape)
	}
	c.Vocab = int(emb.Shape[1])
	_, hasOut := f.Tensor("output.weight")
	c.TiedEmbeddings = !hasOut
	if v, err := f.Uint("tokenizer.ggml.bos_token_id"); err == nil && v < math.MaxInt32 {
		c.BOS = int(v)
	}
	if v, err := f.Uint("tokenizer.ggml.eos_token_id"); err == nil && v < math.MaxInt32 {
		c.EOS = []int{int(v)}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return c, nil
}

func ggufRopeScaling(f *gguf.File, arch string, c *Config) error {
	typ, err := f.String(arch + ".rope.scaling.type")
	if err != nil && !errors.Is(err, gguf.ErrNotFound) {
		return err
	}
	factor, _ := f.Float(arch + ".rope.scaling.factor")
	orig, _ := f.Uint(arch + ".rope.scaling.original_context_length")
	switch typ {
	case "", "none":
	case "linear":
		c.RopeScaling = RopeScaling{Type: "linear", Factor: factor}
	case "yarn":
		return fmt.Errorf("gguf: %s.rope.scaling.type yarn is not supported", arch)
	default:
		return fmt.Errorf("gguf: unsupported %s.rope.scaling.type %q", arch, typ)
	}
	if factors, ok, err := ggufVector(f, "rope_freqs.weight"); err != nil {
		return err
	} else if ok {
		c.RopeScaling.FreqFactors = factors
	}
	short, okS, err := ggufVector(f, "rope_factors_short.weight")
	if err != nil {
		return err
	}
	long, okL, err := ggufVector(f, "rope_factors_long.weight")
	if err != nil {
		return err
	}
	if okS != okL {
		return errors.New("gguf: rope_factors_short and rope_factors_long must both be present")
	}
	if okS {
		attn, _ := f.Float(arch + ".rope.scaling.attn_factor")
		c.RopeScaling = RopeScaling{Type: "longrope", ShortFactor: f64s(short), LongFactor: f64s(long),
			OriginalContext: int(min(orig, math.MaxInt32)), AttnFactor: attn}
	}
	return nil
}

// ggufVector reads a small float vector tensor.
func ggufVector(f *gguf.File, name string) ([]float32, bool, error) {
	if _, ok := f.Tensor(name); !ok {
		return nil, false, nil
	}
	raw, ok, err := ggufSource{f}.tensor(name)
	if err != nil || !ok {
		return nil, ok, err
	}
	if len(raw.Shape) != 1 {
		return nil, false, fmt.Errorf("gguf: tensor %s: shape %v, want a vector", name, raw.Shape)
	}
	v, err := toF32(raw)
	if err != nil {
		return nil, false, fmt.Errorf("gguf: tensor %s: %w", name, err)
	}
	return v, true, nil
}

func f64s(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// loadGGUF reads the model of an open GGUF file (weights are copied, so
// the file may be closed afterwards).
func loadGGUF(f *gguf.File, o LoadOptions) (*Model, error) {
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: *cfg}
	if err := m.loadWeights(ggufSource{f}, formatGGUF, ggufIgnored, o); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return m, nil
}
