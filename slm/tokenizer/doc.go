// Package tokenizer implements, in pure Go, the tokenizers of the
// Llama-family models usersim runs: SentencePiece-style BPE with byte
// fallback (Llama 2, Mistral, Phi-3, TinyLlama, the llama2.c "stories"
// models) and byte-level BPE with a pre-tokenizer regex (GPT-2, Llama 3,
// Qwen2/3, SmolLM).
//
// A Tokenizer is built from one of the usual on-disk forms —
// FromSentencePieceModel (tokenizer.model), FromLlama2cBin (llama2.c
// tokenizer.bin), FromHFJSON / FromHFDir (Hugging Face tokenizer.json),
// FromGPT2Files (encoder.json + vocab.bpe) and FromGGUFVocab (the
// tokenizer.ggml.* metadata of a GGUF file) — and reproduces the reference
// implementation of each form exactly: SentencePiece for tokenizer.model
// and tokenizer.bin, Hugging Face tokenizers for tokenizer.json, OpenAI's
// encoder for the GPT-2 files and llama.cpp for GGUF vocabularies.
//
// # Special tokens
//
// Added tokens that are not special (Qwen's <think>, user-defined pieces)
// are always matched verbatim in the input, as Hugging Face tokenizers and
// llama.cpp do. Special (control) tokens such as <s> or <|im_start|> are
// matched only when EncodeOptions.ParseSpecial is set; otherwise their text
// is encoded like any other text. The text between two matched tokens is
// encoded on its own, so SentencePiece-style tokenizers give each such
// segment its own dummy-prefix space. Hugging Face tokenizers always match
// special tokens, so ParseSpecial reproduces them; SentencePiece, llama.cpp's
// default and OpenAI's GPT-2 encoder do not, which is the default here.
// EncodeOptions.Continuation encodes text that continues a prompt without
// the dummy prefix.
//
// # Decoding
//
// Decode and StreamDecoder share one state machine, so feeding ids one at a
// time to a StreamDecoder yields exactly the text of Decode. Output is always
// valid UTF-8: a byte sequence that is still incomplete is held back by the
// stream decoder until the token that completes it arrives, and bytes that
// can never form a character are replaced by U+FFFD (one per maximal
// invalid subpart, as Python and WHATWG decoders do).
//
// SentencePiece-style tokenizers prepend a space (the "dummy prefix") to the
// text they encode; Decode removes it again from the first text token and
// from the first text token after each matched special or added token, which
// is exactly where Encode put one. DecodeOptions.Continuation keeps it, for
// ids that continue earlier text (generated tokens after a prompt).
//
// This differs from Hugging Face's decode only next to special tokens:
// there "<s>" + "▁Hello" decodes to "<s> Hello", here to "<s>Hello", the
// text that was encoded.
//
// Decode(Encode(s)) == s for valid UTF-8 s except where a tokenizer is
// lossy by design: normalizers (Qwen's NFC turns NFD text into NFC),
// SentencePiece's treatment of a literal U+2581 "▁" (it means space, so it
// decodes to " "), and SentencePiece models trained with
// remove_extra_whitespaces (runs of spaces collapse).
//
// # Known limits
//
//   - SentencePiece: only the BPE model type and the "identity"
//     normalization rule (no precompiled charsmap, no Unigram); UNUSED
//     pieces are never produced (SentencePiece may merge through them and
//     split them again; none of the supported vocabularies has any);
//     USER_DEFINED pieces are matched in the raw text like added tokens, as
//     llama.cpp does, not inside the normalized text.
//   - tokenizer.json: BPE models only; added tokens marked normalized=true
//     are matched in the raw text (the same thing unless the normalizer
//     changes them; the families above all use normalized=false).
//   - The GPT-2, Qwen2 and Llama 3 pre-tokenizer regexes run on a
//     hand-written matcher, checked against regexp2 by tests and a fuzzer;
//     other Split regexes run on regexp2 (.NET semantics), whose \s, \p{L}
//     and \p{N} agree with the Oniguruma/Rust classes on these patterns.
package tokenizer
