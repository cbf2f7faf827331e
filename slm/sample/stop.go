package sample

import "strings"

// A StopMatcher watches streamed text for stop strings. Text is fed to it
// piece by piece as the tokenizer decodes it; it returns the part that can
// be shown now, holding back any tail that may be the start of a stop
// string, so a stop string split across tokens is still found and never
// shown.
type StopMatcher struct {
	stops   []string
	pending string
	stopped bool
	matched string
}

// NewStopMatcher returns a matcher for the given stop strings. Empty
// strings can never match and are left out.
func NewStopMatcher(stops ...string) *StopMatcher {
	m := &StopMatcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
		}
	}
	return m
}

// Push adds newly decoded text. It returns the text that may be emitted now
// and whether a stop string has been found. When stopped is true, emit holds
// the text before the stop string and the generation should end; later
// calls return ("", true).
func (m *StopMatcher) Push(text string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	if len(m.stops) == 0 {
		return text, false
	}
	m.pending += text
	// The stop string that is complete first (earliest end; of those, the
	// longest) wins, so the result does not depend on how the text was cut
	// into pieces: generation would have ended there.
	first, end, which := -1, -1, ""
	for _, s := range m.stops {
		i := strings.Index(m.pending, s)
		if i < 0 {
			continue
		}
		if e := i + len(s); first < 0 || e < end || e == end && i < first {
			first, end, which = i, e, s
		}
	}
	if first >= 0 {
		emit = m.pending[:first]
		m.pending = ""
		m.stopped, m.matched = true, which
		return emit, true
	}
	hold := m.holdBack()
	emit = m.pending[:len(m.pending)-hold]
	m.pending = m.pending[len(m.pending)-hold:]
	return emit, false
}

// holdBack returns the length of the longest suffix of pending that is a
// proper prefix of a stop string.
func (m *StopMatcher) holdBack() int {
	best := 0
	for _, s := range m.stops {
		n := min(len(s)-1, len(m.pending))
		for k := n; k > best; k-- {
			if strings.HasSuffix(m.pending, s[:k]) {
				best = k
				break
			}
		}
	}
	return best
}

// Flush returns the text held back at the end of the stream, when no stop
// string followed it.
func (m *StopMatcher) Flush() string {
	if m.stopped {
		return ""
	}
	s := m.pending
	m.pending = ""
	return s
}

// Stopped reports whether a stop string has been found and which one.
func (m *StopMatcher) Stopped() (stop string, ok bool) { return m.matched, m.stopped }
