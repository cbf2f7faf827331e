package chat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The conversation llama.cpp's chat-template tests use, with whitespace
// around one reply that some templates trim.
var llamaCppConv = []Message{
	{"system", "You are a helpful assistant"},
	{"user", "Hello"},
	{"assistant", "Hi there"},
	{"user", "Who are you"},
	{"assistant", "   I am an assistant   "},
	{"user", "Another question"},
}

var conversations = map[string][]Message{
	"llama.cpp":     llamaCppConv,
	"no system":     llamaCppConv[1:],
	"single user":   {{"user", "What is 2+2?"}},
	"system + user": {{"system", "Rate movies from 1 to 5."}, {"user", "Toy Story (1995)"}},
	"multiline and unicode": {
		{"system", "  Be brief.\n"},
		{"user", "Line one\nLine two — café ☕\n\n"},
		{"assistant", "\tSure.\n"},
		{"user", "  and {{ braces }} {% raw %}"},
	},
}

// families pairs each real template in testdata with the built-in format
// that must render identically.
var families = []struct {
	file    string
	arch    string
	builtin Template
	gens    []bool // add_generation_prompt values the template honours
}{
	{"qwen2.5-instruct.json", "qwen2", Template{Format: FormatChatML, EOSToken: "<|im_end|>", DefaultSystem: QwenSystem}, []bool{true, false}},
	{"smollm2-instruct.json", "llama", Template{Format: FormatChatML, BOSToken: "<|im_start|>", EOSToken: "<|im_end|>", DefaultSystem: SmolLM2System}, []bool{true, false}},
	{"phi3-mini-4k-instruct.json", "phi3", Template{Format: FormatPhi3, BOSToken: "<s>", EOSToken: "<|endoftext|>"}, []bool{true, false}},
	{"llama3-instruct.json", "llama", Template{Format: FormatLlama3, BOSToken: "<|begin_of_text|>", EOSToken: "<|eot_id|>"}, []bool{true, false}},
	// Llama 2's template ignores add_generation_prompt.
	{"llama2-chat.json", "llama", Template{Format: FormatLlama2, BOSToken: "<s>", EOSToken: "</s>"}, []bool{true, false}},
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBuiltinEqualsJinja renders each conversation with the family's real
// Jinja template and with the built-in Go format.
func TestBuiltinEqualsJinja(t *testing.T) {
	for _, f := range families {
		tmpl, err := Detect(f.arch, readTestdata(t, f.file))
		if err != nil {
			t.Fatalf("%s: %v", f.file, err)
		}
		if tmpl.Format != FormatJinja || tmpl.BOSToken != f.builtin.BOSToken || tmpl.EOSToken != f.builtin.EOSToken {
			t.Fatalf("%s: detected %q bos %q eos %q", f.file, tmpl.Format, tmpl.BOSToken, tmpl.EOSToken)
		}
		for name, conv := range conversations {
			for _, gen := range f.gens {
				want, jerr := Render(tmpl, conv, gen)
				got, berr := Render(f.builtin, conv, gen)
				if jerr != nil || berr != nil {
					t.Fatalf("%s / %s / gen=%v: jinja error %v, built-in error %v", f.file, name, gen, jerr, berr)
				}
				if got != want {
					t.Errorf("%s / %s / gen=%v:\nbuilt-in %q\njinja    %q", f.file, name, gen, got, want)
				}
			}
		}
	}
}

// TestGolden pins the exact text for llama.cpp's test conversation (the
// expected outputs of its chat-template tests, with the special tokens set
// here).
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		t    Template
		want string
	}{
		{"chatml", Template{Format: FormatChatML},
			"<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n"},
		{"phi3", Template{Format: FormatPhi3},
			"<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n"},
		{"llama3", Template{Format: FormatLlama3},
			"<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama2", Template{Format: FormatLlama2, BOSToken: "<s>", EOSToken: "</s>"},
			"<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.t, llamaCppConv, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDefaultSystem(t *testing.T) {
	for _, f := range families[:2] {
		got, err := Render(f.builtin, []Message{{"user", "hi"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		want := "<|im_start|>system\n" + f.builtin.DefaultSystem + "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
		if got != want {
			t.Errorf("%s: got %q, want %q", f.file, got, want)
		}
	}
}

func TestRoleErrors(t *testing.T) {
	notAlternating := []Message{{"user", "a"}, {"user", "b"}}
	badRole := []Message{{"user", "a"}, {"tool", "b"}}
	lateSystem := []Message{{"user", "a"}, {"system", "b"}}
	for _, f := range []Format{FormatChatML, FormatPhi3, FormatLlama2, FormatLlama3} {
		tm := Template{Format: f}
		for name, conv := range map[string][]Message{"unknown role": badRole, "late system": lateSystem} {
			if _, err := Render(tm, conv, true); !errors.Is(err, ErrRoles) {
				t.Errorf("%s / %s: error %v, want ErrRoles", f, name, err)
			}
		}
	}
	if _, err := Render(Template{Format: FormatLlama2}, notAlternating, true); !errors.Is(err, ErrRoles) {
		t.Errorf("llama2 non-alternating: error %v, want ErrRoles", err)
	}
	// The real template raises too, through raise_exception.
	tmpl, err := Detect("llama", readTestdata(t, "llama2-chat.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Render(tmpl, notAlternating, true)
	if err == nil || !strings.Contains(err.Error(), "Conversation roles must alternate") {
		t.Errorf("jinja llama2 non-alternating: error %v, want the template's exception", err)
	}
	if _, err := Render(Template{Format: "nope"}, nil, true); err == nil {
		t.Error("unknown format: no error")
	}
}

func TestDetect(t *testing.T) {
	named := `{"bos_token": "<s>", "eos_token": "</s>", "chat_template": [
		{"name": "tool_use", "template": "TOOLS{{ bos_token }}"},
		{"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{% if add_generation_prompt %}A:{% endif %}"}]}`
	tests := []struct {
		name   string
		arch   string
		config string
		format Format
		render string // rendering of [{user hi}] with a generation prompt
		err    string
	}{
		{"named list", "llama", named, FormatJinja, "<s>user:hi;A:", ""},
		{"no config phi3", "phi3", "", FormatPhi3, "<|user|>\nhi<|end|>\n<|assistant|>\n", ""},
		{"no template qwen2", "qwen2", `{"eos_token": "<|im_end|>"}`, FormatChatML, "<|im_start|>system\n" + QwenSystem + "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", ""},
		{"no template llama3", "llama", `{"bos_token": "<|begin_of_text|>"}`, FormatLlama3, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", ""},
		{"no template llama2", "llama", `{"bos_token": {"content": "<s>"}, "eos_token": "</s>"}`, FormatLlama2, "<s>[INST] hi [/INST]", ""},
		{"no template chatml tokens", "llama", `{"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}`, FormatChatML, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", ""},
		{"unknown", "gpt2", "", "", "", "no chat template"},
		{"bad json", "llama", `{"chat_template": `, "", "", "tokenizer_config.json"},
		{"bad template type", "llama", `{"chat_template": 5}`, "", "", "field chat_template"},
		{"no default", "llama", `{"chat_template": [{"name": "rag", "template": "x"}]}`, "", "", `no template named "default"`},
		{"bad bos", "llama", `{"bos_token": 3, "chat_template": "x"}`, "", "", "field bos_token"},
		{"syntax error", "llama", `{"chat_template": "{% for %}"}`, "", "", "compile template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := Detect(tt.arch, []byte(tt.config))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tm.Format != tt.format {
				t.Fatalf("format %q, want %q", tm.Format, tt.format)
			}
			got, err := Render(tm, []Message{{"user", "hi"}}, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.render {
				t.Fatalf("rendered %q, want %q", got, tt.render)
			}
		})
	}
	tm, err := Named([]byte(named), "tool_use")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Render(tm, nil, false); got != "TOOLS<s>" {
		t.Fatalf("Named tool_use rendered %q", got)
	}
}

func TestJinjaNotCompiled(t *testing.T) {
	// A Template built by hand from Source still renders.
	got, err := Render(Template{Format: FormatJinja, Source: "{{ messages[0].content }}{{ eos_token }}", EOSToken: "</s>"}, []Message{{"user", "x"}}, false)
	if err != nil || got != "x</s>" {
		t.Fatalf("got %q, %v", got, err)
	}
}
