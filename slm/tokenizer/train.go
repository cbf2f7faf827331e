package tokenizer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file is the byte-level BPE trainer: it learns a vocabulary and merges
// from a text corpus and returns a Tokenizer that encodes exactly like the
// Hugging Face tokenizer.json that WriteHFDir writes for it.
//
// Layout of the ids of a trained vocabulary:
//
//	[0, S)              special tokens: BOS, EOS, PAD, then TrainOptions.Special
//	[S, S+256)          one token per byte, in byte order
//	[S+256, S+256+M)    merged tokens, in the order they were learned
//	then                forced tokens (TrainOptions.Forced), then bucket tokens
//
// Special tokens are in the BPE vocabulary and in added_tokens, as the Hugging
// Face trainer writes them; forced and bucket tokens are non-special added
// tokens only, as tokenizer.add_tokens writes them.

// TrainOptions configure Train.
type TrainOptions struct {
	// VocabSize is the total number of ids: special tokens, the 256 byte
	// tokens, merges, forced tokens and bucket tokens. Training stops
	// earlier when no pair occurs MinFrequency times, so the result may be
	// smaller; Tokenizer.VocabSize tells the real size.
	VocabSize int
	// MinFrequency is the fewest occurrences in the corpus a pair needs to
	// be merged; values below 1 mean 1.
	MinFrequency int

	// BOS, EOS and PAD are special tokens ("" for none), such as
	// "<|bos|>", "<|eos|>" and "<|pad|>". Special lists more special
	// (control) tokens, such as chat markers.
	BOS, EOS, PAD string
	Special       []string

	// Forced lists strings that always encode to exactly one token, such as
	// the template keywords "RATING:" or "MY MEMORY:". They become
	// non-special added tokens: the input is cut at every occurrence
	// (leftmost, then longest) before pre-tokenization, by this package and
	// by Hugging Face tokenizers alike, so each occurrence is one token
	// wherever it appears, even inside a word or across spaces; the text on
	// either side is encoded on its own. (Forced merges could not do this:
	// BPE never merges across pre-tokenizer boundaries such as the one
	// between "RATING" and ":".)
	Forced []string

	// Buckets registers the tokens of numbers written with BucketNumber or
	// BucketRange.Token ("<3.2>") as forced tokens.
	Buckets []BucketRange

	// DigitsSingle makes every digit (Unicode category N) its own
	// pre-token, with the space before it when there is one: "3.24"
	// encodes as "3" "." "2" "4" and " 45" as " 4" "5". The twenty tokens
	// "0".."9" and " 0".." 9" are always in the vocabulary (the ten merges
	// of a space with a digit come first). Otherwise numbers are
	// pre-tokenized as GPT-2 does (" 1995" is one word).
	DigitsSingle bool

	// AddBOS makes the tokenizer add BOS in front of encoded text by
	// default (Hugging Face post-processor and add_bos_token).
	AddBOS bool
	// ModelMaxLength is tokenizer_config.json's model_max_length (0: not
	// written).
	ModelMaxLength int
	// ChatTemplate is written to tokenizer_config.json when not empty.
	ChatTemplate string

	// Progress, when set, is called from the training goroutine while the
	// corpus is read (about every MiB) and while merges are learned (every
	// 256 merges and at the end).
	Progress func(TrainProgress)
}

// DefaultTrainOptions returns the options of usersim's compact base
// tokenizer: 4096 ids, <|bos|>/<|eos|>/<|pad|>, single digits, BOS added.
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{
		VocabSize:    4096,
		MinFrequency: 2,
		BOS:          "<|bos|>",
		EOS:          "<|eos|>",
		PAD:          "<|pad|>",
		DigitsSingle: true,
		AddBOS:       true,
	}
}

// TrainProgress reports how far training is.
type TrainProgress struct {
	Bytes     int64 // corpus bytes read
	Merges    int   // merges learned so far (0 while reading)
	MaxMerges int   // merges the vocabulary has room for
}

// TrainStats describe a finished training run.
type TrainStats struct {
	Bytes       int64         // corpus bytes
	Words       int64         // pre-tokenized words (outside added tokens)
	UniqueWords int           // distinct words
	Merges      int           // merges learned, the forced digit merges included
	MaxMerges   int           // merges the vocabulary had room for
	Duration    time.Duration // reading and merging
}

// Trained is a trained byte-level BPE vocabulary: its Tokenizer, and what
// WriteHFDir writes.
type Trained struct {
	opt      TrainOptions
	pieces   []string // vocabulary form of each id
	kinds    []tokenKind
	merges   [][2]string
	nSpecial int // ids [0, nSpecial) are special
	nModel   int // ids [0, nModel) are in the BPE vocabulary
	bos      int
	eos      int
	pad      int
	tok      *Tokenizer
	stats    TrainStats
}

// Tokenizer returns the trained tokenizer. It encodes exactly like the
// tokenizer.json written by WriteHFDir, loaded with FromHFJSON or Hugging
// Face tokenizers.
func (t *Trained) Tokenizer() *Tokenizer { return t.tok }

// Stats returns statistics of the training run.
func (t *Trained) Stats() TrainStats { return t.stats }

// Merges returns the learned merges in rank order, in vocabulary form
// (byte-level characters: "Ġ" is a space).
func (t *Trained) Merges() [][2]string { return slices.Clone(t.merges) }

// Options returns the options the vocabulary was trained with.
func (t *Trained) Options() TrainOptions { return t.opt }

// Train learns a byte-level BPE vocabulary from the text read from corpus.
//
// The corpus is cut at special, forced and bucket tokens, pre-tokenized
// (GPT-2's regex, then digits apart with DigitsSingle) and counted as
// distinct words with their frequencies. Merges are then learned as the
// Hugging Face BpeTrainer learns them, with incrementally updated pair
// counts and a priority queue: the most frequent adjacent pair (all its
// occurrences in all words, weighted by word frequency) is merged next,
// everywhere, left to right. Ties go to the pair whose left token has the
// smaller id, then to the smaller right id; byte tokens are numbered in byte
// order and merged tokens in the order they were learned. The result
// depends only on the word counts and the options, so the same corpus and
// options give byte-identical files. Training stops when the vocabulary is
// full or no pair occurs MinFrequency times.
//
// The text is pre-tokenized in chunks of whole lines, cut only where the cut
// cannot change the pre-tokenization (after a newline that follows a
// non-space character and before a non-space character), so training on a
// file equals training on its whole content as one text. Use TrainTexts for
// documents that are encoded separately.
func Train(ctx context.Context, corpus io.Reader, opt TrainOptions) (*Trained, error) {
	if corpus == nil {
		return nil, errors.New("train tokenizer: no corpus reader")
	}
	tr, err := newBPETrainer(opt)
	if err != nil {
		return nil, err
	}
	if err := tr.readFrom(ctx, corpus); err != nil {
		return nil, err
	}
	return tr.train(ctx)
}

// TrainTexts learns a byte-level BPE vocabulary from texts, each
// pre-tokenized on its own (as Encode would see each of them).
func TrainTexts(ctx context.Context, texts iter.Seq[string], opt TrainOptions) (*Trained, error) {
	tr, err := newBPETrainer(opt)
	if err != nil {
		return nil, err
	}
	if texts == nil {
		texts = func(func(string) bool) {}
	}
	var next int64
	for s := range texts {
		tr.addText(s)
		if tr.nbytes >= next {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("train tokenizer: %w", err)
			}
			tr.report(0)
			next = tr.nbytes + 1<<20
		}
	}
	return tr.train(ctx)
}

// bpeTrainer counts the words of a corpus and learns merges from them.
type bpeTrainer struct {
	opt       TrainOptions
	start     time.Time
	added     *addedMatcher
	special   []string // ids [0, len(special))
	forced    []string // forced and bucket tokens, in id order after the model
	maxMerges int

	index  map[string]int32 // word -> position in counts
	counts []int64
	nbytes int64
	nwords int64
}

// maxTrainVocab bounds VocabSize.
const maxTrainVocab = 1 << 20

func newBPETrainer(opt TrainOptions) (*bpeTrainer, error) {
	tr := &bpeTrainer{opt: opt, start: time.Now(), index: make(map[string]int32, 1<<14)}
	if opt.VocabSize <= 0 || opt.VocabSize > maxTrainVocab {
		return nil, fmt.Errorf("train tokenizer: VocabSize %d is not in 1..%d", opt.VocabSize, maxTrainVocab)
	}
	seen := map[string]string{}
	check := func(field, s string) error {
		if err := checkAddedContent(s); err != nil {
			return fmt.Errorf("train tokenizer: %s %q: %w", field, s, err)
		}
		if prev, dup := seen[s]; dup {
			return fmt.Errorf("train tokenizer: %s %q is already given as %s", field, s, prev)
		}
		seen[s] = field
		return nil
	}
	for _, f := range []struct{ name, s string }{{"BOS", opt.BOS}, {"EOS", opt.EOS}, {"PAD", opt.PAD}} {
		if f.s == "" {
			continue
		}
		if err := check(f.name, f.s); err != nil {
			return nil, err
		}
		tr.special = append(tr.special, f.s)
	}
	for i, s := range opt.Special {
		if err := check(fmt.Sprintf("Special[%d]", i), s); err != nil {
			return nil, err
		}
		tr.special = append(tr.special, s)
	}
	for i, s := range opt.Forced {
		if err := check(fmt.Sprintf("Forced[%d]", i), s); err != nil {
			return nil, err
		}
		tr.forced = append(tr.forced, s)
	}
	for i, b := range opt.Buckets {
		toks, err := b.Tokens()
		if err != nil {
			return nil, fmt.Errorf("train tokenizer: Buckets[%d]: %w", i, err)
		}
		for _, s := range toks {
			if prev, dup := seen[s]; dup {
				if strings.HasPrefix(prev, "Buckets") {
					continue // overlapping ranges share their tokens
				}
				return nil, fmt.Errorf("train tokenizer: Buckets[%d] token %q is already given as %s", i, s, prev)
			}
			seen[s] = fmt.Sprintf("Buckets[%d]", i)
			tr.forced = append(tr.forced, s)
		}
	}
	fixed := len(tr.special) + 256 + len(tr.forced)
	if opt.DigitsSingle {
		fixed += 10
	}
	if opt.VocabSize < fixed {
		return nil, fmt.Errorf("train tokenizer: VocabSize %d is below the %d ids that special, byte, digit, forced and bucket tokens take", opt.VocabSize, fixed)
	}
	tr.maxMerges = opt.VocabSize - len(tr.special) - 256 - len(tr.forced)
	var all []addedToken
	for i, s := range tr.special {
		all = append(all, addedToken{content: s, id: i, special: true})
	}
	for i, s := range tr.forced {
		all = append(all, addedToken{content: s, id: opt.VocabSize - len(tr.forced) + i})
	}
	tr.added = newAddedMatcher(all)
	return tr, nil
}

// checkAddedContent validates a special, forced or bucket token. Added tokens
// are restricted to printable ASCII because Hugging Face's ByteLevel decoder
// maps the Latin-1 characters of an added token to single bytes; they have at
// least two bytes so that they never coincide with a byte token, and no line
// breaks so that Train may cut its input at lines.
func checkAddedContent(s string) error {
	if len(s) < 2 {
		return errors.New("must have at least two characters")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7E {
			return fmt.Errorf("byte 0x%02X at %d: only printable ASCII is allowed", c, i)
		}
	}
	return nil
}

func (tr *bpeTrainer) report(merges int) {
	if tr.opt.Progress != nil {
		tr.opt.Progress(TrainProgress{Bytes: tr.nbytes, Merges: merges, MaxMerges: tr.maxMerges})
	}
}

// maxChunk is the size past which readFrom cuts its input at the next line
// even where the cut could change the pre-tokenization of the whitespace
// there (only in text without such safe points for a MiB).
const maxChunk = 1 << 20

func (tr *bpeTrainer) readFrom(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var chunk []byte
	atLineStart := true
	var next int64
	flush := func() {
		tr.addText(string(chunk))
		chunk = chunk[:0]
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if atLineStart && len(chunk) > 0 && (safeCut(chunk, line) || len(chunk) >= maxChunk) {
				flush()
				if tr.nbytes >= next {
					if err := ctx.Err(); err != nil {
						return fmt.Errorf("train tokenizer: %w", err)
					}
					tr.report(0)
					next = tr.nbytes + 1<<20
				}
			}
			chunk = append(chunk, line...)
			atLineStart = line[len(line)-1] == '\n'
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			if len(chunk) > 0 {
				flush()
			}
			return ctx.Err()
		default:
			return fmt.Errorf("train tokenizer: read corpus: %w", err)
		}
	}
}

// safeCut reports whether pre-tokenizing chunk and line separately gives
// the same words as pre-tokenizing them together: chunk ends with a newline
// after a non-space character and line starts with a non-space character.
func safeCut(chunk, line []byte) bool {
	n := len(chunk)
	if n < 2 || chunk[n-1] != '\n' {
		return false
	}
	r, _ := utf8.DecodeLastRune(chunk[:n-1])
	if classOf(r) == clsS {
		return false
	}
	r, _ = utf8.DecodeRune(line)
	return classOf(r) != clsS
}

// addText counts the words of one text.
func (tr *bpeTrainer) addText(s string) {
	tr.nbytes += int64(len(s))
	for _, seg := range tr.added.split(s, true) {
		if seg.id >= 0 {
			continue
		}
		tr.addSegment(seg.text)
	}
}

func (tr *bpeTrainer) addSegment(s string) {
	fs := fastSplit{familyGPT2}
	for i := 0; i < len(s); {
		n := fs.match(s, i)
		if n <= 0 {
			n = 1
		}
		w := s[i : i+n]
		i += n
		if tr.opt.DigitsSingle {
			splitDigits(w, tr.addWord)
		} else {
			tr.addWord(w)
		}
	}
}

func (tr *bpeTrainer) addWord(w string) {
	tr.nwords++
	if k, ok := tr.index[w]; ok {
		tr.counts[k]++
		return
	}
	tr.index[strings.Clone(w)] = int32(len(tr.counts))
	tr.counts = append(tr.counts, 1)
}

// splitDigits cuts w into pieces in which every character of Unicode
// category N stands alone, joined to the non-number text before it: the
// Hugging Face Split pre-tokenizer with pattern \p{N} and behavior
// MergedWithPrevious. After the GPT-2 split that text is at most one
// space, so " 45" gives " 4" and "5".
func splitDigits(w string, emit func(string)) {
	last := 0
	for i := 0; i < len(w); {
		c := w[i]
		size := 1
		num := '0' <= c && c <= '9'
		if c >= utf8.RuneSelf {
			var r rune
			r, size = utf8.DecodeRuneInString(w[i:])
			num = unicode.IsNumber(r)
		}
		if num {
			emit(w[last : i+size])
			last = i + size
		}
		i += size
	}
	if last < len(w) {
		emit(w[last:])
	}
}

// digitSplit is splitDigits as a pre-tokenizer of the in-memory tokenizer;
// the tokenizer.json form is a Split on \p{N} with MergedWithPrevious.
type digitSplit struct{}

func (digitSplit) split(dst []string, s string, _ segPos) ([]string, error) {
	splitDigits(s, func(p string) { dst = append(dst, p) })
	return dst, nil
}

// digitPattern is the tokenizer.json form of digitSplit.
const digitPattern = `\p{N}`

// Merge learning.

type trainWord struct {
	syms  []int32
	count int64
}

type trainPair struct {
	left, right int32
	count       int64
	where       []int32 // words that contain or contained the pair
	banned      bool
}

// pairEntry is a heap entry; count may be stale (higher than the pair's
// count now), never lower.
type pairEntry struct {
	count       int64
	left, right int32
	pair        int32
}

// before orders the heap: higher count first; ties go to the smaller left
// id, then the smaller right id.
func (a pairEntry) before(b pairEntry) bool {
	if a.count != b.count {
		return a.count > b.count
	}
	if a.left != b.left {
		return a.left < b.left
	}
	return a.right < b.right
}

type pairHeap []pairEntry

func (h *pairHeap) push(e pairEntry) {
	*h = append(*h, e)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() pairEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].before(s[l]) {
			m = r
		}
		if !s[m].before(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

type merger struct {
	words   []trainWord
	pairs   []trainPair
	pairIdx map[uint64]int32
	stamp   []int32 // per word: the last merge step that visited it
	step    int32
}

func (m *merger) pairID(a, b int32) int32 {
	k := pairKey(a, b)
	if p, ok := m.pairIdx[k]; ok {
		return p
	}
	p := int32(len(m.pairs))
	m.pairs = append(m.pairs, trainPair{left: a, right: b})
	m.pairIdx[k] = p
	return p
}

func (m *merger) add(a, b int32, delta int64, w int32) {
	p := &m.pairs[m.pairID(a, b)]
	p.count += delta
	if delta > 0 {
		if n := len(p.where); n == 0 || p.where[n-1] != w {
			p.where = append(p.where, w)
		}
	}
}

// apply merges every occurrence of pair (a, b) into c, left to right, and
// updates the pair counts as the Hugging Face trainer does.
func (m *merger) apply(a, b, c int32) {
	m.step++
	k := pairKey(a, b)
	pi, ok := m.pairIdx[k]
	if !ok {
		return
	}
	where := m.pairs[pi].where
	m.pairs[pi].where = nil
	for _, w := range where {
		if m.stamp[w] == m.step {
			continue
		}
		m.stamp[w] = m.step
		word := &m.words[w]
		syms, n := word.syms, word.count
		j := 0
		for i := 0; i < len(syms); {
			if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
				if j > 0 {
					prev := syms[j-1]
					m.add(prev, a, -n, w)
					m.add(prev, c, n, w)
				}
				if i+2 < len(syms) {
					next := syms[i+2]
					m.add(b, next, -n, w)
					m.add(c, next, n, w)
				}
				syms[j] = c
				j++
				i += 2
				continue
			}
			syms[j] = syms[i]
			j++
			i++
		}
		word.syms = syms[:j]
	}
	m.pairs[pi].count = 0
}

func (tr *bpeTrainer) train(ctx context.Context) (*Trained, error) {
	opt := tr.opt
	nSpecial := len(tr.special)
	byteBase := int32(nSpecial)

	// Vocabulary: special, bytes, then merges.
	pieces := make([]string, 0, opt.VocabSize)
	pieces = append(pieces, tr.special...)
	for b := 0; b < 256; b++ {
		pieces = append(pieces, string(byteToRune[b]))
	}
	taken := make(map[string]bool, len(tr.special)+len(tr.forced))
	for _, s := range tr.special {
		taken[s] = true
	}
	for _, s := range tr.forced {
		taken[s] = true
	}

	// Words, in a fixed order.
	type wc struct {
		w string
		n int64
	}
	list := make([]wc, 0, len(tr.counts))
	for w, k := range tr.index {
		list = append(list, wc{w, tr.counts[k]})
	}
	tr.index, tr.counts = nil, nil
	slices.SortFunc(list, func(a, b wc) int { return strings.Compare(a.w, b.w) })
	m := &merger{
		words:   make([]trainWord, len(list)),
		pairIdx: make(map[uint64]int32, 1<<14),
		stamp:   make([]int32, len(list)),
	}
	for i, x := range list {
		syms := make([]int32, len(x.w))
		for j := 0; j < len(x.w); j++ {
			syms[j] = byteBase + int32(x.w[j])
		}
		m.words[i] = trainWord{syms: syms, count: x.n}
		for j := 0; j+1 < len(syms); j++ {
			m.add(syms[j], syms[j+1], x.n, int32(i))
		}
	}
	stats := TrainStats{Bytes: tr.nbytes, Words: tr.nwords, UniqueWords: len(list), MaxMerges: tr.maxMerges}
	list = nil

	var merges [][2]string
	newToken := func(a, b int32) int32 {
		c := int32(len(pieces))
		pieces = append(pieces, pieces[a]+pieces[b])
		merges = append(merges, [2]string{pieces[a], pieces[b]})
		return c
	}

	// Forced merges: a space and each digit.
	if opt.DigitsSingle {
		for d := byte('0'); d <= '9'; d++ {
			a, b := byteBase+' ', byteBase+int32(d)
			m.apply(a, b, newToken(a, b))
		}
	}

	h := make(pairHeap, 0, len(m.pairs))
	for i, p := range m.pairs {
		if p.count > 0 {
			h.push(pairEntry{count: p.count, left: p.left, right: p.right, pair: int32(i)})
		}
	}
	minFreq := int64(max(opt.MinFrequency, 1))
	nextReport := 0
	for len(merges) < tr.maxMerges && len(h) > 0 {
		if len(merges) >= nextReport {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("train tokenizer: %w", err)
			}
			tr.report(len(merges))
			nextReport = len(merges) + 256
		}
		e := h.pop()
		p := &m.pairs[e.pair]
		if p.banned {
			continue
		}
		if p.count != e.count {
			if p.count > 0 {
				e.count = p.count
				h.push(e)
			}
			continue
		}
		if e.count < minFreq {
			break
		}
		if taken[pieces[e.left]+pieces[e.right]] {
			// Never happens for valid options (added tokens are cut out
			// of the corpus), but a model token must not share the text of
			// an added token.
			p.banned = true
			continue
		}
		before := len(m.pairs)
		m.apply(e.left, e.right, newToken(e.left, e.right))
		for i := before; i < len(m.pairs); i++ {
			if q := m.pairs[i]; q.count > 0 {
				h.push(pairEntry{count: q.count, left: q.left, right: q.right, pair: int32(i)})
			}
		}
	}
	stats.Merges = len(merges)
	tr.report(len(merges))

	t := &Trained{
		opt:      opt,
		merges:   merges,
		nSpecial: nSpecial,
		nModel:   len(pieces),
		bos:      -1, eos: -1, pad: -1,
	}
	t.opt.Special = slices.Clone(opt.Special)
	t.opt.Forced = slices.Clone(opt.Forced)
	t.opt.Buckets = slices.Clone(opt.Buckets)
	t.opt.Progress = nil
	pieces = append(pieces, tr.forced...)
	t.pieces = pieces
	t.kinds = make([]tokenKind, len(pieces))
	for id := range t.kinds {
		switch {
		case id < nSpecial:
			t.kinds[id] = kindControl
		case id < t.nModel:
			t.kinds[id] = kindNormal
		default:
			t.kinds[id] = kindUserDefined
		}
	}
	i := 0
	for _, f := range []struct {
		s   string
		dst *int
	}{{opt.BOS, &t.bos}, {opt.EOS, &t.eos}, {opt.PAD, &t.pad}} {
		if f.s != "" {
			*f.dst = i
			i++
		}
	}
	pre := []preTokenizer{fastSplit{familyGPT2}}
	if opt.DigitsSingle {
		pre = append(pre, digitSplit{})
	}
	tok, err := newByteBPE(byteBPESpec{
		pieces: t.pieces, kinds: t.kinds, merges: merges, pre: pre,
		bos: t.bos, eos: t.eos, unk: -1, pad: t.pad,
		addBOS: opt.AddBOS,
	})
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	t.tok = tok
	stats.Duration = time.Since(tr.start)
	t.stats = stats
	return t, nil
}
