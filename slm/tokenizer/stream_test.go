package tokenizer

import (
	"testing"
)

func TestStreamPartialUTF8(t *testing.T) {
	tok := sharedTok(t, "llama2-model")
	b := func(x byte) int {
		id, _ := tok.ID(string([]byte{'<', '0', 'x', "0123456789ABCDEF"[x>>4], "0123456789ABCDEF"[x&15], '>'}))
		return id
	}
	a, _ := tok.ID("a")
	tests := []struct {
		name string
		ids  []int
		push []string // output of each Push
		tail string   // Flush
	}{
		{"emoji split over four byte tokens", []int{b(0xF0), b(0x9F), b(0x98), b(0x80)}, []string{"", "", "", "😀"}, ""},
		{"incomplete then ascii", []int{b(0xE2), a}, []string{"", "\uFFFDa"}, ""},
		{"incomplete at end", []int{a, b(0xE2), b(0x82)}, []string{"a", "", ""}, "\uFFFD"},
		{"stray continuation byte", []int{b(0x80), a}, []string{"\uFFFD", "a"}, ""},
		{"invalid lead byte", []int{b(0xFF)}, []string{"\uFFFD"}, ""},
		{"surrogate prefix is invalid", []int{b(0xED), b(0xA0), a}, []string{"", "\uFFFD\uFFFD", "a"}, ""},
	}
	for _, tc := range tests {
		d := tok.NewStreamDecoderWith(DecodeOptions{Continuation: true})
		all := ""
		for i, id := range tc.ids {
			got := d.Push(id)
			if got != tc.push[i] {
				t.Errorf("%s: Push #%d = %q, want %q", tc.name, i, got, tc.push[i])
			}
			all += got
		}
		if got := d.Flush(); got != tc.tail {
			t.Errorf("%s: Flush = %q, want %q", tc.name, got, tc.tail)
		}
		all += tc.tail
		full, err := tok.DecodeWith(tc.ids, DecodeOptions{Continuation: true})
		if err != nil || full != all {
			t.Errorf("%s: Decode = %q, %v; stream gave %q", tc.name, full, err, all)
		}
	}

	d := tok.NewStreamDecoder()
	if got := d.Push(tok.VocabSize()); got != "\uFFFD" || d.Err() == nil {
		t.Errorf("Push(out of range) = %q, Err %v", got, d.Err())
	}
	if _, err := tok.Decode([]int{-1}); err == nil {
		t.Error("Decode(-1): no error")
	}
}
