package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// sharedDir returns ../shared relative to the module root, skipping the
// test when it is absent.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	shared := filepath.Join(filepath.Dir(dir), "shared")
	if _, err := os.Stat(filepath.Join(shared, "golden", "tokenizers")); err != nil {
		t.Skipf("shared fixtures not available at %s: %v", shared, err)
	}
	return shared
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
		s += sd.Push(id)
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
