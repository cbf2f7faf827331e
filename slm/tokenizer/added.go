package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is a token matched verbatim in the input before the model
// sees it (Hugging Face added_tokens, SentencePiece control and
// user-defined pieces).
type addedToken struct {
	content    string
	id         int
	special    bool // matched only with EncodeOptions.ParseSpecial
	lstrip     bool // the match swallows whitespace on its left
	rstrip     bool // ... and on its right
	singleWord bool // matched only when not inside a word
}

// addedMatcher finds added tokens in text, leftmost first and longest at a
// position.
type addedMatcher struct {
	byFirst [256][]*addedToken // by first byte, longest content first
}

func newAddedMatcher(tokens []addedToken) *addedMatcher {
	m := &addedMatcher{}
	n := 0
	for i := range tokens {
		t := &tokens[i]
		if t.content == "" {
			continue
		}
		m.byFirst[t.content[0]] = append(m.byFirst[t.content[0]], t)
		n++
	}
	if n == 0 {
		return nil
	}
	for _, l := range m.byFirst {
		sort.SliceStable(l, func(a, b int) bool { return len(l[a].content) > len(l[b].content) })
	}
	return m
}

// segment is either a piece of text (id < 0) or a matched token.
type segment struct {
	text  string
	start int // byte offset of text in the input
	id    int
}

// split cuts text at the added tokens it contains. Special tokens count
// only when parseSpecial is set.
func (m *addedMatcher) split(text string, parseSpecial bool) []segment {
	if m == nil {
		return []segment{{text: text, id: -1}}
	}
	var out []segment
	last := 0 // start of pending text
	for i := 0; i < len(text); {
		cands := m.byFirst[text[i]]
		var hit *addedToken
		for _, t := range cands {
			if t.special && !parseSpecial {
				continue
			}
			if !strings.HasPrefix(text[i:], t.content) {
				continue
			}
			if t.singleWord && !isWordBoundary(text, i, i+len(t.content)) {
				continue
			}
			hit = t
			break
		}
		if hit == nil {
			i++
			continue
		}
		start, end := i, i+len(hit.content)
		if hit.lstrip {
			for start > last {
				r, size := utf8.DecodeLastRuneInString(text[last:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= size
			}
		}
		if hit.rstrip {
			for end < len(text) {
				r, size := utf8.DecodeRuneInString(text[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += size
			}
		}
		if start > last {
			out = append(out, segment{text: text[last:start], start: last, id: -1})
		}
		out = append(out, segment{text: text[start:end], start: start, id: hit.id})
		last, i = end, end
	}
	if last < len(text) || len(out) == 0 {
		out = append(out, segment{text: text[last:], start: last, id: -1})
	}
	return out
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// isWordBoundary reports whether text[i:j] is neither preceded nor followed
// by a word character.
func isWordBoundary(text string, i, j int) bool {
	if i > 0 {
		if r, _ := utf8.DecodeLastRuneInString(text[:i]); isWordRune(r) {
			return false
		}
	}
	if j < len(text) {
		if r, _ := utf8.DecodeRuneInString(text[j:]); isWordRune(r) {
			return false
		}
	}
	return true
}
