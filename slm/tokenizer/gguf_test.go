package tokenizer

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm/gguf"
)

// ggufVocab reads the tokenizer metadata of a GGUF file as the model loader
// does.
func ggufVocab(t *testing.T, path string) GGUFVocab {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := GGUFVocab{BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	if v.Model, err = f.String("tokenizer.ggml.model"); err != nil {
		t.Fatal(err)
	}
	if v.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		t.Fatal(err)
	}
	if v.Scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
		t.Fatal(err)
	}
	if v.Types, err = f.Int32s("tokenizer.ggml.token_type"); err != nil {
		t.Fatal(err)
	}
	for key, dst := range map[string]*int{"bos": &v.BOS, "eos": &v.EOS, "unknown": &v.UNK, "padding": &v.PAD} {
		if id, err := f.Uint("tokenizer.ggml." + key + "_token_id"); err == nil {
			*dst = int(id)
		}
	}
	v.AddBOS = true // llama.cpp's default for SentencePiece vocabularies
	if b, err := f.Bool("tokenizer.ggml.add_bos_token"); err == nil {
		v.AddBOS = b
	}
	return v
}

func TestStoriesGGUFVocab(t *testing.T) {
	path := filepath.Join(sharedDir(t), "models", "stories260K", "stories260K.gguf")
	tok, err := FromGGUFVocab(ggufVocab(t, path))
	if err != nil {
		t.Fatal(err)
	}
	checkStories(t, tok)
}

// vocabAsGGUF converts a tokenizer built from tokenizer.json into the GGUF
// form llama.cpp's converter writes, with the given merges.
func vocabAsGGUF(tok *Tokenizer, pre string, merges []string) GGUFVocab {
	v := GGUFVocab{Model: "gpt2", Pre: pre, Merges: merges, BOS: tok.BOS(), EOS: tok.EOS(), UNK: -1, PAD: -1}
	for id := 0; id < tok.VocabSize(); id++ {
		v.Tokens = append(v.Tokens, tok.TokenText(id))
		typ := int32(typeNormal)
		switch tok.kinds[id] {
		case kindControl:
			typ = typeControl
		case kindUserDefined:
			typ = typeUserDefined
		}
		v.Types = append(v.Types, typ)
	}
	return v
}

func TestGGUFByteLevelQwen2(t *testing.T) {
	data := readShared(t, "tokenizers", "qwen3", "tokenizer.json")
	ref, err := FromHFJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Model struct {
			Merges [][2]string `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var merges []string
	for _, m := range f.Model.Merges {
		merges = append(merges, m[0]+" "+m[1])
	}
	tok, err := FromGGUFVocab(vocabAsGGUF(ref, "qwen2", merges))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "qwen3.json") {
		if c.ID == "nfd" {
			continue // tokenizer.json normalizes to NFC; GGUF vocabularies (llama.cpp) do not
		}
		checkCase(t, tok, c, EncodeOptions{ParseSpecial: true}, c.IDs)
	}
}

func TestGGUFByteLevelGPT2(t *testing.T) {
	ref := sharedTok(t, "gpt2-files")
	var merges []string
	for _, line := range strings.Split(string(readShared(t, "tokenizers", "gpt2", "vocab.bpe")), "\n")[1:] {
		if line != "" {
			merges = append(merges, line)
		}
	}
	tok, err := FromGGUFVocab(vocabAsGGUF(ref, "gpt2", merges))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "gpt2.json") {
		checkCase(t, tok, c, EncodeOptions{}, c.IDs)
		checkCase(t, tok, c, EncodeOptions{ParseSpecial: true}, c.IDsEndoftextSpecial)
	}
}
