package memory

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/vec"
)

// ItemEmbedder maps an item (dense index) to a vector. Retrieval compares
// vectors by cosine similarity.
type ItemEmbedder interface {
	Embed(item int32) []float32
}

// FeatureOptions weigh the blocks of the built-in item embedding. The zero
// value means DefaultFeatureOptions; set a weight negative to leave its
// block out.
type FeatureOptions struct {
	Genre   float64 // weight of the genre one-hot block (unit length)
	Era     float64 // weight of the standardised release year
	Pop     float64 // weight of the standardised log training count
	Average float64 // weight of the standardised training average
	// Title is the weight of the title block: tf-idf of the title's words
	// (idf over the items with training ratings), hashed into TitleDims
	// buckets and scaled to unit length, so that sequels and remakes meet.
	Title float64
}

// TitleDims is the size of the hashed title block.
const TitleDims = 64

// DefaultFeatureOptions weigh genres 1, release year, popularity and
// average 0.5 each, and titles 0.5.
func DefaultFeatureOptions() FeatureOptions {
	return FeatureOptions{Genre: 1, Era: 0.5, Pop: 0.5, Average: 0.5, Title: 0.5}
}

func (o *FeatureOptions) fill() {
	if *o == (FeatureOptions{}) {
		*o = DefaultFeatureOptions()
	}
	for _, w := range []*float64{&o.Genre, &o.Era, &o.Pop, &o.Average, &o.Title} {
		*w = max(*w, 0)
	}
}

// FeatureEmbedder is the built-in ItemEmbedder: an item's genres one-hot
// (scaled to unit length), its standardised release year, popularity
// (log training count) and training-split average, and the hashed tf-idf of
// its title words, each block weighted, and the whole vector normalised to
// unit length. Everything comes from the item metadata and the training
// statistics.
type FeatureEmbedder struct {
	dim  int
	vecs []float32 // NumItems × dim
}

// NewFeatureEmbedder precomputes the vectors of every item of st's dataset.
func NewFeatureEmbedder(st *Stats, opt FeatureOptions) *FeatureEmbedder {
	opt.fill()
	ng := len(st.Genres)
	dim := ng + 3
	if opt.Title > 0 {
		dim += TitleDims
	}
	ni := len(st.ItemCount)
	e := &FeatureEmbedder{dim: dim, vecs: make([]float32, ni*dim)}
	// Standardise the item averages over items with training ratings.
	var sum, sq, n float64
	for i, c := range st.ItemCount {
		if c > 0 {
			sum += st.ItemMean[i]
			sq += st.ItemMean[i] * st.ItemMean[i]
			n++
		}
	}
	am, asd := meanSD(sum, sq, n)
	var titles [][]string
	var idf map[string]float64
	if opt.Title > 0 {
		titles, idf = titleWords(st)
	}
	for i := range ni {
		v := e.vecs[i*dim : (i+1)*dim]
		gs := st.itemGenres[i]
		for _, g := range gs {
			v[g] = float32(opt.Genre / math.Sqrt(float64(len(gs))))
		}
		v[ng] = float32(opt.Era * st.YearZ(int32(i)))
		if st.ItemCount[i] > 0 {
			v[ng+1] = float32(opt.Pop * st.PopZ(int32(i)))
			if asd > 0 {
				v[ng+2] = float32(opt.Average * (st.ItemMean[i] - am) / asd)
			}
		}
		if opt.Title > 0 {
			tb := v[ng+3:]
			for _, w := range titles[i] {
				tb[pick(TitleDims, w)] += float32(idf[w])
			}
			vec.Normalize(tb)
			for k := range tb {
				tb[k] *= float32(opt.Title)
			}
		}
		vec.Normalize(v)
	}
	return e
}

// titleWords returns each item's distinct lower-cased title words (two or
// more letters or digits, a few English function words left out) and their
// smoothed idf ln((1+n)/(1+df)) + 1 over the items with training ratings.
func titleWords(st *Stats) ([][]string, map[string]float64) {
	words := make([][]string, len(st.d.Items))
	df := map[string]int{}
	n := 0
	for i, it := range st.d.Items {
		seen := map[string]bool{}
		for _, w := range strings.FieldsFunc(strings.ToLower(it.DisplayTitle()), func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r)
		}) {
			if len(w) < 2 || titleStop[w] || seen[w] {
				continue
			}
			seen[w] = true
			words[i] = append(words[i], w)
		}
		if st.ItemCount[i] > 0 {
			n++
			for _, w := range words[i] {
				df[w]++
			}
		}
	}
	idf := make(map[string]float64, len(df))
	for _, ws := range words {
		for _, w := range ws {
			idf[w] = math.Log(float64(1+n)/float64(1+df[w])) + 1
		}
	}
	return words, idf
}

var titleStop = map[string]bool{
	"the": true, "of": true, "and": true, "in": true, "to": true, "on": true, "an": true,
	"la": true, "le": true, "les": true, "de": true, "for": true, "with": true, "at": true,
}

// Dim returns the vectors' length.
func (e *FeatureEmbedder) Dim() int { return e.dim }

// Embed returns item's vector (unit length, or zero for an item with no
// features). The slice aliases the embedder; do not modify it.
func (e *FeatureEmbedder) Embed(item int32) []float32 {
	if item < 0 || int(item)*e.dim >= len(e.vecs) {
		return nil
	}
	return e.vecs[int(item)*e.dim : int(item+1)*e.dim]
}

// Cosine returns the cosine similarity of a and b (0 when either is zero or
// their lengths differ).
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var dot, na, nb float64
	for k := range a {
		dot += float64(a[k]) * float64(b[k])
		na += float64(a[k]) * float64(a[k])
		nb += float64(b[k]) * float64(b[k])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// Retriever finds a user's remembered interactions most similar to a target
// item.
type Retriever struct {
	d   *dataset.Dataset
	emb ItemEmbedder
}

// NewRetriever returns a retriever over d's items, embedded by emb.
func NewRetriever(d *dataset.Dataset, emb ItemEmbedder) *Retriever {
	return &Retriever{d: d, emb: emb}
}

// RetrieveOption restricts or adjusts a retrieval.
type RetrieveOption func(*retrieveConfig)

type retrieveConfig struct {
	before        int
	hasBefore     bool
	beforeTime    int64
	hasBeforeTime bool
}

// BeforeTime keeps only memories with Time < t (Unix seconds). Memories
// without a time (0) are kept only when t > 0, as older than anything.
func BeforeTime(t int64) RetrieveOption {
	return func(c *retrieveConfig) { c.beforeTime, c.hasBeforeTime = t, true }
}

// Before keeps only memories with Order < order: those earlier in the
// user's history than the interaction at position order (RAFT training
// retrieves only from what came before the example).
func Before(order int) RetrieveOption {
	return func(c *retrieveConfig) { c.before, c.hasBefore = order, true }
}

// Scored is a retrieved memory and its cosine similarity to the target.
type Scored struct {
	Interaction
	Score float64 `json:"score"`
}

// Retrieve returns the k memories (of one user) most similar to the target
// item, most similar first. Ties are broken by the more recent memory
// (higher Order), then by item ID, so the result is deterministic. The
// paper uses k = 1. A memory naming an item d lacks is an error.
func (r *Retriever) Retrieve(target int32, memories []Interaction, k int, opts ...RetrieveOption) ([]Scored, error) {
	var c retrieveConfig
	for _, o := range opts {
		o(&c)
	}
	if target < 0 || int(target) >= r.d.NumItems() {
		return nil, fmt.Errorf("retrieve: target item index %d out of range [0, %d)", target, r.d.NumItems())
	}
	if k <= 0 {
		return nil, nil
	}
	tv := r.emb.Embed(target)
	out := make([]Scored, 0, min(k+1, len(memories)))
	for _, m := range memories {
		if c.hasBefore && m.Order >= c.before || c.hasBeforeTime && m.Time >= c.beforeTime {
			continue
		}
		i, ok := r.d.ItemIndex(m.Item)
		if !ok {
			return nil, fmt.Errorf("retrieve: memory of user %s names unknown item %q", m.User, m.Item)
		}
		s := Scored{Interaction: m, Score: Cosine(tv, r.emb.Embed(i))}
		// Keep out sorted, at most k long (k is small: insertion).
		pos, _ := slices.BinarySearchFunc(out, s, better)
		if pos >= k {
			continue
		}
		out = slices.Insert(out, pos, s)
		if len(out) > k {
			out = out[:k]
		}
	}
	return out, nil
}

// better orders a before b when a ranks higher.
func better(a, b Scored) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Order, a.Order); c != 0 {
		return c
	}
	return cmp.Compare(a.Item, b.Item)
}

// GroupByUser groups interactions by user ID, keeping their order.
func GroupByUser(ms []Interaction) map[string][]Interaction {
	out := map[string][]Interaction{}
	for _, m := range ms {
		out[m.User] = append(out[m.User], m)
	}
	return out
}
