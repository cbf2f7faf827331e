package tokconv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/usersim/usersim/slm/tokenizer"
)

// hfAdded is an entry of tokenizer.json's added_tokens.
type hfAdded struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type obj = map[string]any

// HFFiles returns tokenizer.json and tokenizer_config.json for v.
func (v *Vocab) HFFiles() (tokenizerJSON, tokenizerConfig []byte, err error) {
	if tokenizerJSON, err = v.tokenizerJSON(); err != nil {
		return nil, nil, err
	}
	if tokenizerConfig, err = v.configJSON(true); err != nil {
		return nil, nil, err
	}
	return tokenizerJSON, tokenizerConfig, nil
}

// HFDirFiles returns the tokenizer files of a Hugging Face model directory
// that holds v, by file name: tokenizer.json and tokenizer_config.json, and
// for a SentencePiece ("llama") vocabulary also tokenizer.model, which
// keeps the scores exactly (FromHFDir reads it first). A SentencePiece
// vocabulary that removes extra whitespace, which tokenizer.json cannot
// express here, gets tokenizer.model and tokenizer_config.json only.
func (v *Vocab) HFDirFiles() (map[string][]byte, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	withJSON := v.Model != "llama" || !v.RemoveExtraWhitespaces
	if withJSON {
		tj, err := v.tokenizerJSON()
		if err != nil {
			return nil, err
		}
		files["tokenizer.json"] = tj
	}
	cj, err := v.configJSON(withJSON)
	if err != nil {
		return nil, err
	}
	files["tokenizer_config.json"] = cj
	if v.Model == "llama" {
		spm, err := v.SPMModel()
		if err != nil {
			return nil, err
		}
		files["tokenizer.model"] = spm
	}
	return files, nil
}

// tokenizerJSON returns v as a tokenizer.json.
func (v *Vocab) tokenizerJSON() ([]byte, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	vocab := make(map[string]int, len(v.Tokens))
	var added []hfAdded
	for id, p := range v.Tokens {
		if old, dup := vocab[p]; dup {
			return nil, fmt.Errorf("tokens %d and %d are both %q", old, id, p)
		}
		vocab[p] = id
		switch v.tokenType(id) {
		case typeControl, typeUnknown:
			added = append(added, hfAdded{ID: id, Content: p, Special: true})
		case typeUserDefined:
			added = append(added, hfAdded{ID: id, Content: p, Normalized: v.Model == "llama"})
		}
	}
	model := obj{"type": "BPE", "dropout": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil, "vocab": vocab}
	var f obj
	switch v.Model {
	case "llama":
		if v.RemoveExtraWhitespaces {
			return nil, errors.New("tokenizer.ggml.remove_extra_whitespaces has no tokenizer.json equivalent here")
		}
		model["byte_fallback"] = true
		model["fuse_unk"] = true
		model["ignore_merges"] = false
		model["unk_token"] = nil
		if v.UNK >= 0 {
			model["unk_token"] = v.Tokens[v.UNK]
		}
		model["merges"] = spmMerges(v.Tokens, v.Scores, v.tokenType)
		prefix := v.AddSpacePrefix == nil || *v.AddSpacePrefix
		norms := []obj{}
		if prefix {
			norms = append(norms, obj{"type": "Prepend", "prepend": "▁"})
		}
		norms = append(norms, obj{"type": "Replace", "pattern": obj{"String": " "}, "content": "▁"})
		decs := []obj{
			{"type": "Replace", "pattern": obj{"String": "▁"}, "content": " "},
			{"type": "ByteFallback"},
			{"type": "Fuse"},
		}
		if prefix {
			decs = append(decs, obj{"type": "Strip", "content": " ", "start": 1, "stop": 0})
		}
		f = obj{"normalizer": obj{"type": "Sequence", "normalizers": norms}, "pre_tokenizer": nil,
			"decoder": obj{"type": "Sequence", "decoders": decs}}
	case "gpt2":
		merges := make([][2]string, len(v.Merges))
		for i, m := range v.Merges {
			a, b, ok := strings.Cut(m, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer.ggml.merges[%d] = %q: want \"a b\"", i, m)
			}
			merges[i] = [2]string{a, b}
		}
		model["merges"] = merges
		model["byte_fallback"] = false
		model["fuse_unk"] = false
		model["unk_token"] = nil
		pre, ignoreMerges, err := bytePreTokenizer(v.Pre)
		if err != nil {
			return nil, err
		}
		model["ignore_merges"] = ignoreMerges
		var norm any
		if strings.HasPrefix(v.Pre, "qwen") || v.Pre == "deepseek-r1-qwen" {
			norm = obj{"type": "NFC"} // Qwen's tokenizer.json normalizes; llama.cpp does not
		}
		f = obj{"normalizer": norm, "pre_tokenizer": pre,
			"decoder": obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}}
	}
	f["version"] = "1.0"
	f["truncation"] = nil
	f["padding"] = nil
	if added == nil {
		added = []hfAdded{}
	}
	f["added_tokens"] = added
	f["model"] = model
	f["post_processor"] = v.postProcessor()
	return json.MarshalIndent(f, "", " ")
}

// configJSON returns tokenizer_config.json for v; fast tells whether a
// tokenizer.json goes with it.
func (v *Vocab) configJSON(fast bool) ([]byte, error) {
	cfg := obj{"clean_up_tokenization_spaces": false, "add_bos_token": v.AddBOS, "add_eos_token": v.AddEOS,
		"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 30}
	for _, s := range []struct {
		key string
		id  int
	}{{"bos_token", v.BOS}, {"eos_token", v.EOS}, {"unk_token", v.UNK}, {"pad_token", v.PAD}} {
		if s.id >= 0 {
			cfg[s.key] = v.Tokens[s.id]
		}
	}
	if v.Model == "llama" {
		cfg["tokenizer_class"] = "LlamaTokenizer"
		if fast {
			cfg["tokenizer_class"] = "LlamaTokenizerFast"
		}
		// The tokenizer.json written here prepends "▁" in its normalizer
		// (and llama.cpp adds the prefix after special tokens too): the
		// legacy behaviour of transformers' Llama tokenizers.
		cfg["legacy"] = true
	}
	if v.ChatTemplate != "" {
		cfg["chat_template"] = v.ChatTemplate
	}
	cj, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(cj, '\n'), nil
}

// postProcessor adds BOS/EOS as the vocabulary asks.
func (v *Vocab) postProcessor() any {
	if !(v.AddBOS && v.BOS >= 0) && !(v.AddEOS && v.EOS >= 0) {
		if v.Model == "gpt2" {
			return obj{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}
		}
		return nil
	}
	var single []obj
	special := obj{}
	add := func(id int) {
		p := v.Tokens[id]
		single = append(single, obj{"SpecialToken": obj{"id": p, "type_id": 0}})
		special[p] = obj{"id": p, "ids": []int{id}, "tokens": []string{p}}
	}
	if v.AddBOS && v.BOS >= 0 {
		add(v.BOS)
	}
	single = append(single, obj{"Sequence": obj{"id": "A", "type_id": 0}})
	if v.AddEOS && v.EOS >= 0 {
		add(v.EOS)
	}
	pair := append(slices.Clone(single), obj{"Sequence": obj{"id": "B", "type_id": 1}})
	return obj{"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": special}
}

// bytePreTokenizer returns the pre-tokenizer of a byte-level family and
// whether its BPE ignores merges for whole-vocabulary words.
func bytePreTokenizer(pre string) (any, bool, error) {
	split := func(pattern string) obj {
		return obj{"type": "Sequence", "pretokenizers": []obj{
			{"type": "Split", "pattern": obj{"Regex": pattern}, "behavior": "Isolated", "invert": false},
			{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
	}
	switch pre {
	case "llama3", "llama-v3", "llama-bpe", "falcon3":
		return split(llama3Pattern), true, nil
	case "qwen2", "qwen2.5", "qwen-2.5", "deepseek-r1-qwen":
		return split(qwen2Pattern), false, nil
	case "smollm", "starcoder", "refact", "codeshell", "command-r":
		return obj{"type": "Sequence", "pretokenizers": []obj{
			{"type": "Digits", "individual_digits": true},
			{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		}}, false, nil
	case "gpt2", "gpt-2", "mpt", "olmo", "jais", "":
		return obj{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}, false, nil
	}
	return nil, false, fmt.Errorf("tokenizer.ggml.pre %q has no tokenizer.json pre-tokenizer here (supported: llama-bpe, qwen2, smollm, gpt2)", pre)
}

// spmMerges derives BPE merges from SentencePiece scores the way
// transformers' SentencePieceExtractor does: every split of a piece into
// two pieces of the vocabulary is a merge ranked by the score of the whole
// piece (higher first); splits of one piece are ordered by the ids of their
// parts. Control, unknown and byte pieces take no part.
func spmMerges(tokens []string, scores []float32, typ func(int) int32) [][2]string {
	ids := make(map[string]int, len(tokens))
	for id, p := range tokens {
		if t := typ(id); t == typeNormal || t == typeUserDefined {
			ids[p] = id
		}
	}
	type merge struct {
		l, r   string
		li, ri int
		score  float32
		order  int
	}
	var ms []merge
	for id, p := range tokens {
		if _, ok := ids[p]; !ok {
			continue
		}
		var local []merge
		for i := range p {
			if i == 0 {
				continue
			}
			li, lok := ids[p[:i]]
			ri, rok := ids[p[i:]]
			if lok && rok {
				local = append(local, merge{l: p[:i], r: p[i:], li: li, ri: ri, score: scores[id]})
			}
		}
		slices.SortFunc(local, func(a, b merge) int {
			if a.li != b.li {
				return a.li - b.li
			}
			return a.ri - b.ri
		})
		ms = append(ms, local...)
	}
	slices.SortStableFunc(ms, func(a, b merge) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	out := make([][2]string, len(ms))
	for i, m := range ms {
		out[i] = [2]string{m.l, m.r}
	}
	return out
}

// hfTokenizer is what FromHF reads of tokenizer.json.
type hfTokenizer struct {
	AddedTokens  []hfAdded       `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	PostProc     json.RawMessage `json:"post_processor"`
	Model        struct {
		Type         string          `json:"type"`
		Vocab        map[string]int  `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		ByteFallback bool            `json:"byte_fallback"`
		UnkToken     *string         `json:"unk_token"`
	} `json:"model"`
}

// FromHFDir reads the tokenizer of a Hugging Face model directory. A
// SentencePiece tokenizer.model, when present, gives the pieces with their
// own scores, as llama.cpp's converter reads it, completed by the added
// tokens and the post-processor of a tokenizer.json beside it; otherwise
// tokenizer.json is read as FromHF reads it. tokenizer_config.json, when
// present, gives the special tokens, the BOS/EOS flags and the chat
// template.
func FromHFDir(dir string) (*Vocab, error) {
	var files [3][]byte
	for i, name := range []string{"tokenizer.model", "tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		files[i] = b
	}
	spm, tj, cfg := files[0], files[1], files[2]
	var v *Vocab
	var err error
	switch {
	case spm != nil:
		v, err = fromSPMDir(spm, tj, cfg)
	case tj != nil:
		v, err = FromHF(tj, cfg)
	default:
		return nil, fmt.Errorf("tokenizer: %s has no tokenizer.model or tokenizer.json", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return v, nil
}

// fromSPMDir reads tokenizer.model, then the added tokens and the
// post-processor of tokenizer.json (may be nil), then tokenizer_config.json
// (may be nil).
func fromSPMDir(spm, tokenizerJSON, tokenizerConfig []byte) (*Vocab, error) {
	v, err := FromSPMModel(spm)
	if err != nil {
		return nil, err
	}
	var post json.RawMessage
	if tokenizerJSON != nil {
		var t struct {
			AddedTokens []hfAdded       `json:"added_tokens"`
			PostProc    json.RawMessage `json:"post_processor"`
		}
		if err := json.Unmarshal(tokenizerJSON, &t); err != nil {
			return nil, fmt.Errorf("tokenizer.json: %w", err)
		}
		if err := v.addTokens(t.AddedTokens); err != nil {
			return nil, err
		}
		if post = t.PostProc; post == nil {
			post = json.RawMessage("null")
		}
	}
	if err := v.applyConfig(tokenizerConfig, post); err != nil {
		return nil, err
	}
	return v, nil
}

// addedScore is the score of pieces added beside tokenizer.model's, as
// llama.cpp's converter gives them.
const addedScore = -1000

// addTokens marks the added tokens of a tokenizer.json in a SentencePiece
// vocabulary: a normal piece becomes control (special) or user defined;
// ids past the model's pieces extend the vocabulary, any gap filled with
// unused [PADn] pieces.
func (v *Vocab) addTokens(added []hfAdded) error {
	n := len(v.Tokens)
	for _, a := range added {
		if a.ID < 0 || a.ID >= n+len(added)+1024 {
			return fmt.Errorf("tokenizer.json: added token %q has id %d for %d pieces", a.Content, a.ID, n)
		}
		for len(v.Tokens) <= a.ID {
			v.Tokens = append(v.Tokens, fmt.Sprintf("[PAD%d]", len(v.Tokens)))
			v.Scores = append(v.Scores, addedScore)
			v.Types = append(v.Types, typeUnused)
		}
		typ := int32(typeUserDefined)
		if a.Special {
			typ = typeControl
		}
		switch {
		case a.ID >= n || v.Types[a.ID] == typeUnused && v.Tokens[a.ID] == fmt.Sprintf("[PAD%d]", a.ID):
			v.Tokens[a.ID], v.Types[a.ID] = a.Content, typ
		case v.Tokens[a.ID] != a.Content:
			return fmt.Errorf("tokenizer.json: added token %d is %q, but %q in tokenizer.model", a.ID, a.Content, v.Tokens[a.ID])
		case v.Types[a.ID] == typeNormal:
			v.Types[a.ID] = typ
		}
	}
	return nil
}

// FromHF builds the GGUF form of a Hugging Face tokenizer: tokenizer.json
// and tokenizer_config.json (may be nil).
func FromHF(tokenizerJSON, tokenizerConfig []byte) (*Vocab, error) {
	var t hfTokenizer
	if err := json.Unmarshal(tokenizerJSON, &t); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if t.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer.json: model type %q is not supported (BPE only)", t.Model.Type)
	}
	n := 0
	for _, id := range t.Model.Vocab {
		n = max(n, id+1)
	}
	for _, a := range t.AddedTokens {
		n = max(n, a.ID+1)
	}
	if n == 0 || n > 2*(len(t.Model.Vocab)+len(t.AddedTokens))+1024 {
		return nil, fmt.Errorf("tokenizer.json: ids up to %d for %d tokens: too sparse", n-1, len(t.Model.Vocab)+len(t.AddedTokens))
	}
	tokens := make([]string, n)
	have := make([]bool, n)
	for p, id := range t.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("tokenizer.json: token %q has id %d", p, id)
		}
		tokens[id], have[id] = p, true
	}
	types := make([]int32, n)
	for i := range types {
		types[i] = typeNormal
	}
	for _, a := range t.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("tokenizer.json: added token %q has id %d", a.Content, a.ID)
		}
		tokens[a.ID], have[a.ID] = a.Content, true
		types[a.ID] = typeUserDefined
		if a.Special {
			types[a.ID] = typeControl
		}
	}
	for id, ok := range have {
		if !ok {
			tokens[id] = fmt.Sprintf("[PAD%d]", id)
			types[id] = typeUnused
		}
	}
	merges, err := tokenizer.ParseHFMerges(t.Model.Merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	v := &Vocab{}
	v.Tokens, v.Types = tokens, types
	v.BOS, v.EOS, v.UNK, v.PAD = -1, -1, -1, -1
	if t.Model.ByteFallback {
		v.Model = "llama"
		for id, p := range tokens {
			if isBytePiece(p) && types[id] == typeNormal {
				types[id] = typeByte
			}
		}
		if t.Model.UnkToken != nil {
			if id, ok := t.Model.Vocab[*t.Model.UnkToken]; ok {
				v.UNK = id
				types[id] = typeUnknown
			}
		}
		// Scores: minus the rank of the first merge that builds a piece.
		v.Scores = make([]float32, n)
		built := make(map[string]bool, len(merges))
		for r, m := range merges {
			p := m[0] + m[1]
			if !built[p] {
				built[p] = true
				if id, ok := t.Model.Vocab[p]; ok {
					v.Scores[id] = -float32(r)
				}
			}
		}
		for id := range v.Scores {
			if !built[tokens[id]] && types[id] == typeNormal && len([]rune(tokens[id])) > 1 {
				v.Scores[id] = -float32(len(merges) + id)
			}
		}
		prefix, err := spacePrefix(t.Normalizer, t.PreTokenizer)
		if err != nil {
			return nil, err
		}
		v.AddSpacePrefix = &prefix
	} else {
		v.Model = "gpt2"
		v.Merges = make([]string, len(merges))
		for i, m := range merges {
			if strings.Contains(m[0], " ") || strings.Contains(m[1], " ") {
				return nil, fmt.Errorf("tokenizer.json: merge %d %q has a space, which GGUF merges cannot hold", i, m)
			}
			v.Merges[i] = m[0] + " " + m[1]
		}
		if v.Pre, err = preName(t.PreTokenizer); err != nil {
			return nil, err
		}
	}
	post := t.PostProc
	if post == nil {
		post = json.RawMessage("null")
	}
	if err := v.applyConfig(tokenizerConfig, post); err != nil {
		return nil, err
	}
	return v, nil
}

type node struct {
	Type             string            `json:"type"`
	Normalizers      []json.RawMessage `json:"normalizers"`
	PreTokenizers    []json.RawMessage `json:"pretokenizers"`
	Prepend          string            `json:"prepend"`
	Pattern          struct{ Regex, String *string }
	UseRegex         *bool  `json:"use_regex"`
	AddPrefixSpace   *bool  `json:"add_prefix_space"`
	IndividualDigits bool   `json:"individual_digits"`
	PrependScheme    string `json:"prepend_scheme"`
}

func parseNode(raw json.RawMessage) (*node, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var n node
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// flatten lists a node and the members of Sequence nodes, depth first.
func flatten(raw json.RawMessage) ([]*node, error) {
	n, err := parseNode(raw)
	if err != nil || n == nil {
		return nil, err
	}
	if n.Type != "Sequence" {
		return []*node{n}, nil
	}
	var out []*node
	for _, c := range slices.Concat(n.Normalizers, n.PreTokenizers) {
		sub, err := flatten(c)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
	return out, nil
}

// spacePrefix tells whether a SentencePiece-style tokenizer.json adds the
// dummy "▁" prefix: a Prepend normalizer, or a Metaspace pre-tokenizer
// that prepends.
func spacePrefix(normalizer, pre json.RawMessage) (bool, error) {
	ns, err := flatten(normalizer)
	if err != nil {
		return false, fmt.Errorf("tokenizer.json: normalizer: %w", err)
	}
	for _, n := range ns {
		if n.Type == "Prepend" && n.Prepend == "▁" {
			return true, nil
		}
	}
	ps, err := flatten(pre)
	if err != nil {
		return false, fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	for _, n := range ps {
		if n.Type == "Metaspace" {
			return n.PrependScheme != "never" && (n.AddPrefixSpace == nil || *n.AddPrefixSpace), nil
		}
	}
	return false, nil
}

// preName names a byte-level pre-tokenizer the way tokenizer.ggml.pre does.
func preName(raw json.RawMessage) (string, error) {
	ns, err := flatten(raw)
	if err != nil {
		return "", fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	digits, regex := false, ""
	byteRegex := false
	for _, n := range ns {
		switch n.Type {
		case "Digits":
			digits = n.IndividualDigits
		case "Split":
			if n.Pattern.Regex != nil {
				regex = *n.Pattern.Regex
			}
		case "ByteLevel":
			byteRegex = n.UseRegex == nil || *n.UseRegex
		}
	}
	switch {
	case regex == llama3Pattern && !digits:
		return "llama-bpe", nil
	case regex == qwen2Pattern && !digits:
		return "qwen2", nil
	case regex == "" && byteRegex && digits:
		return "smollm", nil
	case regex == "" && byteRegex:
		return "gpt2", nil
	}
	return "", fmt.Errorf("tokenizer.json: pre-tokenizer (regex %q, digits %v) is not one GGUF can name (llama-bpe, qwen2, smollm, gpt2)", regex, digits)
}

// applyConfig reads the special tokens, BOS/EOS flags and chat template of
// tokenizer_config.json (may be nil). postProc is tokenizer.json's
// post-processor ("null" when it has none), nil without a tokenizer.json:
// then the BOS/EOS flags are left as they are unless the configuration
// sets them.
func (v *Vocab) applyConfig(cfgJSON []byte, postProc json.RawMessage) error {
	var cfg tokenizer.HFConfig
	var chat struct {
		Template json.RawMessage `json:"chat_template"`
	}
	if len(cfgJSON) > 0 {
		var err error
		if cfg, err = tokenizer.ParseHFConfig(cfgJSON); err != nil {
			return fmt.Errorf("tokenizer_config.json: %w", err)
		}
		if err := json.Unmarshal(cfgJSON, &chat); err != nil {
			return fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	lookup := make(map[string]int, len(v.Tokens))
	for id, p := range v.Tokens {
		lookup[p] = id
	}
	for _, s := range []struct {
		key, text string
		dst       *int
	}{{"bos_token", cfg.BOS, &v.BOS}, {"eos_token", cfg.EOS, &v.EOS}, {"unk_token", cfg.UNK, &v.UNK}, {"pad_token", cfg.PAD, &v.PAD}} {
		if s.text == "" {
			continue
		}
		id, ok := lookup[s.text]
		if !ok {
			return fmt.Errorf("tokenizer_config.json: %s %q is not in the vocabulary", s.key, s.text)
		}
		*s.dst = id
	}
	// BOS/EOS flags: tokenizer_config.json, else the post-processor.
	if postProc != nil {
		bos, eos, err := tokenizer.HFPostProcessorSpecials(postProc, func(p string) (int, bool) {
			id, ok := lookup[p]
			return id, ok
		}, len(v.Tokens))
		if err != nil {
			return fmt.Errorf("tokenizer.json: %w", err)
		}
		v.AddBOS, v.AddEOS = bos >= 0, eos >= 0
		if v.BOS < 0 {
			v.BOS = bos
		}
		if v.EOS < 0 {
			v.EOS = eos
		}
	}
	if cfg.AddBOS != nil {
		v.AddBOS = *cfg.AddBOS
	}
	if cfg.AddEOS != nil {
		v.AddEOS = *cfg.AddEOS
	}
	if len(chat.Template) > 0 && string(chat.Template) != "null" {
		var s string
		if err := json.Unmarshal(chat.Template, &s); err == nil {
			v.ChatTemplate = s
		} else {
			var list []struct{ Name, Template string }
			if err := json.Unmarshal(chat.Template, &list); err != nil {
				return fmt.Errorf("tokenizer_config.json: chat_template: want a string or a list of {name, template}: %w", err)
			}
			for _, e := range list {
				if e.Name == "default" {
					v.ChatTemplate = e.Template
				}
			}
		}
	}
	for _, id := range []int{v.BOS, v.EOS} {
		if id >= 0 && v.Types[id] == typeNormal {
			v.Types[id] = typeControl
		}
	}
	return nil
}
