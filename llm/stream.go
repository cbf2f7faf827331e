package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ChunkChoice is one choice's increment in a streamed chat answer.
type ChunkChoice struct {
	Index        int           `json:"index"`
	Delta        Message       `json:"delta"`
	FinishReason *string       `json:"finish_reason"`
	Logprobs     *ChatLogprobs `json:"logprobs,omitempty"`
}

// ChatChunk is one server-sent event of a streamed chat answer.
type ChatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChatStream sends req as a streaming request (server-sent events), calls
// onChunk (when not nil) for every chunk as it arrives, and returns the
// assembled answer. Retries happen only before the first byte of the
// answer; the stream itself is bounded by ctx alone. The assembled answer is
// cached under the key of the same request without streaming, so Chat and
// ChatStream share cache entries; a cached answer reaches onChunk as one
// chunk per choice.
func (c *Client) ChatStream(ctx context.Context, req ChatRequest, onChunk func(ChatChunk) error) (*ChatResponse, error) {
	if onChunk == nil {
		onChunk = func(ChatChunk) error { return nil }
	}
	req.Stream, req.StreamOptions = false, nil
	key, err := ChatRequestKey(req)
	if err != nil {
		return nil, err
	}
	if c.Cache != nil {
		var r ChatResponse
		ok, err := c.fromCache(ctx, key, &r)
		if err != nil {
			return nil, err
		}
		if ok {
			r.Cached = true
			c.account(req.Model, r.Usage, true)
			for _, ch := range r.Choices {
				fr := ch.FinishReason
				if err := onChunk(ChatChunk{ID: r.ID, Object: "chat.completion.chunk", Created: r.Created, Model: r.Model,
					Choices: []ChunkChoice{{Index: ch.Index, Delta: ch.Message, FinishReason: &fr, Logprobs: ch.Logprobs}}}); err != nil {
					return nil, err
				}
			}
			return &r, nil
		}
	}
	req.Stream, req.StreamOptions = true, &StreamOptions{IncludeUsage: true}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("llm: encode request: %w", err)
	}
	release, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var resp *http.Response
	err = c.retry(ctx, PathChat, func(actx context.Context) error {
		var err error
		resp, err = c.send(actx, PathChat, body)
		return err
	}, false)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	out := &ChatResponse{Object: "chat.completion"}
	var texts []*strings.Builder
	err = readSSE(resp, func(data []byte) error {
		var ch ChatChunk
		if err := json.Unmarshal(data, &ch); err != nil {
			return fmt.Errorf("decode chunk: %w", err)
		}
		var probe struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(data, &probe) == nil && len(probe.Error) > 0 && string(probe.Error) != "null" {
			msg, _, code := parseErrorBody(data)
			return fmt.Errorf("server error in stream: %s %s", msg, code)
		}
		if out.ID == "" {
			out.ID, out.Created, out.Model = ch.ID, ch.Created, ch.Model
		}
		if ch.Usage != nil {
			out.Usage = *ch.Usage
		}
		for _, d := range ch.Choices {
			if d.Index < 0 || d.Index > 1024 {
				return fmt.Errorf("chunk choice index %d out of range", d.Index)
			}
			for len(out.Choices) <= d.Index {
				out.Choices = append(out.Choices, ChatChoice{Index: len(out.Choices), Message: Message{Role: "assistant"}})
				texts = append(texts, &strings.Builder{})
			}
			cc := &out.Choices[d.Index]
			if d.Delta.Role != "" {
				cc.Message.Role = d.Delta.Role
			}
			texts[d.Index].WriteString(d.Delta.Content)
			cc.Message.ReasoningContent += d.Delta.ReasoningContent
			if d.FinishReason != nil {
				cc.FinishReason = *d.FinishReason
			}
			if d.Logprobs != nil {
				if cc.Logprobs == nil {
					cc.Logprobs = &ChatLogprobs{}
				}
				cc.Logprobs.Content = append(cc.Logprobs.Content, d.Logprobs.Content...)
			}
		}
		return onChunk(ch)
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("llm: POST %s (stream): %w", PathChat, context.Cause(ctx))
		}
		return nil, fmt.Errorf("llm: POST %s (stream): %w", PathChat, err)
	}
	for i, t := range texts {
		out.Choices[i].Message.Content = t.String()
	}
	c.account(req.Model, out.Usage, false)
	if c.Cache != nil {
		data, err := json.Marshal(out)
		if err != nil {
			return nil, err
		}
		if err := c.Cache.Put(ctx, key, data); err != nil {
			return nil, fmt.Errorf("llm: cache: %w", err)
		}
	}
	return out, nil
}

// readSSE calls fn with the data of every event until "[DONE]" or the end
// of the body. A stream that ends without "[DONE]" is an error only when it
// delivered no event at all.
func readSSE(resp *http.Response, fn func([]byte) error) error {
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var data []byte
	events := 0
	flush := func() (bool, error) {
		if len(data) == 0 {
			return false, nil
		}
		d := bytes.TrimSpace(data)
		data = data[:0]
		switch string(d) {
		case "[DONE]":
			return true, nil
		case "": // "data:" with nothing, as some servers send to keep alive
			return false, nil
		}
		events++
		return false, fn(d)
	}
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if done, err := flush(); done || err != nil {
				return err
			}
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if done, err := flush(); done || err != nil {
		return err
	}
	if events == 0 {
		return errors.New("stream ended without data")
	}
	return nil
}
