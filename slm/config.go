package slm

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// RopeStyle says which pairs of a head's dimensions RoPE rotates together.
//
// Hugging Face checkpoints of every supported family use the NeoX layout
// ("rotate_half"): dimension i is paired with i+d/2. llama.cpp's converter
// permutes the rows of the Llama (and Mistral) q and k projections when it
// writes a GGUF file, so that the same rotation becomes one over adjacent pairs
// (2i, 2i+1); GGUF files of architecture llama therefore use RopeInterleaved.
// llama.cpp does not permute qwen2 and phi3, whose GGUF files keep RopeNeoX.
// PermuteQK and UnpermuteQK convert between the two layouts; both styles give
// identical logits for correspondingly permuted weights.
type RopeStyle int

const (
	// RopeNeoX rotates (x[i], x[i+d/2]) by angle pos·invFreq[i] (HF rotate_half).
	RopeNeoX RopeStyle = iota
	// RopeInterleaved rotates (x[2i], x[2i+1]) by angle pos·invFreq[i]
	// (llama.cpp's "normal" rope, llama2.c).
	RopeInterleaved
)

func (s RopeStyle) String() string {
	switch s {
	case RopeNeoX:
		return "neox"
	case RopeInterleaved:
		return "interleaved"
	}
	return fmt.Sprintf("RopeStyle(%d)", int(s))
}

// RopeScaling describes a RoPE frequency scaling. The zero value means none.
type RopeScaling struct {
	// Type is "", "linear", "llama3" or "longrope".
	Type string `json:"type,omitempty"`
	// Factor is the context extension factor (linear, llama3).
	Factor float64 `json:"factor,omitempty"`
	// LowFreqFactor and HighFreqFactor parameterise llama3 scaling.
	LowFreqFactor  float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor float64 `json:"high_freq_factor,omitempty"`
	// OriginalContext is the pre-training context length (llama3, longrope).
	OriginalContext int `json:"original_max_position_embeddings,omitempty"`
	// ShortFactor and LongFactor are longrope's per-frequency divisors, one
	// per rotated pair. Positions below OriginalContext use ShortFactor,
	// positions at or beyond it LongFactor. (HF switches all positions of a
	// forward call to LongFactor once the sequence passes OriginalContext; with
	// a KV cache the earlier keys keep their short-factor rotation, which is
	// what this rule reproduces.)
	ShortFactor []float64 `json:"short_factor,omitempty"`
	LongFactor  []float64 `json:"long_factor,omitempty"`
	// AttnFactor multiplies cos and sin (longrope's mscale); 0 means 1.
	AttnFactor float64 `json:"attention_factor,omitempty"`
	// FreqFactors are per-pair divisors of the frequency as GGUF stores them
	// in the rope_freqs tensor (llama3 scaling baked by llama.cpp's converter).
	FreqFactors []float32 `json:"-"`
}

// Config is the architecture of a Llama-family model, as data. The forward
// pass reads every difference between families (biases, fused projections,
// RoPE layout and scaling, tied output) from here.
type Config struct {
	// Arch is the family: "llama", "mistral", "qwen2" or "phi3".
	Arch string `json:"arch"`

	Hidden  int `json:"hidden"`   // model width (embedding length)
	Layers  int `json:"layers"`   // transformer blocks
	Heads   int `json:"heads"`    // query heads
	KVHeads int `json:"kv_heads"` // key/value heads (grouped-query attention)
	HeadDim int `json:"head_dim"` // width of one head
	FFN     int `json:"ffn"`      // MLP inner width
	Vocab   int `json:"vocab"`    // vocabulary size (rows of the embedding)

	NormEps float32 `json:"norm_eps"` // RMSNorm epsilon

	RopeTheta   float64     `json:"rope_theta"`
	RopeDim     int         `json:"rope_dim"` // rotated dimensions per head (= HeadDim)
	RopeStyle   RopeStyle   `json:"rope_style"`
	RopeScaling RopeScaling `json:"rope_scaling"`

	QKVBias        bool `json:"qkv_bias"`        // q, k and v projections have biases (qwen2)
	FusedQKV       bool `json:"fused_qkv"`       // one qkv projection, rows [q; k; v] (phi3)
	FusedGateUp    bool `json:"fused_gate_up"`   // one gate_up projection, rows [gate; up] (phi3)
	TiedEmbeddings bool `json:"tied_embeddings"` // output projection is the token embedding

	// SlidingWindow, when positive, lets a query attend only to the last
	// SlidingWindow positions (itself included), as HF's mistral/phi3 masks do.
	SlidingWindow int `json:"sliding_window"`

	BOS        int   `json:"bos"`         // beginning-of-sequence id, -1 if none
	EOS        []int `json:"eos"`         // end-of-sequence ids
	MaxContext int   `json:"max_context"` // maximum positions
}

// QDim is the width of all query heads together.
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of all key (or value) heads together.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Validate checks that the dimensions are consistent and the features supported.
func (c *Config) Validate() error {
	switch {
	case c.Hidden <= 0, c.Layers <= 0, c.Heads <= 0, c.KVHeads <= 0, c.HeadDim <= 0, c.FFN <= 0, c.Vocab <= 0:
		return fmt.Errorf("config: dimensions must be positive (hidden %d, layers %d, heads %d, kv heads %d, head dim %d, ffn %d, vocab %d)",
			c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab)
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("config: %d heads are not a multiple of %d kv heads", c.Heads, c.KVHeads)
	case c.HeadDim%2 != 0:
		return fmt.Errorf("config: head dim %d is odd", c.HeadDim)
	case c.RopeDim <= 0 || c.RopeDim > c.HeadDim || c.RopeDim%2 != 0:
		return fmt.Errorf("config: rope dim %d must be even and in (0, head dim %d]", c.RopeDim, c.HeadDim)
	case !(c.NormEps > 0):
		return fmt.Errorf("config: norm eps %g must be positive", c.NormEps)
	case !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0):
		return fmt.Errorf("config: rope theta %g must be positive", c.RopeTheta)
	case c.MaxContext <= 0:
		return fmt.Errorf("config: max context %d must be positive", c.MaxContext)
	case c.Hidden > 1<<20, c.Layers > 1<<12, c.Heads > 1<<12, c.HeadDim > 1<<12, c.FFN > 1<<22, c.Vocab > 1<<24:
		return fmt.Errorf("config: implausibly large dimensions")
	}
	if c.RopeStyle != RopeNeoX && c.RopeStyle != RopeInterleaved {
		return fmt.Errorf("config: unknown rope style %d", c.RopeStyle)
	}
	s := c.RopeScaling
	half := c.RopeDim / 2
	switch s.Type {
	case "":
	case "linear":
		if !(s.Factor > 0) {
			return fmt.Errorf("config: linear rope scaling factor %g must be positive", s.Factor)
		}
	case "llama3":
		if !(s.Factor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || !(s.LowFreqFactor > 0) || s.OriginalContext <= 0 {
			return fmt.Errorf("config: llama3 rope scaling needs factor > 0, high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0 (got %+v)", s)
		}
	case "longrope":
		if len(s.ShortFactor) != half || len(s.LongFactor) != half {
			return fmt.Errorf("config: longrope needs %d short and long factors, got %d and %d", half, len(s.ShortFactor), len(s.LongFactor))
		}
		if s.OriginalContext <= 0 {
			return fmt.Errorf("config: longrope needs original_max_position_embeddings")
		}
	default:
		return fmt.Errorf("config: unsupported rope scaling type %q (supported: linear, llama3, longrope)", s.Type)
	}
	if s.FreqFactors != nil && len(s.FreqFactors) != half {
		return fmt.Errorf("config: rope_freqs has %d factors, want %d", len(s.FreqFactors), half)
	}
	for _, f := range s.FreqFactors {
		if !(f > 0) {
			return errors.New("config: rope_freqs factors must be positive")
		}
	}
	return nil
}

// invFreqs returns the rotation frequencies of the RopeDim/2 pairs for a
// position: the base frequencies theta^(-2i/d), with the scaling applied, and
// the multiplier of cos and sin.
func (c *Config) invFreqs(long bool) ([]float64, float64) {
	half := c.RopeDim / 2
	f := make([]float64, half)
	for i := range f {
		f[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.RopeDim))
	}
	s := c.RopeScaling
	mul := 1.0
	switch s.Type {
	case "linear":
		for i := range f {
			f[i] /= s.Factor
		}
	case "llama3":
		lowWavelen := float64(s.OriginalContext) / s.LowFreqFactor
		highWavelen := float64(s.OriginalContext) / s.HighFreqFactor
		for i, inv := range f {
			wavelen := 2 * math.Pi / inv
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				f[i] = inv / s.Factor
			default:
				smooth := (float64(s.OriginalContext)/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				f[i] = (1-smooth)*inv/s.Factor + smooth*inv
			}
		}
	case "longrope":
		ext := s.ShortFactor
		if long {
			ext = s.LongFactor
		}
		for i := range f {
			f[i] /= ext[i]
		}
		mul = s.AttnFactor
		if mul == 0 {
			mul = 1
			if scale := float64(c.MaxContext) / float64(s.OriginalContext); scale > 1 {
				mul = math.Sqrt(1 + math.Log(scale)/math.Log(float64(s.OriginalContext)))
			}
		}
	}
	for i, ff := range s.FreqFactors {
		f[i] /= float64(ff)
	}
	return f, mul
}

// hfConfig is the subset of a Hugging Face config.json that matters here.
type hfConfig struct {
	ModelType          string          `json:"model_type"`
	Architectures      []string        `json:"architectures"`
	HiddenSize         int             `json:"hidden_size"`
	IntermediateSize   int             `json:"intermediate_size"`
	NumHiddenLayers    int             `json:"num_hidden_layers"`
	NumAttentionHeads  int             `json:"num_attention_heads"`
	NumKeyValueHeads   *int            `json:"num_key_value_heads"`
	HeadDim            *int            `json:"head_dim"`
	VocabSize          int             `json:"vocab_size"`
	RMSNormEps         *float64        `json:"rms_norm_eps"`
	RopeTheta          *float64        `json:"rope_theta"`
	RopeScaling        json.RawMessage `json:"rope_scaling"`
	PartialRotary      *float64        `json:"partial_rotary_factor"`
	TieWordEmbeddings  *bool           `json:"tie_word_embeddings"`
	AttentionBias      bool            `json:"attention_bias"`
	MLPBias            bool            `json:"mlp_bias"`
	HiddenAct          string          `json:"hidden_act"`
	MaxPositions       int             `json:"max_position_embeddings"`
	OriginalMaxPos     int             `json:"original_max_position_embeddings"`
	SlidingWindow      *int            `json:"sliding_window"`
	UseSlidingWindow   *bool           `json:"use_sliding_window"`
	BOSTokenID         json.RawMessage `json:"bos_token_id"`
	EOSTokenID         json.RawMessage `json:"eos_token_id"`
	TorchDtype         string          `json:"torch_dtype"`
	QuantizationConfig json.RawMessage `json:"quantization_config"`
}

type hfRopeScaling struct {
	Type            string    `json:"type"`
	RopeType        string    `json:"rope_type"`
	Factor          float64   `json:"factor"`
	LowFreqFactor   float64   `json:"low_freq_factor"`
	HighFreqFactor  float64   `json:"high_freq_factor"`
	OriginalMaxPos  int       `json:"original_max_position_embeddings"`
	ShortFactor     []float64 `json:"short_factor"`
	LongFactor      []float64 `json:"long_factor"`
	AttentionFactor float64   `json:"attention_factor"`
}

// ConfigFromHF parses a Hugging Face config.json of model_type llama
// (Llama 2/3, SmolLM, TinyLlama), mistral, qwen2 or phi3.
func ConfigFromHF(data []byte) (*Config, error) {
	var h hfConfig
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	c := &Config{
		Arch:       h.ModelType,
		Hidden:     h.HiddenSize,
		Layers:     h.NumHiddenLayers,
		Heads:      h.NumAttentionHeads,
		FFN:        h.IntermediateSize,
		Vocab:      h.VocabSize,
		RopeTheta:  10000,
		RopeStyle:  RopeNeoX,
		MaxContext: h.MaxPositions,
		BOS:        -1,
	}
	switch h.ModelType {
	case "llama", "mistral":
	case "qwen2":
		c.QKVBias = true
	case "phi3":
		c.FusedQKV, c.FusedGateUp = true, true
	case "":
		return nil, errors.New("config.json: model_type missing")
	default:
		return nil, fmt.Errorf("config.json: unsupported model_type %q (supported: llama, mistral, qwen2, phi3)", h.ModelType)
	}
	if h.AttentionBias {
		if h.ModelType == "phi3" {
			return nil, errors.New("config.json: attention_bias with phi3's fused qkv is not supported")
		}
		// llama's attention_bias adds a bias to o_proj too.
		return nil, fmt.Errorf("config.json: attention_bias is not supported for %s", h.ModelType)
	}
	if h.MLPBias {
		return nil, errors.New("config.json: mlp_bias is not supported")
	}
	if h.HiddenAct != "" && h.HiddenAct != "silu" {
		return nil, fmt.Errorf("config.json: hidden_act %q is not supported (want silu)", h.HiddenAct)
	}
	if len(h.QuantizationConfig) > 0 && string(h.QuantizationConfig) != "null" {
		return nil, errors.New("config.json: quantization_config (pre-quantized HF checkpoints) is not supported")
	}
	if h.PartialRotary != nil && *h.PartialRotary != 1 {
		return nil, fmt.Errorf("config.json: partial_rotary_factor %g is not supported", *h.PartialRotary)
	}
	c.KVHeads = c.Heads
	if h.NumKeyValueHeads != nil {
		c.KVHeads = *h.NumKeyValueHeads
	}
	if c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if h.HeadDim != nil && *h.HeadDim > 0 {
		c.HeadDim = *h.HeadDim
	}
	c.RopeDim = c.HeadDim
	switch {
	case h.RMSNormEps != nil:
		c.NormEps = float32(*h.RMSNormEps)
	case h.ModelType == "llama":
		c.NormEps = 1e-6
	default:
		c.NormEps = 1e-6
		if h.ModelType == "phi3" {
			c.NormEps = 1e-5
		}
	}
	if h.RopeTheta != nil {
		c.RopeTheta = *h.RopeTheta
	}
	switch {
	case h.TieWordEmbeddings != nil:
		c.TiedEmbeddings = *h.TieWordEmbeddings
	default:
		c.TiedEmbeddings = false // the transformers default for these families
	}
	if h.SlidingWindow != nil && *h.SlidingWindow > 0 {
		use := h.ModelType != "qwen2" // qwen2 needs use_sliding_window
		if h.UseSlidingWindow != nil {
			use = *h.UseSlidingWindow
		}
		if use {
			c.SlidingWindow = *h.SlidingWindow
		}
	}
	if len(h.RopeScaling) > 0 && string(h.RopeScaling) != "null" {
		var rs hfRopeScaling
		if err := json.Unmarshal(h.RopeScaling, &rs); err != nil {
			return nil, fmt.Errorf("config.json: rope_scaling: %w", err)
		}
		typ := rs.RopeType
		if typ == "" {
			typ = rs.Type
		}
		switch typ {
		case "default", "":
		case "linear":
			c.RopeScaling = RopeScaling{Type: "linear", Factor: rs.Factor}
		case "llama3":
			c.RopeScaling = RopeScaling{Type: "llama3", Factor: rs.Factor, LowFreqFactor: rs.LowFreqFactor,
				HighFreqFactor: rs.HighFreqFactor, OriginalContext: rs.OriginalMaxPos}
		case "longrope", "su":
			orig := h.OriginalMaxPos
			if rs.OriginalMaxPos > 0 {
				orig = rs.OriginalMaxPos
			}
			c.RopeScaling = RopeScaling{Type: "longrope", ShortFactor: rs.ShortFactor, LongFactor: rs.LongFactor,
				OriginalContext: orig, AttnFactor: rs.AttentionFactor}
		default:
			return nil, fmt.Errorf("config.json: unsupported rope_scaling type %q (supported: linear, llama3, longrope)", typ)
		}
	}
	var err error
	if c.BOS, err = firstID(h.BOSTokenID); err != nil {
		return nil, fmt.Errorf("config.json: bos_token_id: %w", err)
	}
	if c.EOS, err = idList(h.EOSTokenID); err != nil {
		return nil, fmt.Errorf("config.json: eos_token_id: %w", err)
	}
	if c.MaxContext <= 0 {
		c.MaxContext = 2048
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return c, nil
}

// idList parses a token id field that is null, an integer or a list of integers.
func idList(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want an integer or a list of integers, got %s", raw)
	}
	return many, nil
}

func firstID(raw json.RawMessage) (int, error) {
	ids, err := idList(raw)
	if err != nil || len(ids) == 0 {
		return -1, err
	}
	return ids[0], nil
}

// HFConfigJSON renders c as a Hugging Face config.json (the inverse of
// ConfigFromHF for the fields it reads).
func (c *Config) HFConfigJSON() ([]byte, error) {
	m := map[string]any{
		"model_type":              c.Arch,
		"hidden_size":             c.Hidden,
		"intermediate_size":       c.FFN,
		"num_hidden_layers":       c.Layers,
		"num_attention_heads":     c.Heads,
		"num_key_value_heads":     c.KVHeads,
		"head_dim":                c.HeadDim,
		"vocab_size":              c.Vocab,
		"rms_norm_eps":            float64(c.NormEps),
		"rope_theta":              c.RopeTheta,
		"tie_word_embeddings":     c.TiedEmbeddings,
		"max_position_embeddings": c.MaxContext,
		"hidden_act":              "silu",
		"torch_dtype":             "float32",
	}
	switch c.Arch {
	case "llama", "mistral":
		m["architectures"] = []string{map[string]string{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}[c.Arch]}
		m["attention_bias"] = false
		m["mlp_bias"] = false
	case "qwen2":
		m["architectures"] = []string{"Qwen2ForCausalLM"}
	case "phi3":
		m["architectures"] = []string{"Phi3ForCausalLM"}
	default:
		return nil, fmt.Errorf("config: unknown arch %q", c.Arch)
	}
	if c.SlidingWindow > 0 {
		m["sliding_window"] = c.SlidingWindow
		if c.Arch == "qwen2" {
			m["use_sliding_window"] = true
		}
	} else {
		m["sliding_window"] = nil
	}
	if c.BOS >= 0 {
		m["bos_token_id"] = c.BOS
	}
	switch len(c.EOS) {
	case 0:
	case 1:
		m["eos_token_id"] = c.EOS[0]
	default:
		m["eos_token_id"] = c.EOS
	}
	s := c.RopeScaling
	switch s.Type {
	case "":
		m["rope_scaling"] = nil
	case "linear":
		m["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": s.Factor}
	case "llama3":
		m["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": s.Factor, "low_freq_factor": s.LowFreqFactor,
			"high_freq_factor": s.HighFreqFactor, "original_max_position_embeddings": s.OriginalContext}
	case "longrope":
		r := map[string]any{"type": "longrope", "short_factor": s.ShortFactor, "long_factor": s.LongFactor}
		if s.AttnFactor != 0 {
			r["attention_factor"] = s.AttnFactor
		}
		m["rope_scaling"] = r
		m["original_max_position_embeddings"] = s.OriginalContext
	}
	if s.FreqFactors != nil {
		return nil, errors.New("config: GGUF rope_freqs factors have no config.json form")
	}
	if c.RopeDim != c.HeadDim {
		m["partial_rotary_factor"] = float64(c.RopeDim) / float64(c.HeadDim)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
