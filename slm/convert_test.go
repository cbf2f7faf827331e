package slm

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/safetensors"
	"github.com/usersim/usersim/slm/tensor"
	"github.com/usersim/usersim/slm/tokenizer"
)

// TestGGUFRoundTrip writes random models of every test architecture to
// GGUF and reads them back: a NeoX (HF-layout) llama is written with
// llama.cpp's q/k permutation and read back as interleaved RoPE, which must
// give the same logits.
func TestGGUFRoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range testConfigs(t) {
		if name == "smol" {
			cfg = smolConfig(1)
			cfg.Vocab = 1000
		}
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 11)
			toks := []int{1, 5, 9, 200, 7, 3, 3, 250, 17}
			want, err := m.Forward(ctx, []Sequence{{Cache: m.NewCache(), Tokens: toks, Logits: LogitsAll}})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
				path := filepath.Join(t.TempDir(), "m.gguf")
				if err := m.WriteGGUF(path, nil, SaveOptions{DType: d}); err != nil {
					t.Fatal(err)
				}
				back, err := LoadModel(path)
				if err != nil {
					t.Fatal(err)
				}
				wantStyle := RopeNeoX
				if cfg.Arch == "llama" {
					wantStyle = RopeInterleaved
				}
				if back.Config.RopeStyle != wantStyle {
					t.Errorf("%v: rope style %v, want %v", d, back.Config.RopeStyle, wantStyle)
				}
				got, err := back.Forward(ctx, []Sequence{{Cache: back.NewCache(), Tokens: toks, Logits: LogitsAll}})
				if err != nil {
					t.Fatal(err)
				}
				tol := 1e-5
				if d != tensor.F32 {
					tol = 0.05 // rounding of the weights
				}
				for i := range toks {
					if diff := maxDiff(got[0][i], want[0][i]); diff > tol {
						t.Errorf("%v: position %d: max |Δlogit| %g", d, i, diff)
					}
				}
			}
		})
	}
}

// TestConvertHFGoldenToGGUF converts the golden HF checkpoints to GGUF (with
// llama.cpp's q/k permutation for llama) and checks the GGUF path against
// the same golden logits; converting back gives bit-identical tensors.
func TestConvertHFGoldenToGGUF(t *testing.T) {
	for _, name := range []string{"llama", "qwen2", "phi3"} {
		t.Run(name, func(t *testing.T) {
			dir := sharedDir(t, "golden", "hf", name)
			tmp := t.TempDir()
			path := filepath.Join(tmp, name+".gguf")
			if err := ConvertHFToGGUF(dir, path, SaveOptions{NoTokenizer: name == "qwen2"}); err != nil {
				t.Fatal(err)
			}
			m, err := LoadModel(path)
			if err != nil {
				t.Fatal(err)
			}
			if name == "llama" && m.Config.RopeStyle != RopeInterleaved {
				t.Errorf("GGUF llama: rope style %v", m.Config.RopeStyle)
			}
			checkHFGolden(t, m, filepath.Join(dir, "golden_logits.json"), 1e-5)

			back := filepath.Join(tmp, "hf")
			if err := ConvertGGUFToHF(path, back, SaveOptions{NoTokenizer: name == "qwen2"}); err != nil {
				t.Fatal(err)
			}
			orig, err := safetensors.OpenDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			conv, err := safetensors.OpenDir(back)
			if err != nil {
				t.Fatal(err)
			}
			defer conv.Close()
			if len(orig.Names()) != len(conv.Names()) {
				t.Errorf("round trip: %d tensors, want %d", len(conv.Names()), len(orig.Names()))
			}
			for _, n := range orig.Names() {
				a, _ := orig.Tensor(n)
				b, ok := conv.Tensor(n)
				if !ok || !bytes.Equal(a.Data, b.Data) || !sameShape(a.Shape, toInts(b.Shape)) {
					t.Errorf("round trip: tensor %s differs", n)
				}
			}
			m2, err := LoadModel(back)
			if err != nil {
				t.Fatal(err)
			}
			checkHFGolden(t, m2, filepath.Join(dir, "golden_logits.json"), 1e-5)
			if name == "qwen2" {
				return // no tokenizer
			}
			// The real Llama-2 tokenizer.model survives HF -> GGUF -> HF.
			_, ggufTok, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			_, hfTok, err := Load(back)
			if err != nil {
				t.Fatal(err)
			}
			checkLlama2Tokenizer(t, ggufTok)
			checkLlama2Tokenizer(t, hfTok)
		})
	}
}

func toInts(s []int64) []int {
	r := make([]int, len(s))
	for i, v := range s {
		r[i] = int(v)
	}
	return r
}

// TestConvertStories converts stories260K to a safetensors directory and
// back: the HF path gives the golden logits, and the GGUF written back has
// the original's weights bit for bit and a working tokenizer.
func TestConvertStories(t *testing.T) {
	src := filepath.Join(sharedDir(t, "models", "stories260K"), "stories260K.gguf")
	tmp := t.TempDir()
	hf := filepath.Join(tmp, "hf")
	if err := ConvertGGUFToHF(src, hf, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := LoadModel(hf)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.RopeStyle != RopeNeoX {
		t.Errorf("HF stories: rope style %v", m.Config.RopeStyle)
	}
	checkStoriesLogits(t, m)

	_, hfTok, err := Load(hf)
	if err != nil {
		t.Fatal(err)
	}
	checkStoriesTokenizer(t, hfTok)
	again := filepath.Join(tmp, "again.gguf")
	if err := ConvertHFToGGUF(hf, again, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	orig, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	conv, err := gguf.Open(again)
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	for _, ti := range orig.Tensors {
		a, _, _ := orig.TensorData(ti.Name)
		b, _, err := conv.TensorData(ti.Name)
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("GGUF round trip: tensor %s differs (%v)", ti.Name, err)
		}
	}
	m2, tk, err := Load(again)
	if err != nil {
		t.Fatal(err)
	}
	checkStoriesLogits(t, m2)
	checkStoriesTokenizer(t, tk)
	for _, key := range []string{"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id"} {
		a, _ := orig.Get(key)
		b, ok := conv.Get(key)
		if !ok || !reflect.DeepEqual(a.Any(), b.Any()) {
			t.Errorf("GGUF round trip: %s differs", key)
		}
	}
}

// checkStoriesTokenizer encodes the golden stories260K strings.
func checkStoriesTokenizer(t *testing.T, tk *tokenizer.Tokenizer) {
	t.Helper()
	var g struct {
		Cases []struct {
			Text       string `json:"text"`
			IDsWithBOS []int  `json:"ids_with_bos"`
		} `json:"cases"`
	}
	readJSON(t, filepath.Join(sharedDir(t, "golden", "stories260K"), "tokenize.json"), &g)
	if len(g.Cases) == 0 {
		t.Fatal("no tokenizer cases")
	}
	for _, c := range g.Cases {
		ids, err := tk.Encode(c.Text, tokenizer.EncodeOptions{AddBOS: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, c.IDsWithBOS) {
			t.Errorf("encode %q: %v, want %v", c.Text, ids, c.IDsWithBOS)
		}
	}
}

// checkLlama2Tokenizer encodes the golden Llama-2 strings (SentencePiece).
func checkLlama2Tokenizer(t *testing.T, tk *tokenizer.Tokenizer) {
	t.Helper()
	var g struct {
		Cases []struct {
			Text       string `json:"text"`
			IDsWithBOS []int  `json:"ids_with_bos"`
		} `json:"cases"`
	}
	readJSON(t, filepath.Join(sharedDir(t, "golden", "tokenizers"), "llama2.json"), &g)
	if len(g.Cases) == 0 {
		t.Fatal("no tokenizer cases")
	}
	bad := 0
	for _, c := range g.Cases {
		ids, err := tk.Encode(c.Text, tokenizer.EncodeOptions{AddBOS: true})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, c.IDsWithBOS) {
			bad++
			if bad <= 3 {
				t.Errorf("encode %q: %v, want %v", c.Text, ids, c.IDsWithBOS)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d strings encoded differently", bad, len(g.Cases))
	}
}
