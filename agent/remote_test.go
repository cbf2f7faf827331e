package agent

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/llm"
)

// fakeServer answers /v1/completions like vLLM: with top_logprobs for the
// first generated token, or, for echo requests, the prompt's tokens with
// their logprobs. It records the requests.
type fakeServer struct {
	mu   sync.Mutex
	reqs []map[string]any
	top  map[string]float64
	// echo gives the tokens and logprobs of the candidate at the end of an
	// echoed prompt.
	echo map[string]struct {
		toks []string
		lps  []float64
	}
	text string
	// after are the top logprobs of the token generated after an echo.
	after map[string]float64
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/chat/completions" {
		f.serveChat(w, r)
		return
	}
	if r.URL.Path != "/v1/completions" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	prompt, _ := req["prompt"].(string)
	choice := map[string]any{"index": 0, "finish_reason": "length", "text": f.text}
	switch {
	case req["echo"] == true:
		for cand, e := range f.echo {
			if strings.HasSuffix(prompt, cand) {
				head := strings.TrimSuffix(prompt, cand)
				// The prompt in two tokens, the first without a logprob.
				toks := append([]string{head[:len(head)/2], head[len(head)/2:]}, e.toks...)
				lps := append([]any{nil, -9.0}, anySlice(e.lps)...)
				toks = append(toks, "\n")
				lps = append(lps, -0.01)
				choice["text"] = prompt + "\n"
				lpm := map[string]any{"tokens": toks, "token_logprobs": lps}
				if k, _ := req["logprobs"].(float64); k > 0 {
					top := make([]any, len(toks))
					top[len(top)-1] = f.after
					lpm["top_logprobs"] = top
				}
				choice["logprobs"] = lpm
			}
		}
	case req["logprobs"] != nil:
		best, bv := "", math.Inf(-1)
		for k, v := range f.top {
			if v > bv {
				best, bv = k, v
			}
		}
		choice["text"] = best
		choice["logprobs"] = map[string]any{"tokens": []string{best}, "token_logprobs": []float64{bv}, "top_logprobs": []map[string]float64{f.top}}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "text_completion", "model": req["model"], "choices": []any{choice}})
}

func anySlice(xs []float64) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func newRemote(t *testing.T, f *fakeServer) *Remote {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := &llm.Client{BaseURL: srv.URL + "/v1", Retry: llm.RetryPolicy{MaxAttempts: 1}}
	return &Remote{Client: c, BaseModel: "base"}
}

// TestRemoteTopLogprobs checks the first-token reading: tokens with and
// without a leading space (and SentencePiece's ▁) add up, other tokens are
// ignored, missing candidates get no probability and the mass is below one;
// the adapter is the model name.
func TestRemoteTopLogprobs(t *testing.T) {
	ctx := context.Background()
	f := &fakeServer{top: map[string]float64{" 4": -0.5, "4": -2, "▁3": -1.5, "Hello": -3, " 45": -4}}
	r := newRemote(t, f)
	w := newWorld(t, dataset.FiveStars)
	p, err := NewPool(w.inputs(), raftOptions(), r, Config{Adapter: PersonaAdapters("persona-%d")})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u2")
	rt, err := a.Rate(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	p4, p3 := math.Exp(-0.5)+math.Exp(-2), math.Exp(-1.5)
	mass := p4 + p3
	want := []float64{0, 0, p3 / mass, p4 / mass, 0}
	for j := range want {
		if !near(rt.Dist[j], want[j], 1e-12) {
			t.Fatalf("dist %v, want %v", rt.Dist, want)
		}
	}
	if !near(rt.Mass, mass, 1e-12) || rt.Argmax != 4 || !near(rt.Expected, (3*p3+4*p4)/mass, 1e-12) {
		t.Errorf("rating %+v, want mass %v", rt, mass)
	}
	req := f.reqs[0]
	if req["model"] != "persona-1" || req["max_tokens"] != float64(1) || req["logprobs"] != float64(DefaultTopLogprobs) ||
		!strings.HasSuffix(req["prompt"].(string), "RATING:") {
		t.Errorf("request %v", req)
	}
	// A user without persona asks the base model.
	a3, _ := p.Agent("u3")
	if _, err := a3.Rate(ctx, "m4"); err != nil {
		t.Fatal(err)
	}
	if f.reqs[1]["model"] != "base" {
		t.Errorf("model %v for a user without persona", f.reqs[1]["model"])
	}
	// No candidate among the top tokens: an invalid answer, NaN.
	f.top = map[string]float64{"Hello": -0.1}
	rt, err = a.Rate(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	if rt.Valid || rt.Mass != 0 || !math.IsNaN(rt.Expected) {
		t.Errorf("rating without candidates %+v", rt)
	}
}

// TestRemoteEcho checks the exact scoring of multi-character candidates
// (half stars) with echo requests.
func TestRemoteEcho(t *testing.T) {
	f := &fakeServer{echo: map[string]struct {
		toks []string
		lps  []float64
	}{
		" 3.5": {[]string{" 3", ".", "5"}, []float64{-1, -0.5, -0.2}},
		" 4":   {[]string{" 4"}, []float64{-0.3}},
		" 3":   {[]string{" 3"}, []float64{-0.9}},
	}, after: map[string]float64{".": -1.2, "\n": -0.5, " .": -3}}
	r := newRemote(t, f)
	lps, err := r.Score(context.Background(), []Prompt{{Adapter: "p0", Text: "MOVIE: Heat\nRATING:"}}, []string{" 3.5", " 4", " 3"})
	if err != nil {
		t.Fatal(err)
	}
	// " 3" must end there: the continuing "." (not " .") is taken out.
	want := []float64{-1.7, -0.3, -0.9 + math.Log1p(-math.Exp(-1.2))}
	for j := range want {
		if !near(lps[0][j], want[j], 1e-12) {
			t.Errorf("echo scores %v, want %v", lps[0], want)
		}
	}
	for _, req := range f.reqs {
		cont := strings.HasSuffix(req["prompt"].(string), " 3")
		if req["echo"] != true || req["model"] != "p0" || (req["logprobs"] != float64(0)) == !cont {
			t.Errorf("request %v", req)
		}
	}
}

func TestRemoteGenerate(t *testing.T) {
	f := &fakeServer{text: " 4\n"}
	r := newRemote(t, f)
	w := newWorld(t, dataset.FiveStars)
	p, err := NewPool(w.inputs(), raftOptions(), r, Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u1")
	rt, err := a.RateGenerate(context.Background(), "m4")
	if err != nil {
		t.Fatal(err)
	}
	if !rt.Valid || rt.Expected != 4 || f.reqs[0]["temperature"] != float64(0) || f.reqs[0]["max_tokens"] != float64(DefaultGenerateTokens) {
		t.Errorf("rating %+v from request %v", rt, f.reqs[0])
	}
}

// serveChat answers /v1/chat/completions: the first token is the most
// likely of f.top, with f.top as its top_logprobs when asked; the content
// is f.text when set.
func (f *fakeServer) serveChat(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	best, bv := "", math.Inf(-1)
	var tops []map[string]any
	for k, v := range f.top {
		tops = append(tops, map[string]any{"token": k, "logprob": v})
		if v > bv {
			best, bv = k, v
		}
	}
	content := best
	if f.text != "" {
		content = f.text
	}
	choice := map[string]any{"index": 0, "finish_reason": "length", "message": map[string]any{"role": "assistant", "content": content}}
	if req["logprobs"] == true {
		choice["logprobs"] = map[string]any{"content": []any{map[string]any{"token": best, "logprob": bv, "top_logprobs": tops}}}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "chat.completion", "model": req["model"], "choices": []any{choice}})
}

// TestRemoteChat reads ratings from the chat endpoint's top_logprobs, sends
// the conversation untemplated, and continues an explanation as a final
// assistant message.
func TestRemoteChat(t *testing.T) {
	ctx := context.Background()
	f := &fakeServer{top: map[string]float64{"4": -0.4, " 5": -1.6, "Sure": -2}}
	r := newRemote(t, f)
	r.Chat = true
	w := newWorld(t, dataset.FiveStars)
	p, err := NewPool(w.inputs(), raftOptions(), r, Config{Adapter: PersonaAdapters("persona-%d")})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u1")
	rt, err := a.Rate(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	mass := math.Exp(-0.4) + math.Exp(-1.6)
	if !near(rt.Mass, mass, 1e-12) || !near(rt.Dist[3], math.Exp(-0.4)/mass, 1e-12) || rt.Argmax != 4 {
		t.Errorf("rating %+v", rt)
	}
	req := f.reqs[0]
	msgs, _ := req["messages"].([]any)
	if req["model"] != "persona-0" || req["logprobs"] != true || req["top_logprobs"] != float64(DefaultTopLogprobs) || len(msgs) != 2 {
		t.Errorf("request %v", req)
	}
	f.text = "it is a fine crime story"
	e, err := a.Explain(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	last := f.reqs[len(f.reqs)-1]
	msgs, _ = last["messages"].([]any)
	final, _ := msgs[len(msgs)-1].(map[string]any)
	if e.Reason != "it is a fine crime story" || final["role"] != "assistant" || final["content"] != "4 because" || last["continue_final_message"] != true {
		t.Errorf("explanation %+v from %v", e, last)
	}
	if _, err := r.Score(ctx, []Prompt{{Text: "x", Messages: nil}}, []string{" 3.5"}); err == nil {
		t.Error("chat scored a multi-character candidate")
	}
}
