package llm

import (
	"encoding/json"
	"fmt"
)

// Ptr returns a pointer to v, for the optional numeric fields of requests
// (a temperature of 0 differs from no temperature).
func Ptr[T any](v T) *T { return &v }

// Message is one turn of a chat conversation.
type Message struct {
	Role    string `json:"role"` // "system", "user", "assistant"
	Content string `json:"content"`
	Name    string `json:"name,omitempty"`
	// Refusal is set by OpenAI when a structured-output request is refused.
	Refusal string `json:"refusal,omitempty"`
	// ReasoningContent is the reasoning text some servers (vLLM with a
	// reasoning parser, DeepSeek) return beside Content.
	ReasoningContent string `json:"reasoning_content,omitempty"`
}

// ResponseFormat constrains a chat answer: {"type":"json_object"} or
// {"type":"json_schema","json_schema":{...}}.
type ResponseFormat struct {
	Type       string      `json:"type"` // "text", "json_object" or "json_schema"
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema names a JSON Schema that a structured answer must follow.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema"`
	Strict      bool            `json:"strict,omitempty"`
}

// StreamOptions asks a streaming server for a final usage chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ChatRequest is the body of POST /chat/completions.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	MaxTokens           int             `json:"max_tokens,omitempty"`
	MaxCompletionTokens int             `json:"max_completion_tokens,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	N                   int             `json:"n,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Logprobs            bool            `json:"logprobs,omitempty"`
	TopLogprobs         int             `json:"top_logprobs,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	// Extra holds server-specific fields merged into the body (vLLM's
	// "guided_json", Ollama's "options", ...). A key that names one of the
	// fields above is an error.
	Extra map[string]any `json:"-"`
}

// MarshalJSON writes the request with Extra merged in.
func (r ChatRequest) MarshalJSON() ([]byte, error) {
	type plain ChatRequest
	return marshalExtra(plain(r), r.Extra)
}

// marshalExtra marshals v, then adds the extra keys (sorted, as
// encoding/json writes maps), refusing to overwrite a standard field.
func marshalExtra(v any, extra map[string]any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, x := range extra {
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("llm: extra field %q duplicates a request field", k)
		}
		raw, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("llm: extra field %q: %w", k, err)
		}
		m[k] = raw
	}
	return json.Marshal(m)
}

// Usage counts the tokens of one request.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// TopLogprob is one alternative token and its log-probability.
type TopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes,omitempty"`
}

// TokenLogprob is a generated token, its log-probability and the most
// likely alternatives at its position.
type TokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes,omitempty"`
	TopLogprobs []TopLogprob `json:"top_logprobs,omitempty"`
}

// ChatLogprobs holds the log-probabilities of a chat choice's tokens.
type ChatLogprobs struct {
	Content []TokenLogprob `json:"content"`
}

// ChatChoice is one answer of a chat completion.
type ChatChoice struct {
	Index        int           `json:"index"`
	Message      Message       `json:"message"`
	FinishReason string        `json:"finish_reason"` // "stop", "length", ...
	Logprobs     *ChatLogprobs `json:"logprobs,omitempty"`
}

// ChatResponse is the body of a chat completion.
type ChatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []ChatChoice `json:"choices"`
	Usage             Usage        `json:"usage"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`

	// Cached reports that the response came from the cache, not the server.
	Cached bool `json:"-"`
}

// Content returns the first choice's message text ("" without choices).
func (r *ChatResponse) Content() string {
	if r == nil || len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Content
}

// CompletionRequest is the body of POST /completions (the legacy text
// completion endpoint, which vLLM and llama.cpp serve with logprobs).
type CompletionRequest struct {
	Model       string   `json:"model"`
	Prompt      string   `json:"prompt"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	Stop        []string `json:"stop,omitempty"`
	Seed        *int64   `json:"seed,omitempty"`
	N           int      `json:"n,omitempty"`
	// Logprobs asks for the log-probabilities of this many most likely
	// tokens at each position (0 is meaningful: the chosen token's only).
	Logprobs *int `json:"logprobs,omitempty"`
	Echo     bool `json:"echo,omitempty"`
	// Extra holds server-specific fields merged into the body.
	Extra map[string]any `json:"-"`
}

// MarshalJSON writes the request with Extra merged in.
func (r CompletionRequest) MarshalJSON() ([]byte, error) {
	type plain CompletionRequest
	return marshalExtra(plain(r), r.Extra)
}

// CompletionLogprobs holds the legacy per-token log-probabilities. A
// position without a value (the first echoed token) reads as 0.
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// CompletionChoice is one answer of a text completion.
type CompletionChoice struct {
	Index        int                 `json:"index"`
	Text         string              `json:"text"`
	FinishReason string              `json:"finish_reason"`
	Logprobs     *CompletionLogprobs `json:"logprobs,omitempty"`
}

// CompletionResponse is the body of a text completion.
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   Usage              `json:"usage"`

	Cached bool `json:"-"`
}

// EmbeddingRequest is the body of POST /embeddings.
type EmbeddingRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
	// Dimensions shortens the vectors where the model supports it.
	Dimensions int `json:"dimensions,omitempty"`
	// EncodingFormat is "float" (the only format this client decodes);
	// empty sends "float".
	EncodingFormat string `json:"encoding_format,omitempty"`
}

// Embedding is one input's vector.
type Embedding struct {
	Object    string    `json:"object"`
	Index     int       `json:"index"`
	Embedding []float32 `json:"embedding"`
}

// EmbeddingResponse is the body of an embeddings answer; Data is in input
// order.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Model  string      `json:"model"`
	Data   []Embedding `json:"data"`
	Usage  Usage       `json:"usage"`

	Cached bool `json:"-"`
}
