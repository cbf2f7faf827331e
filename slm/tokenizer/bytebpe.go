package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// byteBPESpec describes a byte-level BPE vocabulary in GGUF or GPT-2 form.
type byteBPESpec struct {
	pieces       []string
	kinds        []tokenKind
	merges       [][2]string
	pre          []preTokenizer
	ignoreMerges bool
	bos, eos     int
	unk, pad     int
	addBOS       bool
	addEOS       bool
	extraEOG     []int
}

func newByteBPE(s byteBPESpec) (*Tokenizer, error) {
	n := len(s.pieces)
	if len(s.kinds) != n {
		return nil, fmt.Errorf("%d tokens but %d types", n, len(s.kinds))
	}
	t := &Tokenizer{
		pieces: s.pieces,
		kinds:  s.kinds,
		text:   make([]string, n),
		lookup: make(map[string]int, n),
		isAdd:  make([]bool, n),
		pre:    s.pre,
		bos:    s.bos, eos: s.eos, unk: s.unk, pad: s.pad,
		addBOS: s.addBOS, addEOS: s.addEOS,
	}
	m := &bpeModel{
		merges:       make(map[uint64]mergeRule, len(s.merges)),
		byteLevel:    true,
		unk:          -1,
		ignoreMerges: s.ignoreMerges,
	}
	for i := range m.byteID {
		m.byteID[i], m.byteTok[i] = -1, -1
	}
	var added []addedToken
	for id, p := range s.pieces {
		if p == "" {
			return nil, fmt.Errorf("token %d is empty", id)
		}
		if _, dup := t.lookup[p]; !dup {
			t.lookup[p] = id
		}
		switch s.kinds[id] {
		case kindControl, kindUnknown:
			t.text[id] = p
			t.isAdd[id] = true
			added = append(added, addedToken{content: p, id: id, special: true})
		case kindUserDefined:
			t.text[id] = p
			t.isAdd[id] = true
			added = append(added, addedToken{content: p, id: id})
		default:
			t.text[id], _ = byteLevelDecode(p)
		}
	}
	for b := 0; b < 256; b++ {
		if id, ok := t.lookup[string(byteToRune[b])]; ok {
			m.byteID[b] = int32(id)
		}
	}
	if s.ignoreMerges {
		m.whole = make(map[string]int32, n)
		for p, id := range t.lookup {
			if s.kinds[id] == kindNormal {
				m.whole[p] = int32(id)
			}
		}
	}
	for rank, mg := range s.merges {
		a, ok1 := t.lookup[mg[0]]
		b, ok2 := t.lookup[mg[1]]
		c, ok3 := t.lookup[mg[0]+mg[1]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("merge %d (%q %q): token not in the vocabulary", rank, mg[0], mg[1])
		}
		k := pairKey(int32(a), int32(b))
		if _, dup := m.merges[k]; !dup {
			m.merges[k] = mergeRule{prio: float32(rank), id: int32(c)}
		}
	}
	for _, p := range []*int{&t.bos, &t.eos, &t.unk, &t.pad} {
		if *p >= n || *p < 0 {
			*p = -1
		}
	}
	t.addBOS = t.addBOS && t.bos >= 0
	t.addEOS = t.addEOS && t.eos >= 0
	t.model = m
	t.added = newAddedMatcher(added)
	t.eog = collectEOG(t, t.eos, s.extraEOG)
	return t, nil
}

// FromGPT2Files builds the GPT-2 tokenizer from OpenAI's encoder.json (token
// → id) and vocab.bpe (merges, one "a b" per line after a #version line).
// <|endoftext|> is special: with EncodeOptions.ParseSpecial it is matched
// in the text, otherwise encoded as text, as OpenAI's encoder does.
func FromGPT2Files(encoderJSON, vocabBPE []byte) (*Tokenizer, error) {
	var enc map[string]int
	if err := json.Unmarshal(encoderJSON, &enc); err != nil {
		return nil, fmt.Errorf("encoder.json: %w", err)
	}
	if len(enc) == 0 {
		return nil, errors.New("encoder.json: empty")
	}
	n := 0
	for p, id := range enc {
		if id < 0 || id >= maxVocab {
			return nil, fmt.Errorf("encoder.json: token %q has id %d out of range", p, id)
		}
		n = max(n, id+1)
	}
	if n != len(enc) {
		return nil, fmt.Errorf("encoder.json: ids are not 0..%d (largest %d)", len(enc)-1, n-1)
	}
	pieces := make([]string, n)
	kinds := make([]tokenKind, n)
	for p, id := range enc {
		if pieces[id] != "" {
			return nil, fmt.Errorf("encoder.json: id %d used by %q and %q", id, pieces[id], p)
		}
		pieces[id] = p
		kinds[id] = kindNormal
	}
	eot := -1
	if id, ok := enc["<|endoftext|>"]; ok {
		kinds[id] = kindControl
		eot = id
	}
	var merges [][2]string
	for i, line := range bytes.Split(vocabBPE, []byte("\n")) {
		s := strings.TrimRight(string(line), "\r")
		if s == "" || (i == 0 && strings.HasPrefix(s, "#version")) {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || a == "" || b == "" || strings.Contains(b, " ") {
			return nil, fmt.Errorf("vocab.bpe: line %d: %q is not two tokens separated by a space", i+1, truncate(s, 40))
		}
		merges = append(merges, [2]string{a, b})
	}
	t, err := newByteBPE(byteBPESpec{
		pieces: pieces, kinds: kinds, merges: merges,
		pre: []preTokenizer{fastSplit{familyGPT2}},
		bos: eot, eos: eot, unk: -1, pad: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("gpt2: %w", err)
	}
	return t, nil
}
