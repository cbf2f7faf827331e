package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/usersim/usersim/agent"
	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/persona"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train/raft"
)

// agentWorld is a tiny synthetic experiment: a small world, a paper split,
// stats memories, two personas, a random compact model with a tokenizer
// trained on the world's prompts and a random adapter per persona.
type agentWorld struct {
	d        *dataset.Dataset
	in       raft.Inputs
	m        *slm.Model
	tok      *tokenizer.Tokenizer
	set      *lora.Set
	adapters map[string]*lora.Adapter
	sum      *persona.Summary
	profiled []string // profiled users, in profile order
	plain    string   // a dataset user without a profile ("" if none)
}

var (
	agentWorldOnce sync.Once
	agentWorldV    *agentWorld
	agentWorldErr  error
)

func newAgentWorld(t testing.TB) *agentWorld {
	t.Helper()
	agentWorldOnce.Do(func() { agentWorldV, agentWorldErr = buildAgentWorld() })
	if agentWorldErr != nil {
		t.Fatal(agentWorldErr)
	}
	return agentWorldV
}

func buildAgentWorld() (*agentWorld, error) {
	ctx := context.Background()
	cfg := synth.DefaultConfig()
	cfg.Seed, cfg.NumUsers, cfg.NumItems, cfg.NumPersonas = 3, 24, 40, 2
	cfg.Activity = []synth.ActivityBand{{Share: 1, Min: 12, Max: 20}}
	w, err := synth.Generate(cfg)
	if err != nil {
		return nil, err
	}
	d := w.Dataset
	s, err := split.Paper(d, split.PaperOptions{MinRatings: 12, MaxRatings: 20, NumUsers: 6, AllowFewer: true, Seed: 1})
	if err != nil {
		return nil, err
	}
	ps, ms, err := memory.DistillStats(ctx, d, s, memory.StatsOptions{})
	if err != nil {
		return nil, err
	}
	aw := &agentWorld{d: d}
	personas := map[string]int{}
	sizes := make([]int, 2)
	profiled := map[string]bool{}
	for i, p := range ps {
		personas[p.User] = i % 2
		sizes[i%2]++
		aw.profiled = append(aw.profiled, p.User)
		profiled[p.User] = true
	}
	for _, u := range d.Users {
		if !profiled[u.ID] {
			aw.plain = u.ID
			break
		}
	}
	aw.in = raft.Inputs{Dataset: d, Split: s, Profiles: ps, Interactions: ms, Personas: personas}
	aw.sum = &persona.Summary{K: 2, Sizes: sizes, Users: len(ps), Personas: []persona.Persona{
		{ID: 1, Size: sizes[1], Text: "Persona one likes drama."},
		{ID: 0, Size: sizes[0], Text: "Persona zero likes action."},
	}}

	// The tokenizer learns from a few prompts of every profiled user.
	b, err := raft.NewBuilder(aw.in, raft.Options{})
	if err != nil {
		return nil, err
	}
	var corpus strings.Builder
	for _, u := range aw.profiled {
		for _, it := range d.Items[:3] {
			ex, err := b.BuildQuery(u, it.ID)
			if err != nil {
				return nil, err
			}
			corpus.WriteString(ex.Prompt + " 1 2 3 4 5\n\n")
		}
	}
	corpus.WriteString("A. B. C. D. E. F. 0. CHOICE: A B C D E F 0 because\n")
	topt := tokenizer.DefaultTrainOptions()
	topt.VocabSize = 400
	tr, err := tokenizer.Train(ctx, strings.NewReader(corpus.String()), topt)
	if err != nil {
		return nil, err
	}
	aw.tok = tr.Tokenizer()
	mcfg, err := slm.CompactConfig(slm.CompactOptions{Preset: "tiny", Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, Context: 2048,
		Vocab: aw.tok.VocabSize(), BOS: aw.tok.BOS(), EOS: []int{aw.tok.EOS()}})
	if err != nil {
		return nil, err
	}
	if aw.m, err = slm.New(mcfg); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if err := aw.m.InitRandom(rng, 0.1); err != nil {
		return nil, err
	}
	if aw.set, err = lora.NewSet(mcfg.LoRABase()); err != nil {
		return nil, err
	}
	aw.adapters = map[string]*lora.Adapter{}
	for k := range 2 {
		a, err := lora.New(lora.NewConfig("tiny", 4, 8, lora.AllLinear), mcfg.LoRABase(), uint64(10+k))
		if err != nil {
			return nil, err
		}
		for _, p := range a.Pairs() {
			for i := range p.B {
				p.B[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
		name := fmt.Sprintf("persona-%d", k)
		if err := aw.set.Add(name, a); err != nil {
			return nil, err
		}
		aw.adapters[name] = a
	}
	return aw, nil
}

// pool builds an agent pool over the world: on a Local backend, or with
// batched, on a BatchBackend over it.
func (aw *agentWorld) pool(t testing.TB, batched ...bool) *agent.Pool {
	t.Helper()
	l, err := agent.NewLocal(aw.m, aw.tok, aw.set)
	if err != nil {
		t.Fatal(err)
	}
	var backend agent.Backend = l
	if len(batched) > 0 && batched[0] {
		bb := NewBatchBackend(l, 0, 0)
		t.Cleanup(func() { bb.Close() })
		backend = bb
	}
	p, err := agent.NewPool(aw.in, raft.Options{}, backend, agent.Config{Adapter: agent.PersonaAdapters("persona-%d"), ExplainTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const agentKey = "agent-secret"

// agentServer serves the world's agents with an API key.
func agentServer(t testing.TB, aw *agentWorld) (*httptest.Server, *agent.Pool) {
	t.Helper()
	s, err := New(aw.m, aw.tok, Options{Name: "base", Adapters: aw.adapters, APIKey: agentKey, MaxBodyBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	p := aw.pool(t, true)
	svc, err := NewPoolService(p, aw.d, aw.sum, aw.in.Personas, func(k int) string { return fmt.Sprintf("persona-%d", k) })
	if err != nil {
		t.Fatal(err)
	}
	s.HandleAgents(svc, AgentOptions{MaxRateItems: 10})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return ts, p
}

// call sends a request and decodes a JSON answer into out (when not nil),
// returning the status.
func call(t testing.TB, ts *httptest.Server, method, path, key, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		// Every error is OpenAI-shaped.
		var e errorBody
		if err := json.Unmarshal(data, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("%s %s: status %d with a body not in OpenAI's error shape: %s", method, path, resp.StatusCode, data)
		}
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func TestAgentRate(t *testing.T) {
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)
	// A pool of its own gives the reference answers (the server's agents
	// must answer what agent answers directly).
	ref := aw.pool(t)
	items := []string{aw.d.Items[0].ID, aw.d.Items[5].ID, aw.d.Items[0].ID}
	for _, user := range aw.profiled[:2] {
		body, _ := json.Marshal(map[string]any{"items": items})
		var got rateResponse
		if st := call(t, ts, "POST", "/v1/agents/"+user+"/rate", agentKey, string(body), &got); st != http.StatusOK {
			t.Fatalf("rate %s: status %d", user, st)
		}
		if got.User != user || len(got.Ratings) != len(items) {
			t.Fatalf("rate %s: user %q, %d ratings for %d items", user, got.User, len(got.Ratings), len(items))
		}
		a, err := ref.Agent(user)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range got.Ratings {
			if r.Item != items[i] {
				t.Errorf("rating %d is of %q, want %q", i, r.Item, items[i])
			}
			if len(r.Distribution) != 5 {
				t.Fatalf("distribution %v: want the 5 values of the scale", r.Distribution)
			}
			sum, exp := 0.0, 0.0
			best, bestP := 0.0, -1.0
			for v := 1; v <= 5; v++ {
				p, ok := r.Distribution[fmt.Sprint(v)]
				if !ok || p < 0 || p > 1 {
					t.Fatalf("distribution %v: value %d missing or out of [0,1]", r.Distribution, v)
				}
				sum += p
				exp += float64(v) * p
				if p > bestP {
					best, bestP = float64(v), p
				}
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("%s/%s: distribution sums to %v", user, r.Item, sum)
			}
			if math.Abs(exp-r.Expected) > 1e-9 {
				t.Errorf("%s/%s: expected %v, Σ v·p = %v", user, r.Item, r.Expected, exp)
			}
			if r.Argmax != best {
				t.Errorf("%s/%s: argmax %v, most probable %v", user, r.Item, r.Argmax, best)
			}
			if !(r.Mass > 0 && r.Mass <= 1+1e-9) || !r.Valid || r.Explanation != "" {
				t.Errorf("%s/%s: mass %v, explanation %q without explain", user, r.Item, r.Mass, r.Explanation)
			}
			want, err := a.Rate(context.Background(), items[i])
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(want.Expected-r.Expected) > 1e-6 || math.Abs(want.Mass-r.Mass) > 1e-6 || want.Argmax != r.Argmax {
				t.Errorf("%s/%s: served %+v, agent directly %+v", user, r.Item, r, want)
			}
		}
	}
}

func TestAgentRateExplain(t *testing.T) {
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)
	var got rateResponse
	body := fmt.Sprintf(`{"items":[%q],"explain":true}`, aw.d.Items[1].ID)
	if st := call(t, ts, "POST", "/v1/agents/"+aw.profiled[0]+"/rate", agentKey, body, &got); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	a, err := aw.pool(t).Agent(aw.profiled[0])
	if err != nil {
		t.Fatal(err)
	}
	want, err := a.Explain(context.Background(), aw.d.Items[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Ratings) != 1 || got.Ratings[0].Explanation != want.Reason {
		t.Errorf("explanation %+v, agent directly %q", got.Ratings, want.Reason)
	}
}

func TestAgentChoose(t *testing.T) {
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)
	items := []string{aw.d.Items[2].ID, aw.d.Items[3].ID, aw.d.Items[7].ID}
	body, _ := json.Marshal(map[string]any{"items": items})
	user := aw.profiled[1]
	var got chooseResponse
	if st := call(t, ts, "POST", "/v1/agents/"+user+"/choose", agentKey, string(body), &got); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	if len(got.Probabilities) != len(items) {
		t.Fatalf("probabilities %v for %d items", got.Probabilities, len(items))
	}
	sum, best, bestP := got.Exit, ExitChoice, got.Exit
	for _, it := range items {
		p, ok := got.Probabilities[it]
		if !ok || p < 0 {
			t.Fatalf("probabilities %v: %s missing or negative", got.Probabilities, it)
		}
		sum += p
		if p > bestP {
			best, bestP = it, p
		}
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities and exit sum to %v", sum)
	}
	if got.Choice != best {
		t.Errorf("choice %q, most probable %q (%+v)", got.Choice, best, got)
	}
	a, err := aw.pool(t).Agent(user)
	if err != nil {
		t.Fatal(err)
	}
	want, err := a.Choose(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(want.Exit-got.Exit) > 1e-6 {
		t.Errorf("exit %v, agent directly %v", got.Exit, want.Exit)
	}
	for i, it := range items {
		if math.Abs(want.Probs[i]-got.Probabilities[it]) > 1e-6 {
			t.Errorf("P(%s) = %v, agent directly %v", it, got.Probabilities[it], want.Probs[i])
		}
	}
}

func TestAgentPersonas(t *testing.T) {
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)
	var got personasResponse
	if st := call(t, ts, "GET", "/v1/personas", agentKey, "", &got); st != http.StatusOK {
		t.Fatalf("status %d", st)
	}
	if got.K != 2 || len(got.Personas) != 2 || len(got.Sizes) != 2 {
		t.Fatalf("personas %+v: want K 2", got)
	}
	for k, p := range got.Personas {
		if p.ID != k || p.Adapter != fmt.Sprintf("persona-%d", k) || p.Size != aw.sum.Sizes[k] || got.Sizes[k] != p.Size || p.Description == "" {
			t.Errorf("persona %d: %+v (sizes %v)", k, p, got.Sizes)
		}
	}
	if !strings.Contains(got.Personas[0].Description, "zero") {
		t.Errorf("persona 0's description %q is another persona's", got.Personas[0].Description)
	}
}

func TestAgentErrors(t *testing.T) {
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)
	user, item := aw.profiled[0], aw.d.Items[0].ID
	items := func(n int) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = aw.d.Items[i].ID
		}
		b, _ := json.Marshal(map[string]any{"items": ids})
		return string(b)
	}
	one := fmt.Sprintf(`{"items":[%q]}`, item)
	tests := []struct {
		name, method, path, key, body string
		want                          int
	}{
		{"rate without key", "POST", "/v1/agents/" + user + "/rate", "", one, http.StatusUnauthorized},
		{"rate wrong key", "POST", "/v1/agents/" + user + "/rate", "nope", one, http.StatusUnauthorized},
		{"choose without key", "POST", "/v1/agents/" + user + "/choose", "", one, http.StatusUnauthorized},
		{"personas without key", "GET", "/v1/personas", "", "", http.StatusUnauthorized},
		{"unknown user", "POST", "/v1/agents/nobody/rate", agentKey, one, http.StatusNotFound},
		{"unknown user choose", "POST", "/v1/agents/nobody/choose", agentKey, one, http.StatusNotFound},
		{"unknown item", "POST", "/v1/agents/" + user + "/rate", agentKey, `{"items":["no-such-item"]}`, http.StatusNotFound},
		{"unknown item choose", "POST", "/v1/agents/" + user + "/choose", agentKey, `{"items":["no-such-item"]}`, http.StatusNotFound},
		{"path-like item", "POST", "/v1/agents/" + user + "/rate", agentKey, `{"items":["../../etc/passwd"]}`, http.StatusNotFound},
		{"empty items", "POST", "/v1/agents/" + user + "/rate", agentKey, `{"items":[]}`, http.StatusBadRequest},
		{"no items", "POST", "/v1/agents/" + user + "/choose", agentKey, `{}`, http.StatusBadRequest},
		{"empty item id", "POST", "/v1/agents/" + user + "/rate", agentKey, `{"items":[""]}`, http.StatusBadRequest},
		{"over the cap", "POST", "/v1/agents/" + user + "/rate", agentKey, items(11), http.StatusBadRequest},
		{"slate over 26", "POST", "/v1/agents/" + user + "/choose", agentKey, items(27), http.StatusBadRequest},
		{"duplicate in slate", "POST", "/v1/agents/" + user + "/choose", agentKey, fmt.Sprintf(`{"items":[%q,%q]}`, item, item), http.StatusBadRequest},
		{"exit as item", "POST", "/v1/agents/" + user + "/choose", agentKey, `{"items":["exit"]}`, http.StatusBadRequest},
		{"not JSON", "POST", "/v1/agents/" + user + "/rate", agentKey, `items=1`, http.StatusBadRequest},
		{"wrong type", "POST", "/v1/agents/" + user + "/rate", agentKey, `{"items":"1"}`, http.StatusBadRequest},
		{"trailing data", "POST", "/v1/agents/" + user + "/rate", agentKey, one + "{}", http.StatusBadRequest},
		{"too large", "POST", "/v1/agents/" + user + "/rate", agentKey, `{"items":["` + strings.Repeat("x", 5000) + `"]}`, http.StatusRequestEntityTooLarge},
		{"GET rate", "GET", "/v1/agents/" + user + "/rate", agentKey, "", http.StatusMethodNotAllowed},
		{"POST personas", "POST", "/v1/personas", agentKey, "{}", http.StatusMethodNotAllowed},
		{"DELETE choose", "DELETE", "/v1/agents/" + user + "/choose", agentKey, "", http.StatusMethodNotAllowed},
	}
	if aw.plain != "" {
		tests = append(tests, struct {
			name, method, path, key, body string
			want                          int
		}{"user without profile", "POST", "/v1/agents/" + aw.plain + "/rate", agentKey, one, http.StatusNotFound})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := call(t, ts, tc.method, tc.path, tc.key, tc.body, nil); got != tc.want {
				t.Errorf("status %d, want %d", got, tc.want)
			}
		})
	}
}

// slowService blocks until its context ends.
type slowService struct{}

func (slowService) Rate(ctx context.Context, _ string, _ []string, _ bool) ([]ItemRating, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (slowService) Choose(ctx context.Context, _ string, _ []string) (SlateChoice, error) {
	<-ctx.Done()
	return SlateChoice{}, ctx.Err()
}

func (slowService) Personas() []PersonaInfo { return nil }

func TestAgentTimeout(t *testing.T) {
	aw := newAgentWorld(t)
	s, err := New(aw.m, aw.tok, Options{Name: "base", Timeout: 50e6})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.HandleAgents(slowService{}, AgentOptions{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	if got := call(t, ts, "POST", "/v1/agents/u/rate", "", `{"items":["i"]}`, nil); got != http.StatusGatewayTimeout {
		t.Errorf("a service past the timeout: status %d, want 504", got)
	}
	var ps personasResponse
	if got := call(t, ts, "GET", "/v1/personas", "", "", &ps); got != http.StatusOK || ps.K != 0 || ps.Personas == nil {
		t.Errorf("no personas: status %d, %+v", got, ps)
	}
}

func TestAgentConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("short: concurrent agent requests")
	}
	aw := newAgentWorld(t)
	ts, _ := agentServer(t, aw)
	ref := aw.pool(t)
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := aw.profiled[i%len(aw.profiled)]
			items := []string{aw.d.Items[i].ID, aw.d.Items[i+1].ID}
			body := bytes.NewBufferString(fmt.Sprintf(`{"items":[%q,%q]}`, items[0], items[1]))
			req, _ := http.NewRequest("POST", ts.URL+"/v1/agents/"+user+"/rate", body)
			req.Header.Set("Authorization", "Bearer "+agentKey)
			resp, err := ts.Client().Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var got rateResponse
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil || len(got.Ratings) != 2 {
				errs <- fmt.Sprintf("status %d, %+v", resp.StatusCode, got)
				return
			}
			// Merged with other requests, the answers are each request's own.
			a, _ := ref.Agent(user)
			want, err := a.RateMany(context.Background(), items)
			if err != nil {
				errs <- err.Error()
				return
			}
			for j, r := range got.Ratings {
				if math.Abs(r.Expected-want[j].Expected) > 1e-5 {
					errs <- fmt.Sprintf("%s/%s: expected %v, agent directly %v", user, items[j], r.Expected, want[j].Expected)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestItemRatingOfInvalid(t *testing.T) {
	inf := math.Inf(-1)
	r := ItemRatingOf("m1", agent.RatingFromLogprobs([]float64{1, 2, 3}, []float64{inf, inf, inf}))
	if r.Valid || r.Expected != 0 || r.Argmax != 0 || len(r.Distribution) != 3 || r.Distribution["2"] != 0 {
		t.Errorf("no mass on the scale: %+v", r)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("marshal: %v", err)
	}
	ok := ItemRatingOf("m1", agent.RatingFromLogprobs([]float64{1, 2}, []float64{math.Log(0.2), math.Log(0.2)}))
	if !ok.Valid || math.Abs(ok.Expected-1.5) > 1e-12 || math.Abs(ok.Mass-0.4) > 1e-12 || ok.Distribution["1"] != 0.5 {
		t.Errorf("half and half: %+v", ok)
	}
}
