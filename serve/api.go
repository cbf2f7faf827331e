package serve

import (
	"encoding/json"
	"fmt"
	"math"
)

// The request and response bodies of OpenAI's API, as far as the server
// implements it. Fields the server does not read (presence_penalty, user,
// ...) are accepted and ignored, as OpenAI-compatible servers do.

// stopList is OpenAI's "stop": a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("stop: want a string or an array of strings")
	}
	*s = many
	return nil
}

// promptInput is the completions "prompt": a string, an array of one
// string, an array of token ids, or an array of one array of token ids.
type promptInput struct {
	text   string
	tokens []int // when not nil, the prompt is these ids
}

func (p *promptInput) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = promptInput{text: one}
		return nil
	}
	var ids []int
	if err := json.Unmarshal(b, &ids); err == nil && len(ids) > 0 {
		*p = promptInput{tokens: ids}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err == nil {
		if len(many) != 1 {
			return fmt.Errorf("prompt: %d prompts; this server takes one per request", len(many))
		}
		*p = promptInput{text: many[0]}
		return nil
	}
	var idLists [][]int
	if err := json.Unmarshal(b, &idLists); err == nil {
		if len(idLists) != 1 || len(idLists[0]) == 0 {
			return fmt.Errorf("prompt: %d token lists; this server takes one non-empty list per request", len(idLists))
		}
		*p = promptInput{tokens: idLists[0]}
		return nil
	}
	return fmt.Errorf("prompt: want a string, an array of one string, or token ids")
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// samplingParams are the fields chat and completions requests share.
type samplingParams struct {
	Model               string         `json:"model"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Stop                stopList       `json:"stop"`
	Seed                *int64         `json:"seed"`
	N                   *int           `json:"n"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type chatRequest struct {
	samplingParams
	Messages    []chatMessage `json:"messages"`
	Logprobs    bool          `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
}

type completionRequest struct {
	samplingParams
	Prompt   *promptInput `json:"prompt"`
	Logprobs *int         `json:"logprobs"`
	Echo     bool         `json:"echo"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type chatLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"`
}

type assistantMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

type chatChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     *chatLogprobs    `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chunkChoice struct {
	Index        int           `json:"index"`
	Delta        chunkDelta    `json:"delta"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage"`
}

// legacyLogprobs is the completions API's logprobs object.
type legacyLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     *legacyLogprobs `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	Parent  string `json:"parent,omitempty"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

type errorBody struct {
	Error apiError `json:"error"`
}

// finiteLogprob keeps -Inf out of JSON (which cannot encode it).
func finiteLogprob(x float64) float64 {
	if math.IsInf(x, -1) || math.IsNaN(x) {
		return -9999
	}
	return x
}
