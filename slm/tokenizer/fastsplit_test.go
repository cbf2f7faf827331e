package tokenizer

import (
	"sync"

	"github.com/dlclark/regexp2/v2"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var splitPatterns = []string{gpt2Pattern, qwen2Pattern, llama3Pattern}

var splitRegexes = sync.OnceValue(func() []*regexp2.Regexp {
	var out []*regexp2.Regexp
	for _, p := range splitPatterns {
		re, err := compileRegex(p)
		if err != nil {
			panic(err)
		}
		out = append(out, re)
	}
	return out
})

// BenchmarkPreTokenize compares the hand-written matcher with regexp2 on
// the Qwen2 pattern.
func BenchmarkPreTokenize(b *testing.B) {
	text := benchText(b)
	fast, _ := fastSplitFor(qwen2Pattern)
	for _, bc := range []struct {
		name string
		p    preTokenizer
	}{{"Fast", fast}, {"Regexp2", regexSplit{re: splitRegexes()[1]}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := bc.p.split(nil, text, segPos{first: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// checkFastSplit compares the hand-written matcher with regexp2 on s.
func checkFastSplit(t *testing.T, s string) {
	t.Helper()
	for i, pat := range splitPatterns {
		fast, _ := fastSplitFor(pat)
		re := splitRegexes()[i]
		want, err := regexSplit{re: re}.split(nil, s, segPos{first: true})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := fast.split(nil, s, segPos{first: true})
		if !slices.Equal(got, want) {
			t.Fatalf("pattern %q on %q:\n fast  %q\n regex %q", pat, s, got, want)
		}
	}
}

var splitSeeds = []string{
	"", "Hello world", "I'm sure you'll love it; they've said we'd go", "DON'T SHOUT, I'M HERE. It'S fine 'Ll 'rE",
	"  two   spaces  ", "a\n\nb\r\n c \n \t x\t\ty", "1,999 1234567890 3.75 ٣٤٥ Ⅻ ½", "!!!???...,,, -- \"q\" 'x'",
	"no\u00a0break and\u2009thin\u3000ideo", "千と千尋の神隠し (2001)", "😀👍🏽 ❤️ 👨\u200d👩", "e\u0301 Ca\u0301fe",
	"'", "' ", "'s", " 'x", "\xff\xfe a \xe2\x82", "x\r", "\n", " \n", "a \n\t", "ſ 'ſ 'K \u212a", "\u0085x\u2028y",
	"a\u200bb", "_under_score_", "<|im_start|>user\nhi<|im_end|>",
}

func TestFastSplitMatchesRegex(t *testing.T) {
	for _, s := range splitSeeds {
		checkFastSplit(t, s)
	}
	// Random strings over an alphabet rich in the classes that matter.
	alphabet := []rune("aZé千 \t\n\r\u00a0\u3000'sStTrReEvVmMlLdD019٣½.,!?-_\"😀\u0301\u200b")
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var sb strings.Builder
		for range rng.IntN(24) {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		checkFastSplit(t, sb.String())
	}
}

func FuzzFastSplit(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkFastSplit(t, s)
	})
}
