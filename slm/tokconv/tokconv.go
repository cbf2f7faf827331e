// Package tokconv converts tokenizers between the GGUF metadata form
// (tokenizer.ggml.*, as llama.cpp stores them) and the Hugging Face form
// (tokenizer.json, tokenizer_config.json and SentencePiece's
// tokenizer.model), for slm's ConvertHFToGGUF and ConvertGGUFToHF.
//
// SentencePiece-style vocabularies ("llama" in GGUF: Llama 2, Mistral,
// Phi-3, TinyLlama, stories) become a Hugging Face BPE model with byte
// fallback whose merges are derived from the piece scores the way
// transformers' SentencePiece converter derives them; in the other
// direction each piece's score is minus the rank of the first merge that
// builds it, so SentencePiece's highest-score-first merging follows the
// merge ranks. Byte-level vocabularies ("gpt2" in GGUF: GPT-2, Llama 3,
// Qwen2, SmolLM) keep their merges; the pre-tokenizer is carried by name
// (tokenizer.ggml.pre) for the families usersim supports. A SentencePiece
// vocabulary is also written as tokenizer.model with its own scores, and a
// directory's tokenizer.model is read before its tokenizer.json, as
// llama.cpp's converter does, so GGUF -> HF -> GGUF keeps the scores.
package tokconv

import (
	"errors"
	"fmt"
	"strings"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/tokenizer"
)

// Token types of tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// Pre-tokenizer regexes by tokenizer.ggml.pre name (llama.cpp's
// llama-vocab.cpp, and the tokenizer.json files of those families).
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// Vocab is a tokenizer in GGUF terms, together with what
// tokenizer_config.json adds.
type Vocab struct {
	tokenizer.GGUFVocab
	ChatTemplate string // tokenizer.chat_template
}

// FromGGUFMeta reads the tokenizer.* keys of GGUF metadata.
func FromGGUFMeta(meta []gguf.KV) (*Vocab, error) {
	get := map[string]gguf.Value{}
	for _, kv := range meta {
		get[kv.Key] = kv.Value
	}
	v := &Vocab{GGUFVocab: tokenizer.GGUFVocab{BOS: -1, EOS: -1, UNK: -1, PAD: -1}}
	str := func(key string, dst *string, required bool) error {
		val, ok := get[key]
		if !ok {
			if required {
				return fmt.Errorf("gguf: no %s", key)
			}
			return nil
		}
		s, ok := val.AsString()
		if !ok {
			return fmt.Errorf("gguf: %s is a %s, want a string", key, val.Type())
		}
		*dst = s
		return nil
	}
	if err := str("tokenizer.ggml.model", &v.Model, true); err != nil {
		return nil, err
	}
	if err := str("tokenizer.ggml.pre", &v.Pre, false); err != nil {
		return nil, err
	}
	if err := str("tokenizer.chat_template", &v.ChatTemplate, false); err != nil {
		return nil, err
	}
	arr := func(key string, dst any, required bool) error {
		val, ok := get[key]
		if !ok {
			if required {
				return fmt.Errorf("gguf: no %s", key)
			}
			return nil
		}
		var good bool
		switch d := dst.(type) {
		case *[]string:
			*d, good = val.Any().([]string)
		case *[]float32:
			*d, good = val.Any().([]float32)
		case *[]int32:
			*d, good = val.Any().([]int32)
		}
		if !good {
			return fmt.Errorf("gguf: %s has type %s of %s, not the expected array", key, val.Type(), val.Elem())
		}
		return nil
	}
	if err := arr("tokenizer.ggml.tokens", &v.Tokens, true); err != nil {
		return nil, err
	}
	if err := arr("tokenizer.ggml.scores", &v.Scores, false); err != nil {
		return nil, err
	}
	if err := arr("tokenizer.ggml.token_type", &v.Types, false); err != nil {
		return nil, err
	}
	if err := arr("tokenizer.ggml.merges", &v.Merges, false); err != nil {
		return nil, err
	}
	for key, dst := range map[string]*int{"bos": &v.BOS, "eos": &v.EOS, "unknown": &v.UNK, "padding": &v.PAD} {
		val, ok := get["tokenizer.ggml."+key+"_token_id"]
		if !ok {
			continue
		}
		id, ok := val.AsUint()
		if !ok {
			return nil, fmt.Errorf("gguf: tokenizer.ggml.%s_token_id is a %s", key, val.Type())
		}
		if id < uint64(len(v.Tokens)) {
			*dst = int(id)
		}
	}
	for _, key := range []string{"eot", "eom"} {
		if val, ok := get["tokenizer.ggml."+key+"_token_id"]; ok {
			if id, ok := val.AsUint(); ok && id < uint64(len(v.Tokens)) {
				v.EOG = append(v.EOG, int(id))
			}
		}
	}
	flag := func(key string) (bool, bool) {
		val, ok := get[key]
		if !ok {
			return false, false
		}
		b, ok := val.AsBool()
		return b, ok
	}
	var ok bool
	if v.AddBOS, ok = flag("tokenizer.ggml.add_bos_token"); !ok {
		v.AddBOS = v.Model == "llama" // llama.cpp's default for SentencePiece vocabularies
	}
	v.AddEOS, _ = flag("tokenizer.ggml.add_eos_token")
	if b, ok := flag("tokenizer.ggml.add_space_prefix"); ok {
		v.AddSpacePrefix = &b
	}
	v.RemoveExtraWhitespaces, _ = flag("tokenizer.ggml.remove_extra_whitespaces")
	if err := v.check(); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *Vocab) check() error {
	n := len(v.Tokens)
	if n == 0 {
		return errors.New("tokenizer has no tokens")
	}
	switch v.Model {
	case "llama":
		if len(v.Scores) != n {
			return fmt.Errorf("tokenizer.ggml.scores has %d entries for %d tokens", len(v.Scores), n)
		}
	case "gpt2":
		if len(v.Merges) == 0 {
			return errors.New("tokenizer.ggml.merges is empty")
		}
	default:
		return fmt.Errorf("tokenizer.ggml.model %q is not supported (llama or gpt2)", v.Model)
	}
	if v.Types != nil && len(v.Types) != n {
		return fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(v.Types), n)
	}
	return nil
}

// GGUFMeta returns the vocabulary as tokenizer.* GGUF metadata.
func (v *Vocab) GGUFMeta() []gguf.KV {
	kv := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.String(v.Model)},
	}
	if v.Pre != "" {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.pre", Value: gguf.String(v.Pre)})
	}
	kv = append(kv, gguf.KV{Key: "tokenizer.ggml.tokens", Value: gguf.Strings(v.Tokens)})
	if v.Scores != nil {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.scores", Value: gguf.Float32s(v.Scores)})
	}
	if v.Types != nil {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.token_type", Value: gguf.Int32s(v.Types)})
	}
	if v.Merges != nil {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.merges", Value: gguf.Strings(v.Merges)})
	}
	for _, s := range []struct {
		key string
		id  int
	}{{"bos", v.BOS}, {"eos", v.EOS}, {"unknown", v.UNK}, {"padding", v.PAD}} {
		if s.id >= 0 {
			kv = append(kv, gguf.KV{Key: "tokenizer.ggml." + s.key + "_token_id", Value: gguf.Uint32(uint32(s.id))})
		}
	}
	if len(v.EOG) > 0 && v.EOG[0] != v.EOS {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.eot_token_id", Value: gguf.Uint32(uint32(v.EOG[0]))})
	}
	kv = append(kv,
		gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: gguf.Bool(v.AddBOS)},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: gguf.Bool(v.AddEOS)})
	if v.AddSpacePrefix != nil {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Value: gguf.Bool(*v.AddSpacePrefix)})
	}
	if v.RemoveExtraWhitespaces {
		kv = append(kv, gguf.KV{Key: "tokenizer.ggml.remove_extra_whitespaces", Value: gguf.Bool(true)})
	}
	if v.ChatTemplate != "" {
		kv = append(kv, gguf.KV{Key: "tokenizer.chat_template", Value: gguf.String(v.ChatTemplate)})
	}
	return kv
}

func (v *Vocab) tokenType(id int) int32 {
	if v.Types != nil {
		return v.Types[id]
	}
	if id == v.UNK {
		return typeUnknown
	}
	if id == v.BOS || id == v.EOS {
		return typeControl
	}
	if v.Model == "llama" && isBytePiece(v.Tokens[id]) {
		return typeByte
	}
	return typeNormal
}

func isBytePiece(p string) bool {
	return len(p) == 6 && strings.HasPrefix(p, "<0x") && p[5] == '>' && isHexDigit(p[3]) && isHexDigit(p[4])
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
