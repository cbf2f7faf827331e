package tokenizer

import (
	"unicode/utf8"
)

// byteToRune is GPT-2's reversible map from bytes to printable characters:
// printable Latin-1 bytes stand for themselves, the other 68 bytes map to
// U+0100 onwards in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune; runes outside it map to -1.
var runeToByte map[rune]int

func init() {
	runeToByte = make(map[rune]int, 256)
	n := 0
	for b := 0; b < 256; b++ {
		printable := ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF)
		if printable {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = b
	}
}

// byteLevelEncode maps raw bytes to their byte-level characters.
func byteLevelEncode(s string) string {
	buf := make([]byte, 0, len(s)*2)
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// byteLevelDecode maps byte-level characters back to raw bytes. ok is false
// when s contains a character outside the map.
func byteLevelDecode(s string) (string, bool) {
	buf := make([]byte, 0, len(s))
	for _, r := range s {
		b, found := runeToByte[r]
		if !found {
			return s, false
		}
		buf = append(buf, byte(b))
	}
	return string(buf), true
}

// utf8PrefixLen returns the length of the longest prefix of p (at most 3
// bytes) that is a proper, still completable prefix of a UTF-8 encoding:
// 0 when p[0] cannot start a multi-byte character.
func utf8PrefixLen(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch c := p[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 2
	case c == 0xE0:
		need, lo = 3, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 3
	case c == 0xED:
		need, hi = 3, 0x9F
	case c == 0xF0:
		need, lo = 4, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 4
	case c == 0xF4:
		need, hi = 4, 0x8F
	default:
		return 0
	}
	n := 1
	for n < need-0 && n < len(p) {
		c := p[n]
		if n == 1 {
			if c < lo || c > hi {
				break
			}
		} else if c < 0x80 || c > 0xBF {
			break
		}
		n++
	}
	if n >= need {
		// A complete character is not a proper prefix.
		return 0
	}
	return n
}

// incompleteTail returns how many bytes at the end of p form an incomplete
// UTF-8 character that later bytes could still complete.
func incompleteTail(p []byte) int {
	for k := 1; k <= 3 && k <= len(p); k++ {
		start := len(p) - k
		if p[start] < 0xC0 {
			continue // ASCII or continuation byte: keep looking for a lead byte
		}
		if utf8PrefixLen(p[start:]) == k {
			return k
		}
		return 0
	}
	return 0
}

// appendValidUTF8 appends p to dst, replacing each maximal invalid subpart
// with U+FFFD.
func appendValidUTF8(dst, p []byte) []byte {
	for len(p) > 0 {
		if p[0] < utf8.RuneSelf {
			dst = append(dst, p[0])
			p = p[1:]
			continue
		}
		r, size := utf8.DecodeRune(p)
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, p[:size]...)
			p = p[size:]
			continue
		}
		n := utf8PrefixLen(p)
		if n == 0 {
			n = 1
		}
		dst = utf8.AppendRune(dst, utf8.RuneError)
		p = p[n:]
	}
	return dst
}
