package tokenizer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Training throughput and the compression it buys. Run with
//
//	go test -run XXX -bench 'Train|EncodeTrained' -benchtime 3x ./slm/tokenizer

func benchTrainOptions(vocab int) TrainOptions {
	opt := DefaultTrainOptions()
	opt.VocabSize = vocab
	opt.Forced = []string{"RATING:", "MOVIE:", "GENRES:", "AVERAGE:", "MY MEMORY:", "PROFILE:"}
	return opt
}

// charsPerToken is the number of characters of text per token.
func charsPerToken(b *testing.B, tok *Tokenizer, text string) float64 {
	ids, err := tok.Encode(text, EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return float64(utf8.RuneCountInString(text)) / float64(len(ids))
}

func benchTrain(b *testing.B, text, heldOut string) {
	for _, vocab := range []int{2048, 4096} {
		b.Run(fmt.Sprintf("vocab=%d", vocab), func(b *testing.B) {
			opt := benchTrainOptions(vocab)
			b.SetBytes(int64(len(text)))
			var tr *Trained
			for b.Loop() {
				var err error
				if tr, err = Train(context.Background(), strings.NewReader(text), opt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(charsPerToken(b, tr.Tokenizer(), heldOut), "chars/token")
			b.ReportMetric(float64(tr.Stats().Merges), "merges")
		})
	}
}

// BenchmarkTrain trains on the generated 5 MB MovieLens-like corpus and
// reports characters per token on 500 KB of held-out generated text.
func BenchmarkTrain(b *testing.B) {
	benchTrain(b, corpus5(), genCorpus(99, 500_000))
}

// ml100kCorpus builds text from the real MovieLens 100K files in
// ../shared: per user a profile line, then per rating an "I rated ..." line
// or the rating prompt format. Users are split 90/10 into training and
// held-out text.
func ml100kCorpus(b *testing.B) (train, heldOut string) {
	items := readShared(b, "data", "ml-100k", "u.item")
	users := readShared(b, "data", "ml-100k", "u.user")
	data := readShared(b, "data", "ml-100k", "u.data")
	genres := strings.Split("unknown Action Adventure Animation Children's Comedy Crime Documentary Drama Fantasy Film-Noir Horror Musical Mystery Romance Sci-Fi Thriller War Western", " ")
	type item struct {
		title  string
		genres []string
		sum, n float64
	}
	latin1 := func(p []byte) string {
		var sb strings.Builder
		for _, c := range p {
			sb.WriteRune(rune(c))
		}
		return sb.String()
	}
	itemOf := map[string]*item{}
	for _, line := range bytes.Split(items, []byte("\n")) {
		f := strings.Split(latin1(line), "|")
		if len(f) < 24 {
			continue
		}
		it := &item{title: f[1]}
		for g, v := range f[5:24] {
			if v == "1" {
				it.genres = append(it.genres, genres[g])
			}
		}
		itemOf[f[0]] = it
	}
	type rating struct{ item, r string }
	byUser := map[string][]rating{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		byUser[f[0]] = append(byUser[f[0]], rating{f[1], f[2]})
		r, _ := strconv.Atoi(f[2])
		itemOf[f[1]].sum += float64(r)
		itemOf[f[1]].n++
	}
	var ids []string
	profile := map[string]string{}
	for _, line := range strings.Split(string(users), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 5 {
			continue
		}
		ids = append(ids, f[0])
		profile[f[0]] = fmt.Sprintf("USER %s PROFILE: %s-year-old, gender %s, occupation %s.\n", f[0], f[1], f[2], f[3])
	}
	sort.Slice(ids, func(i, j int) bool { a, _ := strconv.Atoi(ids[i]); c, _ := strconv.Atoi(ids[j]); return a < c })
	var tr, ho strings.Builder
	for k, u := range ids {
		w := &tr
		if k%10 == 9 {
			w = &ho
		}
		w.WriteString(profile[u])
		for i, r := range byUser[u] {
			it := itemOf[r.item]
			g := strings.Join(it.genres, "|")
			if i%2 == 0 {
				fmt.Fprintf(w, "I rated %s %s because it is %s.\n", it.title, r.r, strings.ToLower(strings.Join(it.genres, " and ")))
			} else {
				fmt.Fprintf(w, "MOVIE: %s GENRES: %s AVERAGE: %.2f\nRATING: %s\n", it.title, g, it.sum/it.n, r.r)
			}
		}
	}
	return tr.String(), ho.String()
}

// BenchmarkTrainML100K trains on text built from the real MovieLens 100K
// ratings and reports characters per token on held-out users.
func BenchmarkTrainML100K(b *testing.B) {
	text, heldOut := ml100kCorpus(b)
	benchTrain(b, text, heldOut)
}

// BenchmarkTrainAlgorithm compares, in one run, the incremental trainer
// with the textbook recount-every-merge trainer on 200 KB and 500 merges.
func BenchmarkTrainAlgorithm(b *testing.B) {
	text := genCorpus(5, 200_000)
	opt := TrainOptions{VocabSize: 256 + 500, MinFrequency: 2}
	b.Run("incremental", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			if _, err := TrainTexts(context.Background(), slices.Values([]string{text}), opt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("naive", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tr, err := newBPETrainer(opt)
			if err != nil {
				b.Fatal(err)
			}
			tr.addText(text)
			words := map[string]int64{}
			for w, k := range tr.index {
				words[w] = tr.counts[k]
			}
			naiveTrain(words, 0, tr.maxMerges, 2, false)
		}
	})
}

// BenchmarkEncodeTrained compares the trained in-memory tokenizer with its
// tokenizer.json loaded by FromHFJSON; both split digits with digitSplit
// (BenchmarkDigitSplit compares it with the regexp2 Split it replaces).
func BenchmarkEncodeTrained(b *testing.B) {
	tr := trainedSmall(b)
	data, err := tr.TokenizerJSON()
	if err != nil {
		b.Fatal(err)
	}
	loaded, err := FromHFJSON(data)
	if err != nil {
		b.Fatal(err)
	}
	text := genCorpus(8, 1<<20)
	for name, tok := range map[string]*Tokenizer{"in-memory": tr.Tokenizer(), "loaded": loaded} {
		b.Run(name, func(b *testing.B) {
			tok.model.cacheOff = true
			defer func() { tok.model.cacheOff = false }()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tok.Encode(text, EncodeOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
