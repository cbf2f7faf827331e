package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ProbeOptions configure Probe.
type ProbeOptions struct {
	// URL is the server's base URL; APIKey its bearer token ("" for none:
	// then no wrong-key case is sent).
	URL    string
	APIKey string
	// User and Item are a user with an agent and an item the server knows,
	// so that each bad request has one thing wrong with it.
	User, Item string
	// MaxBody is the server's request body limit (default 1 MiB, serve's);
	// the oversized case sends a little more.
	MaxBody int64
	// Rounds is how many times every case is sent (default 1; negative:
	// until ctx ends). Interval is the pause between two requests.
	Rounds   int
	Interval time.Duration
	// Client is the HTTP client (default http.DefaultClient).
	Client *http.Client
}

// ProbeCase is one bad request.
type ProbeCase struct {
	Name   string
	Method string
	Path   string // escaped, from the base URL
	Body   func() io.Reader
}

// ProbeResult counts the answers to the bad requests.
type ProbeResult struct {
	Sent int `json:"sent"`
	// Status counts the answers by HTTP status (0: no answer); Cases the
	// statuses each case got.
	Status map[int]int            `json:"status"`
	Cases  map[string]map[int]int `json:"cases"`
	// Bad counts the answers that were not 4xx, FirstBad describes one.
	Bad      int    `json:"bad"`
	FirstBad string `json:"first_bad"`
}

// Add counts the answers of o too.
func (r *ProbeResult) Add(o ProbeResult) {
	if r.Status == nil {
		r.Status = map[int]int{}
	}
	if r.Cases == nil {
		r.Cases = map[string]map[int]int{}
	}
	r.Sent += o.Sent
	r.Bad += o.Bad
	for st, n := range o.Status {
		r.Status[st] += n
	}
	for c, m := range o.Cases {
		if r.Cases[c] == nil {
			r.Cases[c] = map[int]int{}
		}
		for st, n := range m {
			r.Cases[c][st] += n
		}
	}
	if r.FirstBad == "" {
		r.FirstBad = o.FirstBad
	}
}

// String renders the result: one line per case, then the verdict.
func (r ProbeResult) String() string {
	var b strings.Builder
	names := make([]string, 0, len(r.Cases))
	for n := range r.Cases {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(&b, "malformed  %d requests over %d cases, %d not answered 4xx\n", r.Sent, len(r.Cases), r.Bad)
	for _, n := range names {
		codes := make([]int, 0, len(r.Cases[n]))
		for c := range r.Cases[n] {
			codes = append(codes, c)
		}
		slices.Sort(codes)
		fmt.Fprintf(&b, "  %-28s", n)
		for _, c := range codes {
			fmt.Fprintf(&b, " %d×%d", c, r.Cases[n][c])
		}
		b.WriteByte('\n')
	}
	if r.FirstBad != "" {
		fmt.Fprintf(&b, "first answer not 4xx: %s\n", r.FirstBad)
	}
	return b.String()
}

// ProbeCases are the bad requests Probe sends, each with one thing wrong:
// malformed JSON, wrong shapes, unknown users and items, too many items,
// an oversized body, over-long and path-like IDs, wrong methods and routes,
// bad query parameters and a wrong API key. A server must answer each 4xx.
func ProbeCases(o ProbeOptions) []ProbeCase {
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	user, item := url.PathEscape(o.User), o.Item
	rate, choose := "/v1/agents/"+user+"/rate", "/v1/agents/"+user+"/choose"
	js := func(v any) func() io.Reader {
		b, _ := json.Marshal(v)
		return func() io.Reader { return bytes.NewReader(b) }
	}
	raw := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	many := make([]string, 10001)
	for i := range many {
		many[i] = item
	}
	// Past the limit: a valid request padded with white space, which the
	// server must not read to the end.
	oversized := func() io.Reader {
		return io.MultiReader(strings.NewReader(`{"items": [`+quote(item)+`]`), &spaces{n: o.MaxBody + 1024}, strings.NewReader("}"))
	}
	cs := []ProbeCase{
		{"rate/malformed-json", "POST", rate, raw(`{"items": [`)},
		{"rate/not-json", "POST", rate, raw(`items=` + item)},
		{"rate/items-not-a-list", "POST", rate, js(map[string]any{"items": item})},
		{"rate/trailing-data", "POST", rate, raw(`{"items": [` + quote(item) + `]} {}`)},
		{"rate/null-body", "POST", rate, raw(`null`)},
		{"rate/empty-body", "POST", rate, raw(``)},
		{"rate/no-items", "POST", rate, js(map[string]any{"items": []string{}})},
		{"rate/deep-nesting", "POST", rate, raw(strings.Repeat("[", 100000))},
		{"rate/unknown-user", "POST", "/v1/agents/no-such-user-" + user + "/rate", js(map[string]any{"items": []string{item}})},
		{"rate/unknown-item", "POST", rate, js(map[string]any{"items": []string{item, "no-such-item-" + item}})},
		{"rate/empty-item", "POST", rate, js(map[string]any{"items": []string{""}})},
		{"rate/too-many-items", "POST", rate, js(map[string]any{"items": many})},
		{"rate/oversized-body", "POST", rate, oversized},
		{"rate/long-user-id", "POST", "/v1/agents/" + strings.Repeat("u", 300) + "/rate", js(map[string]any{"items": []string{item}})},
		{"rate/path-traversal-user", "POST", "/v1/agents/..%2F..%2Fetc%2Fpasswd/rate", js(map[string]any{"items": []string{item}})},
		{"rate/wrong-method", "GET", rate, nil},
		{"choose/duplicate-items", "POST", choose, js(map[string]any{"items": []string{item, item}})},
		{"choose/exit-item", "POST", choose, js(map[string]any{"items": []string{item, "exit"}})},
		{"choose/malformed-json", "POST", choose, raw(`{"items": [1, 2`)},
		{"choose/wrong-method", "PUT", choose, js(map[string]any{"items": []string{item}})},
		{"personas/wrong-method", "DELETE", "/v1/personas", nil},
		{"agents/bad-limit", "GET", "/v1/agents?limit=0", nil},
		{"items/bad-offset", "GET", "/v1/items?offset=-1", nil},
		{"no-route", "GET", "/v1/no-such-route", nil},
		{"completions/malformed-json", "POST", "/v1/completions", raw(`{"model": `)},
		{"chat/unknown-model", "POST", "/v1/chat/completions", js(map[string]any{"model": "no-such-model", "messages": []map[string]string{{"role": "user", "content": "hi"}}})},
	}
	if o.APIKey != "" {
		cs = append(cs, ProbeCase{"rate/wrong-api-key", "POST", rate, js(map[string]any{"items": []string{item}})})
	}
	return cs
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// spaces reads as n spaces.
type spaces struct{ n int64 }

func (s *spaces) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), s.n)
	for i := range k {
		p[i] = ' '
	}
	s.n -= k
	return int(k), nil
}

// Probe sends every case of ProbeCases, Rounds times, and counts the
// answers. Any answer that is not 4xx (a 5xx, a 2xx, no answer at all)
// counts as bad.
func Probe(ctx context.Context, o ProbeOptions) (ProbeResult, error) {
	if o.URL == "" || o.User == "" || o.Item == "" {
		return ProbeResult{}, errors.New("loadtest: probe needs a URL, a user and an item")
	}
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	base := strings.TrimSuffix(o.URL, "/")
	r := ProbeResult{Status: map[int]int{}, Cases: map[string]map[int]int{}}
	cases := ProbeCases(o)
	for round := 0; o.Rounds < 0 || round < o.Rounds; round++ {
		for _, c := range cases {
			if ctx.Err() != nil {
				return r, nil
			}
			status, err := probeOne(ctx, o, base, c)
			if ctx.Err() != nil && err != nil {
				return r, nil // cut off by the end of the run
			}
			r.Sent++
			r.Status[status]++
			if r.Cases[c.Name] == nil {
				r.Cases[c.Name] = map[int]int{}
			}
			r.Cases[c.Name][status]++
			if status < 400 || status > 499 {
				r.Bad++
				if r.FirstBad == "" {
					r.FirstBad = fmt.Sprintf("%s %s %s: status %d: %v", c.Name, c.Method, c.Path, status, err)
				}
			}
			if o.Interval > 0 {
				select {
				case <-ctx.Done():
					return r, nil
				case <-time.After(o.Interval):
				}
			}
		}
	}
	return r, nil
}

func probeOne(ctx context.Context, o ProbeOptions, base string, c ProbeCase) (int, error) {
	var body io.Reader
	if c.Body != nil {
		body = c.Body()
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, base+c.Path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	switch {
	case c.Name == "rate/wrong-api-key":
		req.Header.Set("Authorization", "Bearer not-"+o.APIKey)
	case o.APIKey != "":
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	resp, err := o.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		return resp.StatusCode, errors.New(strings.TrimSpace(string(b)))
	}
	return resp.StatusCode, nil
}
