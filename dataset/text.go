package dataset

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// decodeText turns the bytes of a metadata file (movies.dat, u.item,
// movies.csv) into UTF-8. MovieLens 100K and 1M write ISO-8859-1; the later
// releases write UTF-8; users sometimes convert one into the other. The rule:
//
//   - A file that is valid UTF-8 is taken as UTF-8 (pure ASCII is both). If it
//     then holds the tell-tale pairs of text that was already UTF-8, read as
//     Latin-1 and written out again as UTF-8 ("Ã©" for "é"), that line is an
//     ErrEncoding error rather than a silently garbled title.
//   - Otherwise the file is ISO-8859-1. A line that is nonetheless valid
//     UTF-8 with multi-byte sequences means the file mixes both encodings:
//     an ErrEncoding error naming that line and a Latin-1 one.
//
// A genuine Latin-1 title only trips the mixed-file check if it holds a
// letter in À–ô directly followed by a symbol in 0x80–0xBF, which no
// MovieLens title does.
func decodeText(data []byte, file string) ([]byte, error) {
	if utf8.Valid(data) {
		if line, off := findMojibake(data); line > 0 {
			return nil, perrf(file, line, "", "%w: %q looks like UTF-8 text decoded as ISO-8859-1 and re-encoded (double-encoded UTF-8)",
				ErrEncoding, excerpt(data, off))
		}
		return data, nil
	}
	latinLine, utfLine := 0, 0
	lineNo := 0
	for rest := data; len(rest) > 0; {
		lineNo++
		l := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			l, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if isASCII(l) {
			continue
		}
		if utf8.Valid(l) {
			if utfLine == 0 {
				utfLine = lineNo
			}
		} else if latinLine == 0 {
			latinLine = lineNo
		}
	}
	if utfLine > 0 {
		return nil, perrf(file, utfLine, "", "%w: line is UTF-8 but line %d is ISO-8859-1; convert the file to one encoding", ErrEncoding, latinLine)
	}
	out, err := charmap.ISO8859_1.NewDecoder().Bytes(data)
	if err != nil {
		return nil, perr(file, 0, "", fmt.Errorf("%w: %v", ErrEncoding, err))
	}
	return out, nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// findMojibake looks, in valid UTF-8, for 'Ã' or 'Â' (U+00C3, U+00C2) followed
// by a character in U+0080–U+00BF: the trace of double-encoded UTF-8. It
// returns the 1-based line and the byte offset in data, or 0, 0.
func findMojibake(data []byte) (line, off int) {
	line = 1
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\n' {
			line++
			continue
		}
		// U+00C2/U+00C3 are C3 82 / C3 83; U+0080–U+00BF are C2 80–C2 BF.
		if c == 0xC3 && i+3 < len(data) && (data[i+1] == 0x82 || data[i+1] == 0x83) && data[i+2] == 0xC2 && data[i+3] >= 0x80 && data[i+3] <= 0xBF {
			return line, i
		}
	}
	return 0, 0
}

// excerpt returns up to a couple of dozen characters of data around byte
// off, within its line.
func excerpt(data []byte, off int) string {
	lo, hi := max(0, off-10), min(len(data), off+14)
	if i := bytes.LastIndexByte(data[lo:off], '\n'); i >= 0 {
		lo += i + 1
	}
	if i := bytes.IndexByte(data[off:hi], '\n'); i >= 0 {
		hi = off + i
	}
	for lo > 0 && lo < len(data) && !utf8.RuneStart(data[lo]) {
		lo--
	}
	for hi < len(data) && !utf8.RuneStart(data[hi]) {
		hi++
	}
	return string(data[lo:hi])
}

// SplitTitle splits a MovieLens title "Title (Year)" into the title and the
// year. Titles in MovieLens' "Matrix, The (1999)" form keep their article at
// the end (see Item.DisplayTitle). A title without a trailing four-digit year
// in parentheses is returned whole (trimmed) with year 0.
func SplitTitle(s string) (title string, year int) {
	s = strings.TrimSpace(s)
	n := len(s)
	if n >= 6 && s[n-1] == ')' && s[n-6] == '(' {
		y := 0
		for _, c := range []byte(s[n-5 : n-1]) {
			if c < '0' || c > '9' {
				return s, 0
			}
			y = y*10 + int(c-'0')
		}
		return strings.TrimSpace(s[:n-6]), y
	}
	return s, 0
}

// articles that MovieLens moves to the end of a title ("Matrix, The").
var articles = []string{
	"The", "A", "An", "Les", "La", "Le", "L'", "Il", "Lo", "I", "Gli", "El", "Los", "Las",
	"Das", "Der", "Die", "Den", "Det", "De", "Un", "Une", "Una", "O", "Os", "As",
}

// DisplayTitle returns the title with a trailing article moved to the front:
// "Matrix, The" becomes "The Matrix", and "Associate, The (L'Associe)" becomes
// "The Associate (L'Associe)". Other titles are returned unchanged.
func (it Item) DisplayTitle() string { return displayTitle(it.Title) }

func displayTitle(t string) string {
	main, alt := t, ""
	if i := strings.Index(t, " ("); i > 0 {
		main, alt = t[:i], t[i:]
	} else if i := strings.IndexByte(t, '('); i > 0 && strings.HasSuffix(t, ")") {
		main, alt = t[:i], t[i:]
	}
	for _, a := range articles {
		if strings.HasSuffix(main, ", "+a) && len(main) > len(a)+2 {
			base := main[:len(main)-len(a)-2]
			if strings.HasSuffix(a, "'") {
				return a + base + alt
			}
			return a + " " + base + alt
		}
	}
	return t
}

// lines reads a file line by line without allocating per line. Line endings
// "\n" and "\r\n" are accepted. A line longer than maxLine is an error.
type lines struct {
	sc   *bufio.Scanner
	file string
	n    int // number of the line last returned
	ctx  context.Context
}

const maxLine = 1 << 20

func newLines(ctx context.Context, r io.Reader, file string) *lines {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	return &lines{sc: sc, file: file, ctx: ctx}
}

// next returns the next line, or ok=false at the end or on error (see err).
func (l *lines) next() (line []byte, ok bool) {
	if !l.sc.Scan() {
		return nil, false
	}
	l.n++
	b := l.sc.Bytes()
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, true
}

// err reports a read error (or a too-long line) after next returned false.
func (l *lines) err() error {
	if err := l.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return perrf(l.file, l.n+1, "", "line longer than %d bytes", maxLine)
		}
		return perr(l.file, l.n+1, "", err)
	}
	return nil
}

// cancelled checks the context every 64K lines.
func (l *lines) cancelled() error {
	if l.n&0xFFFF == 0 && l.ctx != nil {
		return l.ctx.Err()
	}
	return nil
}

// split cuts line at each sep into dst (which it reuses) and returns the
// fields. It returns at most cap(dst) fields, the last holding the rest of
// the line, so a dst one larger than the expected count detects extra fields.
func split(line, sep []byte, dst [][]byte) [][]byte {
	dst = dst[:0]
	for len(dst) < cap(dst)-1 {
		i := bytes.Index(line, sep)
		if i < 0 {
			break
		}
		dst = append(dst, line[:i])
		line = line[i+len(sep):]
	}
	return append(dst, line)
}

// parseID checks that b is a canonical non-negative decimal integer (as
// MovieLens ids are) and returns its value.
func parseID(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errors.New("empty id")
	}
	if len(b) > 9 || (len(b) > 1 && b[0] == '0') {
		return 0, fmt.Errorf("id %q is not a plain decimal number below 10^9", b)
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("id %q is not a plain decimal number", b)
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// parseRating parses a rating value and checks it against the scale.
func parseRating(b []byte, s Scale) (float32, error) {
	var v float64
	if len(b) == 1 && b[0] >= '0' && b[0] <= '9' {
		v = float64(b[0] - '0')
	} else {
		bs := bytes.TrimSpace(b)
		f, err := strconv.ParseFloat(string(bs), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a number", b)
		}
		v = f
	}
	if !s.Valid(v) {
		return 0, fmt.Errorf("%w: %g is not on scale %v", ErrOutOfScale, v, s)
	}
	return float32(v), nil
}

// parseUnix parses a Unix timestamp in seconds.
func parseUnix(b []byte) (int64, error) {
	t, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a Unix timestamp", b)
	}
	return t, nil
}

// idTable maps MovieLens' numeric ids to dense indices without hashing.
type idTable struct {
	idx []int32 // idx[id] = index+1; 0 = absent
}

const maxTableID = 1 << 26

func (t *idTable) get(id int) (int32, bool) {
	if id < len(t.idx) && t.idx[id] > 0 {
		return t.idx[id] - 1, true
	}
	return 0, false
}

func (t *idTable) put(id int, index int32) {
	if id >= len(t.idx) {
		n := max(2*len(t.idx), id+1, 1024)
		n = min(n, maxTableID)
		grown := make([]int32, n)
		copy(grown, t.idx)
		t.idx = grown
	}
	t.idx[id] = index + 1
}

// lineMap records the source line of each rating row cheaply: rows usually
// follow lines one to one, so only the points where that breaks are stored.
type lineMap struct {
	rows  []int // row at which a new run starts
	lines []int // its line
}

// add records that row sits at line.
func (m *lineMap) add(row, line int) {
	if k := len(m.rows); k > 0 && m.lines[k-1]+(row-m.rows[k-1]) == line {
		return
	}
	m.rows = append(m.rows, row)
	m.lines = append(m.lines, line)
}

// line returns the line of row.
func (m *lineMap) line(row int) int {
	lo, hi := 0, len(m.rows)
	for lo < hi {
		mid := (lo + hi) / 2
		if m.rows[mid] <= row {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0
	}
	return m.lines[lo-1] + row - m.rows[lo-1]
}
