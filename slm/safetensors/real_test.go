package safetensors

import (
	"bytes"
	"encoding/binary"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm/tensor"
)

func TestGoldenHF(t *testing.T) {
	tests := []struct {
		path   []string
		count  int
		dtype  tensor.DType
		shapes map[string][]int64
		absent []string
	}{
		{[]string{"llama", "model.safetensors"}, 21, tensor.F32, map[string][]int64{
			"lm_head.weight": {32000, 64}, "model.embed_tokens.weight": {32000, 64},
			"model.layers.0.self_attn.q_proj.weight": {64, 64}, "model.layers.0.self_attn.k_proj.weight": {32, 64},
			"model.layers.1.mlp.down_proj.weight": {64, 128}, "model.norm.weight": {64},
		}, nil},
		{[]string{"llama", "model.bf16.safetensors"}, 21, tensor.BF16, map[string][]int64{
			"lm_head.weight": {32000, 64}, "model.layers.1.mlp.gate_proj.weight": {128, 64},
		}, nil},
		{[]string{"qwen2", "model.safetensors"}, 0, tensor.F32, map[string][]int64{
			"model.embed_tokens.weight": {512, 64}, "model.layers.0.self_attn.q_proj.bias": {64},
			"model.layers.0.self_attn.k_proj.bias": {32}, "model.layers.0.self_attn.v_proj.bias": {32},
		}, []string{"lm_head.weight"}},
		{[]string{"phi3", "model.safetensors"}, 0, tensor.F32, map[string][]int64{
			"model.layers.0.self_attn.qkv_proj.weight": {128, 64}, "model.layers.0.mlp.gate_up_proj.weight": {256, 64},
		}, []string{"model.layers.0.self_attn.q_proj.weight"}},
		{[]string{"llama", "adapter", "adapter_model.safetensors"}, 28, tensor.F32, map[string][]int64{
			"base_model.model.model.layers.0.mlp.down_proj.lora_A.weight":    {4, 128},
			"base_model.model.model.layers.0.mlp.down_proj.lora_B.weight":    {64, 4},
			"base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight": {32, 4},
			"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight": {4, 64},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.path, "/"), func(t *testing.T) {
			path := sharedtest.Path(t, append([]string{"golden", "hf"}, tt.path...)...)
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tt.count > 0 && len(f.Tensors()) != tt.count {
				t.Errorf("%d tensors, want %d", len(f.Tensors()), tt.count)
			}
			if f.Metadata()["format"] != "pt" {
				t.Errorf("metadata %v", f.Metadata())
			}
			for _, x := range f.Tensors() {
				if x.DType != tt.dtype {
					t.Errorf("%s: dtype %v, want %v", x.Name, x.DType, tt.dtype)
				}
			}
			for name, shape := range tt.shapes {
				x, ok := f.Tensor(name)
				if !ok {
					t.Errorf("tensor %s missing", name)
				} else if !reflect.DeepEqual(x.Shape, shape) {
					t.Errorf("%s: shape %v, want %v", name, x.Shape, shape)
				}
			}
			for _, name := range tt.absent {
				if _, ok := f.Tensor(name); ok {
					t.Errorf("tensor %s present", name)
				}
			}
			// Our writer reproduces the file byte for byte.
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Encode(&buf, f.Tensors(), f.Metadata()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), orig) {
				t.Errorf("re-encoded file differs from the original (%d vs %d bytes)", buf.Len(), len(orig))
			}
		})
	}
}

// TestGoldenBF16Rounding checks tensor.F32ToBF16 against the BF16 copy of
// the llama weights, rounded by PyTorch (round to nearest even).
func TestGoldenBF16Rounding(t *testing.T) {
	f32, err := Open(sharedtest.Path(t, "golden", "hf", "llama", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f32.Close()
	bf, err := Open(sharedtest.Path(t, "golden", "hf", "llama", "model.bf16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	checked := 0
	for _, x := range f32.Tensors() {
		y, ok := bf.Tensor(x.Name)
		if !ok {
			t.Fatalf("%s missing from the BF16 file", x.Name)
		}
		vals := make([]float32, x.NumElements())
		if err := tensor.Dequantize(vals, x.Data, tensor.F32); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 2*len(vals))
		if err := tensor.Quantize(got, vals, tensor.BF16); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, y.Data) {
			for i := 0; i < len(vals); i++ {
				if g, w := binary.LittleEndian.Uint16(got[2*i:]), binary.LittleEndian.Uint16(y.Data[2*i:]); g != w {
					t.Fatalf("%s[%d] = %g: BF16 %#04x, PyTorch %#04x", x.Name, i, vals[i], g, w)
				}
			}
		}
		checked += len(vals)
	}
	t.Logf("%d values round to BF16 as PyTorch rounds them", checked)
}

func TestGoldenOpenDir(t *testing.T) {
	s, err := OpenDir(sharedtest.Path(t, "golden", "hf", "qwen2"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Tensor("model.layers.1.self_attn.v_proj.bias"); !ok {
		t.Error("qwen2 v_proj bias missing")
	}
	if len(s.Names()) == 0 || s.Names()[0] != "model.embed_tokens.weight" {
		t.Errorf("names %v", s.Names())
	}
}
