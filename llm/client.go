// Package llm is a client for OpenAI-compatible HTTP servers (OpenAI, vLLM,
// Ollama, llama.cpp's server): chat completions (structured JSON output,
// logprobs, streaming), text completions with logprobs, and embeddings.
//
// A Client retries transient failures (HTTP 408, 409, 429 and 5xx, timeouts,
// dropped connections) with exponential backoff and full jitter, honouring
// the server's Retry-After, bounds the requests in flight, counts tokens and
// their cost per model, and, given a Cache, keeps every successful answer on
// disk keyed by the request's content, so that a crashed or interrupted run
// resumes without sending a request twice. Batch files in the OpenAI Batch /
// `vllm run-batch` JSONL format are written and read back into that cache.
package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultBaseURL is OpenAI's API root; vLLM and llama.cpp serve the same
// paths under http://host:port/v1, Ollama under http://localhost:11434/v1.
const DefaultBaseURL = "https://api.openai.com/v1"

// DefaultKeyEnv is the environment variable NewFromEnv reads by default.
const DefaultKeyEnv = "OPENAI_API_KEY"

// maxBody bounds a response body read into memory.
const maxBody = 256 << 20

// Client talks to one OpenAI-compatible server. Set its fields before the
// first request and do not change them afterwards; a Client is safe for
// concurrent use and must not be copied after first use.
type Client struct {
	// BaseURL is the API root including the version, e.g.
	// "http://localhost:8000/v1"; empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token when not empty.
	APIKey string
	// HTTP makes the requests; nil means http.DefaultClient. Per-attempt
	// time limits belong in Retry.Timeout, not in HTTP.Timeout.
	HTTP *http.Client
	// MaxConcurrency bounds the requests in flight (including their
	// retries); 0 means 8, negative means unbounded.
	MaxConcurrency int
	// Retry is the retry policy; zero fields take their defaults.
	Retry RetryPolicy
	// Cache, when set, answers requests it has seen and stores new answers.
	Cache Cache
	// Usage, when set, accumulates token counts and cost.
	Usage *Accounting
	// Header holds extra headers sent with every request.
	Header http.Header
	// Logger receives retry notices; nil means slog.Default().
	Logger *slog.Logger

	once sync.Once
	sem  chan struct{}
}

// NewFromEnv returns a client for baseURL whose API key is read from the
// environment variable keyEnv (DefaultKeyEnv when empty). A missing
// variable leaves the key empty, which local servers accept.
func NewFromEnv(baseURL, keyEnv string) *Client {
	if keyEnv == "" {
		keyEnv = DefaultKeyEnv
	}
	return &Client{BaseURL: baseURL, APIKey: os.Getenv(keyEnv)}
}

// APIError is a non-2xx answer from the server.
type APIError struct {
	Method, Path string
	StatusCode   int
	Message      string // the server's error message, or the start of its body
	Type, Code   string // the server's error type and code, when given
	RequestID    string // the x-request-id header, when given
	RetryAfter   time.Duration
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (code %s)", e.Code)
	} else if e.Type != "" {
		fmt.Fprintf(&b, " (%s)", e.Type)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Temporary reports whether retrying the request may succeed.
func (e *APIError) Temporary() bool {
	switch {
	case e.StatusCode == http.StatusRequestTimeout, e.StatusCode == http.StatusConflict,
		e.StatusCode == http.StatusTooManyRequests, e.StatusCode >= 500:
		return true
	}
	return false
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) url(path string) string {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return strings.TrimRight(base, "/") + path
}

// acquire takes a concurrency slot; the returned func gives it back.
func (c *Client) acquire(ctx context.Context) (func(), error) {
	c.once.Do(func() {
		n := c.MaxConcurrency
		if n == 0 {
			n = 8
		}
		if n > 0 {
			c.sem = make(chan struct{}, n)
		}
	})
	if c.sem == nil {
		return func() {}, nil
	}
	select {
	case c.sem <- struct{}{}:
		return func() { <-c.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Chat sends a chat completion request (not streamed; see ChatStream).
func (c *Client) Chat(ctx context.Context, req ChatRequest) (*ChatResponse, error) {
	if req.Stream {
		return nil, errors.New("llm: Chat with Stream set; use ChatStream")
	}
	var resp ChatResponse
	cached, err := c.call(ctx, PathChat, req.Model, req, &resp, func() Usage { return resp.Usage })
	if err != nil {
		return nil, err
	}
	resp.Cached = cached
	return &resp, nil
}

// CachedChat answers req from the cache only: ok is false when the cache
// has no answer (or the client has no cache). Nothing is sent.
func (c *Client) CachedChat(ctx context.Context, req ChatRequest) (resp *ChatResponse, ok bool, err error) {
	if c.Cache == nil {
		return nil, false, nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, false, fmt.Errorf("llm: encode request: %w", err)
	}
	var r ChatResponse
	ok, err = c.fromCache(ctx, RequestKey(PathChat, body), &r)
	if !ok || err != nil {
		return nil, false, err
	}
	r.Cached = true
	c.account(req.Model, r.Usage, true)
	return &r, true, nil
}

// Completions sends a text completion request.
func (c *Client) Completions(ctx context.Context, req CompletionRequest) (*CompletionResponse, error) {
	var resp CompletionResponse
	cached, err := c.call(ctx, PathCompletions, req.Model, req, &resp, func() Usage { return resp.Usage })
	if err != nil {
		return nil, err
	}
	resp.Cached = cached
	return &resp, nil
}

// Embeddings embeds req.Input; the answer's Data is sorted into input order
// and checked to hold one vector per input.
func (c *Client) Embeddings(ctx context.Context, req EmbeddingRequest) (*EmbeddingResponse, error) {
	if req.EncodingFormat == "" {
		req.EncodingFormat = "float"
	}
	if req.EncodingFormat != "float" {
		return nil, fmt.Errorf("llm: embeddings encoding_format %q: only \"float\" is supported", req.EncodingFormat)
	}
	var resp EmbeddingResponse
	cached, err := c.call(ctx, PathEmbeddings, req.Model, req, &resp, func() Usage { return resp.Usage })
	if err != nil {
		return nil, err
	}
	resp.Cached = cached
	if len(resp.Data) != len(req.Input) {
		return nil, fmt.Errorf("llm: embeddings: %d vectors for %d inputs", len(resp.Data), len(req.Input))
	}
	sorted := make([]Embedding, len(resp.Data))
	seen := make([]bool, len(resp.Data))
	for _, e := range resp.Data {
		if e.Index < 0 || e.Index >= len(sorted) || seen[e.Index] {
			return nil, fmt.Errorf("llm: embeddings: bad or repeated index %d", e.Index)
		}
		seen[e.Index] = true
		sorted[e.Index] = e
	}
	resp.Data = sorted
	return &resp, nil
}

// Endpoint paths, relative to BaseURL.
const (
	PathChat        = "/chat/completions"
	PathCompletions = "/completions"
	PathEmbeddings  = "/embeddings"
)

// call encodes req, answers it from the cache or the server, decodes the
// answer into out, stores it and accounts its usage.
func (c *Client) call(ctx context.Context, path, model string, req, out any, usage func() Usage) (cached bool, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return false, fmt.Errorf("llm: encode request: %w", err)
	}
	key := RequestKey(path, body)
	if c.Cache != nil {
		ok, err := c.fromCache(ctx, key, out)
		if err != nil {
			return false, err
		}
		if ok {
			c.account(model, usage(), true)
			return true, nil
		}
	}
	data, err := c.post(ctx, path, body)
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return false, fmt.Errorf("llm: POST %s: decode response: %w", path, err)
	}
	c.account(model, usage(), false)
	if c.Cache != nil {
		if err := c.Cache.Put(ctx, key, data); err != nil {
			return false, fmt.Errorf("llm: cache: %w", err)
		}
	}
	return false, nil
}

// fromCache decodes the cached answer under key into out. An entry that
// does not decode is logged and treated as missing.
func (c *Client) fromCache(ctx context.Context, key string, out any) (bool, error) {
	data, ok, err := c.Cache.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("llm: cache: %w", err)
	}
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		c.logger().Warn("llm: ignoring undecodable cache entry", "key", key, "err", err)
		return false, nil
	}
	return true, nil
}

func (c *Client) account(model string, u Usage, cached bool) {
	if c.Usage != nil {
		c.Usage.Add(model, u, cached)
	}
}

// post sends body to path, retrying transient failures, and returns the
// body of the first 2xx answer.
func (c *Client) post(ctx context.Context, path string, body []byte) ([]byte, error) {
	release, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var data []byte
	err = c.retry(ctx, path, func(actx context.Context) error {
		resp, err := c.send(actx, path, body)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return &netError{fmt.Errorf("read response: %w", err)}
		}
		return nil
	}, true)
	return data, err
}

// netError marks a transport failure that is worth retrying.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// send makes one POST and returns the response when its status is 2xx; any
// other status becomes an *APIError, a transport failure a *netError.
func (c *Client) send(ctx context.Context, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(path), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &netError{err}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	apiErr := &APIError{Method: http.MethodPost, Path: path, StatusCode: resp.StatusCode,
		RequestID:  resp.Header.Get("x-request-id"),
		RetryAfter: parseRetryAfter(resp.Header, time.Now())}
	apiErr.Message, apiErr.Type, apiErr.Code = parseErrorBody(data)
	return nil, apiErr
}

// parseErrorBody reads the error shapes of OpenAI ({"error":{"message",
// "type","code"}}), vLLM ({"object":"error","message",...}) and servers
// that send {"error":"text"}; anything else yields the start of the body.
func parseErrorBody(data []byte) (msg, typ, code string) {
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    any             `json:"code"`
	}
	if json.Unmarshal(data, &v) == nil {
		var inner struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    any    `json:"code"`
		}
		var s string
		switch {
		case len(v.Error) > 0 && json.Unmarshal(v.Error, &inner) == nil && inner.Message != "":
			return inner.Message, inner.Type, codeString(inner.Code)
		case len(v.Error) > 0 && json.Unmarshal(v.Error, &s) == nil && s != "":
			return s, "", ""
		case v.Message != "":
			return v.Message, v.Type, codeString(v.Code)
		}
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s, "", ""
}

func codeString(c any) string {
	switch c := c.(type) {
	case nil:
		return ""
	case string:
		return c
	case float64:
		return fmt.Sprint(int64(c))
	default:
		return fmt.Sprint(c)
	}
}
