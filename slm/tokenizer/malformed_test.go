package tokenizer

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// miniJSON is a small valid byte-level tokenizer.json.
const miniJSON = `{
 "added_tokens": [{"id": 6, "content": "<|end|>", "special": true}],
 "normalizer": {"type": "NFC"},
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
   {"type": "Split", "pattern": {"Regex": "\\p{N}| ?\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": false},
   {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
 "post_processor": {"type": "ByteLevel"},
 "decoder": {"type": "ByteLevel"},
 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġab": 4, "1": 5}, "merges": ["a b", "Ġ ab"]}
}`

// miniSPMJSON is a small valid SentencePiece-style tokenizer.json.
const miniSPMJSON = `{
 "added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}],
 "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
 "pre_tokenizer": null,
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
 "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
   "vocab": {"<unk>": 0, "<s>": 1, "<0xC3>": 2, "<0xA9>": 3, "▁": 4, "a": 5, "b": 6, "▁a": 7, "ab": 8, "▁ab": 9},
   "merges": ["▁ a", "a b", "▁a b"]}
}`

func TestMiniTokenizers(t *testing.T) {
	tok, err := FromHFJSON([]byte(miniJSON))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tok.Encode("ab ab1", EncodeOptions{})
	if err != nil || !equalInts(got, []int{3, 4, 5}) {
		t.Errorf("byte-level Encode = %v, %v; want [3 4 5]", got, err)
	}
	if _, err := tok.Encode("c", EncodeOptions{}); err == nil || !strings.Contains(err.Error(), "0x63") {
		t.Errorf("byte outside the vocabulary: err = %v", err)
	}
	spm, err := FromHFJSON([]byte(miniSPMJSON))
	if err != nil {
		t.Fatal(err)
	}
	got, err = spm.Encode("ab é", EncodeOptions{AddBOS: spm.AddBOSDefault()})
	if err != nil || !equalInts(got, []int{1, 9, 4, 2, 3}) {
		t.Errorf("spm Encode = %v, %v; want [1 9 4 2 3]", got, err)
	}
	if dec, _ := spm.Decode(got); dec != "<s>ab é" {
		t.Errorf("spm Decode = %q", dec)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMalformedHFJSON(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"not json", miniJSON, "{", "unexpected end"},
		{"unigram", `"type": "BPE"`, `"type": "Unigram"`, `type "Unigram" is not supported`},
		{"negative id", `"a": 0`, `"a": -4`, "out of range"},
		{"huge id", `"1": 5`, `"1": 99999999`, "out of range"},
		{"sparse ids", `"1": 5`, `"1": 500000`, "far beyond"},
		{"duplicate id", `"1": 5`, `"1": 4`, "is used by both"},
		{"merge not in vocab", `"Ġ ab"`, `"Ġ zz"`, "not in the vocabulary"},
		{"merge not a pair", `"Ġ ab"`, `"Ġab"`, "not two tokens"},
		{"bad merge type", `"Ġ ab"`, `7`, "want \"a b\" or [a, b]"},
		{"merge triple", `["a b", "Ġ ab"]`, `[["a", "b"], ["Ġ", "ab", "x"]]`, "want a pair, got 3"},
		{"bad regex", `\\p{N}|`, `(\\p{N}|`, "compile regex"},
		{"unknown pre-tokenizer", `"type": "Split"`, `"type": "Bert"`, `pre_tokenizer: type "Bert"`},
		{"unknown normalizer", `{"type": "NFC"}`, `{"type": "Precompiled"}`, `normalizer: type "Precompiled"`},
		{"unknown decoder", `"decoder": {"type": "ByteLevel"}`, `"decoder": {"type": "WordPiece"}`, `decoder: type "WordPiece"`},
		{"added token without id", `{"id": 6, `, `{`, "no id"},
		{"empty vocab", `"vocab": {"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġab": 4, "1": 5}, "merges": ["a b", "Ġ ab"]`, `"vocab": {}`, "vocab is empty"},
		{"vocab not an object", `"vocab": {"a": 0, "b": 1, "Ġ": 2, "ab": 3, "Ġab": 4, "1": 5}`, `"vocab": ["a"]`, "model.vocab"},
		{"unk not in vocab", `"type": "BPE",`, `"type": "BPE", "unk_token": "<nope>",`, "unk_token"},
		{"dropout", `"type": "BPE",`, `"type": "BPE", "dropout": 0.1,`, "dropout"},
	}
	for _, tc := range tests {
		data := strings.Replace(miniJSON, tc.old, tc.new, 1)
		if data == miniJSON && tc.old != miniJSON {
			t.Fatalf("%s: replacement did not apply", tc.name)
		}
		_, err := FromHFJSON([]byte(data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	// Template with two tokens before the text.
	two := strings.Replace(miniSPMJSON, `"single": [`, `"single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, `, 1)
	if _, err := FromHFJSON([]byte(two)); err == nil || !strings.Contains(err.Error(), "template") {
		t.Errorf("two-token template: err = %v", err)
	}
}

// pbBytes encodes a length-delimited protobuf field.
func pbBytes(num int, p []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(num<<3|2))
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func pbVar(num int, v uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(nil, uint64(num<<3)), v)
}

func pbPiece(piece string, score float32, typ int) []byte {
	p := pbBytes(1, []byte(piece))
	p = append(p, byte(2<<3|5))
	p = binary.LittleEndian.AppendUint32(p, math.Float32bits(score))
	p = append(p, pbVar(3, uint64(typ))...)
	return pbBytes(1, p)
}

func TestMalformedSentencePieceModel(t *testing.T) {
	bpe := pbBytes(2, pbVar(3, 2))
	valid := append(append(pbPiece("<unk>", 0, 2), pbPiece("a", -1, 1)...), bpe...)
	if _, err := FromSentencePieceModel(valid); err != nil {
		t.Fatalf("valid model: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no pieces"},
		{"garbage", []byte{0xFF, 0xFF, 0xFF}, "truncated"},
		{"truncated piece", valid[:5], "exceeds"},
		{"unigram", append(pbPiece("a", 0, 1), pbBytes(2, pbVar(3, 1))...), "model type 1"},
		{"bad type", append(pbPiece("a", 0, 9), bpe...), "invalid type 9"},
		{"nan score", append(pbPiece("a", float32(math.NaN()), 1), bpe...), "not finite"},
		{"wire type", append([]byte{1<<3 | 0, 5}, bpe...), "wire type"},
		{"group", []byte{1<<3 | 3}, "unsupported wire type"},
		{"charsmap", append(append(pbPiece("a", 0, 1), bpe...), pbBytes(3, append(pbBytes(1, []byte("nmt_nfkc")), pbBytes(2, []byte{1, 2})...))...), "nmt_nfkc"},
	}
	for _, tc := range tests {
		_, err := FromSentencePieceModel(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	// Every truncation of the real model is an error or a smaller valid
	// model, never a panic.
	real := readShared(t, "tokenizers", "llama2", "tokenizer.model")
	for n := 0; n < len(real); n += 49999 {
		FromSentencePieceModel(real[:n])
	}
}

func TestMalformedLlama2cBin(t *testing.T) {
	le := binary.LittleEndian
	tok := func(score float32, s string) []byte {
		b := le.AppendUint32(nil, math.Float32bits(score))
		b = le.AppendUint32(b, uint32(len(s)))
		return append(b, s...)
	}
	hdr := le.AppendUint32(nil, 8)
	valid := append(append(append(append([]byte{}, hdr...), tok(0, "<unk>")...), tok(0, "\n<s>\n")...), tok(0, "\n</s>\n")...)
	if _, err := FromLlama2cBin(valid); err != nil {
		t.Fatalf("valid: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "shorter than"},
		{"zero max length", le.AppendUint32(nil, 0), "max_token_length"},
		{"huge max length", le.AppendUint32(nil, 1<<30), "max_token_length"},
		{"too few tokens", append(append([]byte{}, hdr...), tok(0, "a")...), "need at least"},
		{"truncated header", valid[:len(valid)-3], "length 6 invalid"},
		{"truncated token header", append(append([]byte{}, valid...), 1, 2, 3), "truncated header"},
		{"token longer than max", append(append([]byte{}, valid...), tok(0, "123456789")...), "length 9 invalid"},
		{"negative length", append(append([]byte{}, valid...), 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF), "length -1 invalid"},
	}
	for _, tc := range tests {
		_, err := FromLlama2cBin(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestMalformedGGUFVocab(t *testing.T) {
	base := func() GGUFVocab {
		return GGUFVocab{Model: "llama", Tokens: []string{"<unk>", "<s>", "</s>", "a"}, Scores: []float32{0, 0, 0, -1},
			Types: []int32{2, 3, 3, 1}, BOS: 1, EOS: 2, UNK: 0, PAD: -1}
	}
	if _, err := FromGGUFVocab(base()); err != nil {
		t.Fatalf("valid: %v", err)
	}
	tests := []struct {
		name string
		edit func(*GGUFVocab)
		want string
	}{
		{"no tokens", func(v *GGUFVocab) { v.Tokens = nil }, "tokens is empty"},
		{"scores length", func(v *GGUFVocab) { v.Scores = v.Scores[:2] }, "scores has 2 entries"},
		{"types length", func(v *GGUFVocab) { v.Types = v.Types[:1] }, "token_type has 1 entries"},
		{"bad type", func(v *GGUFVocab) { v.Types[3] = 42 }, "token_type[3] = 42"},
		{"bos out of range", func(v *GGUFVocab) { v.BOS = 7 }, "bos_token_id 7"},
		{"unknown model", func(v *GGUFVocab) { v.Model = "bert" }, `"bert" is not supported`},
		{"unknown pre", func(v *GGUFVocab) { v.Model, v.Pre = "gpt2", "mystery" }, `pre "mystery"`},
		{"bad merge", func(v *GGUFVocab) { v.Model, v.Pre, v.Merges = "gpt2", "gpt2", []string{"ab"} }, "merges[0]"},
		{"merge not in vocab", func(v *GGUFVocab) { v.Model, v.Pre, v.Merges = "gpt2", "gpt2", []string{"a z"} }, "not in the vocabulary"},
		{"empty token", func(v *GGUFVocab) { v.Tokens[3] = "" }, "is empty"},
		{"eog out of range", func(v *GGUFVocab) { v.EOG = []int{9} }, "id 9 out of range"},
	}
	for _, tc := range tests {
		v := base()
		tc.edit(&v)
		_, err := FromGGUFVocab(v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestMalformedGPT2Files(t *testing.T) {
	enc := `{"a": 0, "b": 1, "ab": 2}`
	if _, err := FromGPT2Files([]byte(enc), []byte("#version: 0.2\na b\n")); err != nil {
		t.Fatalf("valid: %v", err)
	}
	tests := []struct{ name, enc, bpe, want string }{
		{"bad json", `{"a": }`, "", "encoder.json"},
		{"gap in ids", `{"a": 0, "b": 5}`, "", "not 0..1"},
		{"bad merge line", enc, "#version: 0.2\nab\n", "line 2"},
		{"merge not in vocab", enc, "a c\n", "not in the vocabulary"},
	}
	for _, tc := range tests {
		_, err := FromGPT2Files([]byte(tc.enc), []byte(tc.bpe))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
