package tokenizer

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHFConfig(t *testing.T) {
	yes, no := true, false
	for _, tt := range []struct {
		name, json string
		want       HFConfig
		err        string
	}{
		{"empty", `{}`, HFConfig{}, ""},
		{"strings and flags", `{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": null, "add_bos_token": true, "add_eos_token": false}`,
			HFConfig{BOS: "<s>", EOS: "</s>", UNK: "<unk>", AddBOS: &yes, AddEOS: &no}, ""},
		{"AddedToken objects", `{"bos_token": {"content": "<|im_start|>", "lstrip": false, "__type": "AddedToken"}, "pad_token": {"content": "<pad>"}}`,
			HFConfig{BOS: "<|im_start|>", PAD: "<pad>"}, ""},
		{"other fields ignored", `{"chat_template": [{"name": "default", "template": "x"}], "model_max_length": 4096}`, HFConfig{}, ""},
		{"number", `{"eos_token": 2}`, HFConfig{}, "eos_token: want a string or {content}"},
		{"object without content", `{"unk_token": {"id": 0}}`, HFConfig{}, "unk_token"},
		{"flag not bool", `{"add_bos_token": "yes"}`, HFConfig{}, "add_bos_token"},
		{"not json", `{`, HFConfig{}, "unexpected end"},
	} {
		got, err := ParseHFConfig([]byte(tt.json))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestHFPostProcessorSpecials(t *testing.T) {
	vocab := map[string]int{"<s>": 1, "</s>": 2, "<cls>": 3}
	id := func(p string) (int, bool) { x, ok := vocab[p]; return x, ok }
	for _, tt := range []struct {
		name, json string
		bos, eos   int
		err        string
	}{
		{"none", `null`, -1, -1, ""},
		{"byte level", `{"type": "ByteLevel"}`, -1, -1, ""},
		{"bos", `{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]}`, 1, -1, ""},
		{"eos by special_tokens ids", `{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "E"}}], "special_tokens": {"E": {"ids": [2]}}}`, -1, 2, ""},
		{"sequence: later wins", `{"type": "Sequence", "processors": [{"type": "ByteLevel"},
			{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]},
			{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<cls>"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}]}]}`, 3, 2, ""},
		{"roberta", `{"type": "RobertaProcessing", "cls": ["<cls>", 3], "sep": ["</s>", 2]}`, 3, 2, ""},
		{"unknown token", `{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}]}`, -1, -1, `"<x>" is unknown`},
		{"two before", `{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"SpecialToken": {"id": "<cls>"}}, {"Sequence": {"id": "A"}}]}`, -1, -1, "2 tokens before"},
		{"id out of range", `{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "E"}}], "special_tokens": {"E": {"ids": [9]}}}`, -1, -1, "out of range"},
		{"bert bad id", `{"type": "BertProcessing", "cls": ["<cls>", 99], "sep": ["</s>", 2]}`, -1, -1, "bad token id 99"},
		{"unknown type", `{"type": "Magic"}`, -1, -1, `"Magic" is not supported`},
		{"not json", `{`, -1, -1, "post_processor"},
	} {
		bos, eos, err := HFPostProcessorSpecials([]byte(tt.json), id, 4)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || bos != tt.bos || eos != tt.eos {
			t.Errorf("%s: bos %d eos %d (%v), want %d %d", tt.name, bos, eos, err, tt.bos, tt.eos)
		}
	}
}

func TestParseHFMerges(t *testing.T) {
	for _, tt := range []struct {
		name, json string
		want       [][2]string
		err        string
	}{
		{"null", `null`, nil, ""},
		{"strings", `["a b", "ab c"]`, [][2]string{{"a", "b"}, {"ab", "c"}}, ""},
		{"pairs", `[["a", "b"], ["a b", "c"]]`, [][2]string{{"a", "b"}, {"a b", "c"}}, ""},
		{"mixed", `["a b", ["ab", "c"]]`, [][2]string{{"a", "b"}, {"ab", "c"}}, ""},
		{"no space", `["ab"]`, nil, "merges[0]"},
		{"three", `[["a", "b", "c"]]`, nil, "want a pair"},
		{"number", `[1]`, nil, "merges[0]"},
	} {
		got, err := ParseHFMerges([]byte(tt.json))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}
