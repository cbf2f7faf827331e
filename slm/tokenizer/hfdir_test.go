package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestFromHFDir(t *testing.T) {
	// tokenizer.json + tokenizer_config.json + generation_config.json.
	dir := writeFiles(t, map[string]string{
		"tokenizer.json":         miniSPMJSON,
		"tokenizer_config.json":  `{"add_bos_token": false, "add_eos_token": true, "bos_token": {"content": "<s>"}, "eos_token": "<unk>", "chat_template": "{{ x }}"}`,
		"generation_config.json": `{"eos_token_id": [0, 1]}`,
	})
	tok, err := FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AddBOSDefault() || !tok.AddEOSDefault() || tok.BOS() != 1 || tok.EOS() != 0 {
		t.Errorf("AddBOS %v AddEOS %v BOS %d EOS %d", tok.AddBOSDefault(), tok.AddEOSDefault(), tok.BOS(), tok.EOS())
	}
	if got := tok.EOSIDs(); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("EOSIDs = %v, want [0 1]", got)
	}

	// tokenizer.model when there is no tokenizer.json.
	model := append(append(append(pbPiece("<unk>", 0, 2), pbPiece("<s>", 0, 3)...), pbPiece("</s>", 0, 3)...), pbBytes(2, pbVar(3, 2))...)
	model = append(model, pbPiece("▁", -1, 1)...)
	model = append(model, pbPiece("a", -2, 1)...)
	model = append(model, pbPiece("▁a", -0.5, 1)...)
	dir = writeFiles(t, map[string]string{"tokenizer.model": string(model)})
	tok, err = FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode("a a", EncodeOptions{AddBOS: tok.AddBOSDefault()})
	if err != nil || !slices.Equal(ids, []int{1, 5, 5}) {
		t.Errorf("Encode = %v, %v; want [1 5 5]", ids, err)
	}

	// Errors name the file.
	dir = writeFiles(t, map[string]string{"tokenizer.json": miniSPMJSON, "tokenizer_config.json": `{"eos_token": "<nope>"}`})
	if _, err := FromHFDir(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("bad config: err = %v", err)
	}
	dir = writeFiles(t, map[string]string{"tokenizer.json": miniSPMJSON, "generation_config.json": `{"eos_token_id": 99}`})
	if _, err := FromHFDir(dir); err == nil || !strings.Contains(err.Error(), "generation_config.json") {
		t.Errorf("bad generation config: err = %v", err)
	}
	if _, err := FromHFDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither tokenizer.json nor tokenizer.model") {
		t.Errorf("empty dir: err = %v", err)
	}
}

func TestSpecialIDs(t *testing.T) {
	qwen := sharedTok(t, "qwen3-json")
	if qwen.BOS() != -1 || qwen.AddBOSDefault() || !qwen.IsEOS(151645) || !qwen.IsEOS(151643) {
		t.Errorf("qwen3: BOS %d AddBOS %v EOSIDs %v", qwen.BOS(), qwen.AddBOSDefault(), qwen.EOSIDs())
	}
	if _, err := qwen.Encode("x", EncodeOptions{AddBOS: true}); err == nil {
		t.Error("AddBOS without a BOS token: no error")
	}
	mistral := sharedTok(t, "mistral-json")
	if mistral.BOS() != 1 || mistral.EOS() != 2 || !mistral.AddBOSDefault() || mistral.UNK() != 0 || mistral.VocabSize() != 32000 {
		t.Errorf("mistral: BOS %d EOS %d AddBOS %v UNK %d size %d", mistral.BOS(), mistral.EOS(), mistral.AddBOSDefault(), mistral.UNK(), mistral.VocabSize())
	}
	if id, ok := mistral.ID("▁Hello"); !ok || id != 22557 || mistral.TokenText(22557) != "▁Hello" {
		t.Errorf("ID(▁Hello) = %d, %v", id, ok)
	}
	if !mistral.IsSpecial(1) || mistral.IsSpecial(22557) {
		t.Error("IsSpecial")
	}
}

func TestGGUFPreNames(t *testing.T) {
	for _, name := range []string{"llama-bpe", "llama3", "qwen2", "deepseek-r1-qwen", "smollm", "gpt2"} {
		if _, _, err := ggufPre(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// SmolLM splits digits one per token, Llama 3 in groups of up to three.
	pre, _, _ := ggufPre("smollm")
	words, _ := preTokenize(pre, "abc 1234", segPos{first: true})
	if !slices.Equal(words, []string{"abc", " ", "1", "2", "3", "4"}) {
		t.Errorf("smollm words = %q", words)
	}
	pre, _, _ = ggufPre("llama-bpe")
	words, _ = preTokenize(pre, "I'M 1234567 ok", segPos{first: true})
	if !slices.Equal(words, []string{"I", "'M", " ", "123", "456", "7", " ok"}) {
		t.Errorf("llama3 words = %q", words)
	}
}
