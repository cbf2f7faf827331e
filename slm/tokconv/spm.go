package tokconv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A SentencePiece tokenizer.model is a serialized ModelProto: repeated
// pieces (field 1: piece, score, type), a trainer_spec (field 2) and a
// normalizer_spec (field 3). Its piece types are GGUF's token types
// (1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte), so
// they carry over unchanged.

// ModelProto field numbers used here.
const (
	trainerModelType    = 3  // trainer_spec.model_type; 2 is BPE
	trainerByteFallback = 35 // trainer_spec.byte_fallback
	trainerUnkID        = 40 // trainer_spec.unk_id, bos_id, eos_id, pad_id follow
	trainerBOSID        = 41
	trainerEOSID        = 42
	trainerPadID        = 43
	normName            = 1 // normalizer_spec.name
	normDummyPrefix     = 3 // normalizer_spec.add_dummy_prefix
	normRemoveSpaces    = 4 // normalizer_spec.remove_extra_whitespaces
	normEscapeSpaces    = 5 // normalizer_spec.escape_whitespaces
	modelTypeBPE        = 2
)

// FromSPMModel reads a SentencePiece tokenizer.model of the BPE type
// (Llama 2, Mistral, Phi-3, TinyLlama) into a "llama" vocabulary with the
// model's own scores, as llama.cpp's converter does. BOS is added by
// default, as SentencePiece and llama.cpp do.
func FromSPMModel(data []byte) (*Vocab, error) {
	v := &Vocab{}
	v.Model = "llama"
	v.AddBOS = true
	ids := map[int]int64{trainerUnkID: 0, trainerBOSID: 1, trainerEOSID: 2, trainerPadID: -1} // proto2 defaults
	modelType := uint64(1)
	dummy := true
	v.RemoveExtraWhitespaces = true
	err := pbFields(data, func(num, wire int, x uint64, b []byte) error {
		switch num {
		case 1:
			piece, score, typ := "", float32(0), int32(typeNormal)
			if err := pbFields(b, func(num, wire int, x uint64, b []byte) error {
				switch num {
				case 1:
					piece = string(b)
				case 2:
					score = math.Float32frombits(uint32(x))
				case 3:
					typ = int32(x)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("piece %d: %w", len(v.Tokens), err)
			}
			if typ < typeNormal || typ > typeByte {
				return fmt.Errorf("piece %d (%q): invalid type %d", len(v.Tokens), piece, typ)
			}
			v.Tokens, v.Scores, v.Types = append(v.Tokens, piece), append(v.Scores, score), append(v.Types, typ)
		case 2:
			return pbFields(b, func(num, wire int, x uint64, b []byte) error {
				if wire != 0 {
					return nil
				}
				if num == trainerModelType {
					modelType = x
				}
				if _, ok := ids[num]; ok {
					ids[num] = int64(int32(x))
				}
				return nil
			})
		case 3:
			return pbFields(b, func(num, wire int, x uint64, b []byte) error {
				switch num {
				case normDummyPrefix:
					dummy = x != 0
				case normRemoveSpaces:
					v.RemoveExtraWhitespaces = x != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tokenizer.model: %w", err)
	}
	if len(v.Tokens) == 0 {
		return nil, errors.New("tokenizer.model: no pieces (not a SentencePiece model?)")
	}
	if modelType != modelTypeBPE {
		return nil, fmt.Errorf("tokenizer.model: model type %d is not BPE (%d)", modelType, modelTypeBPE)
	}
	v.AddSpacePrefix = &dummy
	v.UNK, v.BOS, v.EOS, v.PAD = -1, -1, -1, -1
	for num, dst := range map[int]*int{trainerUnkID: &v.UNK, trainerBOSID: &v.BOS, trainerEOSID: &v.EOS, trainerPadID: &v.PAD} {
		if id := ids[num]; id >= 0 && id < int64(len(v.Tokens)) {
			*dst = int(id)
		}
	}
	return v, nil
}

// SPMModel returns v, a "llama" vocabulary, as a SentencePiece
// tokenizer.model of the BPE type.
func (v *Vocab) SPMModel() ([]byte, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	if v.Model != "llama" {
		return nil, fmt.Errorf("tokenizer.ggml.model %q: only SentencePiece (llama) vocabularies can be written as tokenizer.model", v.Model)
	}
	var model []byte
	byteFallback := false
	for id, tok := range v.Tokens {
		typ := v.tokenType(id)
		byteFallback = byteFallback || typ == typeByte
		p := pbBytes(nil, 1, []byte(tok))
		p = pbFixed32(p, 2, math.Float32bits(v.Scores[id]))
		p = pbVarint(p, 3, uint64(typ))
		model = pbBytes(model, 1, p)
	}
	trainer := pbVarint(nil, trainerModelType, modelTypeBPE)
	if byteFallback {
		trainer = pbVarint(trainer, trainerByteFallback, 1)
	}
	for _, f := range []struct{ num, id int }{{trainerUnkID, v.UNK}, {trainerBOSID, v.BOS}, {trainerEOSID, v.EOS}, {trainerPadID, v.PAD}} {
		trainer = pbVarint(trainer, f.num, uint64(int64(f.id))) // -1 as a 64-bit varint, as protobuf writes it
	}
	norm := pbBytes(nil, normName, []byte("identity"))
	norm = pbVarint(norm, normDummyPrefix, b2u(v.AddSpacePrefix == nil || *v.AddSpacePrefix))
	norm = pbVarint(norm, normRemoveSpaces, b2u(v.RemoveExtraWhitespaces))
	norm = pbVarint(norm, normEscapeSpaces, 1)
	model = pbBytes(model, 2, trainer)
	return pbBytes(model, 3, norm), nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func pbTag(b []byte, num, wire int) []byte {
	return binary.AppendUvarint(b, uint64(num)<<3|uint64(wire))
}

func pbVarint(b []byte, num int, x uint64) []byte {
	return binary.AppendUvarint(pbTag(b, num, 0), x)
}

func pbFixed32(b []byte, num int, x uint32) []byte {
	return binary.LittleEndian.AppendUint32(pbTag(b, num, 5), x)
}

func pbBytes(b []byte, num int, data []byte) []byte {
	b = binary.AppendUvarint(pbTag(b, num, 2), uint64(len(data)))
	return append(b, data...)
}

// pbFields calls fn for every field of a protobuf message: x holds varint
// and fixed payloads, data length-delimited ones.
func pbFields(b []byte, fn func(num, wire int, x uint64, data []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag>>3 == 0 || tag>>3 > math.MaxInt32 {
			return errors.New("bad field tag")
		}
		b = b[n:]
		num, wire := int(tag>>3), int(tag&7)
		var x uint64
		var data []byte
		switch wire {
		case 0:
			x, n = binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: bad varint", num)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return fmt.Errorf("field %d: truncated", num)
			}
			x, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			if len(b) < 4 {
				return fmt.Errorf("field %d: truncated", num)
			}
			x, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("field %d: bad length", num)
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", num, wire)
		}
		if err := fn(num, wire, x, data); err != nil {
			return err
		}
	}
	return nil
}
