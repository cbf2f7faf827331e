package slm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/tokenizer"
)

// TestByteLevelTokenizerConversion converts Qwen3's tokenizer.json to GGUF
// metadata and back to a tokenizer.json; both tokenizers must encode the
// golden strings exactly as the reference did.
func TestByteLevelTokenizerConversion(t *testing.T) {
	src := filepath.Join(sharedDir(t, "tokenizers", "qwen3"), "tokenizer.json")
	meta, err := tokenizerJSONToGGUFMeta(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	path := filepath.Join(tmp, "tok.gguf")
	if err := gguf.WriteFile(path, append([]gguf.KV{{Key: "general.architecture", Value: gguf.String("qwen2")}}, meta...), nil); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ggufVocab(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt2" || v.Pre != "qwen2" || len(v.Tokens) != 151669 && len(v.Tokens) < 151643 {
		t.Fatalf("vocab: model %q pre %q, %d tokens", v.Model, v.Pre, len(v.Tokens))
	}
	fromGGUF, err := tokenizer.FromGGUFVocab(v)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "hf")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenizerJSON(out, v); err != nil {
		t.Fatal(err)
	}
	fromJSON, err := tokenizer.FromHFDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		} `json:"cases"`
	}
	readJSON(t, filepath.Join(sharedDir(t, "golden", "tokenizers"), "qwen3.json"), &g)
	if len(g.Cases) == 0 {
		t.Fatal("no cases")
	}
	for name, tk := range map[string]*tokenizer.Tokenizer{"GGUF": fromGGUF, "tokenizer.json": fromJSON} {
		bad := 0
		for _, c := range g.Cases {
			if name == "GGUF" && c.ID == "nfd" {
				// GGUF has no normalizer: like llama.cpp, the GGUF vocabulary
				// does not apply Qwen's NFC, so NFD text tokenizes differently.
				continue
			}
			ids, err := tk.Encode(c.Text, tokenizer.EncodeOptions{ParseSpecial: true})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, c.IDs) {
				bad++
				t.Errorf("%s: %s: %v, want %v", name, c.ID, ids, c.IDs)
			}
		}
	}
}
