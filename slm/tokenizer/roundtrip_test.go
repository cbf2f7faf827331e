package tokenizer

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

type testStrings struct {
	Strings []struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	} `json:"strings"`
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*Tokenizer{}
)

// sharedTok loads one tokenizer from the shared fixtures, once per test
// binary.
func sharedTok(t testing.TB, name string) *Tokenizer {
	t.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tok, ok := loaded[name]; ok {
		return tok
	}
	var tok *Tokenizer
	var err error
	switch name {
	case "llama2-model":
		tok, err = FromSentencePieceModel(readShared(t, "tokenizers", "llama2", "tokenizer.model"))
	case "llama2-bin":
		tok, err = FromLlama2cBin(readShared(t, "tokenizers", "llama2", "tokenizer.bin"))
	case "stories-bin":
		tok, err = FromLlama2cBin(readShared(t, "models", "stories260K", "tok512.bin"))
	case "mistral-json":
		tok, err = FromHFJSON(readShared(t, "tokenizers", "mistral", "tokenizer.json"))
	case "qwen3-json":
		tok, err = FromHFJSON(readShared(t, "tokenizers", "qwen3", "tokenizer.json"))
	case "gpt2-files":
		tok, err = FromGPT2Files(readShared(t, "tokenizers", "gpt2", "encoder.json"), readShared(t, "tokenizers", "gpt2", "vocab.bpe"))
	default:
		t.Fatalf("unknown tokenizer %q", name)
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	loaded[name] = tok
	return tok
}

// allTokenizers loads every tokenizer form from the shared fixtures.
func allTokenizers(t testing.TB) map[string]*Tokenizer {
	t.Helper()
	out := map[string]*Tokenizer{}
	for _, name := range []string{"llama2-model", "llama2-bin", "stories-bin", "mistral-json", "qwen3-json", "gpt2-files"} {
		out[name] = sharedTok(t, name)
	}
	return out
}

// lossy lists the strings a tokenizer cannot round-trip by design.
var lossy = map[string]map[string]string{
	"llama2-model": {"underscore_meta": "SentencePiece reads a literal U+2581 as a space"},
	"llama2-bin":   {"underscore_meta": "SentencePiece reads a literal U+2581 as a space"},
	"stories-bin":  {"underscore_meta": "SentencePiece reads a literal U+2581 as a space"},
	"mistral-json": {"underscore_meta": "the Replace normalizer turns spaces into U+2581 and the decoder turns U+2581 back into spaces"},
	"qwen3-json":   {"nfd": "the NFC normalizer composes e + U+0301"},
}

// TestRoundTrip checks Decode(Encode(s)) == s for every test string and
// every tokenizer, with and without special-token parsing, except where a
// tokenizer is lossy by design (and there it checks the loss is real).
func TestRoundTrip(t *testing.T) {
	var strs testStrings
	if err := json.Unmarshal(readShared(t, "golden", "tokenizers", "strings.json"), &strs); err != nil {
		t.Fatal(err)
	}
	if len(strs.Strings) != 48 {
		t.Fatalf("%d strings, want 48", len(strs.Strings))
	}
	for name, tok := range allTokenizers(t) {
		for _, parse := range []bool{false, true} {
			for _, s := range strs.Strings {
				ids, err := tok.Encode(s.Text, EncodeOptions{ParseSpecial: parse})
				if err != nil {
					t.Errorf("%s %s: %v", name, s.ID, err)
					continue
				}
				dec, err := tok.Decode(ids)
				if err != nil {
					t.Errorf("%s %s: %v", name, s.ID, err)
					continue
				}
				why, isLossy := lossy[name][s.ID]
				switch {
				case isLossy && dec == s.Text:
					t.Errorf("%s %s: expected lossy (%s) but round-tripped", name, s.ID, why)
				case !isLossy && dec != s.Text:
					t.Errorf("%s %s (parse special %v): Decode(Encode(%q)) = %q", name, s.ID, parse, s.Text, dec)
				}
				// With BOS: Decode skipping specials gives the text back.
				if tok.BOS() >= 0 && !isLossy {
					ids, _ := tok.Encode(s.Text, EncodeOptions{ParseSpecial: parse, AddBOS: true})
					dec, _ := tok.DecodeWith(ids, DecodeOptions{SkipSpecial: true})
					if !parse && dec != s.Text {
						t.Errorf("%s %s: with BOS: %q", name, s.ID, dec)
					}
				}
			}
		}
	}
}

// TestContinuation checks that DecodeOptions.Continuation keeps the
// dummy-prefix space of a generated token.
func TestContinuation(t *testing.T) {
	tok := sharedTok(t, "llama2-model")
	ids, _ := tok.Encode("Hello world", EncodeOptions{})
	full, _ := tok.Decode(ids)
	cont, _ := tok.DecodeWith(ids, DecodeOptions{Continuation: true})
	if full != "Hello world" || cont != " Hello world" {
		t.Errorf("Decode %q, continuation %q", full, cont)
	}
	// Generated tokens decoded after the prompt join up with it.
	prompt, _ := tok.Encode("The movie is", EncodeOptions{})
	gen, _ := tok.Encode("The movie is great", EncodeOptions{})
	d := tok.NewStreamDecoderWith(DecodeOptions{Continuation: true})
	var out strings.Builder
	for _, id := range gen[len(prompt):] {
		out.WriteString(d.Push(id))
	}
	out.WriteString(d.Flush())
	if out.String() != " great" {
		t.Errorf("continuation stream = %q, want %q", out.String(), " great")
	}
}

// TestEncodeContinuation checks that a continuation encoded on its own
// (no dummy prefix) joins up with its prompt: for text whose words start
// with a space, Encode(prompt) + Encode(cont, Continuation) equals
// Encode(prompt + cont), and decoding the continuation with
// DecodeOptions.Continuation gives it back.
func TestEncodeContinuation(t *testing.T) {
	prompt, cont := "User 42 rated Toy Story (1995)", " 4 stars and Amélie 5."
	for name, tok := range allTokenizers(t) {
		p, err1 := tok.Encode(prompt, EncodeOptions{})
		c, err2 := tok.Encode(cont, EncodeOptions{Continuation: true})
		whole, err3 := tok.Encode(prompt+cont, EncodeOptions{})
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(append(p, c...), whole) {
			t.Errorf("%s: prompt %v + continuation %v != whole %v", name, p, c, whole)
		}
		if dec, _ := tok.DecodeWith(c, DecodeOptions{Continuation: true}); dec != cont {
			t.Errorf("%s: continuation decodes to %q", name, dec)
		}
		// Without Continuation an SPM tokenizer adds the dummy prefix.
		d, _ := tok.Encode("5", EncodeOptions{})
		e, _ := tok.Encode("5", EncodeOptions{Continuation: true})
		if spm := tok.strip != stripNone; spm == slices.Equal(d, e) {
			t.Errorf("%s: Encode(\"5\") = %v, with Continuation %v", name, d, e)
		}
	}
}
