package slm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/tokenizer"
)

// This file moves byte-level BPE vocabularies (GPT-2, SmolLM, Llama 3,
// Qwen2) between a Hugging Face tokenizer.json and GGUF metadata
// (tokenizer.ggml.model "gpt2" with tokens, token types, merges and the
// pre-tokenizer name llama.cpp uses). Only the pre-tokenizers llama.cpp
// names and usersim's tokenizer supports are recognised: gpt2, smollm,
// llama-bpe and qwen2.

// The split regexes of the byte-level families (as in tokenizer.json files).
const (
	llama3Split = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Split  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// preTokenizerJSON returns the tokenizer.json pre_tokenizer (and
// normalizer) of a GGUF pre-tokenizer name.
func preTokenizerJSON(pre string) (preTok, normalizer any, err error) {
	byteLevel := func(useRegex bool) map[string]any {
		return map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": useRegex}
	}
	split := func(re string) map[string]any {
		return map[string]any{"type": "Split", "pattern": map[string]any{"Regex": re}, "behavior": "Isolated", "invert": false}
	}
	seq := func(p ...any) map[string]any { return map[string]any{"type": "Sequence", "pretokenizers": p} }
	switch pre {
	case "gpt2", "":
		return byteLevel(true), nil, nil
	case "smollm":
		return seq(map[string]any{"type": "Digits", "individual_digits": true}, byteLevel(true)), nil, nil
	case "llama-bpe", "llama3":
		return seq(split(llama3Split), byteLevel(false)), nil, nil
	case "qwen2":
		return seq(split(qwen2Split), byteLevel(false)), map[string]any{"type": "NFC"}, nil
	}
	return nil, nil, fmt.Errorf("tokenizer: GGUF pre-tokenizer %q cannot be written as tokenizer.json (supported: gpt2, smollm, llama-bpe, qwen2)", pre)
}

// writeTokenizerJSON writes the GGUF byte-level BPE vocabulary v as a
// tokenizer.json and tokenizer_config.json into dir.
func writeTokenizerJSON(dir string, v tokenizer.GGUFVocab) error {
	if v.Model != "gpt2" {
		return fmt.Errorf("tokenizer: GGUF model %q is not byte-level BPE", v.Model)
	}
	if v.Types != nil && len(v.Types) != len(v.Tokens) {
		return errors.New("tokenizer: GGUF token types do not match the tokens")
	}
	preTok, normalizer, err := preTokenizerJSON(v.Pre)
	if err != nil {
		return err
	}
	vocab := make(map[string]int, len(v.Tokens))
	var added []map[string]any
	for i, tok := range v.Tokens {
		typ := int32(1)
		if v.Types != nil {
			typ = v.Types[i]
		}
		if typ == 3 || typ == 4 {
			added = append(added, map[string]any{"id": i, "content": tok, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": typ == 4, "special": typ == 3})
		}
		if _, dup := vocab[tok]; dup {
			return fmt.Errorf("tokenizer: token %d %q is a duplicate", i, tok)
		}
		vocab[tok] = i
	}
	merges := make([][2]string, len(v.Merges))
	for i, m := range v.Merges {
		a, b, ok := strings.Cut(m, " ")
		if !ok {
			return fmt.Errorf("tokenizer: merge %d %q has no space", i, m)
		}
		merges[i] = [2]string{a, b}
	}
	tj := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   added,
		"normalizer":     normalizer,
		"pre_tokenizer":  preTok,
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
			"ignore_merges": v.Pre == "llama-bpe" || v.Pre == "llama3", "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(tj)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "tokenizer.json"), b); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	cfg := map[string]any{"add_bos_token": v.AddBOS, "add_eos_token": v.AddEOS, "clean_up_tokenization_spaces": false,
		"tokenizer_class": "PreTrainedTokenizerFast"}
	for key, id := range map[string]int{"bos_token": v.BOS, "eos_token": v.EOS, "unk_token": v.UNK, "pad_token": v.PAD} {
		if id >= 0 && id < len(v.Tokens) {
			cfg[key] = v.Tokens[id]
		}
	}
	cb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "tokenizer_config.json"), append(cb, '\n'))
}

// tokenizerJSONToGGUFMeta reads a byte-level BPE tokenizer.json (and the
// tokenizer_config.json beside it) and returns the equivalent
// tokenizer.ggml.* metadata.
func tokenizerJSONToGGUFMeta(path string) ([]gguf.KV, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Normalizer   json.RawMessage `json:"normalizer"`
		PreTokenizer json.RawMessage `json:"pre_tokenizer"`
		Model        struct {
			Type         string            `json:"type"`
			ByteFallback bool              `json:"byte_fallback"`
			Vocab        map[string]int    `json:"vocab"`
			Merges       []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if tj.Model.Type != "BPE" || tj.Model.ByteFallback {
		return nil, fmt.Errorf("%s: only byte-level BPE tokenizer.json files can be converted to GGUF (model type %q, byte_fallback %v)", path, tj.Model.Type, tj.Model.ByteFallback)
	}
	pre, err := detectPre(tj.PreTokenizer, tj.Normalizer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n := len(tj.Model.Vocab)
	for _, a := range tj.AddedTokens {
		n = max(n, a.ID+1)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	seen := make([]bool, n)
	for tok, id := range tj.Model.Vocab {
		if id < 0 || id >= n || seen[id] {
			return nil, fmt.Errorf("%s: vocab id %d of %q is out of range or repeated", path, id, tok)
		}
		tokens[id], types[id], seen[id] = tok, 1, true
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("%s: added token %q has id %d", path, a.Content, a.ID)
		}
		tokens[a.ID], seen[a.ID] = a.Content, true
		types[a.ID] = 4
		if a.Special {
			types[a.ID] = 3
		}
	}
	for id, ok := range seen {
		if !ok {
			return nil, fmt.Errorf("%s: token id %d is missing (ids must be dense for GGUF)", path, id)
		}
	}
	merges := make([]string, len(tj.Model.Merges))
	for i, raw := range tj.Model.Merges {
		var s string
		var pair []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			merges[i] = s
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2:
			merges[i] = pair[0] + " " + pair[1]
		default:
			return nil, fmt.Errorf("%s: merge %d: %s", path, i, raw)
		}
	}
	meta := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.String("gpt2")},
		{Key: "tokenizer.ggml.pre", Value: gguf.String(pre)},
		{Key: "tokenizer.ggml.tokens", Value: gguf.Strings(tokens)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.Int32s(types)},
		{Key: "tokenizer.ggml.merges", Value: gguf.Strings(merges)},
	}
	addBOS, addEOS := false, false
	if cfg, err := os.ReadFile(filepath.Join(filepath.Dir(path), "tokenizer_config.json")); err == nil {
		var c struct {
			AddBOS *bool           `json:"add_bos_token"`
			AddEOS *bool           `json:"add_eos_token"`
			BOS    json.RawMessage `json:"bos_token"`
			EOS    json.RawMessage `json:"eos_token"`
			UNK    json.RawMessage `json:"unk_token"`
			PAD    json.RawMessage `json:"pad_token"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
		if c.AddBOS != nil {
			addBOS = *c.AddBOS
		}
		if c.AddEOS != nil {
			addEOS = *c.AddEOS
		}
		ids := make(map[string]int, len(tokens))
		for i, t := range tokens {
			ids[t] = i
		}
		for _, k := range []struct {
			raw  json.RawMessage
			name string
		}{{c.BOS, "bos"}, {c.EOS, "eos"}, {c.UNK, "unknown"}, {c.PAD, "padding"}} {
			content := tokenContent(k.raw)
			if id, ok := ids[content]; ok && content != "" {
				meta = append(meta, gguf.KV{Key: "tokenizer.ggml." + k.name + "_token_id", Value: gguf.Uint32(uint32(id))})
			}
		}
	}
	meta = append(meta,
		gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: gguf.Bool(addBOS)},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: gguf.Bool(addEOS)})
	return meta, nil
}

// tokenContent reads a tokenizer_config.json special token: a string or an
// object with "content".
func tokenContent(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &o) == nil {
		return o.Content
	}
	return ""
}

// detectPre names the GGUF pre-tokenizer of a tokenizer.json
// pre_tokenizer.
func detectPre(preTok, normalizer json.RawMessage) (string, error) {
	type step struct {
		Type       string `json:"type"`
		UseRegex   *bool  `json:"use_regex"`
		Individual bool   `json:"individual_digits"`
		Pattern    struct {
			Regex string `json:"Regex"`
		} `json:"pattern"`
		Pretokenizers []step `json:"pretokenizers"`
	}
	var s step
	if err := json.Unmarshal(preTok, &s); err != nil {
		return "", fmt.Errorf("pre_tokenizer: %w", err)
	}
	steps := []step{s}
	if s.Type == "Sequence" {
		steps = s.Pretokenizers
	}
	useRegex := func(st step) bool { return st.UseRegex == nil || *st.UseRegex }
	var norm struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(normalizer, &norm)
	switch {
	case len(steps) == 1 && steps[0].Type == "ByteLevel" && useRegex(steps[0]) && norm.Type == "":
		return "gpt2", nil
	case len(steps) == 2 && steps[0].Type == "Digits" && steps[0].Individual && steps[1].Type == "ByteLevel" && useRegex(steps[1]) && norm.Type == "":
		return "smollm", nil
	case len(steps) == 2 && steps[0].Type == "Split" && steps[1].Type == "ByteLevel" && !useRegex(steps[1]):
		switch {
		case steps[0].Pattern.Regex == llama3Split && norm.Type == "":
			return "llama-bpe", nil
		case steps[0].Pattern.Regex == qwen2Split && norm.Type == "NFC":
			return "qwen2", nil
		}
	}
	return "", errors.New("pre-tokenizer not recognised (supported for GGUF: gpt2, smollm, llama-bpe, qwen2)")
}
