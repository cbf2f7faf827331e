// Package lora holds low-rank adapters (LoRA, Hu et al. 2021) for the slm
// engine: their configuration and files in the format of Hugging Face PEFT
// (adapter_config.json and adapter_model.safetensors), PEFT's
// initialisation, and the matrix arithmetic a forward and backward pass
// through an adapted projection needs.
//
// An adapted projection computes y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ with A of r×in,
// B of out×r and s = alpha/r (alpha/√r with rsLoRA). The base weight W is
// never touched by this package except by Merge and Unmerge.
//
// The package does not import slm (slm imports it): an adapter learns the
// dimensions of its base from a Base, which slm derives from its Config.
package lora

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Module names the projections of a transformer block as PEFT does.
const (
	QProj      = "q_proj"
	KProj      = "k_proj"
	VProj      = "v_proj"
	OProj      = "o_proj"
	GateProj   = "gate_proj"
	UpProj     = "up_proj"
	DownProj   = "down_proj"
	QKVProj    = "qkv_proj"     // Phi-3: rows [q; k; v]
	GateUpProj = "gate_up_proj" // Phi-3: rows [gate; up]
)

// AllLinear is PEFT's target_modules shorthand for every linear layer but
// the output head.
const AllLinear = "all-linear"

// Init is how new adapter matrices are initialised (PEFT's init_lora_weights).
type Init int

const (
	// InitDefault is init_lora_weights=true: A Kaiming-uniform with
	// a=√5 (uniform in ±1/√in), B zero, so a new adapter changes nothing.
	InitDefault Init = iota
	// InitGaussian is "gaussian": A normal with standard deviation 1/r, B zero.
	InitGaussian
	// InitNone is false: both matrices keep torch.nn.Linear's default
	// initialisation (Kaiming-uniform, ±1/√fan_in), so B is not zero.
	// PEFT offers it for tests.
	InitNone
)

// Config is a PEFT LoraConfig: the contents of adapter_config.json.
type Config struct {
	// BaseModel is base_model_name_or_path.
	BaseModel string
	// R is the rank; Alpha the scaling numerator (lora_alpha).
	R     int
	Alpha float64
	// Dropout is lora_dropout, the probability of zeroing an input
	// element of the adapter branch during training.
	Dropout float64
	// TargetModules lists module names (a module is adapted when its name
	// equals an entry or ends with "."+entry), or holds AllLinear alone.
	// TargetRegex, when set instead, must match a module's whole name.
	TargetModules []string
	TargetRegex   string
	// LayersToTransform, when not empty, restricts adapters to these layers.
	LayersToTransform []int
	// UseRSLoRA scales by alpha/√r instead of alpha/r.
	UseRSLoRA bool
	// RankPattern and AlphaPattern override R and Alpha for modules whose
	// name matches a key (as a regular expression on the name's suffix after
	// a dot, as PEFT does).
	RankPattern  map[string]int
	AlphaPattern map[string]float64
	// Init is init_lora_weights.
	Init Init
	// InferenceMode is PEFT's inference_mode flag as read. Marshal always
	// writes true, as PEFT's save_pretrained does.
	InferenceMode bool

	// extra holds fields of adapter_config.json this package does not
	// interpret, written back unchanged.
	extra map[string]json.RawMessage
}

// NewConfig returns a configuration with PEFT's defaults for a causal
// language model: rank r, alpha, no dropout, the given target modules.
func NewConfig(baseModel string, r int, alpha float64, targets ...string) Config {
	return Config{BaseModel: baseModel, R: r, Alpha: alpha, TargetModules: slices.Clone(targets)}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.R <= 0:
		return fmt.Errorf("lora config: r %d must be positive", c.R)
	case math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) || c.Alpha == 0:
		return fmt.Errorf("lora config: lora_alpha %g must be finite and non-zero", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("lora config: lora_dropout %g must be in [0, 1)", c.Dropout)
	case len(c.TargetModules) == 0 && c.TargetRegex == "":
		return fmt.Errorf("lora config: target_modules is empty")
	case len(c.TargetModules) > 0 && c.TargetRegex != "":
		return fmt.Errorf("lora config: both a target_modules list and a regular expression")
	case c.Init < InitDefault || c.Init > InitNone:
		return fmt.Errorf("lora config: unknown init %d", c.Init)
	}
	if c.TargetRegex != "" {
		if _, err := regexp.Compile(`^(?:` + c.TargetRegex + `)$`); err != nil {
			return fmt.Errorf("lora config: target_modules: %w", err)
		}
	}
	for k, r := range c.RankPattern {
		if _, err := patternRegexp(k); err != nil {
			return fmt.Errorf("lora config: rank_pattern key %q: %w", k, err)
		}
		if r <= 0 {
			return fmt.Errorf("lora config: rank_pattern[%q] = %d must be positive", k, r)
		}
	}
	for k, a := range c.AlphaPattern {
		if _, err := patternRegexp(k); err != nil {
			return fmt.Errorf("lora config: alpha_pattern key %q: %w", k, err)
		}
		if math.IsNaN(a) || math.IsInf(a, 0) || a == 0 {
			return fmt.Errorf("lora config: alpha_pattern[%q] = %g must be finite and non-zero", k, a)
		}
	}
	for _, l := range c.LayersToTransform {
		if l < 0 {
			return fmt.Errorf("lora config: layers_to_transform has negative layer %d", l)
		}
	}
	return nil
}

// Targets reports whether the module with the given full name (for example
// "model.layers.3.self_attn.q_proj") and short name ("q_proj") in layer
// layer is adapted.
func (c *Config) Targets(name, short string, layer int) bool {
	if len(c.LayersToTransform) > 0 && !slices.Contains(c.LayersToTransform, layer) {
		return false
	}
	if c.TargetRegex != "" {
		re, err := regexp.Compile(`^(?:` + c.TargetRegex + `)$`)
		return err == nil && re.MatchString(name)
	}
	for _, t := range c.TargetModules {
		if t == AllLinear || t == name || t == short || strings.HasSuffix(name, "."+t) {
			return true
		}
	}
	return false
}

// patternRegexp compiles a rank_pattern or alpha_pattern key the way PEFT
// matches it: the key must match a suffix of the module name that starts
// after a dot (or the whole name).
func patternRegexp(key string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:.*\.)?(?:` + key + `)$`)
}

// patternKey returns the first key (in sorted order, for determinism; PEFT
// uses insertion order) of the patterns that matches name.
func patternKey[V any](m map[string]V, name string) (string, bool) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == name {
			return k, true
		}
	}
	for _, k := range keys {
		if re, err := patternRegexp(k); err == nil && re.MatchString(name) {
			return k, true
		}
	}
	return "", false
}

// RankAlpha returns the rank and alpha of the named module after
// rank_pattern and alpha_pattern.
func (c *Config) RankAlpha(name string) (r int, alpha float64) {
	r, alpha = c.R, c.Alpha
	if k, ok := patternKey(c.RankPattern, name); ok {
		r = c.RankPattern[k]
	}
	if k, ok := patternKey(c.AlphaPattern, name); ok {
		alpha = c.AlphaPattern[k]
	}
	return r, alpha
}

// Scale returns the factor of the low-rank product for the named module:
// alpha/r, or alpha/√r with rsLoRA.
func (c *Config) Scale(name string) float64 {
	r, alpha := c.RankAlpha(name)
	if c.UseRSLoRA {
		return alpha / math.Sqrt(float64(r))
	}
	return alpha / float64(r)
}

// ParseConfig reads adapter_config.json. Fields that would change the
// arithmetic in ways this package does not implement (DoRA, biases,
// fan_in_fan_out, modules_to_save, other PEFT types) are errors naming the
// field; fields it does not need are kept and written back by Marshal.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	c := &Config{extra: map[string]json.RawMessage{}}
	field := func(name string, dst any) error {
		v, ok := raw[name]
		if !ok || string(v) == "null" {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("adapter_config.json: field %s: %w", name, err)
		}
		return nil
	}
	var peftType, bias string
	var fanInFanOut, useDora bool
	var modulesToSave []string
	var targets json.RawMessage
	var initW json.RawMessage
	var layers json.RawMessage
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"peft_type", &peftType}, {"base_model_name_or_path", &c.BaseModel},
		{"r", &c.R}, {"lora_alpha", &c.Alpha}, {"lora_dropout", &c.Dropout},
		{"target_modules", &targets}, {"use_rslora", &c.UseRSLoRA},
		{"rank_pattern", &c.RankPattern}, {"alpha_pattern", &c.AlphaPattern},
		{"init_lora_weights", &initW}, {"inference_mode", &c.InferenceMode},
		{"bias", &bias}, {"fan_in_fan_out", &fanInFanOut}, {"use_dora", &useDora},
		{"modules_to_save", &modulesToSave}, {"layers_to_transform", &layers},
	} {
		if err := field(f.name, f.dst); err != nil {
			return nil, err
		}
	}
	if _, ok := raw["r"]; !ok {
		return nil, fmt.Errorf("adapter_config.json: field r is missing")
	}
	if _, ok := raw["lora_alpha"]; !ok {
		c.Alpha = 8 // PEFT's default
	}
	switch {
	case peftType != "LORA":
		return nil, fmt.Errorf("adapter_config.json: field peft_type is %q, want LORA", peftType)
	case bias != "" && bias != "none":
		return nil, fmt.Errorf("adapter_config.json: field bias is %q; only \"none\" is supported", bias)
	case fanInFanOut:
		return nil, fmt.Errorf("adapter_config.json: field fan_in_fan_out is true; only Linear layers (false) are supported")
	case useDora:
		return nil, fmt.Errorf("adapter_config.json: field use_dora is true; DoRA is not supported")
	case len(modulesToSave) > 0:
		return nil, fmt.Errorf("adapter_config.json: field modules_to_save %q is not supported", modulesToSave)
	}
	if len(targets) > 0 && string(targets) != "null" {
		var s string
		if err := json.Unmarshal(targets, &s); err == nil {
			if s == AllLinear {
				c.TargetModules = []string{AllLinear}
			} else {
				c.TargetRegex = s
			}
		} else if err := json.Unmarshal(targets, &c.TargetModules); err != nil {
			return nil, fmt.Errorf("adapter_config.json: field target_modules: want a list of names or a string")
		}
	}
	if len(layers) > 0 && string(layers) != "null" {
		var one int
		if err := json.Unmarshal(layers, &one); err == nil {
			c.LayersToTransform = []int{one}
		} else if err := json.Unmarshal(layers, &c.LayersToTransform); err != nil {
			return nil, fmt.Errorf("adapter_config.json: field layers_to_transform: want an integer or a list of integers")
		}
	}
	if len(initW) > 0 && string(initW) != "null" {
		var b bool
		var s string
		switch {
		case json.Unmarshal(initW, &b) == nil:
			if !b {
				c.Init = InitNone
			}
		case json.Unmarshal(initW, &s) == nil && s == "gaussian":
			c.Init = InitGaussian
		default:
			return nil, fmt.Errorf("adapter_config.json: field init_lora_weights %s is not supported (true, false or \"gaussian\")", initW)
		}
	}
	for k, v := range raw {
		if !knownField[k] {
			c.extra[k] = v
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("adapter_config.json: %w", err)
	}
	return c, nil
}

var knownField = map[string]bool{
	"peft_type": true, "base_model_name_or_path": true, "r": true, "lora_alpha": true,
	"lora_dropout": true, "target_modules": true, "use_rslora": true, "rank_pattern": true,
	"alpha_pattern": true, "init_lora_weights": true, "inference_mode": true, "bias": true,
	"fan_in_fan_out": true, "use_dora": true, "modules_to_save": true, "layers_to_transform": true,
}

// Marshal writes adapter_config.json as PEFT's save_pretrained does: every
// field of LoraConfig, keys sorted, indented by two spaces.
func (c *Config) Marshal() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	m := map[string]any{
		// PEFT's defaults for fields this package does not interpret.
		"alpha_pattern":       map[string]float64{},
		"auto_mapping":        nil,
		"layer_replication":   nil,
		"layers_pattern":      nil,
		"loftq_config":        map[string]any{},
		"megatron_config":     nil,
		"megatron_core":       "megatron.core",
		"rank_pattern":        map[string]int{},
		"revision":            nil,
		"modules_to_save":     nil,
		"use_dora":            false,
		"bias":                "none",
		"fan_in_fan_out":      false,
		"peft_type":           "LORA",
		"task_type":           "CAUSAL_LM",
		"layers_to_transform": nil,
	}
	for k, v := range c.extra {
		m[k] = v
	}
	m["base_model_name_or_path"] = c.BaseModel
	m["r"] = c.R
	m["lora_alpha"] = jsonNumber(c.Alpha)
	m["lora_dropout"] = jsonFloat(c.Dropout)
	m["use_rslora"] = c.UseRSLoRA
	// PEFT's save_pretrained always writes inference_mode true.
	m["inference_mode"] = true
	if c.TargetRegex != "" {
		m["target_modules"] = c.TargetRegex
	} else if len(c.TargetModules) == 1 && c.TargetModules[0] == AllLinear {
		m["target_modules"] = AllLinear
	} else {
		m["target_modules"] = c.TargetModules
	}
	if len(c.LayersToTransform) > 0 {
		m["layers_to_transform"] = c.LayersToTransform
	}
	if c.RankPattern != nil {
		m["rank_pattern"] = c.RankPattern
	}
	if c.AlphaPattern != nil {
		ap := map[string]json.Number{}
		for k, v := range c.AlphaPattern {
			ap[k] = jsonNumber(v)
		}
		m["alpha_pattern"] = ap
	}
	switch c.Init {
	case InitDefault:
		m["init_lora_weights"] = true
	case InitGaussian:
		m["init_lora_weights"] = "gaussian"
	case InitNone:
		m["init_lora_weights"] = false
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// jsonNumber formats v as Python's json does for the value PEFT would hold:
// integral values as integers (PEFT's lora_alpha is an int by default),
// others in shortest round-trip form.
func jsonNumber(v float64) json.Number {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return json.Number(strconv.FormatInt(int64(v), 10))
	}
	return json.Number(strconv.FormatFloat(v, 'g', -1, 64))
}

// jsonFloat formats v as Python's repr of a float: integral values keep ".0".
func jsonFloat(v float64) json.Number {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return json.Number(s)
}
