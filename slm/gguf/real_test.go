package gguf

import (
	"bytes"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm/tensor"
)

func TestStories260K(t *testing.T) {
	f, err := Open(sharedtest.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if testing.Verbose() {
		for _, kv := range f.Meta {
			t.Logf("%-40s %v", kv.Key, kv.Value)
		}
		for _, ti := range f.Tensors {
			t.Logf("%-28s %-4v %v @%d", ti.Name, ti.Type, ti.Shape, ti.Offset)
		}
	}
	if f.Version != 3 || len(f.Meta) != 19 || len(f.Tensors) != 48 {
		t.Errorf("version %d, %d keys, %d tensors; want 3, 19, 48", f.Version, len(f.Meta), len(f.Tensors))
	}
	if arch, err := f.String("general.architecture"); err != nil || arch != "llama" {
		t.Errorf("general.architecture = %q, %v", arch, err)
	}
	for key, want := range map[string]uint64{
		"llama.embedding_length": 64, "llama.block_count": 5, "llama.attention.head_count": 8,
		"llama.attention.head_count_kv": 4, "llama.context_length": 2048,
		"llama.feed_forward_length": 172, "llama.rope.dimension_count": 8, "tokenizer.ggml.bos_token_id": 1,
	} {
		if got, err := f.Uint(key); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if eps, err := f.Float("llama.attention.layer_norm_rms_epsilon"); err != nil || eps != float64(float32(1e-5)) {
		t.Errorf("rms epsilon = %g, %v", eps, err)
	}
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(tokens) != 512 {
		t.Fatalf("tokenizer.ggml.tokens: %d, %v", len(tokens), err)
	}
	if tokens[0] != "<unk>" || tokens[1] != "<s>" || tokens[2] != "</s>" {
		t.Errorf("first tokens %q", tokens[:3])
	}
	if scores, err := f.Float32s("tokenizer.ggml.scores"); err != nil || len(scores) != 512 {
		t.Errorf("scores: %d, %v", len(scores), err)
	}
	if types, err := f.Int32s("tokenizer.ggml.token_type"); err != nil || len(types) != 512 {
		t.Errorf("token_type: %d, %v", len(types), err)
	}
	wantShapes := map[string][]int64{
		"token_embd.weight":      {64, 512},
		"blk.0.attn_q.weight":    {64, 64},
		"blk.0.attn_k.weight":    {64, 32},
		"blk.0.ffn_gate.weight":  {64, 172},
		"blk.4.ffn_down.weight":  {172, 64},
		"blk.4.attn_norm.weight": {64},
		"output_norm.weight":     {64},
	}
	for name, shape := range wantShapes {
		ti, ok := f.Tensor(name)
		if !ok {
			t.Errorf("tensor %s missing", name)
			continue
		}
		if !equalShape(ti.Shape, shape) || ti.Type != tensor.F32 {
			t.Errorf("%s: %v %v, want F32 %v", name, ti.Type, ti.Shape, shape)
		}
	}
	// Decoding works and the norm weights are plausible (around 1).
	b, ti, err := f.TensorData("output_norm.weight")
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, ti.NumElements())
	if err := tensor.Dequantize(x, b, ti.Type); err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	if mean := sum / float64(len(x)); mean < 0.2 || mean > 5 {
		t.Errorf("output_norm mean %g", mean)
	}

	// Re-writing the real file keeps every key, tensor and byte.
	var buf bytes.Buffer
	if err := Write(&buf, f.Meta, writeTensorsOf(t, f)); err != nil {
		t.Fatal(err)
	}
	g, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	assertSameFile(t, f, g)
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
