package tokenizer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func mustTrain(t testing.TB, texts []string, opt TrainOptions) *Trained {
	t.Helper()
	tr, err := TrainTexts(context.Background(), slices.Values(texts), opt)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func mustEncode(t testing.TB, tok *Tokenizer, s string, opt EncodeOptions) []int {
	t.Helper()
	ids, err := tok.Encode(s, opt)
	if err != nil {
		t.Fatalf("Encode(%q): %v", s, err)
	}
	return ids
}

func pieceTexts(tok *Tokenizer, ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.TokenBytes(id)
	}
	return out
}

// TestTrainHandComputed checks the merges of a corpus small enough to work
// out by hand, tie-breaking included.
func TestTrainHandComputed(t *testing.T) {
	// Words: "hug" x1, " hug" x2, " pug" x1, " pun" x1.
	// Pair counts: u g 4, h u 3, Ġ h 2, Ġ p 2, p u 2, u n 1.
	//  1. u g (4).            Then h ug 3, Ġ h 2, Ġ p 2, p ug 1, p u 1, u n 1.
	//  2. h ug (3).           Then Ġ hug 2, Ġ p 2, ...
	//  3. Ġ p (2): ties with Ġ hug; same left id, and p (byte 0x70) has a
	//     smaller id than hug (a merge).
	//  4. Ġ hug (2).          Then Ġp ug 1, Ġp u 1, u n 1.
	// With MinFrequency 2 training stops here.
	texts := []string{"hug hug hug pug pun"}
	base := TrainOptions{VocabSize: 1000}

	opt := base
	opt.MinFrequency = 2
	tr := mustTrain(t, texts, opt)
	want := [][2]string{{"u", "g"}, {"h", "ug"}, {"Ġ", "p"}, {"Ġ", "hug"}}
	if got := tr.Merges(); !slices.Equal(got, want) {
		t.Fatalf("merges with MinFrequency 2:\n got %q\nwant %q", got, want)
	}
	if n := tr.Tokenizer().VocabSize(); n != 256+len(want) {
		t.Errorf("VocabSize = %d, want %d", n, 256+len(want))
	}
	tok := tr.Tokenizer()
	if got := pieceTexts(tok, mustEncode(t, tok, "hug pun pug", EncodeOptions{})); !slices.Equal(got, []string{"hug", " p", "u", "n", " p", "ug"}) {
		t.Errorf("encode: %q", got)
	}

	// With MinFrequency 1 the count-1 pairs follow: Ġp ug, Ġp u, u n.
	// u n has the smallest left id (u is a byte token, Ġp a merge): "un".
	// Then Ġp ug and Ġp un tie; ug (merge 1) < un (merge 5).
	opt = base
	opt.MinFrequency = 1
	tr = mustTrain(t, texts, opt)
	want = append(want, [2]string{"u", "n"}, [2]string{"Ġp", "ug"}, [2]string{"Ġp", "un"})
	if got := tr.Merges(); !slices.Equal(got, want) {
		t.Fatalf("merges with MinFrequency 1:\n got %q\nwant %q", got, want)
	}

	// Overlapping pairs: "aaaa" has three (a, a) pairs; merging gives
	// "aa aa", which has one (aa, aa) pair.
	opt = TrainOptions{VocabSize: 1000, MinFrequency: 1}
	tr = mustTrain(t, []string{"aaaa aaa"}, opt)
	// Words "aaaa" (a a x3) and " aaa" (Ġ a, a a x2): a a 5.
	// 1. a a: "aa aa" and " aa a", pairs aa aa 1, Ġ aa 1, aa a 1.
	// 2. Ġ aa (left Ġ 0x20 is smallest): " aaa" is Ġaa a.
	// 3. aa aa, then 4. Ġaa a (aa is an older merge than Ġaa).
	want = [][2]string{{"a", "a"}, {"Ġ", "aa"}, {"aa", "aa"}, {"Ġaa", "a"}}
	if got := tr.Merges(); !slices.Equal(got, want) {
		t.Fatalf("overlapping merges:\n got %q\nwant %q", got, want)
	}
}

// naiveTrain is the textbook BPE trainer: recount every pair after every
// merge. It is the reference for the incremental trainer.
func naiveTrain(words map[string]int64, nSpecial, maxMerges int, minFreq int64, digits bool) [][2]string {
	type word struct {
		syms []int32
		n    int64
	}
	base := int32(nSpecial)
	pieces := map[int32]string{}
	for b := 0; b < 256; b++ {
		pieces[base+int32(b)] = string(byteToRune[b])
	}
	next := base + 256
	var ws []word
	for w, n := range words {
		syms := make([]int32, len(w))
		for i := range len(w) {
			syms[i] = base + int32(w[i])
		}
		ws = append(ws, word{syms, n})
	}
	var merges [][2]string
	merge := func(a, b int32) {
		c := next
		next++
		pieces[c] = pieces[a] + pieces[b]
		merges = append(merges, [2]string{pieces[a], pieces[b]})
		for i := range ws {
			s := ws[i].syms
			var out []int32
			for j := 0; j < len(s); {
				if j+1 < len(s) && s[j] == a && s[j+1] == b {
					out = append(out, c)
					j += 2
				} else {
					out = append(out, s[j])
					j++
				}
			}
			ws[i].syms = out
		}
	}
	if digits {
		for d := int32('0'); d <= '9'; d++ {
			merge(base+' ', base+d)
		}
	}
	for len(merges) < maxMerges {
		counts := map[[2]int32]int64{}
		for _, w := range ws {
			for j := 0; j+1 < len(w.syms); j++ {
				counts[[2]int32{w.syms[j], w.syms[j+1]}] += w.n
			}
		}
		var best [2]int32
		var bestN int64
		for p, n := range counts {
			if n > bestN || (n == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		if bestN == 0 || bestN < minFreq {
			break
		}
		merge(best[0], best[1])
	}
	return merges
}

// TestTrainMatchesNaive checks the incremental trainer against naiveTrain
// on random corpora rich in repeats and overlaps.
func TestTrainMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	alphabets := []string{"ab ", "aab  b\n", "abc d1 2", "xyz éé 33.1"}
	for trial := 0; trial < 24; trial++ {
		alpha := []rune(alphabets[trial%len(alphabets)])
		var texts []string
		for range 1 + r.IntN(20) {
			var b strings.Builder
			for range r.IntN(60) {
				b.WriteRune(alpha[r.IntN(len(alpha))])
			}
			texts = append(texts, b.String())
		}
		opt := TrainOptions{VocabSize: 256 + 3 + 40, MinFrequency: 1 + r.IntN(2), BOS: "<s>", PAD: "<p>", DigitsSingle: trial%2 == 0}
		if opt.DigitsSingle {
			opt.VocabSize += 10
		}
		opt.Special = []string{"<x>"}
		got := mustTrain(t, texts, opt)

		tr, err := newBPETrainer(opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			tr.addText(s)
		}
		words := map[string]int64{}
		for w, k := range tr.index {
			words[w] = tr.counts[k]
		}
		want := naiveTrain(words, 3, tr.maxMerges, int64(opt.MinFrequency), opt.DigitsSingle)
		if !slices.Equal(got.Merges(), want) {
			t.Fatalf("trial %d (%q): merges differ\n got %q\nwant %q", trial, texts, got.Merges(), want)
		}
	}
}

// TestTrainReaderEqualsWhole checks that Train, which reads its input in
// chunks of lines, counts the same words as one text would.
func TestTrainReaderEqualsWhole(t *testing.T) {
	text := genCorpus(3, 200_000) + "tail  \n\n\nx \r\n  y\n\t\nz\n \n"
	text = strings.ReplaceAll(text, "RATING: 1\n", "RATING: 1  \n\n")
	opt := DefaultTrainOptions()
	opt.VocabSize = 600
	a, err := Train(context.Background(), strings.NewReader(text), opt)
	if err != nil {
		t.Fatal(err)
	}
	b := mustTrain(t, []string{text}, opt)
	if !slices.Equal(a.Merges(), b.Merges()) {
		t.Fatal("Train(reader) and TrainTexts(whole text) learned different merges")
	}
	if a.Stats().Words != b.Stats().Words || a.Stats().UniqueWords != b.Stats().UniqueWords {
		t.Fatalf("word counts differ: %+v vs %+v", a.Stats(), b.Stats())
	}
	// Chunks that are not cut at safe points would differ: " \n\n" at the
	// end of a text is one word, inside a text two.
	c := mustTrain(t, strings.SplitAfter(text, "\n"), opt)
	if c.Stats().Words == b.Stats().Words {
		t.Errorf("line-by-line training counted the same %d words: the test text has no unsafe cut", c.Stats().Words)
	}
}

func testOptions() TrainOptions {
	opt := DefaultTrainOptions()
	opt.VocabSize = 1024
	opt.Special = []string{"<|user|>", "<|assistant|>", "<|end|>"}
	opt.Forced = []string{"RATING:", "MOVIE:", "MY MEMORY:", "GENRES:"}
	opt.Buckets = []BucketRange{{Min: 1, Max: 5, Step: 0.1}}
	opt.ModelMaxLength = 1024
	opt.ChatTemplate = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
	return opt
}

var trainedCache = map[string]*Trained{}

// trainedSmall is a tokenizer trained on 1 MB of the generated corpus
// with testOptions, once per test binary.
func trainedSmall(t testing.TB) *Trained {
	t.Helper()
	if tr, ok := trainedCache["small"]; ok {
		return tr
	}
	tr, err := Train(context.Background(), strings.NewReader(genCorpus(2, 1<<20)), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	trainedCache["small"] = tr
	return tr
}

func sampleTexts() []string {
	s := []string{
		"", " ", "3.24", " 3.24", "I rated it 45 and 3,5", "(1995)", "x1y22z333", "٣٤ and ¾ ²",
		"RATING:", "RATING: 4", "xRATING:5", "MY MEMORY: I gave Babe (1995) a 4.\nRATING: 5",
		"MY  MEMORY: no", "rating: 3", "AVERAGE: <3.2> and <5.0><1.0>", "<3.25>", "<0.9>",
		"<|bos|>hi<|eos|><|pad|>", "<|user|>What?<|end|><|assistant|>RATING: 4<|end|>",
		"héllo wörld — “quotes” 😀👍🏽 中文字符", "tabs\tand\r\nnewlines\n\n\n  ", "don't I'll we've",
		"\x00\x01\x7f", "a\u00a0b\u2003c", "  leading and trailing  ",
	}
	docs := corpusDocs(genCorpus(9, 40_000), 7)
	return append(s, docs...)
}

// TestTrainedHFJSONIdentical writes the tokenizer and checks that
// FromHFJSON and FromHFDir load it back encoding every sample exactly as the
// in-memory tokenizer does.
func TestTrainedHFJSONIdentical(t *testing.T) {
	tr := trainedSmall(t)
	tok := tr.Tokenizer()
	dir := t.TempDir()
	if err := WriteHFDir(dir, tr); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := FromHFJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	fromDir, err := FromHFDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, other := range map[string]*Tokenizer{"FromHFJSON": fromJSON, "FromHFDir": fromDir} {
		if other.VocabSize() != tok.VocabSize() {
			t.Fatalf("%s: VocabSize %d, want %d", name, other.VocabSize(), tok.VocabSize())
		}
		for id := 0; id < tok.VocabSize(); id++ {
			if other.TokenText(id) != tok.TokenText(id) || other.TokenBytes(id) != tok.TokenBytes(id) || other.IsSpecial(id) != tok.IsSpecial(id) {
				t.Fatalf("%s: token %d is %q/%q, want %q/%q", name, id, other.TokenText(id), other.TokenBytes(id), tok.TokenText(id), tok.TokenBytes(id))
			}
		}
		for _, s := range sampleTexts() {
			for _, ps := range []bool{false, true} {
				opt := EncodeOptions{ParseSpecial: ps}
				want := mustEncode(t, tok, s, opt)
				if got := mustEncode(t, other, s, opt); !slices.Equal(got, want) {
					t.Fatalf("%s: Encode(%q, ParseSpecial=%v):\n got %v\nwant %v", name, s, ps, got, want)
				}
			}
		}
	}
	// The directory carries BOS/EOS/PAD and add_bos_token.
	for _, c := range []struct {
		name      string
		got, want int
	}{{"BOS", fromDir.BOS(), 0}, {"EOS", fromDir.EOS(), 1}, {"PAD", fromDir.PAD(), 2},
		{"in-memory BOS", tok.BOS(), 0}, {"in-memory EOS", tok.EOS(), 1}, {"in-memory PAD", tok.PAD(), 2}} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if !fromDir.AddBOSDefault() || !tok.AddBOSDefault() || !fromJSON.AddBOSDefault() {
		t.Error("add_bos_token lost")
	}
	if !fromDir.IsEOS(1) || !tok.IsEOS(1) {
		t.Error("EOS is not an end-of-generation id")
	}
}

// TestTrainedRoundTrip checks Decode(Encode(s)) == s.
func TestTrainedRoundTrip(t *testing.T) {
	tok := trainedSmall(t).Tokenizer()
	for _, s := range sampleTexts() {
		for _, ps := range []bool{false, true} {
			ids := mustEncode(t, tok, s, EncodeOptions{ParseSpecial: ps})
			got, err := tok.Decode(ids)
			if err != nil {
				t.Fatal(err)
			}
			if got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
		}
	}
}

// checkDigitTokens fails when a token of ids holds more than one number
// character or a number character after anything but one leading space.
func checkDigitTokens(t testing.TB, tok *Tokenizer, s string, ids []int) {
	t.Helper()
	for _, id := range ids {
		if tok.kinds[id] != kindNormal {
			continue
		}
		p := tok.TokenBytes(id)
		n := 0
		for i, r := range p {
			if unicode.IsNumber(r) {
				n++
				if i > 1 || (i == 1 && p[0] != ' ') {
					t.Fatalf("Encode(%q): token %q has a digit after other text", s, p)
				}
			}
		}
		if n > 1 {
			t.Fatalf("Encode(%q): token %q has %d digits", s, p, n)
		}
	}
}

func TestTrainedDigits(t *testing.T) {
	tok := trainedSmall(t).Tokenizer()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"3.24", []string{"3", ".", "2", "4"}},
		{" 3.24", []string{" 3", ".", "2", "4"}},
		{" 45", []string{" 4", "5"}},
		{"(1995)", []string{"(", "1", "9", "9", "5", ")"}},
		{"x12", []string{"x", "1", "2"}},
	} {
		if got := pieceTexts(tok, mustEncode(t, tok, c.in, EncodeOptions{})); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for d := '0'; d <= '9'; d++ {
		for _, s := range []string{string(d), " " + string(d)} {
			if ids := mustEncode(t, tok, s, EncodeOptions{}); len(ids) != 1 {
				t.Errorf("%q is %d tokens", s, len(ids))
			}
		}
	}
	for _, s := range sampleTexts() {
		checkDigitTokens(t, tok, s, mustEncode(t, tok, s, EncodeOptions{}))
	}
}

func TestTrainedForcedAndBuckets(t *testing.T) {
	tr := trainedSmall(t)
	tok := tr.Tokenizer()
	opt := tr.Options()
	buckets, err := opt.Buckets[0].Tokens()
	if err != nil {
		t.Fatal(err)
	}
	forced := append(slices.Clone(opt.Forced), buckets...)
	for _, kw := range forced {
		id, ok := tok.ID(kw)
		if !ok {
			t.Fatalf("%q is not in the vocabulary", kw)
		}
		for _, s := range []string{kw, " " + kw, "x" + kw + "y", kw + kw, "\n" + kw + " 4\n", "a " + kw + "." + kw} {
			ids := mustEncode(t, tok, s, EncodeOptions{})
			n := 0
			for _, x := range ids {
				if x == id {
					n++
				}
			}
			if want := strings.Count(s, kw); n != want {
				t.Errorf("Encode(%q) = %q: %d tokens %q, want %d", s, pieceTexts(tok, ids), n, kw, want)
			}
		}
	}
	// Bucket tokens written by BucketNumber are in the vocabulary.
	for _, x := range []float64{1, 1.04, 2.5, 3.24, 3.26, 4.99, 5} {
		b := BucketNumber(x, 0.1)
		if ids := mustEncode(t, tok, b, EncodeOptions{}); len(ids) != 1 {
			t.Errorf("BucketNumber(%v) = %q encodes as %d tokens", x, b, len(ids))
		}
	}
}

func TestTrainedEveryByte(t *testing.T) {
	tok := trainedSmall(t).Tokenizer()
	for b := 0; b < 256; b++ {
		s := string([]byte{byte(b)})
		ids := mustEncode(t, tok, s, EncodeOptions{})
		if len(ids) != 1 || tok.TokenBytes(ids[0]) != s {
			t.Fatalf("byte 0x%02X encodes as %v", b, ids)
		}
	}
}

// TestTrainVocabSize checks that the vocabulary has exactly VocabSize ids
// when the corpus has enough pairs, and the id layout.
func TestTrainVocabSize(t *testing.T) {
	tr := trainedSmall(t)
	tok := tr.Tokenizer()
	opt := tr.Options()
	if tok.VocabSize() != opt.VocabSize {
		t.Fatalf("VocabSize = %d, want %d", tok.VocabSize(), opt.VocabSize)
	}
	st := tr.Stats()
	if st.Merges != st.MaxMerges || st.MaxMerges != opt.VocabSize-6-256-4-41 {
		t.Errorf("stats %+v", st)
	}
	for i, s := range []string{"<|bos|>", "<|eos|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"} {
		if id, ok := tok.ID(s); !ok || id != i || !tok.IsSpecial(id) {
			t.Errorf("special %q has id %d (%v), want %d", s, id, ok, i)
		}
	}
	if id, _ := tok.ID("RATING:"); id != opt.VocabSize-45 || tok.IsSpecial(id) {
		t.Errorf("RATING: has id %d, want %d (non-special)", id, opt.VocabSize-45)
	}
	if id, _ := tok.ID("<5.0>"); id != opt.VocabSize-1 {
		t.Errorf("<5.0> has id %d, want %d", id, opt.VocabSize-1)
	}

	// An empty corpus gives the fixed tokens only, and still encodes
	// anything.
	empty := mustTrain(t, nil, testOptions())
	if n := empty.Tokenizer().VocabSize(); n != 6+256+10+4+41 {
		t.Errorf("empty corpus: VocabSize %d", n)
	}
	if ids := mustEncode(t, empty.Tokenizer(), "RATING: 4 é", EncodeOptions{}); len(ids) != 5 {
		t.Errorf("empty corpus: %v", pieceTexts(empty.Tokenizer(), ids))
	}

	// A small corpus runs out of pairs before the vocabulary is full.
	small := mustTrain(t, []string{"abc abc"}, TrainOptions{VocabSize: 1000, MinFrequency: 1})
	if n := small.Tokenizer().VocabSize(); n != 256+3 { // ab, abc, Ġabc
		t.Errorf("small corpus: VocabSize %d, want %d", n, 256+3)
	}
}

func TestTrainOptionErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  TrainOptions
		want string
	}{
		{"no size", TrainOptions{}, "VocabSize"},
		{"too small", TrainOptions{VocabSize: 256, BOS: "<s>"}, "below"},
		{"digits too small", TrainOptions{VocabSize: 260, DigitsSingle: true}, "below"},
		{"one char", TrainOptions{VocabSize: 1000, Forced: []string{"x"}}, "at least two"},
		{"non-ascii", TrainOptions{VocabSize: 1000, Special: []string{"<é>"}}, "printable ASCII"},
		{"newline", TrainOptions{VocabSize: 1000, Forced: []string{"A:\n"}}, "printable ASCII"},
		{"duplicate", TrainOptions{VocabSize: 1000, BOS: "<s>", Forced: []string{"<s>"}}, "already given as BOS"},
		{"bucket dup", TrainOptions{VocabSize: 1000, Forced: []string{"<1.0>"}, Buckets: []BucketRange{{1, 2, 0.5}}}, "already given as Forced[0]"},
		{"bad step", TrainOptions{VocabSize: 1000, Buckets: []BucketRange{{1, 2, 0}}}, "step"},
		{"bad range", TrainOptions{VocabSize: 1000, Buckets: []BucketRange{{2, 1, 0.5}}}, "above max"},
	} {
		_, err := TrainTexts(context.Background(), slices.Values([]string{"a"}), c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// TestTrainDeterministic checks byte-identical files for the same corpus
// and options, whatever the order of the documents.
func TestTrainDeterministic(t *testing.T) {
	docs := corpusDocs(genCorpus(4, 300_000), 5)
	opt := testOptions()
	opt.VocabSize = 1024
	a := mustTrain(t, docs, opt)
	shuffled := slices.Clone(docs)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b := mustTrain(t, shuffled, opt)
	da, db := t.TempDir(), t.TempDir()
	if err := WriteHFDir(da, a); err != nil {
		t.Fatal(err)
	}
	if err := WriteHFDir(db, b); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		x, err1 := os.ReadFile(filepath.Join(da, f))
		y, err2 := os.ReadFile(filepath.Join(db, f))
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs", f)
		}
	}
}

func TestTrainCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls []TrainProgress
	opt := DefaultTrainOptions()
	opt.VocabSize = 2000
	opt.Progress = func(p TrainProgress) {
		calls = append(calls, p)
		if p.Merges >= 512 {
			cancel()
		}
	}
	text := genCorpus(5, 300_000)
	_, err := Train(ctx, strings.NewReader(text), opt)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	last := calls[len(calls)-1]
	if len(calls) < 3 || last.Merges < 512 || last.Merges >= 512+256 || last.MaxMerges != 2000-3-256 || last.Bytes != int64(len(text)) {
		t.Errorf("progress calls %+v", calls)
	}

	// Canceled while reading.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := Train(ctx2, strings.NewReader(genCorpus(5, 3<<20)), opt); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n--
		return copy(p, "some text\n"), nil
	}
	return 0, errors.New("disk on fire")
}

func TestTrainNilInputs(t *testing.T) {
	if _, err := Train(context.Background(), nil, DefaultTrainOptions()); err == nil {
		t.Error("Train(nil reader) succeeded")
	}
	tr, err := TrainTexts(context.Background(), nil, DefaultTrainOptions())
	if err != nil || tr.Stats().Merges != 10 {
		t.Errorf("TrainTexts(nil): %v, %+v", err, tr)
	}
	if err := WriteHFDir(t.TempDir(), &Trained{}); err == nil {
		t.Error("WriteHFDir of a zero Trained succeeded")
	}
}

func TestTrainReadError(t *testing.T) {
	_, err := Train(context.Background(), &failingReader{n: 3}, DefaultTrainOptions())
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("error %v", err)
	}
}

// TestTrainedChatTemplateConfig checks tokenizer_config.json.
func TestTrainedConfig(t *testing.T) {
	tr := trainedSmall(t)
	cfg, err := tr.TokenizerConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"add_bos_token": true`, `"bos_token": "<|bos|>"`, `"eos_token": "<|eos|>"`,
		`"pad_token": "<|pad|>"`, `"model_max_length": 1024`, `"chat_template": "{% for m in messages %}<|{{ m.role }}|>`,
		`"tokenizer_class": "PreTrainedTokenizerFast"`, `"1023": {`, `"content": "<5.0>"`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("tokenizer_config.json lacks %s", want)
		}
	}
}

func TestBucketNumber(t *testing.T) {
	for _, c := range []struct {
		x, step float64
		want    string
	}{
		{3.24, 0.1, "<3.2>"}, {3.26, 0.1, "<3.3>"}, {3.0, 0.1, "<3.0>"}, {4, 0.5, "<4.0>"}, {4.3, 0.5, "<4.5>"},
		{-1.2, 1, "<-1>"}, {-0.04, 0.1, "<0.0>"}, {0.3, 0.1, "<0.3>"}, {2.675, 0.25, "<2.75>"}, {123, 10, "<120>"},
		{1, 0, ""}, {1, -1, ""}, {1, 1.0 / 3, ""}, {1, 1e-7, ""},
	} {
		if got := BucketNumber(c.x, c.step); got != c.want {
			t.Errorf("BucketNumber(%v, %v) = %q, want %q", c.x, c.step, got, c.want)
		}
	}
	r := BucketRange{Min: 1, Max: 5, Step: 0.1}
	toks, err := r.Tokens()
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 41 || toks[0] != "<1.0>" || toks[40] != "<5.0>" {
		t.Fatalf("Tokens = %v", toks)
	}
	set := map[string]bool{}
	for _, s := range toks {
		set[s] = true
	}
	for x := 0.0; x < 6; x += 0.013 {
		tok := r.Token(x)
		if !set[tok] {
			t.Fatalf("Token(%v) = %q is not among Tokens", x, tok)
		}
		if x >= 1 && x <= 5 && tok != BucketNumber(x, 0.1) {
			t.Fatalf("Token(%v) = %q, BucketNumber = %q", x, tok, BucketNumber(x, 0.1))
		}
	}
	if r.Token(-3) != "<1.0>" || r.Token(99) != "<5.0>" {
		t.Error("Token does not clamp")
	}
}

// FuzzTrainedTokenizer checks on arbitrary text that the written
// tokenizer.json loads back encoding exactly like the in-memory tokenizer,
// that valid UTF-8 round-trips, and that digits stay single.
func FuzzTrainedTokenizer(f *testing.F) {
	for _, s := range sampleTexts()[:25] {
		f.Add(s)
	}
	var tok, loaded *Tokenizer
	f.Fuzz(func(t *testing.T, s string) {
		wd := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("slow input of %d bytes: %q", len(s), s[:min(len(s), 200)])) })
		defer wd.Stop()
		if tok == nil {
			tr := trainedSmall(t)
			tok = tr.Tokenizer()
			data, err := tr.TokenizerJSON()
			if err != nil {
				t.Fatal(err)
			}
			if loaded, err = FromHFJSON(data); err != nil {
				t.Fatal(err)
			}
		}
		for _, ps := range []bool{false, true} {
			opt := EncodeOptions{ParseSpecial: ps}
			ids := mustEncode(t, tok, s, opt)
			if got := mustEncode(t, loaded, s, opt); !slices.Equal(got, ids) {
				t.Fatalf("Encode(%q, ParseSpecial=%v): loaded %v, in-memory %v", s, ps, got, ids)
			}
			dec, err := tok.Decode(ids)
			if err != nil {
				t.Fatal(err)
			}
			if utf8.ValidString(s) && dec != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, dec)
			}
			checkDigitTokens(t, tok, s, ids)
		}
	})
}

func ExampleTrainTexts() {
	corpus := []string{
		"MOVIE: Toy Story (1995) GENRES: Animation|Comedy\nRATING: 5\n",
		"MOVIE: Babe (1995) GENRES: Children's|Drama\nRATING: 4\n",
		"I rated Toy Story (1995) 5 because the story is wonderful.\n",
	}
	opt := DefaultTrainOptions()
	opt.VocabSize = 320
	opt.Forced = []string{"MOVIE:", "GENRES:", "RATING:"}
	tr, err := TrainTexts(context.Background(), slices.Values(corpus), opt)
	if err != nil {
		fmt.Println(err)
		return
	}
	tok := tr.Tokenizer()
	ids, _ := tok.Encode("RATING: 4.5 for Toy Story", EncodeOptions{})
	fmt.Printf("%q\n", pieceTexts(tok, ids))
	// Output: ["RATING:" " 4" "." "5" " " "f" "or" " Toy" " Story"]
}
