package tokenizer

import (
	"encoding/json"
	"strings"
	"testing"
)

// benchText returns about 100 KB of mixed text built from the test strings.
func benchText(b *testing.B) string {
	var strs testStrings
	if err := json.Unmarshal(readShared(b, "golden", "tokenizers", "strings.json"), &strs); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for sb.Len() < 100_000 {
		for _, s := range strs.Strings {
			sb.WriteString(s.Text)
			sb.WriteString("\n")
		}
	}
	return sb.String()
}

func benchEncode(b *testing.B, tok *Tokenizer, opt EncodeOptions) {
	text := benchText(b)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		ids, err := tok.Encode(text, opt)
		if err != nil {
			b.Fatal(err)
		}
		n = len(ids)
	}
	b.ReportMetric(float64(n), "tokens")
}

// BenchmarkEncodeSPM is SentencePiece BPE (Llama 2 tokenizer.model):
// WordSplit is the default path (text cut before each ▁, merged word by
// word with a cache); WholeText merges the unsplit text with the heap.
func BenchmarkEncodeSPM(b *testing.B) {
	tok := sharedTok(b, "llama2-model")
	b.Run("WordSplit", func(b *testing.B) { benchEncode(b, tok, EncodeOptions{}) })
	whole := *tok
	whole.pre = nil
	b.Run("WholeText", func(b *testing.B) { benchEncode(b, &whole, EncodeOptions{}) })
}

// BenchmarkEncodeByteLevel is byte-level BPE (Qwen3 tokenizer.json, regex
// pre-tokenizer), with and without the word cache.
func BenchmarkEncodeByteLevel(b *testing.B) {
	tok := sharedTok(b, "qwen3-json")
	b.Run("Cached", func(b *testing.B) { benchEncode(b, tok, EncodeOptions{ParseSpecial: true}) })
	b.Run("NoCache", func(b *testing.B) {
		tok.model.cacheOff = true
		defer func() { tok.model.cacheOff = false }()
		benchEncode(b, tok, EncodeOptions{ParseSpecial: true})
	})
}

func BenchmarkEncodeGPT2(b *testing.B) {
	tok := sharedTok(b, "gpt2-files")
	benchEncode(b, tok, EncodeOptions{})
}

func BenchmarkDecodeByteLevel(b *testing.B) {
	tok := sharedTok(b, "qwen3-json")
	text := benchText(b)
	ids, err := tok.Encode(text, EncodeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	b.Run("Qwen3JSON", func(b *testing.B) {
		data := readShared(b, "tokenizers", "qwen3", "tokenizer.json")
		for b.Loop() {
			if _, err := FromHFJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Llama2Model", func(b *testing.B) {
		data := readShared(b, "tokenizers", "llama2", "tokenizer.model")
		for b.Loop() {
			if _, err := FromSentencePieceModel(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
