// Package chat turns a conversation into the prompt text a chat model was
// trained on.
//
// It has built-in formats for the families usersim supports (ChatML for
// Qwen2/Qwen2.5 and SmolLM2, Phi-3, Llama 2 and Llama 3), written in Go and
// tested to equal the Jinja templates those models ship, and it renders the
// Jinja chat_template from a model's tokenizer_config.json or GGUF metadata
// with the same variables transformers provides (messages, bos_token,
// eos_token, add_generation_prompt, raise_exception).
package chat

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ardanlabs/jinja"
)

// Message is one turn of a conversation. Role is "system", "user" or
// "assistant".
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Format names a built-in prompt format, or FormatJinja for a template
// given as Jinja source.
type Format string

// The formats.
const (
	// FormatChatML: <|im_start|>role\n...<|im_end|>\n (Qwen2, Qwen2.5,
	// SmolLM2 instruct).
	FormatChatML Format = "chatml"
	// FormatPhi3: <|user|>\n...<|end|>\n<|assistant|>\n (Phi-3, Phi-3.5).
	FormatPhi3 Format = "phi3"
	// FormatLlama2: <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] (Llama 2
	// chat).
	FormatLlama2 Format = "llama2"
	// FormatLlama3: <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
	// (Llama 3 instruct).
	FormatLlama3 Format = "llama3"
	// FormatJinja: a Jinja template (Template.Source).
	FormatJinja Format = "jinja"
)

// Default system prompts that families' templates insert when the
// conversation has no system message.
const (
	QwenSystem    = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
	Qwen2System   = "You are a helpful assistant."
	SmolLM2System = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
)

// Template is a prompt format together with the special-token texts it
// writes. Build one with Builtin, Jinja or Detect.
type Template struct {
	Format Format
	// BOSToken and EOSToken are the texts of the tokenizer's special tokens
	// (for example "<s>" and "</s>"), written by formats that use them.
	BOSToken, EOSToken string
	// DefaultSystem is the system prompt FormatChatML writes when the
	// conversation does not start with a system message; "" writes none.
	DefaultSystem string
	// Source is the Jinja source of a FormatJinja template.
	Source string

	compiled *jinja.Template
}

// Builtin returns a built-in format with the given special-token texts.
func Builtin(f Format, bos, eos string) (Template, error) {
	switch f {
	case FormatChatML, FormatPhi3, FormatLlama2, FormatLlama3:
		return Template{Format: f, BOSToken: bos, EOSToken: eos}, nil
	}
	return Template{}, fmt.Errorf("chat: unknown built-in format %q", f)
}

// Jinja compiles a Jinja chat template.
func Jinja(source, bos, eos string) (Template, error) {
	c, err := jinja.Compile(source)
	if err != nil {
		return Template{}, fmt.Errorf("chat: compile template: %w", err)
	}
	return Template{Format: FormatJinja, BOSToken: bos, EOSToken: eos, Source: source, compiled: c}, nil
}

// ErrRoles is returned (wrapped) when a conversation's roles do not fit the
// format, for example when Llama 2's user and assistant turns do not
// alternate.
var ErrRoles = errors.New("chat: roles do not fit the template")

// Render writes the prompt for msgs. With addGenerationPrompt the prompt
// ends with the header of an assistant turn, so the model's continuation is
// its reply (Llama 2 has no such header: its prompt always ends after
// " [/INST]").
func Render(t Template, msgs []Message, addGenerationPrompt bool) (string, error) {
	switch t.Format {
	case FormatChatML:
		return renderChatML(t, msgs, addGenerationPrompt)
	case FormatPhi3:
		return renderPhi3(t, msgs, addGenerationPrompt)
	case FormatLlama2:
		return renderLlama2(t, msgs)
	case FormatLlama3:
		return renderLlama3(t, msgs, addGenerationPrompt)
	case FormatJinja:
		return renderJinja(t, msgs, addGenerationPrompt)
	}
	return "", fmt.Errorf("chat: unknown format %q", t.Format)
}

func checkRoles(msgs []Message, allowed ...string) error {
	for i, m := range msgs {
		ok := false
		for _, a := range allowed {
			ok = ok || m.Role == a
		}
		if !ok {
			return fmt.Errorf("%w: message %d has role %q, want one of %s", ErrRoles, i, m.Role, strings.Join(allowed, ", "))
		}
		if m.Role == "system" && i > 0 {
			return fmt.Errorf("%w: message %d: a system message must come first", ErrRoles, i)
		}
	}
	return nil
}

func renderChatML(t Template, msgs []Message, gen bool) (string, error) {
	if err := checkRoles(msgs, "system", "user", "assistant"); err != nil {
		return "", err
	}
	var b strings.Builder
	if t.DefaultSystem != "" && (len(msgs) == 0 || msgs[0].Role != "system") {
		b.WriteString("<|im_start|>system\n" + t.DefaultSystem + "<|im_end|>\n")
	}
	for _, m := range msgs {
		b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
	}
	if gen {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String(), nil
}

func renderPhi3(t Template, msgs []Message, gen bool) (string, error) {
	if err := checkRoles(msgs, "system", "user", "assistant"); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("<|" + m.Role + "|>\n" + m.Content + "<|end|>\n")
	}
	if gen {
		b.WriteString("<|assistant|>\n")
	} else {
		b.WriteString(t.EOSToken)
	}
	return b.String(), nil
}

// pyStrip trims what Python's str.strip() trims.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		switch r {
		case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0:
			return true
		}
		return r > 0xff && strings.ContainsRune("\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000", r)
	})
}

func renderLlama2(t Template, msgs []Message) (string, error) {
	if err := checkRoles(msgs, "system", "user", "assistant"); err != nil {
		return "", err
	}
	system, hasSystem := "", false
	if len(msgs) > 0 && msgs[0].Role == "system" {
		system, hasSystem = msgs[0].Content, true
		msgs = msgs[1:]
	}
	var b strings.Builder
	for i, m := range msgs {
		if (m.Role == "user") != (i%2 == 0) {
			return "", fmt.Errorf("%w: Llama 2 needs user and assistant turns to alternate, starting with user (turn %d is %q)", ErrRoles, i, m.Role)
		}
		content := m.Content
		if i == 0 && hasSystem {
			content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content
		}
		if m.Role == "user" {
			b.WriteString(t.BOSToken + "[INST] " + pyStrip(content) + " [/INST]")
		} else {
			b.WriteString(" " + pyStrip(content) + " " + t.EOSToken)
		}
	}
	return b.String(), nil
}

func renderLlama3(t Template, msgs []Message, gen bool) (string, error) {
	if err := checkRoles(msgs, "system", "user", "assistant"); err != nil {
		return "", err
	}
	var b strings.Builder
	for i, m := range msgs {
		if i == 0 {
			b.WriteString(t.BOSToken)
		}
		b.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n" + pyStrip(m.Content) + "<|eot_id|>")
	}
	if gen {
		b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
	}
	return b.String(), nil
}

func renderJinja(t Template, msgs []Message, gen bool) (string, error) {
	c := t.compiled
	if c == nil {
		var err error
		if c, err = jinja.Compile(t.Source); err != nil {
			return "", fmt.Errorf("chat: compile template: %w", err)
		}
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	out, err := c.Render(map[string]any{
		"messages":              list,
		"bos_token":             t.BOSToken,
		"eos_token":             t.EOSToken,
		"add_generation_prompt": gen,
	})
	if err != nil {
		return "", fmt.Errorf("chat: render template: %w", err)
	}
	return out, nil
}
