// Package sample picks the next token from a vector of logits.
//
// A Sampler implements greedy decoding, temperature, top-k, top-p (nucleus)
// and min-p filtering and the repetition penalty of the CTRL paper as
// Hugging Face transformers and llama.cpp apply it. For a given seed the
// sequence of choices is deterministic. StopMatcher finds stop strings in
// streamed text.
package sample

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// Options configures a Sampler. The zero value is greedy decoding with no
// repetition penalty.
type Options struct {
	// Temperature divides the logits before sampling. 0 (or less) means
	// greedy decoding: the token with the largest logit is chosen and
	// TopK, TopP and MinP are ignored.
	Temperature float32
	// TopP keeps the smallest set of most likely tokens whose probability
	// mass reaches TopP. 0 or values ≥ 1 disable it.
	TopP float32
	// MinP drops tokens whose probability is below MinP times that of the
	// most likely token. 0 disables it.
	MinP float32
	// TopK keeps only the TopK most likely tokens. 0 (or less) disables it.
	TopK int
	// RepeatPenalty penalises tokens that occur in the history: their
	// logit is divided by RepeatPenalty when positive and multiplied by it
	// when negative. 0 and 1 disable it.
	RepeatPenalty float32
	// RepeatLastN limits the penalty to the last RepeatLastN tokens of the
	// history. 0 (or less) means the whole history.
	RepeatLastN int
	// Seed seeds the random number generator (PCG).
	Seed uint64
}

// Greedy reports whether the options select the arg-max token.
func (o Options) Greedy() bool { return o.Temperature <= 0 }

// A Sampler chooses tokens from logits. It is not safe for concurrent use;
// use one Sampler per sequence.
type Sampler struct {
	opt   Options
	rng   *rand.Rand
	buf   []float32
	cands []cand
	w     []float64
	seen  map[int]struct{}
}

type cand struct {
	id    int
	logit float32
}

// NewSampler returns a Sampler for opt.
func NewSampler(opt Options) *Sampler {
	return &Sampler{
		opt:  opt,
		rng:  rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15)),
		seen: make(map[int]struct{}),
	}
}

// Options returns the sampler's options.
func (s *Sampler) Options() Options { return s.opt }

// Sample returns the id of the chosen token, an index into logits. history
// holds the ids generated or read so far and is used by the repetition
// penalty; ids outside the range of logits are ignored. logits is not
// modified. NaN logits are treated as -Inf. Sample returns -1 when logits is
// empty.
func (s *Sampler) Sample(logits []float32, history []int) int {
	if len(logits) == 0 {
		return -1
	}
	x := s.penalize(logits, history)
	if s.opt.Greedy() {
		return argmax(x)
	}
	inv := 1 / s.opt.Temperature
	mx := float32(math.Inf(-1))
	for i, v := range x {
		v *= inv
		x[i] = v
		if v > mx {
			mx = v
		}
	}
	if math.IsInf(float64(mx), 0) || math.IsNaN(float64(mx)) {
		// Nothing finite to sample from, or an overflow at a tiny
		// temperature or an infinite logit: the best token.
		return argmax(x)
	}
	c, w, total := s.candidates(x, mx)
	if c == nil {
		return s.drawAll(x, mx)
	}
	keep := s.filter(w, total)
	var ksum float64
	for i := range keep {
		ksum += w[i]
	}
	u := s.rng.Float64() * ksum
	for i := range keep {
		u -= w[i]
		if u < 0 {
			return c[i].id
		}
	}
	return c[keep-1].id
}

// Bucketed selection of the nucleus: logits within histRange of the
// maximum fall into histBuckets buckets; lower ones carry almost no mass.
const (
	histBuckets = 256
	histRange   = 32
)

// candidates returns, sorted by descending logit, a set of tokens that
// holds every token the filters may keep, their unnormalised probabilities
// w, and the probability mass total of the distribution that top-p is taken
// over (the top-k tokens, or the whole vocabulary). It returns nil
// candidates when no filter is on. x holds logits already divided by the
// temperature, with maximum mx.
func (s *Sampler) candidates(x []float32, mx float32) (c []cand, w []float64, total float64) {
	topK, topP, minP := s.limits(len(x))
	if topK == len(x) && topP == 1 && minP == 0 {
		return nil, nil, 0
	}
	if topK < len(x) {
		c = s.top(x, topK)
		w = s.weights(c, mx)
		for _, v := range w {
			total += v
		}
		return c, w, total
	}
	// Whole vocabulary: histogram the mass by distance from the maximum and
	// collect the tokens of the buckets that reach the nucleus.
	var hist [histBuckets + 1]float64
	const scale = histBuckets / histRange
	bucket := func(v float32) int {
		d := float64(mx-v) * scale
		if !(d < histBuckets) { // also catches -Inf and NaN
			return histBuckets
		}
		return int(d)
	}
	for _, v := range x {
		e := math.Exp(float64(v - mx))
		total += e
		hist[bucket(v)] += e
	}
	last := histBuckets
	if topP < 1 {
		var cum float64
		for b, m := range hist {
			cum += m
			if cum >= float64(topP)*total {
				last = b
				break
			}
		}
	}
	if minP > 0 {
		// p ≥ minP·pmax ⟺ v ≥ mx + log(minP)
		last = min(last, bucket(mx+float32(math.Log(float64(minP)))))
	}
	c = s.cands[:0]
	for i, v := range x {
		if bucket(v) <= last && !math.IsInf(float64(v), -1) {
			c = append(c, cand{i, v})
		}
	}
	sortCands(c)
	s.cands = c
	return c, s.weights(c, mx), total
}

// limits returns the effective top-k, top-p and min-p for a vocabulary of
// n tokens.
func (s *Sampler) limits(n int) (topK int, topP, minP float32) {
	topK, topP, minP = s.opt.TopK, s.opt.TopP, s.opt.MinP
	if topK <= 0 || topK > n {
		topK = n
	}
	if topP <= 0 || topP >= 1 {
		topP = 1
	}
	if minP < 0 || minP != minP {
		minP = 0
	}
	return topK, topP, minP
}

// weights returns exp(logit - mx) for each candidate.
func (s *Sampler) weights(c []cand, mx float32) []float64 {
	w := s.w[:0]
	for _, cd := range c {
		w = append(w, math.Exp(float64(cd.logit-mx)))
	}
	s.w = w
	return w
}

// filter applies top-p (over total) and min-p to the sorted weights w and
// returns how many leading candidates are kept (at least 1).
func (s *Sampler) filter(w []float64, total float64) int {
	_, topP, minP := s.limits(len(w) + 1)
	keep := len(w)
	if topP < 1 {
		var cum float64
		for i := range w {
			if cum >= float64(topP)*total {
				keep = i
				break
			}
			cum += w[i]
		}
	}
	if minP > 0 && len(w) > 0 {
		thr := float64(minP) * w[0]
		for i := 1; i < keep; i++ {
			if w[i] < thr {
				keep = i
				break
			}
		}
	}
	for keep > 1 && w[keep-1] == 0 {
		keep--
	}
	return max(keep, 1)
}

// penalize copies logits into the sampler's buffer, applying the
// repetition penalty and mapping NaN to -Inf.
func (s *Sampler) penalize(logits []float32, history []int) []float32 {
	s.buf = append(s.buf[:0], logits...)
	x := s.buf
	negInf := float32(math.Inf(-1))
	for i, v := range x {
		if v != v {
			x[i] = negInf
		}
	}
	pen := s.opt.RepeatPenalty
	if pen <= 0 || pen == 1 {
		return x
	}
	h := history
	if n := s.opt.RepeatLastN; n > 0 && len(h) > n {
		h = h[len(h)-n:]
	}
	clear(s.seen)
	for _, id := range h {
		if id < 0 || id >= len(x) {
			continue
		}
		if _, ok := s.seen[id]; ok {
			continue
		}
		s.seen[id] = struct{}{}
		if x[id] > 0 {
			x[id] /= pen
		} else {
			x[id] *= pen
		}
	}
	return x
}

// drawAll samples from the softmax of x over the whole vocabulary.
func (s *Sampler) drawAll(x []float32, mx float32) int {
	w := s.w[:0]
	var sum float64
	for _, v := range x {
		e := math.Exp(float64(v - mx))
		w = append(w, e)
		sum += e
	}
	s.w = w
	u := s.rng.Float64() * sum
	last := 0
	for i, e := range w {
		if e == 0 {
			continue
		}
		last = i
		u -= e
		if u < 0 {
			return i
		}
	}
	return last
}

// top returns the n largest entries of x in descending order of logit
// (ties by ascending id).
func (s *Sampler) top(x []float32, n int) []cand {
	c := s.cands[:0]
	less := func(a, b cand) bool { // a ranks below b
		if a.logit != b.logit {
			return a.logit < b.logit
		}
		return a.id > b.id
	}
	if n >= len(x) {
		for i, v := range x {
			c = append(c, cand{i, v})
		}
	} else {
		// Min-heap of the n best seen so far.
		for i, v := range x {
			cd := cand{i, v}
			if len(c) < n {
				c = append(c, cd)
				siftUp(c, len(c)-1, less)
				continue
			}
			if less(c[0], cd) {
				c[0] = cd
				siftDown(c, 0, less)
			}
		}
	}
	sortCands(c)
	s.cands = c
	return c
}

// sortCands sorts by descending logit, ties by ascending id.
func sortCands(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
		if r := cmp.Compare(b.logit, a.logit); r != 0 {
			return r
		}
		return cmp.Compare(a.id, b.id)
	})
}

func siftUp(h []cand, i int, less func(a, b cand) bool) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []cand, i int, less func(a, b cand) bool) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && less(h[r], h[l]) {
			m = r
		}
		if !less(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// argmax returns the index of the largest value (the first on ties).
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Argmax returns the index of the largest logit, the first one on ties, or
// -1 when logits is empty. NaN entries never win.
func Argmax(logits []float32) int {
	best := -1
	for i, v := range logits {
		if v != v {
			continue
		}
		if best < 0 || v > logits[best] {
			best = i
		}
	}
	return best
}
