package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

// A non-legacy Llama tokenizer.json: Metaspace pre-tokenizer with
// prepend_scheme "first" instead of the Prepend normalizer.
const metaspaceJSON = `{
 "added_tokens": [{"id": 1, "content": "<s>", "special": true}],
 "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false},
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
 "model": {"type": "BPE", "byte_fallback": true,
   "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "h": 3, "i": 4, "▁h": 5, "▁hi": 6, "hi": 7},
   "merges": ["▁ h", "▁h i", "h i"]}
}`

func TestMetaspaceFirst(t *testing.T) {
	tok, err := FromHFJSON([]byte(metaspaceJSON))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text string
		want []int
	}{
		{"hi hi", []int{6, 6}},
		{"<s>hi", []int{1, 7}},       // not at the start: no prefix
		{"hi<s> hi", []int{6, 1, 6}}, // the space is kept, not added
	}
	for _, tc := range tests {
		got, err := tok.Encode(tc.text, EncodeOptions{ParseSpecial: true})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %v, %v; want %v", tc.text, got, err, tc.want)
		}
		if dec, _ := tok.Decode(got); dec != tc.text {
			t.Errorf("Decode(%v) = %q, want %q", got, dec, tc.text)
		}
	}
}

func TestIgnoreMerges(t *testing.T) {
	// "abc" is a token that the merges cannot build: with ignore_merges
	// (Llama 3) a word equal to a token is taken whole.
	const js = `{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
	 "decoder": {"type": "ByteLevel"},
	 "model": {"type": "BPE", "ignore_merges": IGNORE, "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "Ġ": 5}, "merges": ["a b"]}}`
	for _, ignore := range []bool{false, true} {
		tok, err := FromHFJSON([]byte(strings.Replace(js, "IGNORE", map[bool]string{false: "false", true: "true"}[ignore], 1)))
		if err != nil {
			t.Fatal(err)
		}
		want := []int{3, 2}
		if ignore {
			want = []int{4}
		}
		if got, err := tok.Encode("abc", EncodeOptions{}); err != nil || !slices.Equal(got, want) {
			t.Errorf("ignore_merges %v: Encode = %v, %v; want %v", ignore, got, err, want)
		}
	}
}

func TestSplitBehaviors(t *testing.T) {
	s := "a--b-c"
	locs := [][]int{{1, 2}, {2, 3}, {4, 5}}
	tests := []struct {
		b    splitBehavior
		want []string
	}{
		{splitIsolated, []string{"a", "-", "-", "b", "-", "c"}},
		{splitRemoved, []string{"a", "b", "c"}},
		{splitMergedWithPrevious, []string{"a-", "-", "b-", "c"}},
		{splitMergedWithNext, []string{"a", "-", "-b", "-c"}},
		{splitContiguous, []string{"a", "--", "b", "-", "c"}},
	}
	for _, tc := range tests {
		if got := applySplit(nil, s, locs, tc.b, false); !slices.Equal(got, tc.want) {
			t.Errorf("behavior %d: %q, want %q", tc.b, got, tc.want)
		}
	}
	if got := applySplit(nil, s, locs, splitRemoved, true); !slices.Equal(got, []string{"-", "-", "-"}) {
		t.Errorf("inverted Removed: %q", got)
	}
}
