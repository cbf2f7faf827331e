package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNoTemplate is returned (wrapped) by Detect when neither the tokenizer
// configuration nor the architecture tells the prompt format.
var ErrNoTemplate = errors.New("chat: no chat template")

// tokenizerConfig is the part of tokenizer_config.json that matters here.
type tokConfig struct {
	ChatTemplate json.RawMessage `json:"chat_template"`
	BOSToken     json.RawMessage `json:"bos_token"`
	EOSToken     json.RawMessage `json:"eos_token"`
}

// Detect picks the chat template for a model. tokenizerConfig is the
// content of its tokenizer_config.json (nil or empty when there is none).
// A chat_template there wins: a string, or the list of named templates
// ([{"name": ..., "template": ...}]) from which "default" is taken, rendered
// by the Jinja engine. Without one, a built-in format is chosen from the
// architecture (GGUF general.architecture or the config's model_type:
// "llama", "qwen2", "phi3", ...) and the special tokens.
func Detect(arch string, tokenizerConfig []byte) (Template, error) {
	var cfg tokConfig
	if len(tokenizerConfig) > 0 {
		if err := json.Unmarshal(tokenizerConfig, &cfg); err != nil {
			return Template{}, fmt.Errorf("chat: tokenizer_config.json: %w", err)
		}
	}
	bos, err := tokenText(cfg.BOSToken)
	if err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: field bos_token: %w", err)
	}
	eos, err := tokenText(cfg.EOSToken)
	if err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: field eos_token: %w", err)
	}
	src, err := templateSource(cfg.ChatTemplate)
	if err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: field chat_template: %w", err)
	}
	if src != "" {
		return Jinja(src, bos, eos)
	}
	return ForArch(arch, bos, eos)
}

// ForArch returns the built-in format for an architecture, choosing between
// the families that share one ("llama") by their special tokens.
func ForArch(arch, bos, eos string) (Template, error) {
	switch a := strings.ToLower(arch); {
	case a == "phi3":
		return Template{Format: FormatPhi3, BOSToken: bos, EOSToken: eos}, nil
	case a == "qwen2":
		return Template{Format: FormatChatML, BOSToken: bos, EOSToken: eos, DefaultSystem: QwenSystem}, nil
	case bos == "<|begin_of_text|>":
		return Template{Format: FormatLlama3, BOSToken: bos, EOSToken: eos}, nil
	case bos == "<|im_start|>" || eos == "<|im_end|>":
		return Template{Format: FormatChatML, BOSToken: bos, EOSToken: eos}, nil
	case a == "llama" && bos == "<s>":
		return Template{Format: FormatLlama2, BOSToken: bos, EOSToken: eos}, nil
	}
	return Template{}, fmt.Errorf("%w for architecture %q (bos %q, eos %q); pass a template explicitly", ErrNoTemplate, arch, bos, eos)
}

// tokenText reads a special token given as a string or as an AddedToken
// object {"content": ...}.
func tokenText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %.40s", raw)
	}
	return *obj.Content, nil
}

// templateSource reads chat_template: a string, or a list of named
// templates from which "default" is taken.
func templateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []struct {
		Name     string  `json:"name"`
		Template *string `json:"template"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", fmt.Errorf("want a string or a list of {name, template}, got %.40s", raw)
	}
	var names []string
	for i, t := range list {
		if t.Template == nil {
			return "", fmt.Errorf("entry %d (%q) has no template", i, t.Name)
		}
		if t.Name == "default" {
			return *t.Template, nil
		}
		names = append(names, t.Name)
	}
	return "", fmt.Errorf("no template named \"default\" among %q", names)
}

// Named returns the template called name from a list-form chat_template
// (for example "tool_use" or "rag").
func Named(tokenizerConfig []byte, name string) (Template, error) {
	var cfg tokConfig
	if err := json.Unmarshal(tokenizerConfig, &cfg); err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: %w", err)
	}
	var list []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(cfg.ChatTemplate, &list); err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: field chat_template is not a list of named templates")
	}
	bos, err := tokenText(cfg.BOSToken)
	if err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: field bos_token: %w", err)
	}
	eos, err := tokenText(cfg.EOSToken)
	if err != nil {
		return Template{}, fmt.Errorf("chat: tokenizer_config.json: field eos_token: %w", err)
	}
	for _, t := range list {
		if t.Name == name {
			return Jinja(t.Template, bos, eos)
		}
	}
	return Template{}, fmt.Errorf("%w named %q in tokenizer_config.json", ErrNoTemplate, name)
}
