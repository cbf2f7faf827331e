package tokenizer

import (
	"fmt"
	"sync"
	"unicode/utf8"
)

// mergeRule is the result of merging an adjacent pair of symbols: the
// merged token and its priority (lower merges first; ties go to the
// leftmost pair). Rank-based BPE uses the merge rank as priority,
// score-based SentencePiece BPE uses the negated piece score.
type mergeRule struct {
	prio float32
	id   int32
}

func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// bpeModel turns one pre-tokenized word into token ids.
type bpeModel struct {
	merges map[uint64]mergeRule

	// byteLevel words are raw bytes; byteID holds the token of each byte's
	// byte-level character (-1 if absent). Otherwise words are text whose
	// characters are looked up in runeID.
	byteLevel bool
	byteID    [256]int32
	runeID    map[rune]int32

	byteFallback bool
	byteTok      [256]int32 // <0xXX> pieces, -1 if absent
	unk          int32      // -1: none
	fuseUnk      bool

	// ignoreMerges: a word that is itself a token is emitted whole
	// (Llama 3). whole maps words in vocabulary form to ids.
	ignoreMerges bool
	whole        map[string]int32

	cache    wordCache
	cacheOff bool // benchmarks only
}

// wordCache memoizes the ids of short words; it is safe for concurrent use.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

const (
	maxCachedWord  = 64      // bytes
	maxCacheWords  = 1 << 16 // entries before the cache is cleared
	heapScanCutoff = 12      // below this many symbols a linear scan beats the heap
)

func (c *wordCache) get(w string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCacheWords {
		c.m = make(map[string][]int32, 1024)
	}
	c.m[w] = ids
	c.mu.Unlock()
}

type symbol struct {
	id         int32
	prev, next int32 // indices into the symbol slice, -1 at the ends
}

// candidate is a possible merge of the symbol at pos with its successor.
type candidate struct {
	prio        float32
	pos         int32
	left, right int32 // ids at the time the candidate was made
	id          int32 // merged id
}

func (a candidate) less(b candidate) bool {
	return a.prio < b.prio || (a.prio == b.prio && a.pos < b.pos)
}

// candHeap is a binary min-heap of merge candidates.
type candHeap []candidate

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && s[r].less(s[l]) {
			m = r
		}
		if !s[m].less(s[i]) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// encodeWord appends the ids of word to dst.
func (m *bpeModel) encodeWord(dst []int, word string) ([]int, error) {
	if word == "" {
		return dst, nil
	}
	cacheable := len(word) <= maxCachedWord && !m.cacheOff
	if cacheable {
		if ids, ok := m.cache.get(word); ok {
			for _, id := range ids {
				dst = append(dst, int(id))
			}
			return dst, nil
		}
	}
	ids, err := m.tokenizeWord(word)
	if err != nil {
		return dst, err
	}
	if cacheable {
		m.cache.put(word, ids)
	}
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	return dst, nil
}

func (m *bpeModel) tokenizeWord(word string) ([]int32, error) {
	if m.ignoreMerges {
		key := word
		if m.byteLevel {
			key = byteLevelEncode(word)
		}
		if id, ok := m.whole[key]; ok {
			return []int32{id}, nil
		}
	}
	syms, err := m.initialSymbols(word)
	if err != nil {
		return nil, err
	}
	if len(syms) < heapScanCutoff {
		m.mergeScan(syms)
	} else {
		m.mergeHeap(syms)
	}
	out := make([]int32, 0, len(syms))
	for i := int32(0); i >= 0 && int(i) < len(syms); i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out, nil
}

// initialSymbols splits word into its first symbols: one per byte for
// byte-level BPE, one per character otherwise, with byte fallback or the
// unknown token for characters outside the vocabulary.
func (m *bpeModel) initialSymbols(word string) ([]symbol, error) {
	syms := make([]symbol, 0, len(word))
	add := func(id int32) {
		n := int32(len(syms))
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1})
	}
	if m.byteLevel {
		for i := 0; i < len(word); i++ {
			id := m.byteID[word[i]]
			if id < 0 {
				return nil, fmt.Errorf("byte 0x%02X has no token in the byte-level vocabulary", word[i])
			}
			add(id)
		}
	} else {
		lastUnk := false
		for i := 0; i < len(word); {
			r, size := utf8.DecodeRuneInString(word[i:])
			if r != utf8.RuneError || size > 1 {
				if id, ok := m.runeID[r]; ok {
					add(id)
					i += size
					lastUnk = false
					continue
				}
			}
			chunk := word[i : i+size]
			i += size
			if m.byteFallback && m.hasBytes(chunk) {
				for j := 0; j < len(chunk); j++ {
					add(m.byteTok[chunk[j]])
				}
				lastUnk = false
				continue
			}
			if m.unk < 0 {
				return nil, fmt.Errorf("character %q is not in the vocabulary and the tokenizer has no unknown token", chunk)
			}
			if !(m.fuseUnk && lastUnk) {
				add(m.unk)
			}
			lastUnk = true
		}
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms, nil
}

func (m *bpeModel) hasBytes(chunk string) bool {
	for j := 0; j < len(chunk); j++ {
		if m.byteTok[chunk[j]] < 0 {
			return false
		}
	}
	return true
}

// mergeScan merges by repeatedly scanning for the best pair; quadratic but
// fast for the short words most pre-tokenizers produce.
func (m *bpeModel) mergeScan(syms []symbol) {
	for {
		best := candidate{pos: -1}
		for i := int32(0); i >= 0; i = syms[i].next {
			j := syms[i].next
			if j < 0 {
				break
			}
			r, ok := m.merges[pairKey(syms[i].id, syms[j].id)]
			if !ok {
				continue
			}
			if best.pos < 0 || r.prio < best.prio {
				best = candidate{prio: r.prio, pos: i, id: r.id}
			}
		}
		if best.pos < 0 {
			return
		}
		m.apply(syms, best.pos, best.id)
	}
}

// apply merges the symbol at pos with its successor into id.
func (m *bpeModel) apply(syms []symbol, pos, id int32) {
	j := syms[pos].next
	syms[pos].id = id
	nn := syms[j].next
	syms[pos].next = nn
	if nn >= 0 {
		syms[nn].prev = pos
	}
	syms[j].id = -1 // dead
}

// mergeHeap merges with a priority queue: O(n log n) for long words such as
// the unsplit text SentencePiece tokenizers see.
func (m *bpeModel) mergeHeap(syms []symbol) {
	h := make(candHeap, 0, len(syms))
	try := func(i int32) {
		if i < 0 {
			return
		}
		j := syms[i].next
		if j < 0 {
			return
		}
		if r, ok := m.merges[pairKey(syms[i].id, syms[j].id)]; ok {
			h.push(candidate{prio: r.prio, pos: i, left: syms[i].id, right: syms[j].id, id: r.id})
		}
	}
	for i := range syms {
		try(int32(i))
	}
	for len(h) > 0 {
		c := h.pop()
		s := syms[c.pos]
		if s.id != c.left || s.next < 0 || syms[s.next].id != c.right {
			continue // stale
		}
		m.apply(syms, c.pos, c.id)
		try(syms[c.pos].prev)
		try(c.pos)
	}
}
