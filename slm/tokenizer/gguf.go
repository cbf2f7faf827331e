package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// GGUFVocab is the tokenizer stored in GGUF metadata (tokenizer.ggml.*),
// filled by the model loader.
type GGUFVocab struct {
	Model  string    // tokenizer.ggml.model: "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE)
	Pre    string    // tokenizer.ggml.pre: pre-tokenizer of "gpt2" vocabularies (llama-bpe, qwen2, smollm, gpt2, ...)
	Tokens []string  // tokenizer.ggml.tokens
	Scores []float32 // tokenizer.ggml.scores (llama); nil if absent
	Types  []int32   // tokenizer.ggml.token_type; nil if absent
	Merges []string  // tokenizer.ggml.merges (gpt2): "a b" per merge

	// Special token ids, -1 when the key is absent (0xFFFFFFFF, the
	// uint32 form of -1 some converters write, is read as absent too).
	BOS, EOS, UNK, PAD int
	AddBOS, AddEOS     bool // tokenizer.ggml.add_bos_token / add_eos_token

	// AddSpacePrefix is tokenizer.ggml.add_space_prefix; nil means absent,
	// which for "llama" means true.
	AddSpacePrefix *bool
	// RemoveExtraWhitespaces is tokenizer.ggml.remove_extra_whitespaces.
	RemoveExtraWhitespaces bool
	// EOG lists further end-of-generation ids (tokenizer.ggml.eot_token_id,
	// eom_token_id); may be nil.
	EOG []int
}

// Pre-tokenizer regexes of the byte-level families, as named by
// tokenizer.ggml.pre (llama.cpp's llama-vocab.cpp).
const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// ggufPre returns the pre-tokenizers for tokenizer.ggml.pre and whether the
// family uses ignore_merges.
func ggufPre(pre string) ([]preTokenizer, bool, error) {
	var patterns []string
	digits := false
	ignoreMerges := false
	switch pre {
	case "llama3", "llama-v3", "llama-bpe", "falcon3":
		patterns, ignoreMerges = []string{llama3Pattern}, true
	case "qwen2", "qwen2.5", "qwen-2.5", "deepseek-r1-qwen":
		patterns = []string{qwen2Pattern}
	case "smollm", "starcoder", "refact", "codeshell", "command-r":
		digits, patterns = true, []string{gpt2Pattern}
	case "gpt2", "gpt-2", "mpt", "olmo", "jais":
		patterns = []string{gpt2Pattern}
	default:
		return nil, false, fmt.Errorf("tokenizer.ggml.pre %q is not supported (supported: llama-bpe, qwen2, smollm, gpt2 and their aliases)", pre)
	}
	var out []preTokenizer
	if digits {
		out = append(out, digitsPre{individual: true})
	}
	for _, p := range patterns {
		fast, ok := fastSplitFor(p)
		if !ok {
			return nil, false, fmt.Errorf("no matcher for pattern %q", p)
		}
		out = append(out, fast)
	}
	return out, ignoreMerges, nil
}

// FromGGUFVocab builds a tokenizer from GGUF tokenizer metadata, encoding as
// llama.cpp does: "llama" vocabularies by SentencePiece BPE over the scores,
// "gpt2" vocabularies by byte-level BPE over the merges with the
// pre-tokenizer named by Pre.
func FromGGUFVocab(v GGUFVocab) (*Tokenizer, error) {
	t, err := fromGGUFVocab(v)
	if err != nil {
		return nil, fmt.Errorf("gguf tokenizer: %w", err)
	}
	return t, nil
}

func fromGGUFVocab(v GGUFVocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer.ggml.tokens is empty")
	}
	if v.Types != nil && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens", len(v.Types), n)
	}
	for _, f := range []struct {
		name string
		id   *int
	}{{"bos", &v.BOS}, {"eos", &v.EOS}, {"unknown", &v.UNK}, {"padding", &v.PAD}} {
		switch {
		case int64(*f.id) == math.MaxUint32: // -1 stored as uint32: absent
			*f.id = -1
		case *f.id >= n:
			return nil, fmt.Errorf("tokenizer.ggml.%s_token_id %d out of range (%d tokens)", f.name, *f.id, n)
		}
	}
	kinds := make([]tokenKind, n)
	for i := range kinds {
		kinds[i] = kindNormal
		if v.Types != nil {
			if v.Types[i] < typeNormal || v.Types[i] > typeByte {
				return nil, fmt.Errorf("tokenizer.ggml.token_type[%d] = %d is invalid", i, v.Types[i])
			}
			kinds[i] = kindFromType(v.Types[i])
		}
	}
	eog := append([]int(nil), v.EOG...)
	for _, id := range eog {
		if id < 0 || id >= n {
			return nil, fmt.Errorf("end-of-generation id %d out of range", id)
		}
	}
	switch v.Model {
	case "llama":
		if len(v.Scores) != n {
			return nil, fmt.Errorf("tokenizer.ggml.scores has %d entries for %d tokens", len(v.Scores), n)
		}
		if v.Types == nil {
			for i, p := range v.Tokens {
				if isBytePiece(p) {
					kinds[i] = kindByte
				}
			}
		}
		if v.UNK >= 0 && kinds[v.UNK] == kindNormal {
			kinds[v.UNK] = kindUnknown
		}
		spec := spmSpec{
			pieces: append([]string(nil), v.Tokens...),
			scores: v.Scores,
			kinds:  kinds,
			norm: spmNormalizer{
				dummyPrefix:       v.AddSpacePrefix == nil || *v.AddSpacePrefix,
				removeExtraSpaces: v.RemoveExtraWhitespaces,
				escapeSpaces:      true,
			},
			unk: v.UNK, bos: v.BOS, eos: v.EOS, pad: v.PAD,
			addBOS: v.AddBOS, addEOS: v.AddEOS,
			extraEOG: eog,
		}
		for _, k := range kinds {
			if k == kindByte {
				spec.byteFallback = true
				break
			}
		}
		return newSPM(spec)
	case "gpt2":
		pre, ignoreMerges, err := ggufPre(v.Pre)
		if err != nil {
			return nil, err
		}
		merges := make([][2]string, len(v.Merges))
		for i, s := range v.Merges {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("tokenizer.ggml.merges[%d]: %q is not two tokens separated by a space", i, truncate(s, 40))
			}
			merges[i] = [2]string{a, b}
		}
		if v.AddSpacePrefix != nil && *v.AddSpacePrefix {
			pre = append([]preTokenizer{byteLevelPre{addPrefixSpace: true}}, pre...)
		}
		return newByteBPE(byteBPESpec{
			pieces: append([]string(nil), v.Tokens...), kinds: kinds, merges: merges,
			pre: pre, ignoreMerges: ignoreMerges,
			bos: v.BOS, eos: v.EOS, unk: v.UNK, pad: v.PAD,
			addBOS: v.AddBOS, addEOS: v.AddEOS, extraEOG: eog,
		})
	}
	return nil, fmt.Errorf("tokenizer.ggml.model %q is not supported (only llama and gpt2)", v.Model)
}
