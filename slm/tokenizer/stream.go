package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// StreamDecoder decodes ids one at a time, as a model generates them. Push
// returns only complete UTF-8 text: bytes of a character that is split
// across tokens (byte-fallback <0xE2> pieces, byte-level partial bytes) are
// held back until the token that completes them. The concatenation of all
// Push results and the final Flush equals Decode of the same ids.
//
// A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	opt     DecodeOptions
	atStart bool   // the next text token loses its dummy-prefix space
	pending []byte // incomplete UTF-8 held back
	err     error
}

// NewStreamDecoder returns a decoder for text that starts with the first
// pushed id.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder {
	return t.NewStreamDecoderWith(DecodeOptions{})
}

// NewStreamDecoderWith returns a stream decoder with options.
func (t *Tokenizer) NewStreamDecoderWith(opt DecodeOptions) *StreamDecoder {
	return &StreamDecoder{t: t, opt: opt, atStart: t.strip != stripNone && !opt.Continuation}
}

// Push decodes one more id and returns the text that is now complete. An id
// outside the vocabulary yields U+FFFD and is reported by Err.
func (d *StreamDecoder) Push(id int) string {
	return string(d.push(nil, id))
}

// Flush returns the bytes still held back, each incomplete character
// replaced by U+FFFD. The decoder can be used further afterwards.
func (d *StreamDecoder) Flush() string {
	return string(d.flush(nil))
}

// Err returns the first error met: an id outside the vocabulary.
func (d *StreamDecoder) Err() error { return d.err }

func (d *StreamDecoder) push(dst []byte, id int) []byte {
	t := d.t
	if id < 0 || id >= len(t.kinds) || t.kinds[id] == kindMissing {
		if d.err == nil {
			d.err = fmt.Errorf("tokenizer: decode: id %d is not in the vocabulary (size %d)", id, len(t.kinds))
		}
		dst = d.flush(dst)
		return utf8.AppendRune(dst, utf8.RuneError)
	}
	kind := t.kinds[id]
	if t.isAdd[id] {
		if t.strip == stripAfterAdded && !d.opt.Continuation {
			d.atStart = true
		}
		if d.opt.SkipSpecial && (kind == kindControl || kind == kindUnknown) {
			return dst
		}
		return d.emit(dst, t.text[id])
	}
	if d.opt.SkipSpecial && (kind == kindControl || kind == kindUnknown) {
		return dst
	}
	text := t.text[id]
	if d.atStart {
		if len(text) > 0 && text[0] == ' ' {
			text = text[1:]
		}
		d.atStart = false
	}
	return d.emit(dst, text)
}

// emit appends the complete part of pending+text to dst and keeps an
// incomplete tail pending.
func (d *StreamDecoder) emit(dst []byte, text string) []byte {
	if text == "" {
		return dst
	}
	d.pending = append(d.pending, text...)
	keep := incompleteTail(d.pending)
	dst = appendValidUTF8(dst, d.pending[:len(d.pending)-keep])
	n := copy(d.pending, d.pending[len(d.pending)-keep:])
	d.pending = d.pending[:n]
	return dst
}

func (d *StreamDecoder) flush(dst []byte) []byte {
	dst = appendValidUTF8(dst, d.pending)
	d.pending = d.pending[:0]
	return dst
}
