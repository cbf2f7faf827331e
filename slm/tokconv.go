package slm

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/tokenizer"
)

// This file moves SentencePiece vocabularies (Llama 2, Mistral, Phi-3,
// TinyLlama, stories) between GGUF metadata (tokenizer.ggml.model "llama")
// and a Hugging Face directory's tokenizer.model (a serialized
// sentencepiece ModelProto), so that conversions keep the tokenizer.
// GGUF's token types use SentencePiece's piece type numbers (1 normal,
// 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte), so they carry
// over unchanged. Byte-level BPE vocabularies (tokenizer.json, GGUF "gpt2")
// are not converted here.

// writeSPMModel writes the GGUF SentencePiece vocabulary v as a
// tokenizer.model and a tokenizer_config.json into dir.
func writeSPMModel(dir string, v tokenizer.GGUFVocab) error {
	if v.Model != "llama" {
		return fmt.Errorf("tokenizer: GGUF model %q: only SentencePiece (llama) vocabularies can be written as tokenizer.model", v.Model)
	}
	if v.Scores != nil && len(v.Scores) != len(v.Tokens) || v.Types != nil && len(v.Types) != len(v.Tokens) {
		return errors.New("tokenizer: GGUF scores/types do not match the tokens")
	}
	var pieces []byte
	byteFallback := false
	for i, tok := range v.Tokens {
		var p []byte
		p = pbBytes(p, 1, []byte(tok))
		var score float32
		if v.Scores != nil {
			score = v.Scores[i]
		}
		p = pbFixed32(p, 2, math.Float32bits(score))
		typ := int32(1)
		if v.Types != nil {
			typ = v.Types[i]
		}
		if typ == 6 {
			byteFallback = true
		}
		p = pbVarint(p, 3, uint64(typ))
		pieces = pbBytes(pieces, 1, p)
	}
	var trainer []byte
	trainer = pbVarint(trainer, 3, 2) // model_type BPE
	if byteFallback {
		trainer = pbVarint(trainer, 35, 1)
	}
	for _, f := range []struct {
		num int
		id  int
	}{{40, v.UNK}, {41, v.BOS}, {42, v.EOS}, {43, v.PAD}} {
		trainer = pbVarint(trainer, f.num, uint64(int64(f.id))) // -1 as a 64-bit varint, as protobuf does
	}
	var norm []byte
	norm = pbBytes(norm, 1, []byte("identity"))
	dummy := v.AddSpacePrefix == nil || *v.AddSpacePrefix
	norm = pbVarint(norm, 3, b2u(dummy))
	norm = pbVarint(norm, 4, b2u(v.RemoveExtraWhitespaces))
	norm = pbVarint(norm, 5, 1)
	model := append(pieces, pbBytes(nil, 2, trainer)...)
	model = append(model, pbBytes(nil, 3, norm)...)
	if err := writeFileAtomic(filepath.Join(dir, "tokenizer.model"), model); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	cfg := map[string]any{"add_bos_token": v.AddBOS, "add_eos_token": v.AddEOS, "clean_up_tokenization_spaces": false,
		"tokenizer_class": "LlamaTokenizer", "legacy": true}
	for key, id := range map[string]int{"bos_token": v.BOS, "eos_token": v.EOS, "unk_token": v.UNK, "pad_token": v.PAD} {
		if id >= 0 && id < len(v.Tokens) {
			cfg[key] = v.Tokens[id]
		}
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "tokenizer_config.json"), append(b, '\n'))
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

func pbVarint(b []byte, num int, v uint64) []byte {
	return binary.AppendUvarint(pbTag(b, num, 0), v)
}

func pbFixed32(b []byte, num int, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(pbTag(b, num, 5), v)
}

func pbBytes(b []byte, num int, v []byte) []byte {
	b = binary.AppendUvarint(pbTag(b, num, 2), uint64(len(v)))
	return append(b, v...)
}

// pbFields calls fn for every field of a protobuf message.
func pbFields(b []byte, fn func(num, wire int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad field tag")
		}
		b = b[n:]
		num, wire := int(tag>>3), int(tag&7)
		var v uint64
		var data []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: bad varint", num)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return fmt.Errorf("field %d: truncated", num)
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 5:
			if len(b) < 4 {
				return fmt.Errorf("field %d: truncated", num)
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("field %d: bad length", num)
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", num, wire)
		}
		if err := fn(num, wire, v, data); err != nil {
			return err
		}
	}
	return nil
}

// spmToGGUFMeta reads a SentencePiece tokenizer.model (BPE) and returns
// the equivalent tokenizer.ggml.* metadata, as llama.cpp's converter
// writes it. tokenizer_config.json's add_bos_token/add_eos_token, when
// present beside it, are honoured.
func spmToGGUFMeta(path string) ([]gguf.KV, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tokens []string
	var scores []float32
	var types []int32
	modelType := uint64(1)
	ids := map[int]int64{40: 0, 41: 1, 42: 2, 43: -1}
	dummy, removeWS := true, true
	err = pbFields(data, func(num, wire int, v uint64, b []byte) error {
		switch num {
		case 1:
			piece, score, typ := "", float32(0), int32(1)
			if err := pbFields(b, func(num, wire int, v uint64, b []byte) error {
				switch num {
				case 1:
					piece = string(b)
				case 2:
					score = math.Float32frombits(uint32(v))
				case 3:
					typ = int32(v)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("piece %d: %w", len(tokens), err)
			}
			tokens, scores, types = append(tokens, piece), append(scores, score), append(types, typ)
		case 2:
			return pbFields(b, func(num, wire int, v uint64, b []byte) error {
				if wire != 0 {
					return nil
				}
				if num == 3 {
					modelType = v
				}
				if _, ok := ids[num]; ok {
					ids[num] = int64(int32(v))
				}
				return nil
			})
		case 3:
			return pbFields(b, func(num, wire int, v uint64, b []byte) error {
				switch num {
				case 3:
					dummy = v != 0
				case 4:
					removeWS = v != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no pieces", path)
	}
	if modelType != 2 {
		return nil, fmt.Errorf("%s: sentencepiece model type %d is not BPE", path, modelType)
	}
	addBOS, addEOS := true, false
	if cfg, err := os.ReadFile(filepath.Join(filepath.Dir(path), "tokenizer_config.json")); err == nil {
		var c struct {
			AddBOS *bool `json:"add_bos_token"`
			AddEOS *bool `json:"add_eos_token"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
		if c.AddBOS != nil {
			addBOS = *c.AddBOS
		}
		if c.AddEOS != nil {
			addEOS = *c.AddEOS
		}
	}
	meta := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.String("llama")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.Strings(tokens)},
		{Key: "tokenizer.ggml.scores", Value: gguf.Float32s(scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.Int32s(types)},
	}
	for _, k := range []struct {
		num  int
		name string
	}{{40, "unknown"}, {41, "bos"}, {42, "eos"}, {43, "padding"}} {
		if id := ids[k.num]; id >= 0 && id < int64(len(tokens)) {
			meta = append(meta, gguf.KV{Key: "tokenizer.ggml." + k.name + "_token_id", Value: gguf.Uint32(uint32(id))})
		}
	}
	meta = append(meta,
		gguf.KV{Key: "tokenizer.ggml.add_bos_token", Value: gguf.Bool(addBOS)},
		gguf.KV{Key: "tokenizer.ggml.add_eos_token", Value: gguf.Bool(addEOS)},
		gguf.KV{Key: "tokenizer.ggml.add_space_prefix", Value: gguf.Bool(dummy)},
		gguf.KV{Key: "tokenizer.ggml.remove_extra_whitespaces", Value: gguf.Bool(removeWS)})
	return meta, nil
}
