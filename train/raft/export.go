package raft

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/usersim/usersim/internal/atomicfile"
)

// ChatRecord is one line of the chat JSONL export, the conversational format
// TRL's SFTTrainer and Axolotl's chat_template datasets read:
// {"messages":[{"role":"system",...},{"role":"user",...},{"role":"assistant","content":"4"}]}.
type ChatRecord struct {
	Messages []Message `json:"messages"`
}

// PromptCompletion is one line of the prompt/completion JSONL export
// (TRL's prompt-completion format): the plain prompt and " " + answer.
type PromptCompletion struct {
	Prompt     string `json:"prompt"`
	Completion string `json:"completion"`
}

// EncodeChatJSONL writes exs to w as chat JSONL, one example a line. An
// example without an answer is an error.
func EncodeChatJSONL(w io.Writer, exs []Example) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range exs {
		if exs[i].Answer == "" {
			return fmt.Errorf("raft: example %d (user %s, item %s) has no answer", i, exs[i].User, exs[i].Item)
		}
		if err := enc.Encode(ChatRecord{Messages: exs[i].ChatMessages()}); err != nil {
			return err
		}
	}
	return nil
}

// EncodePromptCompletionJSONL writes exs to w as prompt/completion JSONL.
func EncodePromptCompletionJSONL(w io.Writer, exs []Example) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range exs {
		if exs[i].Answer == "" {
			return fmt.Errorf("raft: example %d (user %s, item %s) has no answer", i, exs[i].User, exs[i].Item)
		}
		if err := enc.Encode(PromptCompletion{Prompt: exs[i].Prompt, Completion: exs[i].Completion()}); err != nil {
			return err
		}
	}
	return nil
}

// WriteChatJSONL writes exs to path as chat JSONL, atomically.
func WriteChatJSONL(path string, exs []Example) error {
	return atomicfile.Write(path, 0, func(w io.Writer) error { return EncodeChatJSONL(w, exs) })
}

// WritePromptCompletionJSONL writes exs to path as prompt/completion JSONL,
// atomically.
func WritePromptCompletionJSONL(path string, exs []Example) error {
	return atomicfile.Write(path, 0, func(w io.Writer) error { return EncodePromptCompletionJSONL(w, exs) })
}

// ReadChatJSONL reads a chat JSONL file. A malformed line, an empty message
// list or a message without a role is an error naming the file and line.
func ReadChatJSONL(path string) ([]ChatRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	defer f.Close()
	var out []ChatRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var r ChatRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("raft: %s:%d: %w", path, line, err)
		}
		if len(r.Messages) == 0 {
			return nil, fmt.Errorf("raft: %s:%d: no messages", path, line)
		}
		for j, m := range r.Messages {
			if m.Role == "" {
				return nil, fmt.Errorf("raft: %s:%d: message %d has no role", path, line, j)
			}
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("raft: read %s: %w", path, err)
	}
	return out, nil
}
