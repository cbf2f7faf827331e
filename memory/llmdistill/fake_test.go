package llmdistill

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/llm"
)

// testData builds 3 users with 25 ratings each over 40 movies; the oldest
// 15 of each user train (2 batches of 10 and 5) and the newest 10 test.
// Movies "t1".."t5" are rated only in test rows.
func testData(t testing.TB) (*dataset.Dataset, *split.Split) {
	t.Helper()
	d := &dataset.Dataset{Name: "tiny", Scale: dataset.FiveStars}
	for i := range 35 {
		d.AddItem(dataset.Item{ID: fmt.Sprint(100 + i), Title: fmt.Sprintf("Movie %d, The", i), Year: 1980 + i, Genres: []string{[]string{"Drama", "Comedy", "Horror"}[i%3]}})
	}
	for i := range 5 {
		d.AddItem(dataset.Item{ID: fmt.Sprintf("t%d", i+1), Title: "Leaky Title", Year: 2001, Genres: []string{"Western"}})
	}
	s := &split.Split{Protocol: split.ProtocolPaper, Temporal: true}
	for u := range 3 {
		uid := d.AddUser(dataset.User{ID: fmt.Sprintf("user-%d", u+1)})
		s.Users = append(s.Users, uid)
		for k := range 25 {
			row := int32(d.Ratings.Len())
			item := int32((u*7 + k) % 35)
			if k >= 20 {
				item = int32(35 + k - 20) // test-only movies
			}
			d.Append(uid, item, float32(1+(u+k)%5), int64(1000*u+k), true)
			if k < 15 {
				s.Train = append(s.Train, row)
			} else {
				s.Test = append(s.Test, row)
			}
		}
	}
	if err := s.Validate(d); err != nil {
		t.Fatal(err)
	}
	return d, s
}

var itemLine = regexp.MustCompile(`item_id: "([^"]*)" \|.*\| MY RATING: ([0-9.]+)`)

type fakeItem struct{ id, rating string }

// batchItems reads the movies of the batch prompt in a request.
func batchItems(req *llm.ChatRequest) []fakeItem {
	var out []fakeItem
	for _, m := range req.Messages {
		if m.Role != "user" || !strings.Contains(m.Content, "item_id:") {
			continue
		}
		for _, g := range itemLine.FindAllStringSubmatch(m.Content, -1) {
			out = append(out, fakeItem{g[1], g[2]})
		}
		break
	}
	return out
}

// validContent is a correct answer to the batch of req.
func validContent(req *llm.ChatRequest) string {
	items := batchItems(req)
	type it struct {
		ID     string  `json:"item_id"`
		Rating float64 `json:"rating"`
		Reason string  `json:"reason"`
	}
	var a struct {
		Items      []it   `json:"items"`
		Reflection string `json:"reflection"`
		Profile    string `json:"profile"`
	}
	for _, x := range items {
		var r float64
		fmt.Sscan(x.rating, &r)
		a.Items = append(a.Items, it{x.id, r, fmt.Sprintf("movie %s moved me exactly %s stars' worth.", x.id, x.rating)})
	}
	a.Reflection = fmt.Sprintf("These %d ratings fit because I rate what I feel.", len(items))
	a.Profile = fmt.Sprintf("I am a viewer who has now seen %s.", items[len(items)-1].id)
	b, _ := json.Marshal(a)
	return string(b)
}

// fakeLLM is an OpenAI-compatible chat server whose answers are built from
// the request. hook, when set, may answer a call itself (returning true).
type fakeLLM struct {
	mu     sync.Mutex
	calls  int
	bodies map[string]int // request key → times received
	reqs   []llm.ChatRequest
	hook   func(call int, req *llm.ChatRequest, w http.ResponseWriter) bool
	// content, when set, replaces validContent.
	content func(call int, req *llm.ChatRequest) (content, finish string)
	// after runs once an answer has been written.
	after func(call int)
}

func (f *fakeLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	var raw json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&raw); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var req llm.ChatRequest
	json.Unmarshal(raw, &req)
	f.mu.Lock()
	f.calls++
	call := f.calls
	if f.bodies == nil {
		f.bodies = map[string]int{}
	}
	f.bodies[llm.RequestKey(llm.PathChat, raw)]++
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.hook != nil && f.hook(call, &req, w) {
		return
	}
	content, finish := "", "stop"
	if f.content != nil {
		content, finish = f.content(call, &req)
	} else {
		content = validContent(&req)
	}
	json.NewEncoder(w).Encode(llm.ChatResponse{ID: fmt.Sprint("c", call), Object: "chat.completion", Model: req.Model,
		Choices: []llm.ChatChoice{{Message: llm.Message{Role: "assistant", Content: content}, FinishReason: finish}},
		Usage:   llm.Usage{PromptTokens: 100, CompletionTokens: 20, TotalTokens: 120}})
	if f.after != nil {
		f.after(call)
	}
}

func (f *fakeLLM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// setup starts the fake and returns a distiller config pointing at it.
func setup(t testing.TB, f *fakeLLM, cacheDir string) Config {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := &llm.Client{BaseURL: srv.URL + "/v1", APIKey: "test",
		Retry: llm.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Timeout: 5 * time.Second},
		Usage: &llm.Accounting{Prices: map[string]llm.Price{"fake": {Input: 1, Output: 4}}}}
	if cacheDir != "" {
		cache, err := llm.NewDirCache(cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		c.Cache = cache
	}
	return Config{Client: c, Model: "fake", Concurrency: 2}
}

func newDistiller(t *testing.T, cfg Config) *Distiller {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// mustDistill runs a distillation that must succeed.
func mustDistill(t *testing.T, cfg Config) ([]memoryProfile, int) {
	t.Helper()
	ds, sp := testData(t)
	ps, ms, err := newDistiller(t, cfg).Distill(context.Background(), ds, sp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || len(ms) != 45 {
		t.Fatalf("%d profiles, %d interactions; want 3 and 45", len(ps), len(ms))
	}
	out := make([]memoryProfile, len(ps))
	for i, p := range ps {
		b, _ := json.Marshal(p)
		out[i] = memoryProfile(b)
	}
	return out, len(ms)
}

// memoryProfile is a profile as JSON, for comparing runs.
type memoryProfile string
