// Package loadtest drives a running `usersim serve` from a second process:
// Run sends OpenAI-compatible completions, RunAgents the agent API's rate
// and choose requests over the personas' users, and Probe malformed,
// oversized and misrouted requests that must all be answered 4xx. Results
// carry throughput, latency percentiles, answers by status and the
// server's memory sampled from its /metrics over the run.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a load test.
type Options struct {
	// URL is the server's base URL (http://127.0.0.1:8080).
	URL string
	// APIKey is sent as a bearer token when not empty.
	APIKey string
	// Models are the "model" values, used in turn (adapters, personas).
	Models []string
	// Clients is the number of concurrent clients (default 8).
	Clients int
	// Duration is how long clients keep sending (default 10s); Requests,
	// when positive, stops after that many requests instead.
	Duration time.Duration
	Requests int
	// Prompt, MaxTokens and Temperature shape each request (defaults
	// "Once upon a time", 32, 0.8).
	Prompt      string
	MaxTokens   int
	Temperature float64
	// Stream requests server-sent events and measures time to first token.
	Stream bool
	// MemoryEvery and MemoryWindow are as in AgentOptions (default 1s and
	// 10s; MemoryEvery negative: memory is not read).
	MemoryEvery  time.Duration
	MemoryWindow time.Duration
	// Client is the HTTP client (default: one with Clients idle connections).
	Client *http.Client
}

// Result is what a load test measured.
type Result struct {
	Requests     int           `json:"requests"`
	Errors       int           `json:"errors"`
	Status       map[int]int   `json:"status"`      // responses by HTTP status
	FirstError   string        `json:"first_error"` // "" when none
	Tokens       int64         `json:"tokens"`      // completion tokens
	Elapsed      time.Duration `json:"elapsed_ns"`
	TokensPerSec float64       `json:"tokens_per_sec"`
	RequestsPerS float64       `json:"requests_per_sec"`
	P50, P90     time.Duration `json:"-"`
	P99, Max     time.Duration `json:"-"`
	TTFT50       time.Duration `json:"-"` // streaming only
	TTFT99       time.Duration `json:"-"`
	// Memory is the server's memory over the run (Run only; AgentResult
	// has its own).
	Memory MemoryStats `json:"memory"`
}

// String renders the result as a few aligned lines.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests   %d in %.1fs (%.1f/s), errors %d\n", r.Requests, r.Elapsed.Seconds(), r.RequestsPerS, r.Errors)
	if r.Tokens > 0 {
		fmt.Fprintf(&b, "tokens     %d (%.0f tok/s)\n", r.Tokens, r.TokensPerSec)
	}
	fmt.Fprintf(&b, "latency    p50 %v  p90 %v  p99 %v  max %v\n", r.P50.Round(time.Millisecond), r.P90.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
	if r.TTFT50 > 0 {
		fmt.Fprintf(&b, "first tok  p50 %v  p99 %v\n", r.TTFT50.Round(time.Millisecond), r.TTFT99.Round(time.Millisecond))
	}
	codes := make([]int, 0, len(r.Status))
	for c := range r.Status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	b.WriteString("status    ")
	for _, c := range codes {
		fmt.Fprintf(&b, " %d×%d", c, r.Status[c])
	}
	b.WriteByte('\n')
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	b.WriteString(r.Memory.String())
	return b.String()
}

type sample struct {
	status  int
	latency time.Duration
	ttft    time.Duration
	tokens  int64
	err     error

	// Agent requests only.
	choose  bool
	persona int
	ratings int // ratings answered
	invalid int // of which valid=false
}

// Run sends requests until the duration passes, the request count is
// reached or ctx ends, and reports what it measured.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.URL == "" || len(o.Models) == 0 {
		return Result{}, errors.New("loadtest: a URL and at least one model are required")
	}
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Prompt == "" {
		o.Prompt = "Once upon a time"
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 32
	}
	if o.Temperature == 0 {
		o.Temperature = 0.8
	}
	o.MemoryEvery, o.MemoryWindow, o.Client = commonDefaults(o.MemoryEvery, o.MemoryWindow, o.Duration, o.Client, o.Clients+1)
	base := strings.TrimSuffix(o.URL, "/")
	t0 := time.Now()
	var mem *memSampler
	if o.MemoryEvery > 0 {
		mem = sampleMemory(ctx, o.Client, base, o.APIKey, o.MemoryEvery, t0)
	}
	samples, elapsed := drive(ctx, o.Clients, o.Duration, o.Requests, func(ctx context.Context, _, i int) sample {
		return one(ctx, o, base+"/v1/completions", o.Models[i%len(o.Models)], i)
	})
	r := summarize(samples, elapsed)
	if mem != nil {
		r.Memory = mem.finish(ctx, o.Client, base, o.APIKey, time.Since(t0), o.MemoryWindow)
	}
	return r, nil
}

// drive runs do from clients concurrent clients until duration passes,
// requests requests (when positive) were sent or ctx ends; do gets its
// client's number and the request's. Requests cut off by the end of the
// test are dropped, not counted as errors.
func drive(ctx context.Context, clients int, duration time.Duration, requests int, do func(ctx context.Context, client, i int) sample) ([]sample, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var mu sync.Mutex
	var samples []sample
	var sent int
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if requests > 0 && sent >= requests {
			return 0, false
		}
		sent++
		return sent - 1, true
	}
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i, ok := take()
				if !ok {
					return
				}
				s := do(ctx, c, i)
				if ctx.Err() != nil && s.err != nil {
					return // cut off by the end of the test, not an error
				}
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return samples, time.Since(t0)
}

func summarize(samples []sample, elapsed time.Duration) Result {
	r := Result{Requests: len(samples), Status: map[int]int{}, Elapsed: elapsed}
	var lat, ttft []time.Duration
	for _, s := range samples {
		r.Status[s.status]++
		if s.err != nil || s.status != http.StatusOK {
			r.Errors++
			if r.FirstError == "" {
				r.FirstError = fmt.Sprintf("status %d: %v", s.status, s.err)
			}
			continue
		}
		r.Tokens += s.tokens
		lat = append(lat, s.latency)
		if s.ttft > 0 {
			ttft = append(ttft, s.ttft)
		}
	}
	if elapsed > 0 {
		r.TokensPerSec = float64(r.Tokens) / elapsed.Seconds()
		r.RequestsPerS = float64(r.Requests) / elapsed.Seconds()
	}
	r.P50, r.P90, r.P99 = pct(lat, 50), pct(lat, 90), pct(lat, 99)
	r.Max = pct(lat, 100)
	r.TTFT50, r.TTFT99 = pct(ttft, 50), pct(ttft, 99)
	return r
}

// pct is the nearest-rank percentile (0 for no values).
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	k := (p*len(d) + 99) / 100 // ceil(p/100·n)
	return d[max(k, 1)-1]
}

func one(ctx context.Context, o Options, url, model string, i int) sample {
	body, _ := json.Marshal(map[string]any{
		"model": model, "prompt": o.Prompt, "max_tokens": o.MaxTokens, "temperature": o.Temperature,
		"seed": i, "stream": o.Stream, "stream_options": map[string]bool{"include_usage": o.Stream},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return sample{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	t0 := time.Now()
	resp, err := o.Client.Do(req)
	if err != nil {
		return sample{err: err}
	}
	defer resp.Body.Close()
	s := sample{status: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.err = errors.New(strings.TrimSpace(string(b)))
		return s
	}
	type usage struct {
		CompletionTokens int64 `json:"completion_tokens"`
	}
	if !o.Stream {
		var c struct {
			Usage usage `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
			s.err = err
			return s
		}
		s.tokens, s.latency = c.Usage.CompletionTokens, time.Since(t0)
		return s
	}
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ch struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *usage          `json:"usage"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ch); err != nil {
			s.err = err
			return s
		}
		if ch.Error != nil {
			s.err = fmt.Errorf("stream error: %s", ch.Error)
			return s
		}
		if s.ttft == 0 && len(ch.Choices) > 0 && ch.Choices[0].Text != "" {
			s.ttft = time.Since(t0)
		}
		if ch.Usage != nil {
			s.tokens = ch.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		s.err = err
	} else if !done {
		s.err = errors.New("stream ended without [DONE]")
	}
	s.latency = time.Since(t0)
	return s
}
