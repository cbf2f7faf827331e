package tokenizer

import (
	"errors"
	"fmt"
)

// tokenKind classifies vocabulary entries the way SentencePiece and GGUF do.
type tokenKind uint8

const (
	kindMissing     tokenKind = iota // no token has this id
	kindNormal                       // produced by the model
	kindUnknown                      // <unk>
	kindControl                      // special: <s>, </s>, <|im_start|>
	kindUserDefined                  // added, not special: matched verbatim in text
	kindUnused                       // never produced
	kindByte                         // <0xXX> byte-fallback piece
)

// GGUF / SentencePiece token type numbers.
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

func kindFromType(t int32) tokenKind {
	switch t {
	case typeUnknown:
		return kindUnknown
	case typeControl:
		return kindControl
	case typeUserDefined:
		return kindUserDefined
	case typeUnused:
		return kindUnused
	case typeByte:
		return kindByte
	default:
		return kindNormal
	}
}

// stripRule says where Decode removes the dummy-prefix space that
// SentencePiece-style tokenizers put in front of encoded text.
type stripRule uint8

const (
	stripNone       stripRule = iota
	stripAtStart              // only at the start of the text
	stripAfterAdded           // at the start and after every matched added token
)

// EncodeOptions control Encode.
type EncodeOptions struct {
	AddBOS bool // prepend the BOS token
	AddEOS bool // append the EOS token
	// ParseSpecial matches special tokens (<s>, <|im_start|>, ...) written in
	// the text; without it their text is encoded as ordinary text.
	// Non-special added tokens are always matched.
	ParseSpecial bool
	// Continuation encodes text that continues earlier text (a candidate
	// answer after a prompt): SentencePiece-style tokenizers add no
	// dummy-prefix space to its start. It does not affect text after a
	// matched added token, which starts a new segment.
	Continuation bool
}

// DecodeOptions control Decode and NewStreamDecoderWith.
type DecodeOptions struct {
	// SkipSpecial drops special tokens (control and unknown) from the output.
	SkipSpecial bool
	// Continuation marks ids that continue earlier text (generated tokens
	// after a prompt): the dummy-prefix space of SentencePiece-style
	// tokenizers is not removed from the first token.
	Continuation bool
}

// Tokenizer converts between text and token ids. It is safe for concurrent
// use.
type Tokenizer struct {
	pieces []string    // vocabulary form of each id ("▁Hello", "Ġworld", "<0x0A>", "<s>")
	kinds  []tokenKind // kind of each id
	text   []string    // bytes each id decodes to
	lookup map[string]int

	added  *addedMatcher
	isAdd  []bool // id is matched verbatim by added (splits segments)
	norm   normalizer
	pre    []preTokenizer
	model  *bpeModel
	strip  stripRule
	bos    int
	eos    int
	unk    int
	pad    int
	eog    []int
	addBOS bool
	addEOS bool
}

// Encode converts text to token ids.
func (t *Tokenizer) Encode(text string, opt EncodeOptions) ([]int, error) {
	ids := make([]int, 0, len(text)/2+2)
	if opt.AddBOS {
		if t.bos < 0 {
			return nil, errors.New("tokenizer: AddBOS: the tokenizer has no BOS token")
		}
		ids = append(ids, t.bos)
	}
	var err error
	for _, seg := range t.added.split(text, opt.ParseSpecial) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		pos := segPos{first: seg.start == 0, noPrefix: opt.Continuation && seg.start == 0}
		if ids, err = t.encodeSegment(ids, seg.text, pos); err != nil {
			return nil, fmt.Errorf("tokenizer: encode: %w", err)
		}
	}
	if opt.AddEOS {
		if t.eos < 0 {
			return nil, errors.New("tokenizer: AddEOS: the tokenizer has no EOS token")
		}
		ids = append(ids, t.eos)
	}
	return ids, nil
}

func (t *Tokenizer) encodeSegment(ids []int, s string, pos segPos) ([]int, error) {
	if s == "" {
		return ids, nil
	}
	var err error
	if t.norm != nil {
		if s, err = t.norm.normalize(s, pos.noPrefix); err != nil {
			return nil, err
		}
	}
	if len(t.pre) == 0 {
		return t.model.encodeWord(ids, s)
	}
	words, err := preTokenize(t.pre, s, pos)
	if err != nil {
		return nil, err
	}
	for _, w := range words {
		if ids, err = t.model.encodeWord(ids, w); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// Decode converts ids to text, rendering special tokens as their text. It
// equals the concatenated output of a StreamDecoder fed the same ids.
func (t *Tokenizer) Decode(ids []int) (string, error) {
	return t.DecodeWith(ids, DecodeOptions{})
}

// DecodeWith is Decode with options.
func (t *Tokenizer) DecodeWith(ids []int, opt DecodeOptions) (string, error) {
	d := t.NewStreamDecoderWith(opt)
	buf := make([]byte, 0, len(ids)*4)
	for _, id := range ids {
		buf = d.push(buf, id)
		if d.err != nil {
			return "", d.err
		}
	}
	buf = d.flush(buf)
	return string(buf), nil
}

// VocabSize is the number of token ids (one more than the largest id).
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// BOS returns the beginning-of-sequence id, or -1 if there is none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the end-of-sequence id, or -1 if there is none.
func (t *Tokenizer) EOS() int { return t.eos }

// UNK returns the unknown-token id, or -1 if there is none.
func (t *Tokenizer) UNK() int { return t.unk }

// PAD returns the padding id, or -1 if there is none.
func (t *Tokenizer) PAD() int { return t.pad }

// EOSIDs returns every id that ends generation: EOS plus end-of-turn tokens
// such as <|im_end|>, <|eot_id|> or <|endoftext|>.
func (t *Tokenizer) EOSIDs() []int { return append([]int(nil), t.eog...) }

// IsEOS reports whether id ends generation.
func (t *Tokenizer) IsEOS(id int) bool {
	for _, e := range t.eog {
		if e == id {
			return true
		}
	}
	return false
}

// AddBOSDefault reports whether the model expects BOS before its input
// (tokenizer_config add_bos_token, GGUF add_bos_token, SentencePiece: true).
func (t *Tokenizer) AddBOSDefault() bool { return t.addBOS }

// AddEOSDefault reports whether the model's post-processor appends EOS.
func (t *Tokenizer) AddEOSDefault() bool { return t.addEOS }

// TokenText returns the vocabulary form of id ("▁Hello", "Ġworld",
// "<0x0A>", "<|im_start|>"), or "" for an id outside the vocabulary.
func (t *Tokenizer) TokenText(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// TokenBytes returns the text id decodes to on its own (byte-level and
// byte-fallback tokens may be partial UTF-8), or "" for an unknown id.
func (t *Tokenizer) TokenBytes(id int) string {
	if id < 0 || id >= len(t.text) {
		return ""
	}
	return t.text[id]
}

// ID returns the id of a token given in vocabulary form.
func (t *Tokenizer) ID(piece string) (int, bool) {
	id, ok := t.lookup[piece]
	return id, ok
}

// IsSpecial reports whether id is a special token (control or unknown).
func (t *Tokenizer) IsSpecial(id int) bool {
	if id < 0 || id >= len(t.kinds) {
		return false
	}
	k := t.kinds[id]
	return k == kindControl || k == kindUnknown
}
