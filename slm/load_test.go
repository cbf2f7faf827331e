package slm

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/safetensors"
	"github.com/usersim/usersim/slm/tensor"
)

// TestLoadValidation writes a small valid HF checkpoint, then breaks it one
// way at a time; each load must fail with an error naming the culprit.
func TestLoadValidation(t *testing.T) {
	cfg := testConfigs(t)["qwen2"]
	m := randomModel(t, cfg, 5)
	good := t.TempDir()
	if err := m.WriteHF(good, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	set, err := safetensors.OpenDir(good)
	if err != nil {
		t.Fatal(err)
	}
	var tensors []safetensors.TensorInfo
	for _, n := range set.Names() {
		ti, _ := set.Tensor(n)
		ti.Data = append([]byte(nil), ti.Data...)
		tensors = append(tensors, ti)
	}
	set.Close()
	cfgJSON, err := os.ReadFile(filepath.Join(good, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadModel(good); err != nil {
		t.Fatalf("valid checkpoint: %v", err)
	}
	const victim = "model.layers.1.self_attn.k_proj.bias"
	edit := func(f func(ts []safetensors.TensorInfo) []safetensors.TensorInfo) []safetensors.TensorInfo {
		ts := make([]safetensors.TensorInfo, len(tensors))
		copy(ts, tensors)
		return f(ts)
	}
	cases := []struct {
		name    string
		config  string
		tensors []safetensors.TensorInfo
		want    string
	}{
		{"missing tensor", "", edit(func(ts []safetensors.TensorInfo) []safetensors.TensorInfo {
			for i := range ts {
				if ts[i].Name == victim {
					return append(ts[:i], ts[i+1:]...)
				}
			}
			return ts
		}), victim + ": missing"},
		{"wrong shape", "", edit(func(ts []safetensors.TensorInfo) []safetensors.TensorInfo {
			for i := range ts {
				if ts[i].Name == "model.layers.0.mlp.down_proj.weight" {
					ts[i].Shape = []int64{ts[i].Shape[1], ts[i].Shape[0]}
				}
			}
			return ts
		}), "model.layers.0.mlp.down_proj.weight: shape [128 64], want [64 128]"},
		{"integer dtype", "", edit(func(ts []safetensors.TensorInfo) []safetensors.TensorInfo {
			for i := range ts {
				if ts[i].Name == "model.norm.weight" {
					ts[i].DType = tensor.I32
				}
			}
			return ts
		}), "model.norm.weight: integer dtype"},
		{"NaN weight", "", edit(func(ts []safetensors.TensorInfo) []safetensors.TensorInfo {
			for i := range ts {
				if ts[i].Name == "model.embed_tokens.weight" {
					d := append([]byte(nil), ts[i].Data...)
					binary.LittleEndian.PutUint32(d[40:], math.Float32bits(float32(math.NaN())))
					ts[i].Data = d
				}
			}
			return ts
		}), "model.embed_tokens.weight: element 10 is NaN"},
		{"extra tensor", "", edit(func(ts []safetensors.TensorInfo) []safetensors.TensorInfo {
			return append(ts, safetensors.TensorInfo{Name: "model.layers.0.self_attn.o_proj.bias", DType: tensor.F32, Shape: []int64{64}, Data: make([]byte, 256)})
		}), "model.layers.0.self_attn.o_proj.bias: not used"},
		{"bad config", strings.Replace(string(cfgJSON), `"num_key_value_heads": 2`, `"num_key_value_heads": 3`, 1), tensors, "not a multiple of 3 kv heads"},
		{"unknown model type", strings.Replace(string(cfgJSON), `"model_type": "qwen2"`, `"model_type": "gpt_neox"`, 1), tensors, `unsupported model_type "gpt_neox"`},
		{"unsupported rope scaling", strings.Replace(string(cfgJSON), `"rope_scaling": null`, `"rope_scaling": {"rope_type": "yarn", "factor": 4}`, 1), tensors, `unsupported rope_scaling type "yarn"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := string(cfgJSON)
			if tc.config != "" {
				if tc.config == c {
					t.Fatal("config edit did not apply")
				}
				c = tc.config
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), tc.tensors, nil); err != nil {
				t.Fatal(err)
			}
			_, err := LoadModel(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestQuantizedForward checks that a Q8_0 model (weights quantized in
// memory, and written to and read from GGUF as Q8_0) stays close to the F32
// model and to the float64 reference over its dequantized weights.
func TestQuantizedForward(t *testing.T) {
	cfg := smolConfig(2)
	cfg.Vocab = 2048
	m := randomModel(t, cfg, 9)
	toks := []int{1, 50, 900, 7, 2000, 13, 13, 400}
	ctx := context.Background()
	f32, err := m.Forward(ctx, []Sequence{{Cache: m.NewCache(), Tokens: toks, Logits: LogitsAll}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.QuantizeQ8_0(); err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].MLP.Down.DType != tensor.Q8_0 || m.Embed.DType != tensor.Q8_0 {
		t.Fatal("weights not quantized")
	}
	path := filepath.Join(t.TempDir(), "q8.gguf")
	if err := m.WriteGGUF(path, nil, SaveOptions{Keep: true}); err != nil {
		t.Fatal(err)
	}
	back, err := LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Layers[1].Attn.Q.DType != tensor.Q8_0 {
		t.Fatalf("loaded Q8_0 GGUF has %v weights", back.Layers[1].Attn.Q.DType)
	}
	ref := refForward(t, m, toks) // over the dequantized weights
	for _, mm := range []*Model{m, back} {
		q8, err := mm.Forward(ctx, []Sequence{{Cache: mm.NewCache(), Tokens: toks, Logits: LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range toks {
			// Activations are quantized to 8 bits by the kernel: ~1e-2.
			if d := maxDiff(q8[0][i], ref[i]); d > 3e-2 {
				t.Errorf("position %d: Q8_0 vs reference over dequantized weights: %g", i, d)
			}
			// Weights rounded to 8 bits, amplified by the peaked attention of
			// these std-0.05 random weights: a few percent of the logits.
			scale := maxDiff(f32[0][i], make([]float32, len(f32[0][i])))
			if d := maxDiff(q8[0][i], f32[0][i]); d > 0.04*scale {
				t.Errorf("position %d: Q8_0 vs F32: %g (max |logit| %g)", i, d, scale)
			}
			if argmax(q8[0][i]) != argmax(ref[i]) {
				t.Errorf("position %d: argmax %d, reference %d", i, argmax(q8[0][i]), argmax(ref[i]))
			}
		}
	}
}

// TestLoadGGUFValidation breaks the stories260K GGUF one way at a time.
func TestLoadGGUFValidation(t *testing.T) {
	src := filepath.Join(sharedDir(t, "models", "stories260K"), "stories260K.gguf")
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tensors []gguf.WriteTensor
	for _, ti := range f.Tensors {
		data, _, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, gguf.WriteTensor{Name: ti.Name, Shape: ti.Shape, Type: ti.Type, Data: data})
	}
	setMeta := func(key string, v gguf.Value) []gguf.KV {
		meta := append([]gguf.KV(nil), f.Meta...)
		for i := range meta {
			if meta[i].Key == key {
				meta[i].Value = v
				return meta
			}
		}
		return append(meta, gguf.KV{Key: key, Value: v})
	}
	drop := func(name string) []gguf.WriteTensor {
		var out []gguf.WriteTensor
		for _, wt := range tensors {
			if wt.Name != name {
				out = append(out, wt)
			}
		}
		return out
	}
	cases := []struct {
		name    string
		meta    []gguf.KV
		tensors []gguf.WriteTensor
		want    string
	}{
		{"missing tensor", f.Meta, drop("blk.2.ffn_up.weight"), "blk.2.ffn_up.weight: missing"},
		{"unknown architecture", setMeta("general.architecture", gguf.String("gptj")), tensors, `unsupported general.architecture "gptj"`},
		{"wrong kv head count", setMeta("llama.attention.head_count_kv", gguf.Uint32(2)), tensors, "blk.0.attn_k.weight: shape [32 64], want [16 64]"},
		{"partial rope", setMeta("llama.attention.head_count", gguf.Uint32(16)), tensors, "partial rotary embeddings"},
		{"missing eps", func() []gguf.KV {
			var m []gguf.KV
			for _, kv := range f.Meta {
				if kv.Key != "llama.attention.layer_norm_rms_epsilon" {
					m = append(m, kv)
				}
			}
			return m
		}(), tensors, "llama.attention.layer_norm_rms_epsilon"},
		{"yarn scaling", setMeta("llama.rope.scaling.type", gguf.String("yarn")), tensors, "yarn is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.gguf")
			if err := gguf.WriteFile(path, tc.meta, tc.tensors); err != nil {
				t.Fatal(err)
			}
			_, err := LoadModel(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLoadQuantizeQ8_0 quantizes while loading: the same weights as
// quantizing after loading, and logits near the float64 golden ones.
func TestLoadQuantizeQ8_0(t *testing.T) {
	dir := sharedDir(t, "golden", "hf", "phi3")
	q, err := LoadModelWith(dir, LoadOptions{QuantizeQ8_0: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.QuantizeQ8_0(); err != nil {
		t.Fatal(err)
	}
	ql, ml := q.linears(), m.linears()
	for i := range ql {
		if ql[i].DType != tensor.Q8_0 || !bytes.Equal(ql[i].Q, ml[i].Q) {
			t.Fatalf("linear %d: %v, differs from QuantizeQ8_0 after loading", i, ql[i].DType)
		}
	}
	var g hfGolden
	readJSON(t, filepath.Join(dir, "golden_logits.json"), &g)
	s := g.Sequences[1]
	out, err := q.Forward(context.Background(), []Sequence{{Cache: q.NewCache(), Tokens: s.InputIDs}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(out[0][0], s.LastLogits); d > 2e-2 || d < 1e-6 {
		t.Errorf("Q8_0 last logits differ from the F32 golden by %g", d)
	}
}

// TestLoadMmap loads with the weights left in the file mapping: same
// logits as a copying load, for GGUF and safetensors.
func TestLoadMmap(t *testing.T) {
	stories := filepath.Join(sharedDir(t, "models", "stories260K"), "stories260K.gguf")
	m, tok, err := LoadWith(stories, LoadOptions{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	if tok == nil {
		t.Fatal("no tokenizer")
	}
	if m.closer == nil {
		t.Error("GGUF mapping not kept")
	}
	checkStoriesLogits(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	dir := sharedDir(t, "golden", "hf", "llama")
	h, err := LoadModelWith(dir, LoadOptions{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	checkHFGolden(t, h, filepath.Join(dir, "golden_logits.json"), 1e-5)

	buf := make([]byte, 17)
	if _, ok := aliasF32(buf[1:9]); ok && uintptr(unsafe.Pointer(&buf[1]))%4 != 0 {
		t.Error("aliasF32 accepted unaligned bytes")
	}
	w := make([]float32, 4)
	wb := unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 16)
	a, ok := aliasF32(wb)
	if !ok || &a[0] != &w[0] || len(a) != 4 {
		t.Error("aliasF32 did not alias aligned bytes")
	}
}
