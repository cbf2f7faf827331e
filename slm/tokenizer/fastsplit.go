package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// fastSplit is a hand-written matcher for the three pre-tokenizer regexes
// almost every byte-level model uses (gpt2Pattern, qwen2Pattern,
// llama3Pattern). It finds exactly the matches regexp2 finds for them —
// the differential test and fuzzer check this — several times faster.
type fastSplit struct {
	family splitFamily
}

type splitFamily uint8

const (
	familyGPT2   splitFamily = iota // 's|'t|...| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	familyQwen2                     // (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	familyLlama3                    // the same with \p{N}{1,3}
)

// fastSplitFor returns the fast matcher for a known pattern.
func fastSplitFor(pattern string) (fastSplit, bool) {
	switch pattern {
	case gpt2Pattern:
		return fastSplit{familyGPT2}, true
	case qwen2Pattern:
		return fastSplit{familyQwen2}, true
	case llama3Pattern:
		return fastSplit{familyLlama3}, true
	}
	return fastSplit{}, false
}

func (p fastSplit) split(dst []string, s string, _ segPos) ([]string, error) {
	for i := 0; i < len(s); {
		n := p.match(s, i)
		if n <= 0 { // cannot happen: the patterns cover every character
			n = 1
		}
		dst = append(dst, s[i:i+n])
		i += n
	}
	return dst, nil
}

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// Character classes of the patterns: \p{L}, \p{N}, \s and the rest.
const (
	clsOther uint8 = iota
	clsL
	clsN
	clsS
)

var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			t[c] = clsL
		case '0' <= c && c <= '9':
			t[c] = clsN
		case c == ' ', '\t' <= c && c <= '\r':
			t[c] = clsS
		}
	}
	return t
}()

func classOf(r rune) uint8 {
	switch {
	case r < 0:
		return 255 // end of text: no class
	case r < utf8.RuneSelf:
		return asciiClass[r]
	case unicode.IsLetter(r):
		return clsL
	case unicode.IsNumber(r):
		return clsN
	case unicode.IsSpace(r):
		return clsS
	}
	return clsOther
}

func isL(r rune) bool     { return classOf(r) == clsL }
func isN(r rune) bool     { return classOf(r) == clsN }
func isOther(r rune) bool { return classOf(r) == clsOther }

// spanClass returns the end of the run of characters of class c from i.
// An invalid byte reads as U+FFFD, class "other", as in regexp2.
func spanClass(s string, i int, c uint8) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if asciiClass[b] != c {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if classOf(r) != c {
			return i
		}
		i += n
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i (ASCII letters, upper
// case too when fold is set) and returns its length or 0.
func contraction(s string, i int, fold bool) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return 0
	}
	lower := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v':
		if i+2 < len(s) && lower(s[i+2]) == 'e' {
			return 3
		}
	case 'l':
		if i+2 < len(s) && lower(s[i+2]) == 'l' {
			return 3
		}
	}
	return 0
}

// trailingSpaces matches \s+(?!\S) then \s+ at i, for a whitespace run
// [i, j).
func trailingSpaces(s string, i, j int) int {
	if j == len(s) {
		return j - i
	}
	// Give back the last whitespace character so that the next one is
	// not \S ... unless that leaves nothing, then \s+ takes the run.
	_, last := utf8.DecodeLastRuneInString(s[i:j])
	if j-last > i {
		return j - last - i
	}
	return j - i
}

func (p fastSplit) match(s string, i int) int {
	r, n := runeAt(s, i)
	if p.family == familyGPT2 {
		if k := contraction(s, i, false); k > 0 {
			return k
		}
		start := i
		if r == ' ' {
			r2, n2 := runeAt(s, i+1)
			switch {
			case isL(r2):
				return spanClass(s, i+1+n2, clsL) - start
			case isN(r2):
				return spanClass(s, i+1+n2, clsN) - start
			case isOther(r2):
				return spanClass(s, i+1+n2, clsOther) - start
			}
		}
		switch {
		case isL(r):
			return spanClass(s, i+n, clsL) - start
		case isN(r):
			return spanClass(s, i+n, clsN) - start
		case isOther(r):
			return spanClass(s, i+n, clsOther) - start
		}
		return trailingSpaces(s, i, spanClass(s, i, clsS))
	}

	// Qwen2 / Llama 3.
	if k := contraction(s, i, true); k > 0 {
		return k
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if r != '\r' && r != '\n' && !isL(r) && !isN(r) {
		if r2, n2 := runeAt(s, i+n); isL(r2) {
			return spanClass(s, i+n+n2, clsL) - i
		}
	}
	if isL(r) {
		return spanClass(s, i+n, clsL) - i
	}
	// \p{N} or \p{N}{1,3}
	if isN(r) {
		if p.family == familyQwen2 {
			return n
		}
		j := i + n
		for k := 1; k < 3; k++ {
			r2, n2 := runeAt(s, j)
			if !isN(r2) {
				break
			}
			j += n2
		}
		return j - i
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	j := i
	if r == ' ' {
		if r2, _ := runeAt(s, i+1); isOther(r2) {
			j = i + 1
		}
	}
	if r2, _ := runeAt(s, j); isOther(r2) {
		j = spanClass(s, j, clsOther)
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j - i
	}
	// \s*[\r\n]+ : the whitespace run up to its last \r or \n.
	end := spanClass(s, i, clsS)
	for k := end; k > i; {
		r2, n2 := utf8.DecodeLastRuneInString(s[i:k])
		if r2 == '\r' || r2 == '\n' {
			return k - i
		}
		k -= n2
	}
	return trailingSpaces(s, i, end)
}
