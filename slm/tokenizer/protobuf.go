package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A minimal protocol-buffer wire-format reader, enough for SentencePiece's
// ModelProto. Every read is bounds-checked.

type pbField struct {
	num   int
	wire  int
	value uint64 // varint, fixed32 and fixed64 payloads
	bytes []byte // length-delimited payload
}

var errTruncated = errors.New("truncated message")

func pbVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			return 0, 0, errors.New("varint overflows 64 bits")
		}
		v |= uint64(c&0x7F) << (7 * i)
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	if len(b) < 10 {
		return 0, 0, errTruncated
	}
	return 0, 0, errors.New("varint longer than 10 bytes")
}

// pbEach calls fn for each field of the message in b.
func pbEach(b []byte, fn func(f pbField) error) error {
	for len(b) > 0 {
		tag, n, err := pbVarint(b)
		if err != nil {
			return err
		}
		b = b[n:]
		f := pbField{num: int(tag >> 3), wire: int(tag & 7)}
		if f.num == 0 || tag>>3 > math.MaxInt32 {
			return fmt.Errorf("invalid field number %d", tag>>3)
		}
		switch f.wire {
		case 0:
			if f.value, n, err = pbVarint(b); err != nil {
				return err
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errTruncated
			}
			f.value = binary.LittleEndian.Uint64(b)
			b = b[8:]
		case 2:
			l, n, err := pbVarint(b)
			if err != nil {
				return err
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return fmt.Errorf("field %d: length %d exceeds the %d bytes left", f.num, l, len(b))
			}
			f.bytes = b[:l]
			b = b[l:]
		case 5:
			if len(b) < 4 {
				return errTruncated
			}
			f.value = uint64(binary.LittleEndian.Uint32(b))
			b = b[4:]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", f.num, f.wire)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

func (f pbField) want(wire int, what string) error {
	if f.wire != wire {
		return fmt.Errorf("%s (field %d) has wire type %d, want %d", what, f.num, f.wire, wire)
	}
	return nil
}
