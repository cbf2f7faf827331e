package tokconv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/tokenizer"
)

// testStrings returns the golden tokenizer test strings plus a few more.
func testStrings(t *testing.T) []string {
	t.Helper()
	out := []string{"", "Once upon a time, there was a little girl named Lily.", "  two  spaces\n\nnewlines\ttab", "café ☕ 日本語 🙂", "<s> not special </s>", "12345 3.14159 don't", "Lily's mom said, \"Lily, let's go to the park.\""}
	for _, name := range []string{"golden/tokenizers/qwen3.json", "golden/tokenizers/llama2.json"} {
		p := sharedtest.Path(t, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var g struct{ Cases []struct{ Text string } }
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		for _, c := range g.Cases {
			out = append(out, c.Text)
		}
	}
	return out
}

func ggufMeta(t *testing.T, path string) []gguf.KV {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return slices.Clone(f.Meta)
}

func writeHF(t *testing.T, v *Vocab) string {
	t.Helper()
	tj, cj, err := v.HFFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cj, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// throughGGUF returns v after a trip through GGUF metadata, and its
// tokenizer.
func throughGGUF(t *testing.T, v *Vocab) (*Vocab, *tokenizer.Tokenizer) {
	t.Helper()
	gv, err := FromGGUFMeta(v.GGUFMeta())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUFVocab(gv.GGUFVocab)
	if err != nil {
		t.Fatal(err)
	}
	return gv, tok
}

// sameEncoding checks that two tokenizers give the same ids (with and
// without BOS) and the same decoded text for every string.
func sameEncoding(t *testing.T, what string, want, got *tokenizer.Tokenizer, strs []string) {
	t.Helper()
	if want.BOS() != got.BOS() || want.EOS() != got.EOS() || want.AddBOSDefault() != got.AddBOSDefault() || want.VocabSize() != got.VocabSize() {
		t.Fatalf("%s: bos %d/%d eos %d/%d addBOS %v/%v vocab %d/%d", what, got.BOS(), want.BOS(), got.EOS(), want.EOS(),
			got.AddBOSDefault(), want.AddBOSDefault(), got.VocabSize(), want.VocabSize())
	}
	bad := 0
	for _, s := range strs {
		for _, special := range []bool{false, true} {
			opt := tokenizer.EncodeOptions{AddBOS: want.AddBOSDefault(), ParseSpecial: special}
			w, err1 := want.Encode(s, opt)
			g, err2 := got.Encode(s, opt)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %q: errors %v, %v", what, s, err1, err2)
			}
			if !slices.Equal(w, g) {
				bad++
				if bad <= 5 {
					t.Errorf("%s: %q (special %v):\n got  %v\n want %v", what, s, special, g, w)
				}
			}
			wd, _ := want.Decode(w)
			gd, _ := got.Decode(w)
			if wd != gd {
				t.Errorf("%s: decode of %q: got %q, want %q", what, s, gd, wd)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d encodings differ", what, bad, 2*len(strs))
	}
}

// TestStoriesRoundTrip: the GGUF SentencePiece vocabulary of stories260K
// → tokenizer.json → GGUF metadata, each form encoding like the original.
func TestStoriesRoundTrip(t *testing.T) {
	path := sharedtest.Path(t, "models/stories260K/stories260K.gguf")
	strs := testStrings(t)
	meta := ggufMeta(t, path)
	v, err := FromGGUFMeta(meta)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := tokenizer.FromGGUFVocab(v.GGUFVocab)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeHF(t, v)
	hf, err := tokenizer.FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sameEncoding(t, "gguf → tokenizer.json", orig, hf, strs)

	back, err := FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, tok2 := throughGGUF(t, back)
	sameEncoding(t, "gguf → tokenizer.json → gguf", orig, tok2, strs)
}

// TestQwen3RoundTrip: a byte-level tokenizer.json → GGUF metadata →
// tokenizer.json.
func TestQwen3RoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("151k-token vocabulary: skipped with -short")
	}
	p := sharedtest.Path(t, "tokenizers/qwen3/tokenizer.json")
	strs := testStrings(t)
	tj, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": false}`)
	orig, err := tokenizer.FromHFJSON(tj)
	if err != nil {
		t.Fatal(err)
	}
	v, err := FromHF(tj, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "gpt2" || v.Pre != "qwen2" {
		t.Fatalf("model %q pre %q", v.Model, v.Pre)
	}
	gv, tok := throughGGUF(t, v)
	// llama.cpp does not apply tokenizer.json's NFC normalizer: compare the
	// GGUF form on NFC text only.
	var nfc []string
	for _, s := range strs {
		if norm.NFC.String(s) == s {
			nfc = append(nfc, s)
		}
	}
	if len(nfc) == len(strs) {
		t.Fatal("no test string changes under NFC; the NFC case is not covered")
	}
	sameEncodingIDs(t, "tokenizer.json → gguf", orig, tok, nfc)
	hf, err := tokenizer.FromHFDir(writeHF(t, gv))
	if err != nil {
		t.Fatal(err)
	}
	sameEncodingIDs(t, "tokenizer.json → gguf → tokenizer.json", orig, hf, strs)
}

// sameEncodingIDs compares ids only (the special-token settings of the bare
// tokenizer.json and of the converted forms differ by design).
func sameEncodingIDs(t *testing.T, what string, want, got *tokenizer.Tokenizer, strs []string) {
	t.Helper()
	for _, s := range strs {
		for _, special := range []bool{false, true} {
			opt := tokenizer.EncodeOptions{ParseSpecial: special}
			w, _ := want.Encode(s, opt)
			g, err := got.Encode(s, opt)
			if err != nil || !slices.Equal(w, g) {
				t.Fatalf("%s: %q (special %v): got %v %v, want %v", what, s, special, g, err, w)
			}
		}
	}
}

func TestSPMMerges(t *testing.T) {
	// Pieces: a b c ab bc abc; "abc" splits as a+bc and ab+c (ordered by
	// the ids of the left part), ranked by its score.
	tokens := []string{"<unk>", "a", "b", "c", "ab", "bc", "abc"}
	scores := []float32{0, 0, 0, 0, -1, -2, -0.5}
	typ := func(id int) int32 {
		if id == 0 {
			return typeUnknown
		}
		return typeNormal
	}
	got := spmMerges(tokens, scores, typ)
	want := [][2]string{{"a", "bc"}, {"ab", "c"}, {"a", "b"}, {"b", "c"}}
	if !slices.Equal(got, want) {
		t.Fatalf("merges %v, want %v", got, want)
	}
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		meta []gguf.KV
	}{
		{"no model", []gguf.KV{{Key: "tokenizer.ggml.tokens", Value: gguf.Strings([]string{"a"})}}},
		{"bad model", []gguf.KV{{Key: "tokenizer.ggml.model", Value: gguf.String("bert")}, {Key: "tokenizer.ggml.tokens", Value: gguf.Strings([]string{"a"})}}},
		{"no scores", []gguf.KV{{Key: "tokenizer.ggml.model", Value: gguf.String("llama")}, {Key: "tokenizer.ggml.tokens", Value: gguf.Strings([]string{"a"})}}},
		{"tokens not strings", []gguf.KV{{Key: "tokenizer.ggml.model", Value: gguf.String("llama")}, {Key: "tokenizer.ggml.tokens", Value: gguf.Float32s([]float32{1})}}},
	} {
		if _, err := FromGGUFMeta(tt.meta); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	for _, tt := range []struct{ name, tj string }{
		{"not json", `{`},
		{"wordpiece", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`},
		{"bad merges", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}}`},
		{"unknown pre-tokenizer", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "x"}}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`},
	} {
		if _, err := FromHF([]byte(tt.tj), nil); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

// FuzzFromHF: any tokenizer.json gives a vocabulary or an error, and a
// vocabulary converts back without a panic.
func FuzzFromHF(f *testing.F) {
	f.Add([]byte(`{"model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "<0x41>": 4}, "merges": ["a b"]}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}]}}`),
		[]byte(`{"bos_token": "<unk>", "add_bos_token": true, "chat_template": [{"name": "default", "template": "x"}]}`))
	f.Add([]byte(`{"added_tokens": [{"id": 3, "content": "<|x|>", "special": true}], "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}, "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|x|>"}}, {"Sequence": {"id": "A"}}]}}`),
		[]byte(`{"eos_token": {"content": "<|x|>"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 99999999}, "merges": []}}`), []byte(nil))
	f.Fuzz(func(t *testing.T, tj, cfg []byte) {
		v, err := FromHF(tj, cfg)
		if err != nil {
			return
		}
		_ = v.GGUFMeta()
		if _, _, err := v.HFFiles(); err != nil {
			return
		}
	})
}

// TestMistralToGGUF: a SentencePiece-style tokenizer.json (Mistral, 32k
// pieces, byte fallback) → GGUF scores: llama.cpp's SentencePiece merging
// over the derived scores encodes like the BPE merges.
func TestMistralToGGUF(t *testing.T) {
	if testing.Short() {
		t.Skip("32k-token vocabulary: skipped with -short")
	}
	p := sharedtest.Path(t, "tokenizers/mistral/tokenizer.json")
	strs := testStrings(t)
	tj, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": true}`)
	orig, err := tokenizer.FromHFJSON(tj)
	if err != nil {
		t.Fatal(err)
	}
	v, err := FromHF(tj, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "llama" || v.AddSpacePrefix == nil || !*v.AddSpacePrefix {
		t.Fatalf("model %q space prefix %v", v.Model, v.AddSpacePrefix)
	}
	gv, tok := throughGGUF(t, v)
	sameEncodingIDs(t, "tokenizer.json → gguf", orig, tok, strs)
	hf, err := tokenizer.FromHFDir(writeHF(t, gv))
	if err != nil {
		t.Fatal(err)
	}
	sameEncodingIDs(t, "tokenizer.json → gguf → tokenizer.json", orig, hf, strs)
}

// TestQwen3GoldenThroughGGUFFile: Qwen3's tokenizer directory → GGUF
// metadata in a GGUF file → HF directory; the GGUF and the HF forms encode
// the golden strings exactly as the reference did.
func TestQwen3GoldenThroughGGUFFile(t *testing.T) {
	src := sharedtest.Path(t, "tokenizers/qwen3")
	v, err := FromHFDir(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	path := filepath.Join(tmp, "tok.gguf")
	meta := append([]gguf.KV{{Key: "general.architecture", Value: gguf.String("qwen2")}}, v.GGUFMeta()...)
	if err := gguf.WriteFile(path, meta, nil); err != nil {
		t.Fatal(err)
	}
	gv, err := FromGGUFMeta(ggufMeta(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if gv.Model != "gpt2" || gv.Pre != "qwen2" || len(gv.Tokens) < 151643 {
		t.Fatalf("vocab: model %q pre %q, %d tokens", gv.Model, gv.Pre, len(gv.Tokens))
	}
	fromGGUF, err := tokenizer.FromGGUFVocab(gv.GGUFVocab)
	if err != nil {
		t.Fatal(err)
	}
	out := writeHFDir(t, gv)
	if _, err := os.Stat(filepath.Join(out, "tokenizer.model")); err == nil {
		t.Error("a byte-level vocabulary got a tokenizer.model")
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
	b, err := os.ReadFile(sharedtest.Path(t, "golden/tokenizers/qwen3.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no cases")
	}
	for name, tk := range map[string]*tokenizer.Tokenizer{"GGUF": fromGGUF, "tokenizer.json": fromJSON} {
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
				t.Errorf("%s: %s: %v, want %v", name, c.ID, ids, c.IDs)
			}
		}
	}
}

// writeHFDir writes v's HFDirFiles into a new directory.
func writeHFDir(t *testing.T, v *Vocab) string {
	t.Helper()
	files, err := v.HFDirFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
