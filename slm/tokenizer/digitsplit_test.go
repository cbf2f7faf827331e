package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// digitRegexSplit is the tokenizer.json form of digitSplit run on regexp2,
// as FromHFJSON ran it before mapping it to digitSplit.
func digitRegexSplit(t testing.TB) regexSplit {
	t.Helper()
	re, err := compileRegex(digitPattern)
	if err != nil {
		t.Fatal(err)
	}
	return regexSplit{re: re, behavior: splitMergedWithPrevious}
}

// digitTexts mixes ASCII and other Unicode numbers (Nd, Nl, No) with
// letters, spaces and punctuation.
func digitTexts() []string {
	s := []string{
		"", "1", "12", " 45", "a1", "1a", "x1y22z333", "3.24", " 3,5 ", "٣٤ and ¾ ²", "Ⅻ〇①⑩",
		"१२३ ๑๒", "(1995)", "abc", "  ", "é1è", "😀1👍🏽2",
	}
	alphabet := []rune("0123456789 abcxyz.,-()é٣¾²Ⅻ①中😀\t\n")
	r := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		s = append(s, b.String())
	}
	return s
}

func checkDigitSplit(t *testing.T, re regexSplit, s string) {
	t.Helper()
	want, err := re.split(nil, s, segPos{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := digitSplit{}.split(nil, s, segPos{})
	if !slices.Equal(got, want) {
		t.Errorf("digitSplit(%q) = %q, regexp2 Split(\\p{N}, MergedWithPrevious) gives %q", s, got, want)
	}
}

// TestDigitSplitMatchesRegex checks that the fast digit split cuts text
// exactly as the Split pre-tokenizer Train writes for it.
func TestDigitSplitMatchesRegex(t *testing.T) {
	re := digitRegexSplit(t)
	for _, s := range digitTexts() {
		checkDigitSplit(t, re, s)
	}
}

func FuzzDigitSplit(f *testing.F) {
	for _, s := range digitTexts()[:20] {
		f.Add(s)
	}
	re := digitRegexSplit(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) { // regexp2 works on runes; JSON text is UTF-8
			return
		}
		checkDigitSplit(t, re, s)
	})
}

// TestLoadedTrainedTokenizer checks that a trained tokenizer's
// tokenizer.json loads with the in-memory tokenizer's pre-tokenizers (the
// fast digit split instead of regexp2, no identity ByteLevel step), encodes
// digit-heavy text as the in-memory tokenizer does, and has its BOS, EOS and
// PAD although tokenizer.json names only BOS (in the post-processor).
func TestLoadedTrainedTokenizer(t *testing.T) {
	tr := trainedSmall(t)
	data, err := tr.TokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := FromHFJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	digits := 0
	for _, p := range loaded.pre {
		switch p.(type) {
		case digitSplit:
			digits++
		case regexSplit:
			t.Errorf("loaded tokenizer still runs a regexp2 Split: %+v", p)
		}
	}
	tok := tr.Tokenizer()
	if digits != 1 || len(loaded.pre) != len(tok.pre) {
		t.Errorf("loaded pre-tokenizers %#v (%d digit splits), want as in memory: %#v", loaded.pre, digits, tok.pre)
	}
	for _, s := range append(digitTexts(), sampleTexts()...) {
		want := mustEncode(t, tok, s, EncodeOptions{ParseSpecial: true})
		if got := mustEncode(t, loaded, s, EncodeOptions{ParseSpecial: true}); !slices.Equal(got, want) {
			t.Errorf("Encode(%q): loaded %v, in-memory %v", s, got, want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want int
	}{{"BOS", loaded.BOS(), tok.BOS()}, {"EOS", loaded.EOS(), tok.EOS()}, {"PAD", loaded.PAD(), tok.PAD()}} {
		if c.got != c.want || c.want < 0 {
			t.Errorf("loaded %s = %d, in-memory %d", c.name, c.got, c.want)
		}
	}
	if !loaded.IsEOS(tok.EOS()) {
		t.Error("loaded tokenizer does not end generation at <|eos|>")
	}
}

// TestGuessSpecialNames checks the BOS/EOS/PAD guess from token names when
// the post-processor names none: Train's <|bos|>, <|eos|>, <|pad|> count
// only as special (control) tokens, and the older names come first.
func TestGuessSpecialNames(t *testing.T) {
	build := func(added string) string {
		return `{"added_tokens": [` + added + `], "pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "<|bos|>": 2, "<|eos|>": 3, "<|pad|>": 4, "</s>": 5}, "merges": []}}`
	}
	tok := func(id int, content string, special bool) string {
		sp := "false"
		if special {
			sp = "true"
		}
		return `{"id": ` + string(rune('0'+id)) + `, "content": "` + content + `", "special": ` + sp + `}`
	}
	for _, tc := range []struct {
		name          string
		added         []string
		bos, eos, pad int
	}{
		{"trainer defaults", []string{tok(2, "<|bos|>", true), tok(3, "<|eos|>", true), tok(4, "<|pad|>", true)}, 2, 3, 4},
		{"not special", []string{tok(2, "<|bos|>", false), tok(3, "<|eos|>", false), tok(4, "<|pad|>", false)}, -1, -1, -1},
		{"none added", nil, -1, -1, -1},
		{"</s> first", []string{tok(3, "<|eos|>", true), tok(5, "</s>", true)}, -1, 5, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := FromHFJSON([]byte(build(strings.Join(tc.added, ","))))
			if err != nil {
				t.Fatal(err)
			}
			if k.BOS() != tc.bos || k.EOS() != tc.eos || k.PAD() != tc.pad {
				t.Errorf("BOS, EOS, PAD = %d, %d, %d; want %d, %d, %d", k.BOS(), k.EOS(), k.PAD(), tc.bos, tc.eos, tc.pad)
			}
		})
	}
}

// BenchmarkDigitSplit compares the digit split FromHFJSON now uses for
// Train's tokenizer.json with the regexp2 Split it used before.
func BenchmarkDigitSplit(b *testing.B) {
	var words []string
	for w := range strings.FieldsSeq(genCorpus(8, 1<<18)) {
		words = append(words, " "+w)
	}
	n := 0
	for _, w := range words {
		n += len(w)
	}
	for _, c := range []struct {
		name string
		pre  preTokenizer
	}{{"fast", digitSplit{}}, {"regexp2", digitRegexSplit(b)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(n))
			var dst []string
			for b.Loop() {
				for _, w := range words {
					dst, _ = c.pre.split(dst[:0], w, segPos{})
				}
			}
		})
	}
}
