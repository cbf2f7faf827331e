package agent

import (
	"strconv"
	"strings"

	"github.com/usersim/usersim/dataset"
)

// ParseRating parses a generated answer strictly: after trimming whitespace
// it must be exactly one number written with digits (optionally with a
// decimal point: "4", "4.0", "3.5") that is a value of the scale. Anything
// else — words, units ("4 stars", "4/5"), several numbers, a value off the
// scale — is invalid (ok false): an unrelated response.
func ParseRating(text string, sc dataset.Scale) (v float64, ok bool) {
	s := strings.TrimSpace(text)
	if s == "" || len(s) > 8 {
		return 0, false
	}
	dot := false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !sc.Valid(v) {
		return 0, false
	}
	return v, true
}
