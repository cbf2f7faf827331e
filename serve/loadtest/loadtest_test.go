package loadtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/serve"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
)

func TestRun(t *testing.T) {
	m, tok, err := slm.Load(sharedtest.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(lora.NewConfig("stories260K", 2, 4, "q_proj"), m.Config.LoRABase(), 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve.New(m, tok, serve.Options{Name: "base", Adapters: map[string]*lora.Adapter{"p0": a}, MaxContext: m.Config.MaxContext, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	for _, stream := range []bool{false, true} {
		r, err := Run(context.Background(), Options{URL: hs.URL, APIKey: "k", Models: []string{"base", "p0"}, Clients: 4, Requests: 20, MaxTokens: 8, Stream: stream, Duration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if r.Requests != 20 || r.Errors != 0 || r.Status[http.StatusOK] != 20 || r.Tokens == 0 || r.Tokens > 160 || r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max {
			t.Fatalf("stream %v: %+v", stream, r)
		}
		if stream != (r.TTFT50 > 0) {
			t.Fatalf("stream %v: time to first token %v", stream, r.TTFT50)
		}
		if len(r.Memory.Samples) < 2 || r.Memory.Max.HeapInuse <= 0 {
			t.Fatalf("stream %v: memory %+v", stream, r.Memory)
		}
		if !strings.Contains(r.String(), "200×20") || !strings.Contains(r.String(), "server memory") {
			t.Fatalf("summary:\n%s", r)
		}
	}
	r, err := Run(context.Background(), Options{URL: hs.URL, APIKey: "wrong", Models: []string{"base"}, Clients: 2, Requests: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 4 || r.Status[http.StatusUnauthorized] != 4 || !strings.Contains(r.FirstError, "invalid_api_key") {
		t.Fatalf("wrong key: %+v", r)
	}
	if _, err := Run(context.Background(), Options{URL: hs.URL}); err == nil {
		t.Fatal("no models accepted")
	}
}

func TestPct(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 3}, {99, 5}, {100, 5}, {1, 1}, {20, 1}, {21, 2}} {
		if got := pct(d, c.p); got != c.want {
			t.Errorf("pct(%d) = %v, want %v", c.p, got, c.want)
		}
	}
	if pct(nil, 50) != 0 {
		t.Error("pct of nothing")
	}
}
