package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
	"golang.org/x/text/unicode/norm"
)

const spaceSymbol = "▁" // U+2581, SentencePiece's visible space

// normalizer rewrites one text segment before pre-tokenization. noPrefix
// suppresses the dummy-prefix space (EncodeOptions.Continuation).
type normalizer interface {
	normalize(s string, noPrefix bool) (string, error)
}

type normSequence []normalizer

func (q normSequence) normalize(s string, noPrefix bool) (string, error) {
	var err error
	for _, n := range q {
		if s, err = n.normalize(s, noPrefix); err != nil {
			return "", err
		}
	}
	return s, nil
}

// normUnicode applies a Unicode normalization form (NFC, NFD, NFKC, NFKD).
type normUnicode struct{ form norm.Form }

func (n normUnicode) normalize(s string, noPrefix bool) (string, error) { return n.form.String(s), nil }

type normLowercase struct{}

func (normLowercase) normalize(s string, noPrefix bool) (string, error) {
	return strings.ToLower(s), nil
}

// normPrepend prepends a string to non-empty text (the Hugging Face form of
// SentencePiece's dummy prefix).
type normPrepend struct{ prefix string }

func (n normPrepend) normalize(s string, noPrefix bool) (string, error) {
	if s == "" || noPrefix {
		return s, nil
	}
	return n.prefix + s, nil
}

// normReplace replaces a literal string or a regex.
type normReplace struct {
	old string
	re  *regexp2.Regexp
	new string
}

func (n normReplace) normalize(s string, noPrefix bool) (string, error) {
	if n.re == nil {
		return strings.ReplaceAll(s, n.old, n.new), nil
	}
	locs, err := n.re.FindAllStringIndex(s, -1)
	if err != nil {
		return "", fmt.Errorf("replace normalizer: %w", err)
	}
	var b strings.Builder
	last := 0
	for _, l := range locs {
		b.WriteString(s[last:l[0]])
		b.WriteString(n.new)
		last = l[1]
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

// normStrip removes leading and/or trailing whitespace.
type normStrip struct{ left, right bool }

func (n normStrip) normalize(s string, noPrefix bool) (string, error) {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s, nil
}

// spmNormalizer is SentencePiece's whitespace handling for the "identity"
// normalization rule: optional collapsing of extra spaces, the dummy prefix
// and the escaping of spaces as U+2581.
type spmNormalizer struct {
	removeExtraSpaces bool
	dummyPrefix       bool
	escapeSpaces      bool
}

func (n spmNormalizer) normalize(s string, noPrefix bool) (string, error) {
	if n.removeExtraSpaces {
		s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
	}
	if s == "" {
		return s, nil
	}
	if n.dummyPrefix && !noPrefix {
		s = " " + s
	}
	if n.escapeSpaces {
		s = strings.ReplaceAll(s, " ", spaceSymbol)
	}
	return s, nil
}

// segPos tells a pre-tokenizer where its text is.
type segPos struct {
	first    bool // the text starts the input
	noPrefix bool // add no dummy-prefix space (EncodeOptions.Continuation)
}

// preTokenizer splits a normalized segment into the words the model
// encodes independently.
type preTokenizer interface {
	split(dst []string, s string, pos segPos) ([]string, error)
}

func preTokenize(pre []preTokenizer, s string, pos segPos) ([]string, error) {
	words := []string{s}
	for _, p := range pre {
		next := make([]string, 0, len(words)*2)
		var err error
		for i, w := range words {
			wp := pos
			wp.first = pos.first && i == 0
			if next, err = p.split(next, w, wp); err != nil {
				return nil, err
			}
		}
		words = next
	}
	return words, nil
}

// splitBehavior says what happens to the matches of a split pattern.
type splitBehavior int

const (
	splitIsolated splitBehavior = iota
	splitRemoved
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

// applySplit cuts s at the given match ranges according to behavior.
func applySplit(dst []string, s string, locs [][]int, behavior splitBehavior, invert bool) []string {
	type piece struct {
		a, b  int
		match bool
	}
	pieces := make([]piece, 0, 2*len(locs)+1)
	last := 0
	for _, l := range locs {
		if l[0] == l[1] {
			continue
		}
		if l[0] > last {
			pieces = append(pieces, piece{last, l[0], false})
		}
		pieces = append(pieces, piece{l[0], l[1], true})
		last = l[1]
	}
	if last < len(s) {
		pieces = append(pieces, piece{last, len(s), false})
	}
	if invert {
		for i := range pieces {
			pieces[i].match = !pieces[i].match
		}
	}
	switch behavior {
	case splitRemoved:
		for _, p := range pieces {
			if !p.match {
				dst = append(dst, s[p.a:p.b])
			}
		}
		return dst
	case splitMergedWithPrevious:
		// A match joins the piece before it unless that piece is a match.
		out := pieces[:0:0]
		prevMatch := false
		for _, p := range pieces {
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].b = p.b
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		pieces = out
	case splitMergedWithNext:
		// A match joins the piece after it unless that piece is a match.
		out := pieces[:0:0]
		nextMatch := false
		for i := len(pieces) - 1; i >= 0; i-- {
			p := pieces[i]
			if p.match && !nextMatch && len(out) > 0 {
				out[len(out)-1].a = p.a
			} else {
				out = append(out, p)
			}
			nextMatch = p.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
		pieces = out
	case splitContiguous:
		out := pieces[:0:0]
		prevMatch := false
		for i, p := range pieces {
			if i > 0 && p.match == prevMatch {
				out[len(out)-1].b = p.b
			} else {
				out = append(out, p)
			}
			prevMatch = p.match
		}
		pieces = out
	}
	for _, p := range pieces {
		dst = append(dst, s[p.a:p.b])
	}
	return dst
}

// regexSplit is Hugging Face's Split pre-tokenizer.
type regexSplit struct {
	literal  string
	re       *regexp2.Regexp
	behavior splitBehavior
	invert   bool
}

func (p regexSplit) split(dst []string, s string, _ segPos) ([]string, error) {
	var locs [][]int
	if p.re != nil {
		var err error
		if locs, err = p.re.FindAllStringIndex(s, -1); err != nil {
			return nil, fmt.Errorf("split pre-tokenizer: %w", err)
		}
	} else if p.literal != "" {
		for i := 0; ; {
			k := strings.Index(s[i:], p.literal)
			if k < 0 {
				break
			}
			locs = append(locs, []int{i + k, i + k + len(p.literal)})
			i += k + len(p.literal)
		}
	}
	return applySplit(dst, s, locs, p.behavior, p.invert), nil
}

// gpt2Pattern is the pre-tokenizer regex of GPT-2 and of the ByteLevel
// pre-tokenizer with use_regex.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func compileRegex(pattern string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(pattern, regexp2.OptionMaxBacktrackingStackSize(-1))
	if err != nil {
		return nil, fmt.Errorf("compile regex %q: %w", pattern, err)
	}
	return re, nil
}

// byteLevelPre is the ByteLevel pre-tokenizer: an optional prefix space and
// an optional split with the GPT-2 regex. The mapping of bytes to
// characters happens in the model, which works on raw bytes.
type byteLevelPre struct {
	addPrefixSpace bool
	split_         bool // split with gpt2Pattern
}

func (p byteLevelPre) split(dst []string, s string, pos segPos) ([]string, error) {
	if p.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if !p.split_ {
		return append(dst, s), nil
	}
	return fastSplit{familyGPT2}.split(dst, s, pos)
}

// digitsPre is the Digits pre-tokenizer: numbers (Unicode category N)
// isolated, one character each or in runs.
type digitsPre struct{ individual bool }

func (p digitsPre) split(dst []string, s string, _ segPos) ([]string, error) {
	var locs [][]int
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsNumber(r) {
			locs = append(locs, []int{i, i + size})
		}
		i += size
	}
	b := splitContiguous
	if p.individual {
		b = splitIsolated
	}
	return applySplit(dst, s, locs, b, false), nil
}

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePre is the Metaspace pre-tokenizer: spaces become U+2581, a
// prefix U+2581 is added by scheme, and the text is split before each
// U+2581.
type metaspacePre struct {
	replacement string
	scheme      prependScheme
	split_      bool
}

func (p metaspacePre) split(dst []string, s string, pos segPos) ([]string, error) {
	s = strings.ReplaceAll(s, " ", p.replacement)
	if !pos.noPrefix && (p.scheme == prependAlways || (p.scheme == prependFirst && pos.first)) {
		if s != "" && !strings.HasPrefix(s, p.replacement) {
			s = p.replacement + s
		}
	}
	if !p.split_ {
		return append(dst, s), nil
	}
	var locs [][]int
	for i := 0; ; {
		k := strings.Index(s[i:], p.replacement)
		if k < 0 {
			break
		}
		locs = append(locs, []int{i + k, i + k + len(p.replacement)})
		i += k + len(p.replacement)
	}
	return applySplit(dst, s, locs, splitMergedWithNext, false), nil
}

// spmWordSplit cuts SentencePiece text before every U+2581 that follows
// another character. It is exact only for vocabularies in which no mergeable
// piece has U+2581 after another character, which the builder checks; it
// lets long texts be merged word by word and cached.
type spmWordSplit struct{}

func (spmWordSplit) split(dst []string, s string, _ segPos) ([]string, error) {
	start := 0
	for i := 0; i < len(s); {
		k := strings.Index(s[i:], spaceSymbol)
		if k < 0 {
			break
		}
		pos := i + k
		if pos > start && !strings.HasSuffix(s[start:pos], spaceSymbol) {
			dst = append(dst, s[start:pos])
			start = pos
		}
		i = pos + len(spaceSymbol)
	}
	return append(dst, s[start:]), nil
}
