package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chatAnswer returns a minimal chat completion whose content echoes the
// last message.
func chatAnswer(w http.ResponseWriter, r *http.Request) {
	var req ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	last := ""
	if len(req.Messages) > 0 {
		last = req.Messages[len(req.Messages)-1].Content
	}
	json.NewEncoder(w).Encode(ChatResponse{ID: "c1", Object: "chat.completion", Model: req.Model,
		Choices: []ChatChoice{{Message: Message{Role: "assistant", Content: "echo: " + last}, FinishReason: "stop"}},
		Usage:   Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}})
}

// script serves the handlers in turn, the last one for every later request,
// and counts requests.
type script struct {
	n        atomic.Int32
	handlers []http.HandlerFunc
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(s.n.Add(1)) - 1
	s.handlers[min(i, len(s.handlers)-1)](w, r)
}

func fastRetry() RetryPolicy {
	return RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

func chatReq(msg string) ChatRequest {
	return ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: msg}}, Temperature: Ptr(0.0)}
}

func TestChatRetries(t *testing.T) {
	status := func(code int, hdr map[string]string, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(code)
			io.WriteString(w, body)
		}
	}
	hang := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}
	reset := func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
	tests := []struct {
		name     string
		handlers []http.HandlerFunc
		policy   RetryPolicy
		requests int32
		minWait  time.Duration
		wantErr  string
	}{
		{"ok", []http.HandlerFunc{chatAnswer}, fastRetry(), 1, 0, ""},
		{"429 retry-after seconds", []http.HandlerFunc{status(429, map[string]string{"Retry-After": "1"}, `{"error":{"message":"slow down","type":"rate_limit"}}`), chatAnswer}, fastRetry(), 2, time.Second, ""},
		{"429 retry-after-ms", []http.HandlerFunc{status(429, map[string]string{"retry-after-ms": "300"}, `{}`), chatAnswer}, fastRetry(), 2, 300 * time.Millisecond, ""},
		{"500 then ok", []http.HandlerFunc{status(500, nil, `oops`), status(502, nil, ``), chatAnswer}, fastRetry(), 3, 0, ""},
		{"timeout then ok", []http.HandlerFunc{hang, chatAnswer}, RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, Timeout: 200 * time.Millisecond}, 2, 200 * time.Millisecond, ""},
		{"connection reset then ok", []http.HandlerFunc{reset, chatAnswer}, fastRetry(), 2, 0, ""},
		{"400 not retried", []http.HandlerFunc{status(400, nil, `{"error":{"message":"bad model","type":"invalid_request_error","code":"model_not_found"}}`)}, fastRetry(), 1, 0, "400 Bad Request: bad model (code model_not_found)"},
		{"vllm error shape", []http.HandlerFunc{status(404, nil, `{"object":"error","message":"The model x does not exist.","type":"NotFoundError","code":404}`)}, fastRetry(), 1, 0, "The model x does not exist."},
		{"gives up", []http.HandlerFunc{status(503, nil, `{"error":"overloaded"}`)}, fastRetry(), 4, 0, "giving up after 4 attempts: POST /chat/completions: 503 Service Unavailable: overloaded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{handlers: tc.handlers}
			srv := httptest.NewServer(s)
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, Retry: tc.policy}
			start := time.Now()
			resp, err := c.Chat(context.Background(), chatReq("hi"))
			if got := s.n.Load(); got != tc.requests {
				t.Errorf("server saw %d requests, want %d", got, tc.requests)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Content() != "echo: hi" {
				t.Errorf("content %q", resp.Content())
			}
			if el := time.Since(start); el < tc.minWait {
				t.Errorf("returned after %v, want at least %v", el, tc.minWait)
			}
		})
	}
}

func TestAPIErrorFields(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-request-id", "req-9")
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}`)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, APIKey: "k"}
	_, err := c.Chat(context.Background(), chatReq("x"))
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err %v is not an *APIError", err)
	}
	if ae.StatusCode != 401 || ae.Message != "Incorrect API key" || ae.Code != "invalid_api_key" || ae.RequestID != "req-9" {
		t.Errorf("APIError = %+v", ae)
	}
}

func TestRetryAfterPastDeadline(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(429)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := (&Client{BaseURL: srv.URL}).Chat(ctx, chatReq("x"))
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > time.Second || n.Load() != 1 {
		t.Errorf("took %v and %d requests; want an immediate failure", time.Since(start), n.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    map[string]string
		want time.Duration
	}{
		{map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, 7 * time.Second},
		{map[string]string{"Retry-After": now.Add(-7 * time.Second).Format(http.TimeFormat)}, 0},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"retry-after-ms": "250", "Retry-After": "9"}, 250 * time.Millisecond},
		{nil, 0},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := parseRetryAfter(h, now); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	p := RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}.withDefaults()
	for n := range 10 {
		for range 100 {
			d := p.backoff(n)
			limit := min(10*time.Millisecond<<n, 50*time.Millisecond)
			if d < 0 || d > limit {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, limit)
			}
		}
	}
}

func TestCacheKeyedByContent(t *testing.T) {
	s := &script{handlers: []http.HandlerFunc{chatAnswer}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	cache, err := NewDirCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acct := &Accounting{Prices: map[string]Price{"m": {Input: 1, Output: 2}}}
	c := &Client{BaseURL: srv.URL, Cache: cache, Usage: acct}
	ctx := context.Background()
	r1, err := c.Chat(ctx, chatReq("a"))
	if err != nil || r1.Cached {
		t.Fatalf("first: %v cached=%v", err, r1 != nil && r1.Cached)
	}
	// A fresh client over the same directory: a new process resuming.
	c2 := &Client{BaseURL: srv.URL, Cache: cache, Usage: acct}
	r2, err := c2.Chat(ctx, chatReq("a"))
	if err != nil || !r2.Cached || r2.Content() != "echo: a" {
		t.Fatalf("second: %v %+v", err, r2)
	}
	if s.n.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1", s.n.Load())
	}
	for _, req := range []ChatRequest{chatReq("b"), {Model: "m", Messages: chatReq("a").Messages, Temperature: Ptr(0.5)}, {Model: "m2", Messages: chatReq("a").Messages, Temperature: Ptr(0.0)}} {
		if r, err := c2.Chat(ctx, req); err != nil || r.Cached {
			t.Errorf("changed request %+v answered from cache", req)
		}
	}
	if s.n.Load() != 4 {
		t.Errorf("server saw %d requests, want 4", s.n.Load())
	}
	tot := acct.Total()
	if tot.Requests != 4 || tot.CachedRequests != 1 || tot.PromptTokens != 40 || tot.Priced {
		t.Errorf("total %+v (m2 has no price, so total must be unpriced)", tot)
	}
	m := acct.Models()[0]
	if want := (30*1.0 + 15*2.0) / 1e6; m.Model != "m" || m.Cost != want {
		t.Errorf("model m usage %+v, want cost %g", m, want)
	}
	// No temporary files are left behind.
	filepath.WalkDir(cache.Dir, func(p string, d os.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
	if _, _, err := cache.Get(ctx, "../../etc/passwd"); err == nil {
		t.Error("a path-like key was accepted")
	}
}

func TestConcurrencyBound(t *testing.T) {
	var in, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := in.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		in.Add(-1)
		chatAnswer(w, r)
	}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, MaxConcurrency: 2}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := c.Chat(context.Background(), chatReq(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Errorf("peak in flight %d, want 2", p)
	}
}

func TestEmbeddingsAndCompletions(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/embeddings", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","model":"e","data":[{"object":"embedding","index":1,"embedding":[0,1]},{"object":"embedding","index":0,"embedding":[1,0]}],"usage":{"prompt_tokens":4,"total_tokens":4}}`)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		if req["logprobs"] != float64(0) {
			t.Errorf("logprobs sent as %v, want 0", req["logprobs"])
		}
		io.WriteString(w, `{"id":"x","object":"text_completion","model":"m","choices":[{"index":0,"text":"4","finish_reason":"length","logprobs":{"tokens":["4"],"token_logprobs":[-0.25],"top_logprobs":[{"4":-0.25,"5":-1.6}],"text_offset":[0]}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/v1"}
	e, err := c.Embeddings(context.Background(), EmbeddingRequest{Model: "e", Input: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Data[0].Embedding[0] != 1 || e.Data[1].Embedding[1] != 1 {
		t.Errorf("embeddings not in input order: %+v", e.Data)
	}
	if _, err := c.Embeddings(context.Background(), EmbeddingRequest{Model: "e", Input: []string{"a"}}); err == nil {
		t.Error("2 vectors for 1 input accepted")
	}
	cr, err := c.Completions(context.Background(), CompletionRequest{Model: "m", Prompt: "RATING:", MaxTokens: 1, Logprobs: Ptr(0)})
	if err != nil {
		t.Fatal(err)
	}
	lp := cr.Choices[0].Logprobs
	if cr.Choices[0].Text != "4" || lp.TokenLogprobs[0] != -0.25 || lp.TopLogprobs[0]["5"] != -1.6 {
		t.Errorf("completion %+v", cr.Choices[0])
	}
}

func TestExtraFields(t *testing.T) {
	req := chatReq("x")
	req.Extra = map[string]any{"guided_json": map[string]any{"type": "object"}}
	b, err := json.Marshal(req)
	if err != nil || !bytes.Contains(b, []byte(`"guided_json":{"type":"object"}`)) {
		t.Errorf("%s %v", b, err)
	}
	req.Extra = map[string]any{"model": "other"}
	if _, err := json.Marshal(req); err == nil {
		t.Error("extra field overriding model accepted")
	}
}

func TestChatStream(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var req ChatRequest
		json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream || req.StreamOptions == nil || !req.StreamOptions.IncludeUsage {
			t.Errorf("stream fields not sent: %+v", req)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range []string{
			`{"id":"s","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`,
			`{"id":"s","model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`,
			`{"id":"s","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
			`[DONE]`,
		} {
			fmt.Fprintf(w, ": keep-alive\n\ndata: %s\n\n", ev)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	cache, _ := NewDirCache(t.TempDir())
	c := &Client{BaseURL: srv.URL, Cache: cache}
	var chunks []string
	resp, err := c.ChatStream(context.Background(), chatReq("x"), func(ch ChatChunk) error {
		for _, d := range ch.Choices {
			chunks = append(chunks, d.Delta.Content)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content() != "Hello" || resp.Choices[0].FinishReason != "stop" || resp.Usage.TotalTokens != 5 || strings.Join(chunks, "|") != "Hel|lo" {
		t.Errorf("stream gave %+v, chunks %q", resp, chunks)
	}
	// The assembled answer is cached for Chat as well.
	r2, err := c.Chat(context.Background(), chatReq("x"))
	if err != nil || !r2.Cached || r2.Content() != "Hello" || n.Load() != 1 {
		t.Errorf("cached chat after stream: %v %+v (server saw %d)", err, r2, n.Load())
	}
}
