package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/usersim/usersim/internal/sharedtest"
)

// sharedDir returns the ../shared fixtures directory, skipping the test
// when they are absent (golden/tokenizers, which most tests here read, is
// the sign; a fixture missing beside it is a failure).
func sharedDir(t testing.TB) string {
	t.Helper()
	sharedtest.Path(t, "golden", "tokenizers")
	return sharedtest.Path(t)
}

func readShared(t testing.TB, rel ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(append([]string{sharedDir(t)}, rel...)...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type goldenCase struct {
	ID                  string `json:"id"`
	Text                string `json:"text"`
	IDs                 []int  `json:"ids"`
	IDsWithBOS          []int  `json:"ids_with_bos"`
	IDsEndoftextSpecial []int  `json:"ids_endoftext_special"`
	Decoded             string `json:"decoded"`
	DecodedSkipSpecial  string `json:"decoded_skip_special"`
	Roundtrip           bool   `json:"roundtrip"`
}

func loadGolden(t testing.TB, rel ...string) []goldenCase {
	t.Helper()
	var f struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(readShared(t, rel...), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%v: no cases", rel)
	}
	return f.Cases
}

func ids(v []int) []int {
	if v == nil {
		return []int{}
	}
	return v
}

// checkCase checks encode, decode, round trip and streaming for one case.
func checkCase(t *testing.T, tok *Tokenizer, c goldenCase, opt EncodeOptions, want []int) {
	t.Helper()
	got, err := tok.Encode(c.Text, opt)
	if err != nil {
		t.Errorf("%s: Encode: %v", c.ID, err)
		return
	}
	if !reflect.DeepEqual(ids(got), ids(want)) {
		t.Errorf("%s: Encode(%q)\n got %v\nwant %v", c.ID, c.Text, got, want)
	}
	dec, err := tok.Decode(got)
	if err != nil {
		t.Errorf("%s: Decode: %v", c.ID, err)
	}
	// Stream decoding equals full decoding.
	sd := tok.NewStreamDecoder()
	var s string
	for _, id := range got {
		out := sd.Push(id)
		if !utf8.ValidString(out) {
			t.Errorf("%s: Push(%d) returned invalid UTF-8 %q", c.ID, id, out)
		}
		s += out
	}
	s += sd.Flush()
	if s != dec {
		t.Errorf("%s: stream decode %q != Decode %q", c.ID, s, dec)
	}
}

func TestLlama2SentencePieceModel(t *testing.T) {
	tok, err := FromSentencePieceModel(readShared(t, "tokenizers", "llama2", "tokenizer.model"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "llama2.json") {
		checkCase(t, tok, c, EncodeOptions{}, c.IDs)
		checkCase(t, tok, c, EncodeOptions{AddBOS: true}, c.IDsWithBOS)
		dec, _ := tok.Decode(c.IDs)
		if dec != c.Decoded {
			t.Errorf("%s: Decode = %q, want %q", c.ID, dec, c.Decoded)
		}
	}
}

func hasSpecialText(c goldenCase) bool {
	for _, id := range []string{"bos", "eos", "bos_text_eos", "bos_space", "unk", "im_chat", "im_full", "endoftext", "think"} {
		if c.ID == id {
			return true
		}
	}
	return false
}

func TestMistralHFJSON(t *testing.T) {
	tok, err := FromHFJSON(readShared(t, "tokenizers", "mistral", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "mistral.json") {
		checkCase(t, tok, c, EncodeOptions{ParseSpecial: true}, c.IDs)
		checkCase(t, tok, c, EncodeOptions{ParseSpecial: true, AddBOS: true}, c.IDsWithBOS)
		dec, _ := tok.Decode(c.IDs)
		skip, _ := tok.DecodeWith(c.IDs, DecodeOptions{SkipSpecial: true})
		if skip != c.DecodedSkipSpecial {
			t.Errorf("%s: Decode(skip special) = %q, want %q", c.ID, skip, c.DecodedSkipSpecial)
		}
		if !hasSpecialText(c) && dec != c.Decoded {
			t.Errorf("%s: Decode = %q, want %q", c.ID, dec, c.Decoded)
		}
	}
}

func TestQwen3HFJSON(t *testing.T) {
	tok, err := FromHFJSON(readShared(t, "tokenizers", "qwen3", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "qwen3.json") {
		checkCase(t, tok, c, EncodeOptions{ParseSpecial: true}, c.IDs)
		dec, _ := tok.Decode(c.IDs)
		if dec != c.Decoded {
			t.Errorf("%s: Decode = %q, want %q", c.ID, dec, c.Decoded)
		}
		skip, _ := tok.DecodeWith(c.IDs, DecodeOptions{SkipSpecial: true})
		if skip != c.DecodedSkipSpecial {
			t.Errorf("%s: Decode(skip special) = %q, want %q", c.ID, skip, c.DecodedSkipSpecial)
		}
	}
}

func TestGPT2Files(t *testing.T) {
	tok, err := FromGPT2Files(readShared(t, "tokenizers", "gpt2", "encoder.json"), readShared(t, "tokenizers", "gpt2", "vocab.bpe"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "gpt2.json") {
		checkCase(t, tok, c, EncodeOptions{}, c.IDs)
		checkCase(t, tok, c, EncodeOptions{ParseSpecial: true}, c.IDsEndoftextSpecial)
		dec, _ := tok.Decode(c.IDs)
		if dec != c.Decoded {
			t.Errorf("%s: Decode = %q, want %q", c.ID, dec, c.Decoded)
		}
	}
}

// TestLlama2cBinLlama2 checks llama2.c's export of the Llama 2 vocabulary
// against the SentencePiece ids (the fixture records that llama2.c agrees).
func TestLlama2cBinLlama2(t *testing.T) {
	tok, err := FromLlama2cBin(readShared(t, "tokenizers", "llama2", "tokenizer.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range loadGolden(t, "golden", "tokenizers", "llama2.json") {
		checkCase(t, tok, c, EncodeOptions{}, c.IDs)
		checkCase(t, tok, c, EncodeOptions{AddBOS: true}, c.IDsWithBOS)
		dec, _ := tok.Decode(c.IDs)
		if dec != c.Decoded {
			t.Errorf("%s: Decode = %q, want %q", c.ID, dec, c.Decoded)
		}
	}
}

type storiesCase struct {
	Text       string   `json:"text"`
	IDs        []int    `json:"ids"`
	IDsWithBOS []int    `json:"ids_with_bos"`
	Pieces     []string `json:"pieces"`
	Decoded    string   `json:"decoded"`
}

func checkStories(t *testing.T, tok *Tokenizer) {
	var f struct {
		Cases []storiesCase `json:"cases"`
	}
	if err := json.Unmarshal(readShared(t, "golden", "stories260K", "tokenize.json"), &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range f.Cases {
		gc := goldenCase{ID: c.Text, Text: c.Text}
		checkCase(t, tok, gc, EncodeOptions{}, c.IDs)
		checkCase(t, tok, gc, EncodeOptions{AddBOS: true}, c.IDsWithBOS)
		for i, id := range c.IDs {
			if got := tok.TokenText(id); got != c.Pieces[i] {
				t.Errorf("TokenText(%d) = %q, want %q", id, got, c.Pieces[i])
			}
		}
		dec, err := tok.Decode(c.IDsWithBOS)
		if err != nil || dec != "<s>"+c.Decoded {
			t.Errorf("Decode(%v) = %q, %v; want %q", c.IDsWithBOS, dec, err, "<s>"+c.Decoded)
		}
		dec, _ = tok.DecodeWith(c.IDsWithBOS, DecodeOptions{SkipSpecial: true})
		if dec != c.Decoded || dec != c.Text {
			t.Errorf("Decode(skip special) = %q, want %q", dec, c.Decoded)
		}
	}
	if !tok.AddBOSDefault() || tok.BOS() != 1 || tok.EOS() != 2 || tok.VocabSize() != 512 {
		t.Errorf("AddBOSDefault %v BOS %d EOS %d VocabSize %d", tok.AddBOSDefault(), tok.BOS(), tok.EOS(), tok.VocabSize())
	}
}

func TestStoriesTok512Bin(t *testing.T) {
	tok, err := FromLlama2cBin(readShared(t, "models", "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	checkStories(t, tok)
}
