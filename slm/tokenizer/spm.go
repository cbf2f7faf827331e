package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// spmSpec describes a SentencePiece-style vocabulary: pieces with scores and
// kinds, merged by score.
type spmSpec struct {
	pieces       []string
	scores       []float32
	kinds        []tokenKind
	byteFallback bool
	norm         spmNormalizer
	unk          int // -1: none
	bos, eos     int
	pad          int
	addBOS       bool
	addEOS       bool
	extraEOG     []int
}

// FromSentencePieceModel builds a tokenizer from a SentencePiece
// tokenizer.model (a serialized ModelProto) of the BPE type, as used by
// Llama 2, Mistral, Phi-3 and TinyLlama. It encodes exactly like
// SentencePiece's Encode; control pieces (<s>, </s>) are matched in text
// only with EncodeOptions.ParseSpecial.
func FromSentencePieceModel(data []byte) (*Tokenizer, error) {
	t, err := fromSentencePieceModel(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.model: %w", err)
	}
	return t, nil
}

func fromSentencePieceModel(data []byte) (*Tokenizer, error) {
	spec := spmSpec{
		// proto2 defaults
		norm: spmNormalizer{removeExtraSpaces: true, dummyPrefix: true, escapeSpaces: true},
		unk:  0, bos: 1, eos: 2, pad: -1,
		addBOS: true,
	}
	modelType := uint64(1) // UNIGRAM
	normName := ""
	var charsmap []byte
	treatWSAsSuffix := false
	err := pbEach(data, func(f pbField) error {
		switch f.num {
		case 1: // pieces
			if err := f.want(2, "piece"); err != nil {
				return err
			}
			piece, score, typ := "", float32(0), int32(typeNormal)
			err := pbEach(f.bytes, func(g pbField) error {
				switch g.num {
				case 1:
					if err := g.want(2, "piece.piece"); err != nil {
						return err
					}
					piece = string(g.bytes)
				case 2:
					if err := g.want(5, "piece.score"); err != nil {
						return err
					}
					score = math.Float32frombits(uint32(g.value))
				case 3:
					if err := g.want(0, "piece.type"); err != nil {
						return err
					}
					typ = int32(g.value)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("piece %d: %w", len(spec.pieces), err)
			}
			if typ < typeNormal || typ > typeByte {
				return fmt.Errorf("piece %d (%q): invalid type %d", len(spec.pieces), piece, typ)
			}
			spec.pieces = append(spec.pieces, piece)
			spec.scores = append(spec.scores, score)
			spec.kinds = append(spec.kinds, kindFromType(typ))
		case 2: // trainer_spec
			if err := f.want(2, "trainer_spec"); err != nil {
				return err
			}
			return pbEach(f.bytes, func(g pbField) error {
				if g.wire != 0 {
					return nil // strings and floats: not needed
				}
				v := int(int32(g.value))
				switch g.num {
				case 3:
					modelType = g.value
				case 24:
					treatWSAsSuffix = g.value != 0
				case 35:
					spec.byteFallback = g.value != 0
				case 40:
					spec.unk = v
				case 41:
					spec.bos = v
				case 42:
					spec.eos = v
				case 43:
					spec.pad = v
				}
				return nil
			})
		case 3: // normalizer_spec
			if err := f.want(2, "normalizer_spec"); err != nil {
				return err
			}
			return pbEach(f.bytes, func(g pbField) error {
				switch g.num {
				case 1:
					normName = string(g.bytes)
				case 2:
					charsmap = g.bytes
				case 3:
					spec.norm.dummyPrefix = g.value != 0
				case 4:
					spec.norm.removeExtraSpaces = g.value != 0
				case 5:
					spec.norm.escapeSpaces = g.value != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(spec.pieces) == 0 {
		return nil, errors.New("no pieces (not a SentencePiece model?)")
	}
	if modelType != 2 {
		return nil, fmt.Errorf("model type %d is not supported (only BPE = 2)", modelType)
	}
	if treatWSAsSuffix {
		return nil, errors.New("treat_whitespace_as_suffix is not supported")
	}
	if len(charsmap) > 0 && normName != "identity" {
		return nil, fmt.Errorf("normalization rule %q with a precompiled charsmap is not supported (only identity)", normName)
	}
	for _, p := range []*int{&spec.unk, &spec.bos, &spec.eos, &spec.pad} {
		if *p >= len(spec.pieces) || *p < 0 {
			*p = -1
		}
	}
	return newSPM(spec)
}

// FromLlama2cBin builds a tokenizer from a llama2.c tokenizer.bin: a little
// endian int32 max_token_length, then for each token a float32 score, an
// int32 length and the token bytes. Ids 0, 1 and 2 are <unk>, <s> and </s>;
// spaces are stored as ' ' (not U+2581). It encodes like llama2.c's encode()
// (which agrees with SentencePiece on these vocabularies).
func FromLlama2cBin(data []byte) (*Tokenizer, error) {
	t, err := fromLlama2cBin(data)
	if err != nil {
		return nil, fmt.Errorf("llama2.c tokenizer.bin: %w", err)
	}
	return t, nil
}

func fromLlama2cBin(data []byte) (*Tokenizer, error) {
	if len(data) < 4 {
		return nil, errors.New("file shorter than its 4-byte header")
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen <= 0 || maxLen > 1<<16 {
		return nil, fmt.Errorf("max_token_length %d out of range", maxLen)
	}
	spec := spmSpec{
		norm:   spmNormalizer{dummyPrefix: true, escapeSpaces: true},
		unk:    0,
		bos:    1,
		eos:    2,
		pad:    -1,
		addBOS: true,
	}
	off := 4
	for off < len(data) {
		i := len(spec.pieces)
		if len(data)-off < 8 {
			return nil, fmt.Errorf("token %d at byte %d: truncated header", i, off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int32(binary.LittleEndian.Uint32(data[off+4:]))
		off += 8
		if n < 0 || n > maxLen || int(n) > len(data)-off {
			return nil, fmt.Errorf("token %d at byte %d: length %d invalid (max_token_length %d, %d bytes left)", i, off-4, n, maxLen, len(data)-off)
		}
		piece := string(data[off : off+int(n)])
		off += int(n)
		kind := kindNormal
		switch {
		case i == 0:
			kind = kindUnknown
		case i == 1 || i == 2:
			kind = kindControl
			piece = strings.Trim(piece, "\n")
		case isBytePiece(piece):
			kind = kindByte
		default:
			piece = strings.ReplaceAll(piece, " ", spaceSymbol)
		}
		spec.pieces = append(spec.pieces, piece)
		spec.scores = append(spec.scores, score)
		spec.kinds = append(spec.kinds, kind)
	}
	if len(spec.pieces) < 3 {
		return nil, fmt.Errorf("only %d tokens; need at least <unk>, <s>, </s>", len(spec.pieces))
	}
	for _, k := range spec.kinds {
		if k == kindByte {
			spec.byteFallback = true
			break
		}
	}
	return newSPM(spec)
}

// isBytePiece reports whether p has the form <0xHH>.
func isBytePiece(p string) bool {
	_, ok := parseBytePiece(p)
	return ok
}

func parseBytePiece(p string) (byte, bool) {
	if len(p) != 6 || !strings.HasPrefix(p, "<0x") || p[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(p[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// newSPM builds a score-merged BPE tokenizer (SentencePiece BPE semantics).
func newSPM(s spmSpec) (*Tokenizer, error) {
	n := len(s.pieces)
	if len(s.scores) != n || len(s.kinds) != n {
		return nil, fmt.Errorf("%d pieces but %d scores and %d types", n, len(s.scores), len(s.kinds))
	}
	t := &Tokenizer{
		pieces: s.pieces,
		kinds:  s.kinds,
		text:   make([]string, n),
		lookup: make(map[string]int, n),
		isAdd:  make([]bool, n),
		bos:    s.bos, eos: s.eos, unk: s.unk, pad: s.pad,
		addBOS: s.addBOS && s.bos >= 0,
		addEOS: s.addEOS && s.eos >= 0,
	}
	m := &bpeModel{
		merges:       make(map[uint64]mergeRule, n*4),
		runeID:       make(map[rune]int32, 1024),
		byteFallback: s.byteFallback,
		unk:          int32(s.unk),
		fuseUnk:      true,
	}
	for i := range m.byteTok {
		m.byteTok[i] = -1
	}
	normal := make(map[string]int32, n) // mergeable pieces
	var added []addedToken
	for id, p := range s.pieces {
		if _, dup := t.lookup[p]; !dup {
			t.lookup[p] = id
		}
		sc := s.scores[id]
		if math.IsNaN(float64(sc)) || math.IsInf(float64(sc), 0) {
			return nil, fmt.Errorf("piece %d (%q): score %v is not finite", id, p, sc)
		}
		switch s.kinds[id] {
		case kindNormal:
			if p == "" {
				return nil, fmt.Errorf("piece %d is empty", id)
			}
			if !utf8.ValidString(p) {
				return nil, fmt.Errorf("piece %d (%q) is not valid UTF-8", id, p)
			}
			if _, dup := normal[p]; !dup {
				normal[p] = int32(id)
			}
			t.text[id] = strings.ReplaceAll(p, spaceSymbol, " ")
		case kindByte:
			b, ok := parseBytePiece(p)
			if !ok {
				return nil, fmt.Errorf("byte piece %d (%q) is not of the form <0xHH>", id, p)
			}
			if m.byteTok[b] < 0 {
				m.byteTok[b] = int32(id)
			}
			t.text[id] = string([]byte{b})
		case kindUnused:
			t.text[id] = strings.ReplaceAll(p, spaceSymbol, " ")
		case kindUserDefined:
			t.text[id] = strings.ReplaceAll(p, spaceSymbol, " ")
			added = append(added, addedToken{content: t.text[id], id: id})
			t.isAdd[id] = true
		case kindControl, kindUnknown:
			t.text[id] = p
			added = append(added, addedToken{content: p, id: id, special: true})
			t.isAdd[id] = true
		}
	}
	// Every split of a mergeable piece into two mergeable pieces is a merge,
	// ranked by the piece's score (higher first).
	splittable := true
	for p, id := range normal {
		if !spmWordShape(p) {
			splittable = false
		}
		if utf8.RuneCountInString(p) == 1 {
			r, _ := utf8.DecodeRuneInString(p)
			m.runeID[r] = id
			continue
		}
		prio := -s.scores[id]
		for k := range p {
			if k == 0 {
				continue
			}
			l, ok1 := normal[p[:k]]
			rr, ok2 := normal[p[k:]]
			if ok1 && ok2 {
				m.merges[pairKey(l, rr)] = mergeRule{prio: prio, id: id}
			}
		}
	}
	t.model = m
	t.norm = s.norm
	if splittable && s.norm.escapeSpaces {
		t.pre = []preTokenizer{spmWordSplit{}}
	}
	if s.norm.dummyPrefix {
		t.strip = stripAfterAdded
	}
	t.added = newAddedMatcher(added)
	t.eog = collectEOG(t, s.eos, s.extraEOG)
	return t, nil
}

// spmWordShape reports whether p is U+2581* followed by other characters
// only, the shape that makes spmWordSplit exact.
func spmWordShape(p string) bool {
	rest := strings.TrimLeft(p, spaceSymbol)
	return !strings.Contains(rest, spaceSymbol)
}

// eogNames are end-of-turn tokens that stop generation in the families
// usersim supports (as llama.cpp detects them).
var eogNames = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<|end_of_text|>", "</s>", "<EOT>"}

func collectEOG(t *Tokenizer, eos int, extra []int) []int {
	var out []int
	seen := map[int]bool{}
	add := func(id int) {
		if id >= 0 && id < len(t.pieces) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	add(eos)
	for _, id := range extra {
		add(id)
	}
	for _, name := range eogNames {
		if id, ok := t.lookup[name]; ok && (t.kinds[id] == kindControl || t.kinds[id] == kindUserDefined) {
			add(id)
		}
	}
	return out
}
