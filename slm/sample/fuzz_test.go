package sample

import (
	"math"
	"strings"
	"testing"
)

// FuzzStopMatcher feeds a text in pieces and checks that what comes out is
// exactly the text up to the first stop string (or all of it).
func FuzzStopMatcher(f *testing.F) {
	f.Add("Hello <|end|> world", "<|end|>", "\n\n", uint64(3))
	f.Add("aaab", "aab", "x", uint64(1))
	f.Add("café ☕ done", "☕", "é", uint64(7))
	f.Fuzz(func(t *testing.T, text, stop1, stop2 string, cuts uint64) {
		m := NewStopMatcher(stop1, stop2)
		// Byte by byte, the first stop string completed ends the text.
		want, first := text, -1
		for e := 1; e <= len(text) && first < 0; e++ {
			for _, s := range []string{stop1, stop2} {
				if s != "" && strings.HasSuffix(text[:e], s) && (first < 0 || e-len(s) < first) {
					first = e - len(s)
				}
			}
		}
		if first >= 0 {
			want = text[:first]
		}
		var got strings.Builder
		stopped := false
		rest := text
		for len(rest) > 0 && !stopped {
			n := 1 + int(cuts%uint64(len(rest)))
			cuts = cuts*6364136223846793005 + 1442695040888963407
			e, s := m.Push(rest[:n])
			got.WriteString(e)
			stopped = s
			rest = rest[n:]
		}
		got.WriteString(m.Flush())
		if got.String() != want || stopped != (first >= 0) {
			t.Fatalf("text %q stops %q %q: got %q (stopped %v), want %q", text, stop1, stop2, got.String(), stopped, want)
		}
	})
}

// FuzzSample checks that Sample always returns a valid index that is not
// -Inf or NaN when a finite logit exists.
func FuzzSample(f *testing.F) {
	f.Add([]byte{1, 2, 3, 250, 7}, float32(0.8), 3, float32(0.9), float32(0.05), float32(1.2), uint64(1))
	f.Add([]byte{0, 0, 0, 0}, float32(0), 0, float32(0), float32(0), float32(0), uint64(2))
	f.Fuzz(func(t *testing.T, raw []byte, temp float32, topK int, topP, minP, rep float32, seed uint64) {
		if len(raw) == 0 {
			return
		}
		logits := make([]float32, len(raw))
		finite := false
		for i, b := range raw {
			switch b {
			case 255:
				logits[i] = float32(math.NaN())
			case 254:
				logits[i] = float32(math.Inf(-1))
			case 253:
				logits[i] = float32(math.Inf(1))
			default:
				logits[i] = (float32(b) - 128) / 8
				finite = true
			}
		}
		s := NewSampler(Options{Temperature: temp, TopK: topK, TopP: topP, MinP: minP, RepeatPenalty: rep, RepeatLastN: 4, Seed: seed})
		id := s.Sample(logits, []int{0, 1, 2, -1, 1000})
		if id < 0 || id >= len(logits) {
			t.Fatalf("Sample = %d for %d logits", id, len(logits))
		}
		if v := logits[id]; finite && (v != v || math.IsInf(float64(v), -1)) {
			t.Fatalf("chose token %d with logit %v although finite logits exist", id, v)
		}
	})
}
