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
