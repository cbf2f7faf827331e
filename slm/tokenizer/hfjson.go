package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Hugging Face tokenizer.json, the parts this package reads.
type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         hfModel         `json:"model"`
}

type hfAddedToken struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ByteFallback            bool            `json:"byte_fallback"`
	FuseUnk                 bool            `json:"fuse_unk"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	Dropout                 *float64        `json:"dropout"`
}

// hfNode is any normalizer, pre-tokenizer, post-processor or decoder.
type hfNode struct {
	Type string `json:"type"`
	// Sequence
	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	Processors    []json.RawMessage `json:"processors"`
	// Prepend, Replace, Split, Metaspace, Strip
	Prepend    string    `json:"prepend"`
	Pattern    hfPattern `json:"pattern"`
	Content    *string   `json:"content"`
	Behavior   string    `json:"behavior"`
	Invert     bool      `json:"invert"`
	StripLeft  bool      `json:"strip_left"`
	StripRight bool      `json:"strip_right"`
	Start      int       `json:"start"`
	Stop       int       `json:"stop"`
	// ByteLevel
	AddPrefixSpace *bool `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Digits
	IndividualDigits bool `json:"individual_digits"`
	// Metaspace
	Replacement   string `json:"replacement"`
	PrependScheme string `json:"prepend_scheme"`
	Split         *bool  `json:"split"`
	// TemplateProcessing
	Single        []map[string]json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	// RobertaProcessing, BertProcessing: [token, id]
	Sep []json.RawMessage `json:"sep"`
	Cls []json.RawMessage `json:"cls"`
}

type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

func parseNode(raw json.RawMessage, what string) (*hfNode, error) {
	if isNull(raw) {
		return nil, nil
	}
	var n hfNode
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &n, nil
}

// FromHFJSON builds a tokenizer from a Hugging Face tokenizer.json with a
// BPE model: byte-level (GPT-2, Llama 3, Qwen, SmolLM) or SentencePiece
// style with byte fallback (Mistral, Llama 2, TinyLlama, Phi-3). It encodes
// as the Hugging Face tokenizers library does when EncodeOptions.ParseSpecial
// is set (that library always matches special tokens in the text).
// BOS and EOS come from the post-processor or else from the names of
// special tokens (<s>, </s>, <|endoftext|>, ..., and Train's <|bos|> and
// <|eos|>); PAD only from a special <|pad|>.
func FromHFJSON(data []byte) (*Tokenizer, error) {
	t, err := fromHFJSON(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return t, nil
}

// maxVocab bounds ids so that a hostile file cannot make us allocate
// without limit.
const maxVocab = 1 << 24

func fromHFJSON(data []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	m := f.Model
	switch m.Type {
	case "BPE":
	case "":
		if isNull(m.Merges) {
			return nil, errors.New("model: no type and no merges")
		}
	default:
		return nil, fmt.Errorf("model: type %q is not supported (only BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fmt.Errorf("model: BPE dropout %v is not supported", *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("model: continuing_subword_prefix %q is not supported", *m.ContinuingSubwordPrefix)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("model: end_of_word_suffix %q is not supported", *m.EndOfWordSuffix)
	}
	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}
	if len(vocab) == 0 {
		return nil, errors.New("model.vocab is empty")
	}
	merges, err := ParseHFMerges(m.Merges)
	if err != nil {
		return nil, err
	}

	// Ids.
	maxID := -1
	for p, id := range vocab {
		if id < 0 || id >= maxVocab {
			return nil, fmt.Errorf("model.vocab: token %q has id %d out of range", p, id)
		}
		maxID = max(maxID, id)
	}
	for i, a := range f.AddedTokens {
		if a.ID == nil {
			return nil, fmt.Errorf("added_tokens[%d] (%q): no id", i, a.Content)
		}
		if *a.ID < 0 || *a.ID >= maxVocab {
			return nil, fmt.Errorf("added_tokens[%d] (%q): id %d out of range", i, a.Content, *a.ID)
		}
		if a.Content == "" {
			return nil, fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		maxID = max(maxID, *a.ID)
	}
	n := maxID + 1
	if n > 2*(len(vocab)+len(f.AddedTokens))+1024 {
		return nil, fmt.Errorf("largest id %d is far beyond the %d tokens defined", maxID, len(vocab)+len(f.AddedTokens))
	}

	// Decoder first: it says how pieces turn into text.
	dec, err := parseDecoder(f.Decoder)
	if err != nil {
		return nil, err
	}
	pre, preInfo, err := parsePreTokenizer(f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	nrm, prepends, err := parseNormalizer(f.Normalizer)
	if err != nil {
		return nil, err
	}
	byteLevel := preInfo.byteLevel || dec.byteLevel

	t := &Tokenizer{
		pieces: make([]string, n),
		kinds:  make([]tokenKind, n),
		text:   make([]string, n),
		lookup: make(map[string]int, n),
		isAdd:  make([]bool, n),
		norm:   nrm,
		pre:    pre,
		bos:    -1, eos: -1, unk: -1, pad: -1,
	}
	for p, id := range vocab {
		if t.kinds[id] != kindMissing {
			return nil, fmt.Errorf("model.vocab: id %d is used by both %q and %q", id, t.pieces[id], p)
		}
		t.pieces[id] = p
		t.kinds[id] = kindNormal
		t.lookup[p] = id
		switch {
		case byteLevel:
			t.text[id], _ = byteLevelDecode(p)
		default:
			t.text[id] = dec.pieceText(p)
		}
		if m.ByteFallback {
			if _, ok := parseBytePiece(p); ok {
				t.kinds[id] = kindByte
			}
		}
	}
	var added []addedToken
	for _, a := range f.AddedTokens {
		id := *a.ID
		t.pieces[id] = a.Content
		t.text[id] = a.Content
		t.lookup[a.Content] = id
		t.isAdd[id] = true
		if a.Special {
			t.kinds[id] = kindControl
		} else {
			t.kinds[id] = kindUserDefined
		}
		added = append(added, addedToken{content: a.Content, id: id, special: a.Special,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord})
	}
	t.added = newAddedMatcher(added)

	// Model.
	bm := &bpeModel{
		merges:       make(map[uint64]mergeRule, len(merges)),
		byteLevel:    byteLevel,
		byteFallback: m.ByteFallback,
		unk:          -1,
		fuseUnk:      m.FuseUnk,
		ignoreMerges: m.IgnoreMerges,
	}
	for i := range bm.byteTok {
		bm.byteTok[i], bm.byteID[i] = -1, -1
	}
	if m.UnkToken != nil {
		id, ok := vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model.unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		bm.unk = int32(id)
		t.unk = id
		t.kinds[id] = kindUnknown
	}
	if byteLevel {
		for b := 0; b < 256; b++ {
			if id, ok := vocab[string(byteToRune[b])]; ok {
				bm.byteID[b] = int32(id)
			}
		}
	} else {
		bm.runeID = make(map[rune]int32, 1024)
		for p, id := range vocab {
			if r, size := utf8.DecodeRuneInString(p); size == len(p) && (r != utf8.RuneError || size > 1) {
				bm.runeID[r] = int32(id)
			}
		}
	}
	if m.ByteFallback {
		for p, id := range vocab {
			if b, ok := parseBytePiece(p); ok {
				bm.byteTok[b] = int32(id)
			}
		}
	}
	if m.IgnoreMerges {
		bm.whole = make(map[string]int32, len(vocab))
		for p, id := range vocab {
			bm.whole[p] = int32(id)
		}
	}
	for rank, mg := range merges {
		a, ok1 := vocab[mg[0]]
		b, ok2 := vocab[mg[1]]
		c, ok3 := vocab[mg[0]+mg[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("model.merges[%d] (%q %q): token not in the vocabulary", rank, mg[0], mg[1])
		}
		k := pairKey(int32(a), int32(b))
		if _, dup := bm.merges[k]; !dup {
			bm.merges[k] = mergeRule{prio: float32(rank), id: int32(c)}
		}
	}
	t.model = bm

	// Where Decode drops the dummy-prefix space.
	if dec.stripFirst {
		switch {
		case prepends || preInfo.prependAlways:
			t.strip = stripAfterAdded
		default:
			t.strip = stripAtStart
		}
	}

	// BOS / EOS.
	if err := t.applyPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	// Otherwise guessed from the names of special tokens, Train's defaults
	// (DefaultTrainOptions) last.
	if t.bos < 0 {
		t.bos = t.firstSpecial("<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "<|bos|>")
	}
	if t.eos < 0 {
		t.eos = t.firstSpecial("</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", "<eos>", "<|eos|>")
	}
	if t.pad < 0 {
		t.pad = t.firstSpecial("<|pad|>")
	}
	t.eog = collectEOG(t, t.eos, nil)
	return t, nil
}

func (t *Tokenizer) firstSpecial(names ...string) int {
	for _, name := range names {
		if id, ok := t.lookup[name]; ok && t.kinds[id] == kindControl {
			return id
		}
	}
	return -1
}

// ParseHFMerges reads the model.merges of a tokenizer.json: "a b" strings
// or [a, b] pairs, in rank order; null gives none.
func ParseHFMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	// Fast paths: all strings, or all pairs.
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("model.merges[%d]: %q is not two tokens separated by a space", i, truncate(s, 40))
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		out := make([][2]string, len(pairs))
		for i, p := range pairs {
			if len(p) != 2 {
				return nil, fmt.Errorf("model.merges[%d]: want a pair, got %d tokens", i, len(p))
			}
			out[i] = [2]string{p[0], p[1]}
		}
		return out, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("model.merges: %w", err)
	}
	out := make([][2]string, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err == nil {
			a, b, ok := strings.Cut(s, " ")
			if !ok || a == "" || b == "" || strings.Contains(b, " ") {
				return nil, fmt.Errorf("model.merges[%d]: %q is not two tokens separated by a space", i, s)
			}
			out[i] = [2]string{a, b}
			continue
		}
		var pair []string
		if err := json.Unmarshal(it, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("model.merges[%d]: want \"a b\" or [a, b], got %s", i, truncate(string(it), 40))
		}
		out[i] = [2]string{pair[0], pair[1]}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// decoderSpec is what this package understands of a decoder chain.
type decoderSpec struct {
	byteLevel    bool
	byteFallback bool
	replace      [][2]string // literal replacements, in order
	stripFirst   bool        // drop one leading space of the text
}

func (d decoderSpec) pieceText(p string) string {
	if d.byteFallback {
		if b, ok := parseBytePiece(p); ok {
			return string([]byte{b})
		}
	}
	for _, r := range d.replace {
		p = strings.ReplaceAll(p, r[0], r[1])
	}
	return p
}

func parseDecoder(raw json.RawMessage) (decoderSpec, error) {
	var d decoderSpec
	fused := false
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		n, err := parseNode(raw, "decoder")
		if err != nil || n == nil {
			return err
		}
		switch n.Type {
		case "Sequence":
			for _, c := range n.Decoders {
				if err := walk(c); err != nil {
					return err
				}
			}
		case "ByteLevel":
			d.byteLevel = true
		case "ByteFallback":
			d.byteFallback = true
		case "Fuse":
			fused = true
		case "Replace":
			if n.Pattern.String == nil || n.Content == nil {
				return errors.New("decoder: Replace: only a literal String pattern is supported")
			}
			d.replace = append(d.replace, [2]string{*n.Pattern.String, *n.Content})
		case "Strip":
			if n.Content == nil || *n.Content != " " || n.Start > 1 || n.Stop != 0 || !fused {
				return errors.New("decoder: Strip: only removing one leading space after Fuse is supported")
			}
			d.stripFirst = n.Start == 1
		case "Metaspace":
			rep := n.Replacement
			if rep == "" {
				rep = spaceSymbol
			}
			d.replace = append(d.replace, [2]string{rep, " "})
			scheme, err := metaspaceScheme(n)
			if err != nil {
				return fmt.Errorf("decoder: %w", err)
			}
			d.stripFirst = scheme != prependNever
		default:
			return fmt.Errorf("decoder: type %q is not supported", n.Type)
		}
		return nil
	}
	return d, walk(raw)
}

func metaspaceScheme(n *hfNode) (prependScheme, error) {
	switch n.PrependScheme {
	case "always":
		return prependAlways, nil
	case "first":
		return prependFirst, nil
	case "never":
		return prependNever, nil
	case "":
		if n.AddPrefixSpace != nil && !*n.AddPrefixSpace {
			return prependNever, nil
		}
		return prependAlways, nil
	}
	return 0, fmt.Errorf("Metaspace: unknown prepend_scheme %q", n.PrependScheme)
}

// parseNormalizer also reports whether it prepends a dummy prefix to every
// segment.
func parseNormalizer(raw json.RawMessage) (normalizer, bool, error) {
	prepends := false
	var walk func(raw json.RawMessage) (normalizer, error)
	walk = func(raw json.RawMessage) (normalizer, error) {
		n, err := parseNode(raw, "normalizer")
		if err != nil || n == nil {
			return nil, err
		}
		switch n.Type {
		case "Sequence":
			var seq normSequence
			for _, c := range n.Normalizers {
				x, err := walk(c)
				if err != nil {
					return nil, err
				}
				if x != nil {
					seq = append(seq, x)
				}
			}
			return seq, nil
		case "NFC":
			return normUnicode{norm.NFC}, nil
		case "NFD":
			return normUnicode{norm.NFD}, nil
		case "NFKC":
			return normUnicode{norm.NFKC}, nil
		case "NFKD":
			return normUnicode{norm.NFKD}, nil
		case "Lowercase":
			return normLowercase{}, nil
		case "Strip":
			return normStrip{left: n.StripLeft, right: n.StripRight}, nil
		case "Prepend":
			prepends = true
			return normPrepend{prefix: n.Prepend}, nil
		case "Replace":
			if n.Content == nil {
				return nil, errors.New("normalizer: Replace: no content")
			}
			switch {
			case n.Pattern.String != nil:
				if *n.Pattern.String == "" {
					return nil, errors.New("normalizer: Replace: empty pattern")
				}
				return normReplace{old: *n.Pattern.String, new: *n.Content}, nil
			case n.Pattern.Regex != nil:
				re, err := compileRegex(*n.Pattern.Regex)
				if err != nil {
					return nil, fmt.Errorf("normalizer: Replace: %w", err)
				}
				return normReplace{re: re, new: *n.Content}, nil
			}
			return nil, errors.New("normalizer: Replace: no pattern")
		}
		return nil, fmt.Errorf("normalizer: type %q is not supported", n.Type)
	}
	nrm, err := walk(raw)
	return nrm, prepends, err
}

type preInfo struct {
	byteLevel     bool
	prependAlways bool // Metaspace prefixes every segment
}

func parsePreTokenizer(raw json.RawMessage) ([]preTokenizer, preInfo, error) {
	var info preInfo
	var out []preTokenizer
	var walk func(raw json.RawMessage) error
	walk = func(raw json.RawMessage) error {
		n, err := parseNode(raw, "pre_tokenizer")
		if err != nil || n == nil {
			return err
		}
		switch n.Type {
		case "Sequence":
			for _, c := range n.PreTokenizers {
				if err := walk(c); err != nil {
					return err
				}
			}
		case "Split":
			b, err := parseBehavior(n.Behavior)
			if err != nil {
				return err
			}
			p := regexSplit{behavior: b, invert: n.Invert}
			switch {
			case n.Pattern.Regex != nil:
				if fast, ok := fastSplitFor(*n.Pattern.Regex); ok && b == splitIsolated && !n.Invert {
					out = append(out, fast)
					return nil
				}
				if *n.Pattern.Regex == digitPattern && b == splitMergedWithPrevious && !n.Invert {
					// What Train writes for DigitsSingle: no regexp2 needed.
					out = append(out, digitSplit{})
					return nil
				}
				if p.re, err = compileRegex(*n.Pattern.Regex); err != nil {
					return fmt.Errorf("pre_tokenizer: Split: %w", err)
				}
			case n.Pattern.String != nil:
				p.literal = *n.Pattern.String
			default:
				return errors.New("pre_tokenizer: Split: no pattern")
			}
			out = append(out, p)
		case "ByteLevel":
			info.byteLevel = true
			p := byteLevelPre{addPrefixSpace: n.AddPrefixSpace != nil && *n.AddPrefixSpace}
			p.split_ = n.UseRegex == nil || *n.UseRegex
			if p.addPrefixSpace || p.split_ { // else it is the identity
				out = append(out, p)
			}
		case "Digits":
			out = append(out, digitsPre{individual: n.IndividualDigits})
		case "Metaspace":
			scheme, err := metaspaceScheme(n)
			if err != nil {
				return fmt.Errorf("pre_tokenizer: %w", err)
			}
			rep := n.Replacement
			if rep == "" {
				rep = spaceSymbol
			}
			info.prependAlways = scheme == prependAlways
			out = append(out, metaspacePre{replacement: rep, scheme: scheme, split_: n.Split == nil || *n.Split})
		default:
			return fmt.Errorf("pre_tokenizer: type %q is not supported", n.Type)
		}
		return nil
	}
	err := walk(raw)
	return out, info, err
}

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Isolated", "":
		return splitIsolated, nil
	case "Removed":
		return splitRemoved, nil
	case "MergedWithPrevious":
		return splitMergedWithPrevious, nil
	case "MergedWithNext":
		return splitMergedWithNext, nil
	case "Contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("pre_tokenizer: Split: unknown behavior %q", s)
}

// applyPostProcessor reads BOS/EOS and whether they are added from the
// post-processor.
func (t *Tokenizer) applyPostProcessor(raw json.RawMessage) error {
	bos, eos, err := HFPostProcessorSpecials(raw, t.ID, len(t.pieces))
	if err != nil {
		return err
	}
	if bos >= 0 {
		t.bos, t.addBOS = bos, true
	}
	if eos >= 0 {
		t.eos, t.addEOS = eos, true
	}
	return nil
}

// HFPostProcessorSpecials reads the post_processor of a tokenizer.json: the
// id of the special token it adds before a single text (BOS) and after it
// (EOS), -1 where it adds none. id looks a token up; ids must be below
// vocabSize. TemplateProcessing (one token at most on each side),
// RobertaProcessing, BertProcessing, ByteLevel and Sequences of them are
// understood; a later member of a Sequence overrides an earlier one.
func HFPostProcessorSpecials(raw json.RawMessage, id func(token string) (int, bool), vocabSize int) (bos, eos int, err error) {
	bos, eos = -1, -1
	n, err := parseNode(raw, "post_processor")
	if err != nil || n == nil {
		return bos, eos, err
	}
	switch n.Type {
	case "Sequence":
		for _, c := range n.Processors {
			b, e, err := HFPostProcessorSpecials(c, id, vocabSize)
			if err != nil {
				return -1, -1, err
			}
			if b >= 0 {
				bos = b
			}
			if e >= 0 {
				eos = e
			}
		}
	case "ByteLevel":
	case "TemplateProcessing":
		var before, after []int
		seenA := false
		for i, item := range n.Single {
			if _, ok := item["Sequence"]; ok {
				seenA = true
				continue
			}
			st, ok := item["SpecialToken"]
			if !ok {
				return -1, -1, fmt.Errorf("post_processor: single[%d]: unknown item", i)
			}
			var s struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(st, &s); err != nil {
				return -1, -1, fmt.Errorf("post_processor: single[%d]: %w", i, err)
			}
			ids := n.SpecialTokens[s.ID].IDs
			if len(ids) == 0 {
				x, ok := id(s.ID)
				if !ok {
					return -1, -1, fmt.Errorf("post_processor: special token %q is unknown", s.ID)
				}
				ids = []int{x}
			}
			if seenA {
				after = append(after, ids...)
			} else {
				before = append(before, ids...)
			}
		}
		if len(before) > 1 || len(after) > 1 {
			return -1, -1, fmt.Errorf("post_processor: template with %d tokens before and %d after the text is not supported", len(before), len(after))
		}
		for _, x := range append(before, after...) {
			if x < 0 || x >= vocabSize {
				return -1, -1, fmt.Errorf("post_processor: special token id %d out of range", x)
			}
		}
		if len(before) == 1 {
			bos = before[0]
		}
		if len(after) == 1 {
			eos = after[0]
		}
	case "RobertaProcessing", "BertProcessing":
		cls, err1 := tokenRef(n.Cls, vocabSize)
		sep, err2 := tokenRef(n.Sep, vocabSize)
		if err := errors.Join(err1, err2); err != nil {
			return -1, -1, fmt.Errorf("post_processor: %w", err)
		}
		bos, eos = cls, sep
	default:
		return -1, -1, fmt.Errorf("post_processor: type %q is not supported", n.Type)
	}
	return bos, eos, nil
}

func tokenRef(ref []json.RawMessage, vocabSize int) (int, error) {
	if len(ref) != 2 {
		return -1, errors.New("want [token, id]")
	}
	var id int
	if err := json.Unmarshal(ref[1], &id); err != nil || id < 0 || id >= vocabSize {
		return -1, fmt.Errorf("bad token id %s", truncate(string(ref[1]), 20))
	}
	return id, nil
}

// FromHFDir builds a tokenizer from a Hugging Face model directory:
// tokenizer.json, or tokenizer.model when there is no tokenizer.json, plus
// tokenizer_config.json (add_bos_token, add_eos_token, bos/eos/unk/pad
// tokens) and generation_config.json (eos_token_id) when present.
func FromHFDir(dir string) (*Tokenizer, error) {
	var t *Tokenizer
	jsonPath := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(jsonPath)
	switch {
	case err == nil:
		if t, err = FromHFJSON(data); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	case errors.Is(err, os.ErrNotExist):
		modelPath := filepath.Join(dir, "tokenizer.model")
		data, err2 := os.ReadFile(modelPath)
		if err2 != nil {
			return nil, fmt.Errorf("%s: neither tokenizer.json nor tokenizer.model: %w", dir, err2)
		}
		if t, err = FromSentencePieceModel(data); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	default:
		return nil, err
	}
	if err := t.applyConfigFile(filepath.Join(dir, "tokenizer_config.json")); err != nil {
		return nil, err
	}
	if err := t.applyGenerationConfigFile(filepath.Join(dir, "generation_config.json")); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Tokenizer) applyConfigFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.applyConfig(data); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// HFConfig is what a tokenizer_config.json says about special tokens.
type HFConfig struct {
	// BOS, EOS, UNK and PAD are the contents of bos_token, eos_token,
	// unk_token and pad_token; "" when absent or null.
	BOS, EOS, UNK, PAD string
	// AddBOS and AddEOS are add_bos_token and add_eos_token; nil when
	// absent.
	AddBOS, AddEOS *bool
}

// ParseHFConfig reads the special-token fields of a tokenizer_config.json:
// bos_token, eos_token, unk_token and pad_token (each a string or an
// AddedToken object with "content"), add_bos_token and add_eos_token.
func ParseHFConfig(data []byte) (HFConfig, error) {
	var raw struct {
		AddBOS *bool           `json:"add_bos_token"`
		AddEOS *bool           `json:"add_eos_token"`
		BOS    json.RawMessage `json:"bos_token"`
		EOS    json.RawMessage `json:"eos_token"`
		UNK    json.RawMessage `json:"unk_token"`
		PAD    json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return HFConfig{}, err
	}
	c := HFConfig{AddBOS: raw.AddBOS, AddEOS: raw.AddEOS}
	for _, f := range []struct {
		raw  json.RawMessage
		dst  *string
		name string
	}{{raw.BOS, &c.BOS, "bos_token"}, {raw.EOS, &c.EOS, "eos_token"}, {raw.UNK, &c.UNK, "unk_token"}, {raw.PAD, &c.PAD, "pad_token"}} {
		if isNull(f.raw) {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err == nil {
			continue
		}
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(f.raw, &obj); err != nil || obj.Content == nil {
			return HFConfig{}, fmt.Errorf("%s: want a string or {content}, got %s", f.name, truncate(string(f.raw), 40))
		}
		*f.dst = *obj.Content
	}
	return c, nil
}

// applyConfig applies the tokenizer_config.json settings.
func (t *Tokenizer) applyConfig(data []byte) error {
	c, err := ParseHFConfig(data)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		text string
		dst  *int
		name string
	}{{c.BOS, &t.bos, "bos_token"}, {c.EOS, &t.eos, "eos_token"}, {c.UNK, &t.unk, "unk_token"}, {c.PAD, &t.pad, "pad_token"}} {
		if f.text == "" {
			continue
		}
		id, ok := t.lookup[f.text]
		if !ok {
			return fmt.Errorf("%s %q is not in the vocabulary", f.name, f.text)
		}
		*f.dst = id
	}
	if c.AddBOS != nil {
		t.addBOS = *c.AddBOS
	}
	if c.AddEOS != nil {
		t.addEOS = *c.AddEOS
	}
	if t.addBOS && t.bos < 0 {
		return errors.New("add_bos_token is set but there is no BOS token")
	}
	if t.addEOS && t.eos < 0 {
		return errors.New("add_eos_token is set but there is no EOS token")
	}
	t.eog = collectEOG(t, t.eos, t.eog)
	return nil
}

func (t *Tokenizer) applyGenerationConfigFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var c struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if isNull(c.EOS) {
		return nil
	}
	var list []int
	var one int
	if err := json.Unmarshal(c.EOS, &one); err == nil {
		list = []int{one}
	} else if err := json.Unmarshal(c.EOS, &list); err != nil {
		return fmt.Errorf("%s: eos_token_id: want an id or a list of ids", path)
	}
	for _, id := range list {
		if id < 0 || id >= len(t.pieces) {
			return fmt.Errorf("%s: eos_token_id %d out of range", path, id)
		}
	}
	t.eog = collectEOG(t, t.eos, append(list, t.eog...))
	return nil
}
