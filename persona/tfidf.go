package persona

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/usersim/usersim/internal/vec"
	"github.com/usersim/usersim/memory"
)

// DefaultLSAComponents is the LSA dimension NewEmbedder("lsa") uses.
const DefaultLSAComponents = 32

// TFIDF embeds profile descriptions as tf-idf vectors: lower-cased word
// tokens (letters and digits, "sci-fi" one word, a trailing "'s" dropped),
// English stop words removed, n-grams within a sentence, sublinear term
// frequency 1 + ln tf, smoothed inverse document frequency
// ln((1 + n) / (1 + df)) + 1 over the fitted profiles, each vector scaled to
// unit length. With Components > 0 the vectors are reduced by truncated SVD
// (latent semantic analysis, a randomized SVD of the fitted tf-idf matrix)
// and scaled to unit length again. Terms unseen at Fit are ignored.
//
// The zero value is usable: unigrams and bigrams, terms in at least two
// profiles, no reduction.
type TFIDF struct {
	NGram      int     // longest n-gram; default 2
	MinDF      int     // fewest profiles a term must appear in; default 2
	MaxDF      float64 // drop terms in more than this share of profiles (0 or 1: keep all)
	Components int     // LSA dimension; 0: no reduction
	Seed       int64   // seed of the randomized SVD
	// Vocabulary, when set, restricts the terms to these (tokenised as the
	// text is, so "Sci-Fi" matches "sci-fi"); MinDF still applies.
	Vocabulary []string

	terms []string
	index map[string]int
	idf   []float64
	comp  [][]float32 // Components × len(terms), the right singular vectors
	sv    []float64   // singular values
}

// Name is "tfidf", or "lsa" when the vectors are reduced.
func (t *TFIDF) Name() string {
	if t.Components > 0 {
		return EmbedLSA
	}
	return EmbedTFIDF
}

// Terms returns the fitted vocabulary in vector order.
func (t *TFIDF) Terms() []string { return t.terms }

// Fit learns the vocabulary, the idf weights and, for LSA, the components.
func (t *TFIDF) Fit(ctx context.Context, profiles []memory.Profile) error {
	if len(profiles) == 0 {
		return errors.New("persona: tf-idf: no profiles to fit")
	}
	ng := t.ngram()
	minDF := t.MinDF
	if minDF <= 0 {
		minDF = 2
	}
	var allow map[string]bool
	if len(t.Vocabulary) > 0 {
		allow = map[string]bool{}
		for _, v := range t.Vocabulary {
			if w := strings.Join(tokens(v), " "); w != "" {
				allow[w] = true
			}
		}
	}
	df := map[string]int{}
	for _, p := range profiles {
		for term := range termCounts(p.Description, ng) {
			if allow == nil || allow[term] {
				df[term]++
			}
		}
	}
	n := len(profiles)
	maxDF := n
	if t.MaxDF > 0 && t.MaxDF < 1 {
		maxDF = int(t.MaxDF * float64(n))
	}
	t.terms = t.terms[:0]
	for term, c := range df {
		if c >= minDF && c <= maxDF {
			t.terms = append(t.terms, term)
		}
	}
	if len(t.terms) == 0 {
		return fmt.Errorf("persona: tf-idf: no term appears in at least %d of the %d profiles", minDF, n)
	}
	slices.Sort(t.terms)
	t.index = make(map[string]int, len(t.terms))
	t.idf = make([]float64, len(t.terms))
	for j, term := range t.terms {
		t.index[term] = j
		t.idf[j] = math.Log(float64(1+n)/float64(1+df[term])) + 1
	}
	t.comp, t.sv = nil, nil
	if t.Components > 0 {
		rows := t.sparse(profiles)
		k := min(t.Components, len(t.terms), n)
		comp, sv, err := randomizedSVD(ctx, rows, len(t.terms), k, t.Seed)
		if err != nil {
			return fmt.Errorf("persona: lsa: %w", err)
		}
		t.comp, t.sv = comp, sv
	}
	return nil
}

// Embed returns one unit vector per profile.
func (t *TFIDF) Embed(ctx context.Context, profiles []memory.Profile) ([][]float32, error) {
	if t.index == nil {
		return nil, errors.New("persona: tf-idf: Embed before Fit")
	}
	rows := t.sparse(profiles)
	out := make([][]float32, len(rows))
	for i, r := range rows {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if t.comp == nil {
			v := make([]float32, len(t.terms))
			for _, e := range r {
				v[e.j] = float32(e.v)
			}
			out[i] = v
			continue
		}
		v := make([]float32, len(t.comp))
		for c, cv := range t.comp {
			var s float64
			for _, e := range r {
				s += e.v * float64(cv[e.j])
			}
			v[c] = float32(s)
		}
		vec.Normalize(v)
		out[i] = v
	}
	return out, nil
}

// entry is one non-zero of a sparse row.
type entry struct {
	j int
	v float64
}

// sparse returns the unit-length tf-idf rows of the profiles, columns sorted.
func (t *TFIDF) sparse(profiles []memory.Profile) [][]entry {
	ng := t.ngram()
	rows := make([][]entry, len(profiles))
	for i, p := range profiles {
		var r []entry
		var ss float64
		for term, c := range termCounts(p.Description, ng) {
			j, ok := t.index[term]
			if !ok {
				continue
			}
			w := (1 + math.Log(float64(c))) * t.idf[j]
			r = append(r, entry{j, w})
			ss += w * w
		}
		slices.SortFunc(r, func(a, b entry) int { return a.j - b.j })
		if ss > 0 {
			inv := 1 / math.Sqrt(ss)
			for k := range r {
				r[k].v *= inv
			}
		}
		rows[i] = r
	}
	return rows
}

func (t *TFIDF) ngram() int {
	if t.NGram <= 0 {
		return 2
	}
	return t.NGram
}

// termCounts counts the n-grams (1..ng words, within sentences, after stop
// words are removed) of text.
func termCounts(text string, ng int) map[string]int {
	counts := map[string]int{}
	for _, sent := range sentences(text) {
		words := tokens(sent)
		for i := range words {
			for n := 1; n <= ng && i+n <= len(words); n++ {
				counts[strings.Join(words[i:i+n], " ")]++
			}
		}
	}
	return counts
}

// sentences splits text at . ! ? ; and line breaks.
func sentences(text string) []string {
	return strings.FieldsFunc(text, func(r rune) bool {
		switch r {
		case '.', '!', '?', ';', '\n':
			return true
		}
		return false
	})
}

// tokens returns the lower-cased, non-stop-word tokens of a sentence. A
// token is a run of letters and digits; a hyphen or apostrophe between two
// such runs joins them; a trailing "'s" is dropped; one-character tokens are
// dropped.
func tokens(s string) []string {
	var out []string
	rs := []rune(strings.ToLower(s))
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	for i := 0; i < len(rs); {
		if !isWord(rs[i]) {
			i++
			continue
		}
		j := i
		for j < len(rs) && (isWord(rs[j]) || ((rs[j] == '-' || rs[j] == '\'' || rs[j] == '’') && j+1 < len(rs) && isWord(rs[j+1]) && j > i)) {
			j++
		}
		w := string(rs[i:j])
		w = strings.TrimSuffix(strings.TrimSuffix(w, "'s"), "’s")
		w = strings.ReplaceAll(w, "’", "'")
		i = j
		if len([]rune(w)) < 2 || stopWords[w] {
			continue
		}
		out = append(out, w)
	}
	return out
}

// stopWords are common English function words (a short list in the spirit
// of scikit-learn's), kept out of the vocabulary. Negations ("not", "no",
// "never") are kept: they carry a profile's polarity.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all also am an and any are as at
		be because been before being below between both but by can could did do does doing down during
		each few for from further had has have having he her here hers herself him himself his how i if in
		into is it its itself just me more most my myself nor now of off on once only or other our ours
		ourselves out over own same she should so some such than that the their theirs them themselves then
		there these they this those through to too under until up very was we were what when where which
		while who whom why will with would you your yours yourself yourselves i'm i've i'd it's don't
		doesn't isn't am much many well`) {
		m[w] = true
	}
	return m
}()
