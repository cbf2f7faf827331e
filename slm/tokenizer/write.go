package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/usersim/usersim/internal/atomicfile"
)

// Writing a trained vocabulary as a Hugging Face tokenizer: tokenizer.json
// in the form the tokenizers library itself saves (version 1.0, a BPE model
// with byte_fallback false, merges as "a b" strings, which every version of
// the library reads) and tokenizer_config.json in the form transformers saves
// (sorted keys, added_tokens_decoder, PreTrainedTokenizerFast).

type jsonAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type jsonPattern struct {
	Regex string `json:"Regex"`
}

type jsonSplit struct {
	Type     string      `json:"type"`
	Pattern  jsonPattern `json:"pattern"`
	Behavior string      `json:"behavior"`
	Invert   bool        `json:"invert"`
}

type jsonByteLevel struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	TrimOffsets    bool   `json:"trim_offsets"`
	UseRegex       bool   `json:"use_regex"`
}

type jsonPreSequence struct {
	Type          string `json:"type"`
	PreTokenizers []any  `json:"pretokenizers"`
}

type jsonProcSequence struct {
	Type       string `json:"type"`
	Processors []any  `json:"processors"`
}

type jsonTemplatePiece struct {
	SpecialToken *jsonTemplateRef `json:"SpecialToken,omitempty"`
	Sequence     *jsonTemplateRef `json:"Sequence,omitempty"`
}

type jsonTemplateRef struct {
	ID     string `json:"id"`
	TypeID int    `json:"type_id"`
}

type jsonTemplateSpecial struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

type jsonTemplate struct {
	Type          string                         `json:"type"`
	Single        []jsonTemplatePiece            `json:"single"`
	Pair          []jsonTemplatePiece            `json:"pair"`
	SpecialTokens map[string]jsonTemplateSpecial `json:"special_tokens"`
}

type jsonBPEModel struct {
	Type                    string    `json:"type"`
	Dropout                 *float64  `json:"dropout"`
	UnkToken                *string   `json:"unk_token"`
	ContinuingSubwordPrefix *string   `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string   `json:"end_of_word_suffix"`
	FuseUnk                 bool      `json:"fuse_unk"`
	ByteFallback            bool      `json:"byte_fallback"`
	IgnoreMerges            bool      `json:"ignore_merges"`
	Vocab                   jsonVocab `json:"vocab"`
	Merges                  []string  `json:"merges"`
}

// jsonVocab writes {"token": id, ...} in id order.
type jsonVocab []string

func (v jsonVocab) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for id, p := range v {
		if id > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(p)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(id))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type jsonTokenizer struct {
	Version       string           `json:"version"`
	Truncation    any              `json:"truncation"`
	Padding       any              `json:"padding"`
	AddedTokens   []jsonAddedToken `json:"added_tokens"`
	Normalizer    any              `json:"normalizer"`
	PreTokenizer  any              `json:"pre_tokenizer"`
	PostProcessor any              `json:"post_processor"`
	Decoder       any              `json:"decoder"`
	Model         jsonBPEModel     `json:"model"`
}

// marshalNoEscape is json.Marshal without HTML escaping, as Python and
// Rust write JSON.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// marshalIndent is json.MarshalIndent with two spaces, without HTML
// escaping, ending in no newline.
func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// TokenizerJSON returns the Hugging Face tokenizer.json of the vocabulary.
// The same vocabulary and options always give the same bytes.
func (t *Trained) TokenizerJSON() ([]byte, error) {
	f := jsonTokenizer{Version: "1.0"}
	for id := range t.pieces {
		if id >= t.nSpecial && id < t.nModel {
			continue
		}
		f.AddedTokens = append(f.AddedTokens, jsonAddedToken{
			ID: id, Content: t.pieces[id], Special: id < t.nSpecial,
		})
	}

	// Pre-tokenizer: GPT-2's regex, optionally digits apart, then bytes to
	// characters.
	if t.opt.DigitsSingle {
		f.PreTokenizer = jsonPreSequence{Type: "Sequence", PreTokenizers: []any{
			jsonSplit{Type: "Split", Pattern: jsonPattern{gpt2Pattern}, Behavior: "Isolated"},
			jsonSplit{Type: "Split", Pattern: jsonPattern{digitPattern}, Behavior: "MergedWithPrevious"},
			jsonByteLevel{Type: "ByteLevel", TrimOffsets: true},
		}}
	} else {
		f.PreTokenizer = jsonByteLevel{Type: "ByteLevel", TrimOffsets: true, UseRegex: true}
	}

	byteLevelPost := jsonByteLevel{Type: "ByteLevel", AddPrefixSpace: true, UseRegex: true}
	if t.opt.AddBOS && t.bos >= 0 {
		bos := t.pieces[t.bos]
		f.PostProcessor = jsonProcSequence{Type: "Sequence", Processors: []any{
			byteLevelPost,
			jsonTemplate{
				Type: "TemplateProcessing",
				Single: []jsonTemplatePiece{
					{SpecialToken: &jsonTemplateRef{ID: bos}},
					{Sequence: &jsonTemplateRef{ID: "A"}},
				},
				Pair: []jsonTemplatePiece{
					{SpecialToken: &jsonTemplateRef{ID: bos}},
					{Sequence: &jsonTemplateRef{ID: "A"}},
					{SpecialToken: &jsonTemplateRef{ID: bos, TypeID: 1}},
					{Sequence: &jsonTemplateRef{ID: "B", TypeID: 1}},
				},
				SpecialTokens: map[string]jsonTemplateSpecial{
					bos: {ID: bos, IDs: []int{t.bos}, Tokens: []string{bos}},
				},
			},
		}}
	} else {
		f.PostProcessor = byteLevelPost
	}
	f.Decoder = jsonByteLevel{Type: "ByteLevel", AddPrefixSpace: true, TrimOffsets: true, UseRegex: true}

	merges := make([]string, len(t.merges))
	for i, m := range t.merges {
		merges[i] = m[0] + " " + m[1]
	}
	f.Model = jsonBPEModel{
		Type:   "BPE",
		Vocab:  jsonVocab(t.pieces[:t.nModel]),
		Merges: merges,
	}
	return marshalIndent(f)
}

type jsonConfigToken struct {
	Content    string `json:"content"`
	LStrip     bool   `json:"lstrip"`
	Normalized bool   `json:"normalized"`
	RStrip     bool   `json:"rstrip"`
	SingleWord bool   `json:"single_word"`
	Special    bool   `json:"special"`
}

// TokenizerConfigJSON returns the transformers tokenizer_config.json of the
// vocabulary: special tokens, add_bos_token, model_max_length and the chat
// template.
func (t *Trained) TokenizerConfigJSON() ([]byte, error) {
	c := map[string]any{
		"add_bos_token":                t.opt.AddBOS && t.bos >= 0,
		"add_eos_token":                false,
		"clean_up_tokenization_spaces": false,
		"model_input_names":            []string{"input_ids", "attention_mask"},
		"tokenizer_class":              "PreTrainedTokenizerFast",
	}
	decoder := map[string]jsonConfigToken{}
	for id := range t.pieces {
		if id >= t.nSpecial && id < t.nModel {
			continue
		}
		decoder[strconv.Itoa(id)] = jsonConfigToken{Content: t.pieces[id], Special: id < t.nSpecial}
	}
	c["added_tokens_decoder"] = decoder
	for _, f := range []struct {
		key string
		id  int
	}{{"bos_token", t.bos}, {"eos_token", t.eos}, {"pad_token", t.pad}} {
		if f.id >= 0 {
			c[f.key] = t.pieces[f.id]
		} else {
			c[f.key] = nil
		}
	}
	if len(t.opt.Special) > 0 {
		c["additional_special_tokens"] = t.opt.Special
	}
	if t.opt.ModelMaxLength > 0 {
		c["model_max_length"] = t.opt.ModelMaxLength
	}
	if t.opt.ChatTemplate != "" {
		c["chat_template"] = t.opt.ChatTemplate
	}
	// encoding/json writes map keys sorted, as transformers does
	// (json.dumps with sort_keys): "10" before "2" in added_tokens_decoder.
	return marshalIndent(c)
}

// WriteHFDir writes tokenizer.json and tokenizer_config.json of t into
// dir, creating dir if needed; each file is written atomically. FromHFDir
// and Hugging Face's AutoTokenizer load the directory.
func WriteHFDir(dir string, t *Trained) error {
	if t == nil || t.tok == nil {
		return fmt.Errorf("write tokenizer to %s: no trained vocabulary", dir)
	}
	tj, err := t.TokenizerJSON()
	if err != nil {
		return fmt.Errorf("write tokenizer to %s: %w", dir, err)
	}
	cj, err := t.TokenizerConfigJSON()
	if err != nil {
		return fmt.Errorf("write tokenizer to %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write tokenizer: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"tokenizer.json", tj}, {"tokenizer_config.json", cj}} {
		if err := atomicfile.WriteFile(filepath.Join(dir, f.name), append(f.data, '\n'), 0o644); err != nil {
			return fmt.Errorf("write tokenizer: %w", err)
		}
	}
	return nil
}
