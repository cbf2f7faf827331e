package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/serve"
	"github.com/usersim/usersim/slm"
)

// fakeAgents is a serve.AgentService and serve.AgentCatalog over six users
// of three personas and twenty items; it answers uniform ratings (none at
// all for item "i13") and counts the requests per user.
type fakeAgents struct {
	mu    sync.Mutex
	calls map[string]int
}

var (
	fakeUsers = []serve.UserInfo{{ID: "u0", Persona: 0}, {ID: "u1", Persona: 1}, {ID: "u2", Persona: 2}, {ID: "u3", Persona: 0}, {ID: "u4", Persona: 1}, {ID: "u5", Persona: 2}}
	fakeItems = func() []serve.ItemInfo {
		var out []serve.ItemInfo
		for i := range 20 {
			out = append(out, serve.ItemInfo{ID: fmt.Sprintf("i%d", i)})
		}
		return out
	}()
)

func (f *fakeAgents) check(user string, items []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	known := false
	for _, u := range fakeUsers {
		known = known || u.ID == user
	}
	if !known {
		return fmt.Errorf("user %q: %w", user, serve.ErrNotFound)
	}
	for _, it := range items {
		var n int
		if _, err := fmt.Sscanf(it, "i%d", &n); err != nil || n < 0 || n >= len(fakeItems) || it != fakeItems[n].ID {
			return fmt.Errorf("item %q: %w", it, serve.ErrNotFound)
		}
	}
	f.calls[user]++
	return nil
}

func (f *fakeAgents) Rate(_ context.Context, user string, items []string, _ bool) ([]serve.ItemRating, error) {
	if err := f.check(user, items); err != nil {
		return nil, err
	}
	out := make([]serve.ItemRating, len(items))
	for i, it := range items {
		out[i] = serve.ItemRating{Item: it, Distribution: map[string]float64{"1": 0.25, "2": 0.25, "3": 0.25, "4": 0.25}, Expected: 2.5, Argmax: 1, Mass: 1, Valid: true}
		if it == "i13" {
			out[i] = serve.ItemRating{Item: it, Distribution: map[string]float64{"1": 0, "2": 0, "3": 0, "4": 0}}
		}
	}
	return out, nil
}

func (f *fakeAgents) Choose(_ context.Context, user string, items []string) (serve.SlateChoice, error) {
	if err := f.check(user, items); err != nil {
		return serve.SlateChoice{}, err
	}
	c := serve.SlateChoice{Choice: items[0], Probabilities: map[string]float64{}, Exit: 1 / float64(len(items)+1)}
	for _, it := range items {
		c.Probabilities[it] = 1 / float64(len(items)+1)
	}
	return c, nil
}

func (*fakeAgents) Personas() []serve.PersonaInfo {
	return []serve.PersonaInfo{{ID: 0, Size: 2}, {ID: 1, Size: 2}, {ID: 2, Size: 2}}
}
func (*fakeAgents) Users() []serve.UserInfo { return fakeUsers }
func (*fakeAgents) Items() []serve.ItemInfo { return fakeItems }

// agentServer serves fakeAgents (with API key "k" and a 64 KiB body limit)
// on a small model.
func agentServer(t *testing.T) (*httptest.Server, *fakeAgents) {
	t.Helper()
	m, tok, err := slm.Load(sharedtest.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve.New(m, tok, serve.Options{Name: "base", MaxContext: m.Config.MaxContext, APIKey: "k", MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAgents{calls: map[string]int{}}
	s.HandleAgents(f, serve.AgentOptions{MaxRateItems: 10})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return hs, f
}

func TestRunAgents(t *testing.T) {
	hs, f := agentServer(t)
	r, err := RunAgents(context.Background(), AgentOptions{URL: hs.URL, APIKey: "k", Clients: 4, Requests: 60, Duration: time.Minute,
		Items: 4, ChooseEvery: 3, SlateSize: 3, MemoryEvery: 5 * time.Millisecond, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests() != 60 || r.Errors() != 0 || r.Rate.Requests != 40 || r.Choose.Requests != 20 || r.Rate.Status[http.StatusOK] != 40 {
		t.Fatalf("requests: %+v", r)
	}
	if r.Ratings != 160 || r.Invalid == 0 || r.Invalid >= r.Ratings || r.RatingsPerSec <= 0 {
		t.Fatalf("%d ratings (%.1f/s), %d invalid; want 160, some invalid (item i13)", r.Ratings, r.RatingsPerSec, r.Invalid)
	}
	if r.Users != 6 || r.Personas != 3 || len(r.ByPersona) != 3 || r.ByPersona[0] != 20 || r.ByPersona[1] != 20 || r.ByPersona[2] != 20 {
		t.Fatalf("users %d, personas %d, by persona %v; want 20 requests for each of 3", r.Users, r.Personas, r.ByPersona)
	}
	if len(f.calls) != 6 {
		t.Errorf("users asked: %v, want all 6", f.calls)
	}
	if r.Rate.P50 <= 0 || r.Rate.P50 > r.Rate.P99 || r.Choose.P50 <= 0 {
		t.Errorf("latencies: rate %v/%v, choose %v", r.Rate.P50, r.Rate.P99, r.Choose.P50)
	}
	m := r.Memory
	if len(m.Samples) < 2 || m.Errors != 0 || m.Max.HeapInuse <= 0 || m.Max.HeapLive <= 0 || m.Max.Goroutines <= 0 {
		t.Fatalf("memory: %+v", m)
	}
	if runtime.GOOS == "linux" && (m.Max.RSS <= 0 || m.Max.PeakRSS < m.Max.RSS || m.First.RSS <= 0 || m.Last.RSS <= 0) {
		t.Fatalf("memory: %+v", m)
	}
	for _, want := range []string{"== rate", "== choose", "200×40", "200×20", "ratings    160", "server memory", "requests by persona: 0:20 1:20 2:20"} {
		if !strings.Contains(r.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, r)
		}
	}

	// One persona; users and items given.
	r, err = RunAgents(context.Background(), AgentOptions{URL: hs.URL, APIKey: "k", Clients: 2, Requests: 10, Items: 2, Personas: []int{1}, MemoryEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors() != 0 || r.Personas != 1 || r.ByPersona[1] != 10 || r.Users != 2 || len(r.Memory.Samples) != 0 {
		t.Fatalf("persona 1: %+v", r)
	}
	r, err = RunAgents(context.Background(), AgentOptions{URL: hs.URL, APIKey: "k", Clients: 2, Requests: 6, Items: 2, Users: []string{"u3", "nobody"}, ItemIDs: []string{"i1", "i2"}, MemoryEvery: -1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests() != 6 || r.Rate.Status[http.StatusOK]+r.Rate.Status[http.StatusNotFound] != 6 || r.Rate.Status[http.StatusNotFound] == 0 || r.Errors() != r.Rate.Status[http.StatusNotFound] {
		t.Fatalf("an unknown user given: %+v", r.Rate)
	}

	for _, o := range []AgentOptions{
		{},                                    // no URL
		{URL: hs.URL},                         // no key: the catalog is refused
		{URL: hs.URL, APIKey: "k", Items: 21}, // more items per request than there are
		{URL: hs.URL, APIKey: "k", Personas: []int{9}},
	} {
		if _, err := RunAgents(context.Background(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// Answers that are not what was asked for count as errors.
func TestRunAgentsBadAnswers(t *testing.T) {
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"server error", `{"error": {"message": "boom"}}`, http.StatusInternalServerError},
		{"not JSON", `{"ratings": [`, http.StatusOK},
		{"too few ratings", `{"ratings": []}`, http.StatusOK},
		{"wrong item", `{"ratings": [{"item": "zz", "distribution": {"1": 1}, "valid": true}]}`, http.StatusOK},
		{"no distribution", `{"ratings": [{"item": "a", "distribution": {"1": 0.2}, "valid": true}]}`, http.StatusOK},
	} {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				w.Write([]byte("go_goroutines 3\n"))
				return
			}
			w.WriteHeader(c.status)
			w.Write([]byte(c.body))
		}))
		r, err := RunAgents(context.Background(), AgentOptions{URL: hs.URL, Clients: 1, Requests: 3, Items: 1, Users: []string{"u"}, ItemIDs: []string{"a"}, MemoryEvery: time.Hour})
		hs.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Errors() != 3 || r.Ratings != 0 || r.Rate.FirstError == "" || r.Rate.Status[c.status] != 3 {
			t.Errorf("%s: %+v", c.name, r.Rate)
		}
		if r.Memory.Before.Goroutines != 3 || len(r.Memory.Samples) != 2 {
			t.Errorf("%s: memory %+v", c.name, r.Memory)
		}
	}
}

func TestProbe(t *testing.T) {
	hs, _ := agentServer(t)
	o := ProbeOptions{URL: hs.URL, APIKey: "k", User: "u0", Item: "i1", MaxBody: 64 << 10, Rounds: 2}
	r, err := Probe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	n := len(ProbeCases(o))
	if r.Sent != 2*n || r.Bad != 0 || len(r.Cases) != n || r.FirstBad != "" {
		t.Fatalf("%d cases, result:\n%s", n, r)
	}
	for name, want := range map[string]int{
		"rate/malformed-json": 400, "rate/oversized-body": 413, "rate/unknown-user": 404, "rate/unknown-item": 404,
		"rate/too-many-items": 400, "rate/wrong-method": 405, "rate/wrong-api-key": 401, "no-route": 404,
		"choose/exit-item": 400, "agents/bad-limit": 400, "chat/unknown-model": 404, "rate/path-traversal-user": 404,
	} {
		if r.Cases[name][want] != 2 {
			t.Errorf("%s: %v, want %d twice", name, r.Cases[name], want)
		}
	}
	var sum ProbeResult
	sum.Add(r)
	sum.Add(ProbeResult{Sent: 1, Bad: 1, Status: map[int]int{500: 1}, Cases: map[string]map[int]int{"x": {500: 1}}, FirstBad: "x"})
	if sum.Sent != 2*n+1 || sum.Bad != 1 || sum.Status[500] != 1 || sum.Cases["rate/malformed-json"][400] != 2 || sum.FirstBad != "x" {
		t.Errorf("sum: %+v", sum)
	}
	if !strings.Contains(r.String(), "0 not answered 4xx") {
		t.Errorf("summary:\n%s", r)
	}
	// Each case is a valid request but for one thing: fixed, it succeeds.
	ok := ProbeOptions{URL: hs.URL, APIKey: "k", User: "u0", Item: "i1"}
	body, _ := json.Marshal(map[string]any{"items": []string{ok.Item}})
	req, _ := http.NewRequest("POST", hs.URL+"/v1/agents/"+ok.User+"/rate", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the valid request: status %d", resp.StatusCode)
	}

	// A server answering 500 or 200 fails every case.
	for _, status := range []int{http.StatusInternalServerError, http.StatusOK} {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
		r, err := Probe(context.Background(), ProbeOptions{URL: bad.URL, User: "u", Item: "i"})
		bad.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r.Sent == 0 || r.Bad != r.Sent || r.Status[status] != r.Sent || !strings.Contains(r.FirstBad, fmt.Sprintf("status %d", status)) {
			t.Errorf("server answering %d: %+v", status, r)
		}
	}
	if _, err := Probe(context.Background(), ProbeOptions{URL: hs.URL}); err == nil {
		t.Error("no user or item accepted")
	}

	// Until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r, err = Probe(ctx, ProbeOptions{URL: hs.URL, APIKey: "k", User: "u0", Item: "i1", MaxBody: 64 << 10, Rounds: -1, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent < 3 || r.Sent > 20 || r.Bad != 0 {
		t.Errorf("paced until the deadline: %d sent, %d bad", r.Sent, r.Bad)
	}
}

func TestSummarizeMemory(t *testing.T) {
	s := func(at time.Duration, rss int64) MemSample {
		return MemSample{At: at, RSS: rss, HeapInuse: rss / 2, HeapLive: rss / 4, Goroutines: 1}
	}
	samples := []MemSample{s(0, 10), s(1, 50), s(2, 20), s(5, 30), s(8, 40), s(9, 35), s(10, 25)}
	m := summarizeMemory(samples, 1, 10, 2)
	if m.Before.RSS != 10 || m.First.RSS != 50 || m.Last.RSS != 40 || m.Max.RSS != 50 || m.Last.HeapInuse != 20 || m.Last.HeapLive != 10 || m.Errors != 1 {
		t.Fatalf("%+v", m)
	}
	if got := summarizeMemory(nil, 0, 10, 2); got.String() != "" || got.Max.RSS != 0 {
		t.Fatalf("no samples: %+v", got)
	}
}

func TestParseMetrics(t *testing.T) {
	in := "# HELP x y\n# TYPE go_goroutines gauge\ngo_goroutines 12\nreq_total{endpoint=\"a\"} 3\nprocess_resident_memory_bytes 1.5e+07 1700000000\n\n"
	m, err := parseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["go_goroutines"] != 12 || m["process_resident_memory_bytes"] != 1.5e7 {
		t.Fatalf("%v", m)
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines many\n")); err == nil {
		t.Fatal("a value that is no number accepted")
	}
}
