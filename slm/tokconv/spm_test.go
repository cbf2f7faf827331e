package tokconv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm/tokenizer"
)

// TestLlama2SPMModel: Llama 2's tokenizer.model → Vocab → tokenizer.model
// and GGUF metadata; every form encodes like the original, and the
// directory written from the vocabulary reads back to the same vocabulary
// (scores exact, through tokenizer.model).
func TestLlama2SPMModel(t *testing.T) {
	data, err := os.ReadFile(sharedtest.Path(t, "tokenizers/llama2/tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	strs := testStrings(t)
	v, err := FromSPMModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if v.Model != "llama" || len(v.Tokens) != 32000 || v.UNK != 0 || v.BOS != 1 || v.EOS != 2 || v.PAD != -1 ||
		!v.AddBOS || v.AddSpacePrefix == nil || !*v.AddSpacePrefix || v.RemoveExtraWhitespaces {
		t.Fatalf("vocab: model %q, %d tokens, unk %d bos %d eos %d pad %d, addBOS %v, prefix %v, removeWS %v",
			v.Model, len(v.Tokens), v.UNK, v.BOS, v.EOS, v.PAD, v.AddBOS, v.AddSpacePrefix, v.RemoveExtraWhitespaces)
	}
	orig, err := tokenizer.FromSentencePieceModel(data)
	if err != nil {
		t.Fatal(err)
	}
	written, err := v.SPMModel()
	if err != nil {
		t.Fatal(err)
	}
	again, err := FromSPMModel(written)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, v) {
		t.Fatal("tokenizer.model → Vocab → tokenizer.model → Vocab changed the vocabulary")
	}
	fromWritten, err := tokenizer.FromSentencePieceModel(written)
	if err != nil {
		t.Fatal(err)
	}
	sameEncoding(t, "written tokenizer.model", orig, fromWritten, strs)
	gv, fromGGUF := throughGGUF(t, v)
	sameEncoding(t, "GGUF", orig, fromGGUF, strs)

	dir := writeHFDir(t, gv)
	back, err := FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Scores, v.Scores) || !reflect.DeepEqual(back.Types, v.Types) || !reflect.DeepEqual(back.Tokens, v.Tokens) {
		t.Fatal("GGUF → HF directory → GGUF changed tokens, scores or types")
	}
	if testing.Short() {
		return
	}
	hf, err := tokenizer.FromHFDir(dir) // reads the tokenizer.json
	if err != nil {
		t.Fatal(err)
	}
	sameEncoding(t, "tokenizer.json", orig, hf, strs)
}

// TestAddedTokensBesideSPMModel: the added tokens of a tokenizer.json
// beside a tokenizer.model mark and extend the SentencePiece vocabulary;
// tokenizer_config.json sets the special tokens and the chat template.
func TestAddedTokensBesideSPMModel(t *testing.T) {
	base := &Vocab{}
	base.Model = "llama"
	base.Tokens = []string{"<unk>", "<s>", "</s>", "▁a", "<tool>", "b"}
	base.Scores = []float32{0, 0, 0, -1, -2, -3}
	base.Types = []int32{typeUnknown, typeControl, typeControl, typeNormal, typeNormal, typeNormal}
	base.UNK, base.BOS, base.EOS, base.PAD = 0, 1, 2, -1
	spm, err := base.SPMModel()
	if err != nil {
		t.Fatal(err)
	}
	tj := `{"added_tokens": [
		{"id": 0, "content": "<unk>", "special": true},
		{"id": 4, "content": "<tool>", "special": false},
		{"id": 7, "content": "<|pad|>", "special": true}],
	 "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}]}}`
	cfg := `{"pad_token": {"content": "<|pad|>"}, "chat_template": [{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]}`
	dir := t.TempDir()
	for name, data := range map[string]string{"tokenizer.model": string(spm), "tokenizer.json": tj, "tokenizer_config.json": cfg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v, err := FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	wantTokens := []string{"<unk>", "<s>", "</s>", "▁a", "<tool>", "b", "[PAD6]", "<|pad|>"}
	wantTypes := []int32{typeUnknown, typeControl, typeControl, typeNormal, typeUserDefined, typeNormal, typeUnused, typeControl}
	if !reflect.DeepEqual(v.Tokens, wantTokens) || !reflect.DeepEqual(v.Types, wantTypes) {
		t.Fatalf("tokens %q types %v, want %q %v", v.Tokens, v.Types, wantTokens, wantTypes)
	}
	if v.Scores[3] != -1 || v.Scores[7] != addedScore {
		t.Errorf("scores %v", v.Scores)
	}
	// The post-processor adds EOS, not BOS; the configuration names PAD.
	if v.AddBOS || !v.AddEOS || v.PAD != 7 || v.BOS != 1 || v.EOS != 2 || v.ChatTemplate != "d" {
		t.Errorf("addBOS %v addEOS %v pad %d bos %d eos %d template %q", v.AddBOS, v.AddEOS, v.PAD, v.BOS, v.EOS, v.ChatTemplate)
	}

	// Without tokenizer.json, BOS is added by default.
	if err := os.Remove(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"eos_token": "b"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !v.AddBOS || v.AddEOS || v.EOS != 5 || v.Types[5] != typeControl || len(v.Tokens) != 6 {
		t.Errorf("without tokenizer.json: addBOS %v addEOS %v eos %d type %d, %d tokens", v.AddBOS, v.AddEOS, v.EOS, v.Types[5], len(v.Tokens))
	}

	for _, tt := range []struct{ name, tj, cfg, want string }{
		{"content differs", `{"added_tokens": [{"id": 3, "content": "<x>"}]}`, `{}`, `added token 3 is "<x>"`},
		{"id far out", `{"added_tokens": [{"id": 99999, "content": "<x>"}]}`, `{}`, "has id 99999"},
		{"bad json", `{`, `{}`, "tokenizer.json"},
		{"bad post-processor", `{"post_processor": 5}`, `{}`, "post_processor"},
		{"unknown special", `{}`, `{"bos_token": "<nope>"}`, `bos_token "<nope>" is not in the vocabulary`},
		{"bad special", `{}`, `{"eos_token": 3}`, "eos_token"},
		{"bad chat template", `{}`, `{"chat_template": 3}`, "chat_template"},
	} {
		for name, data := range map[string]string{"tokenizer.json": tt.tj, "tokenizer_config.json": tt.cfg} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := FromHFDir(dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestSPMModelErrors(t *testing.T) {
	good, err := (&Vocab{GGUFVocab: tokenizer.GGUFVocab{Model: "llama", Tokens: []string{"<unk>", "a"}, Scores: []float32{0, 0},
		UNK: 0, BOS: -1, EOS: -1, PAD: -1}}).SPMModel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromSPMModel(good); err != nil {
		t.Fatalf("good model: %v", err)
	}
	unigram := append(append([]byte(nil), good...), pbBytes(nil, 2, pbVarint(nil, trainerModelType, 1))...)
	for _, tt := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no pieces"},
		{"truncated", good[:len(good)-3], "tokenizer.model"},
		{"unigram", unigram, "not BPE"},
		{"bad piece type", pbBytes(nil, 1, pbVarint(pbBytes(nil, 1, []byte("a")), 3, 9)), "invalid type 9"},
		{"bad tag", []byte{0x80}, "bad field tag"},
	} {
		_, err := FromSPMModel(tt.data)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	gpt2 := &Vocab{GGUFVocab: tokenizer.GGUFVocab{Model: "gpt2", Tokens: []string{"a"}, Merges: []string{"a a"}}}
	if _, err := gpt2.SPMModel(); err == nil {
		t.Error("a gpt2 vocabulary was written as tokenizer.model")
	}
	// A vocabulary that removes extra whitespace has no tokenizer.json form:
	// its directory holds tokenizer.model and tokenizer_config.json.
	ws := &Vocab{GGUFVocab: tokenizer.GGUFVocab{Model: "llama", Tokens: []string{"<unk>", "a"}, Scores: []float32{0, 0},
		UNK: 0, BOS: -1, EOS: -1, PAD: -1, RemoveExtraWhitespaces: true}}
	files, err := ws.HFDirFiles()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := files["tokenizer.json"]; ok || files["tokenizer.model"] == nil {
		t.Errorf("remove_extra_whitespaces: files %v", keys(files))
	}
	var cfg map[string]any
	if err := json.Unmarshal(files["tokenizer_config.json"], &cfg); err != nil || cfg["tokenizer_class"] != "LlamaTokenizer" {
		t.Errorf("tokenizer_config.json: %v %v", cfg, err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// FuzzFromSPMModel: any bytes give a vocabulary or an error, and a
// vocabulary read from them is written and read back unchanged.
func FuzzFromSPMModel(f *testing.F) {
	good, err := (&Vocab{GGUFVocab: tokenizer.GGUFVocab{Model: "llama", Tokens: []string{"<unk>", "<s>", "a", "<0x41>"},
		Scores: []float32{0, 0, -1, 0}, Types: []int32{typeUnknown, typeControl, typeNormal, typeByte}, UNK: 0, BOS: 1, EOS: -1, PAD: -1}}).SPMModel()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := FromSPMModel(data)
		if err != nil {
			return
		}
		out, err := v.SPMModel()
		if err != nil {
			t.Fatalf("a vocabulary read from tokenizer.model cannot be written: %v", err)
		}
		back, err := FromSPMModel(out)
		if err != nil {
			t.Fatalf("written model does not read back: %v", err)
		}
		if !reflect.DeepEqual(back.Tokens, v.Tokens) || !reflect.DeepEqual(back.Types, v.Types) || len(back.Scores) != len(v.Scores) ||
			back.UNK != v.UNK || back.BOS != v.BOS || back.EOS != v.EOS || back.PAD != v.PAD || back.RemoveExtraWhitespaces != v.RemoveExtraWhitespaces {
			t.Fatalf("round trip changed the vocabulary")
		}
	})
}
