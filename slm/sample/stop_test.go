package sample

import (
	"strings"
	"testing"
)

func TestStopMatcher(t *testing.T) {
	tests := []struct {
		name    string
		stops   []string
		chunks  []string
		want    string // all text emitted, including Flush
		stopped bool
		matched string
	}{
		{"no stops", nil, []string{"a", "b"}, "ab", false, ""},
		{"whole chunk", []string{"<|end|>"}, []string{"Hello", "<|end|>", "more"}, "Hello", true, "<|end|>"},
		{"split across chunks", []string{"<|end|>"}, []string{"Hi <|", "en", "d|> x"}, "Hi ", true, "<|end|>"},
		{"false start released", []string{"<|end|>"}, []string{"a <|en", "try"}, "a <|entry", false, ""},
		{"prefix then stop inside", []string{"\n\nUser:"}, []string{"ok\n", "\n", "Us", "er: hi"}, "ok", true, "\n\nUser:"},
		{"held back until flush", []string{"STOP"}, []string{"go ST"}, "go ST", false, ""},
		{"earliest of several", []string{"bb", "ab"}, []string{"xa", "bb"}, "x", true, "ab"},
		{"first completed wins", []string{"1", "010000"}, []string{"0000010000"}, "00000", true, "1"},
		{"same end: longest", []string{"b", "ab"}, []string{"xab"}, "x", true, "ab"},
		{"empty stop ignored", []string{"", "z"}, []string{"abc"}, "abc", false, ""},
		{"multibyte", []string{"é!"}, []string{"caf", "é", "!x"}, "caf", true, "é!"},
		{"overlapping prefix", []string{"aab"}, []string{"a", "a", "a", "b"}, "a", true, "aab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewStopMatcher(tt.stops...)
			var out strings.Builder
			stopped := false
			for _, c := range tt.chunks {
				e, s := m.Push(c)
				out.WriteString(e)
				if s {
					stopped = true
					break
				}
				// Nothing emitted may be part of a stop string later.
				for _, st := range tt.stops {
					if st != "" && strings.Contains(out.String(), st) {
						t.Fatalf("emitted %q containing stop %q", out.String(), st)
					}
				}
			}
			out.WriteString(m.Flush())
			if out.String() != tt.want || stopped != tt.stopped {
				t.Fatalf("got %q stopped=%v, want %q stopped=%v", out.String(), stopped, tt.want, tt.stopped)
			}
			if got, ok := m.Stopped(); ok != tt.stopped || got != tt.matched {
				t.Fatalf("Stopped() = %q, %v; want %q, %v", got, ok, tt.matched, tt.stopped)
			}
			if e, s := m.Push("after"); tt.stopped && (e != "" || !s) {
				t.Fatalf("Push after stop = %q, %v", e, s)
			}
		})
	}
}

// TestStopMatcherAllSplits feeds a text in every two-piece split and checks
// that the stop string is always found at the same place.
func TestStopMatcherAllSplits(t *testing.T) {
	text := "The answer is 4.<|im_end|>\nmore"
	for i := 0; i <= len(text); i++ {
		for j := i; j <= len(text); j++ {
			m := NewStopMatcher("<|im_end|>", "\n\n")
			var out strings.Builder
			stopped := false
			for _, c := range []string{text[:i], text[i:j], text[j:]} {
				e, s := m.Push(c)
				out.WriteString(e)
				if s {
					stopped = true
					break
				}
			}
			if !stopped || out.String() != "The answer is 4." {
				t.Fatalf("split %d,%d: got %q stopped=%v", i, j, out.String(), stopped)
			}
		}
	}
}
