package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// AgentOptions configure a load test of the agent API
// (POST /v1/agents/{user}/rate and /choose).
type AgentOptions struct {
	// URL is the server's base URL; APIKey its bearer token ("" for none).
	URL    string
	APIKey string
	// Clients, Duration and Requests are as in Options (defaults 8, 10s,
	// unbounded).
	Clients  int
	Duration time.Duration
	Requests int
	// Items is the number of items per rate request (default 10).
	Items int
	// ChooseEvery makes every ChooseEvery-th request a choose over a slate
	// of SlateSize items (default 5); 0 sends rate requests only.
	ChooseEvery int
	SlateSize   int
	// Users and ItemIDs replace the server's catalog (GET /v1/agents, GET
	// /v1/items) when set; users given here count as persona -1.
	Users   []string
	ItemIDs []string
	// Personas restricts the users to these personas; nil means all.
	Personas []int
	// Seed makes the users and items drawn reproducible.
	Seed uint64
	// MemoryEvery is how often the server's memory is read from its
	// /metrics (default 1s; negative: never). MemoryWindow is the span at
	// the start and at the end of the run whose largest readings are
	// compared (default 10s, at most a quarter of the run).
	MemoryEvery  time.Duration
	MemoryWindow time.Duration
	// Client is the HTTP client (default: one with Clients idle connections).
	Client *http.Client
}

// AgentResult is what an agent load test measured.
type AgentResult struct {
	// Rate and Choose are the two endpoints' results.
	Rate   Result `json:"rate"`
	Choose Result `json:"choose"`
	// Ratings counts the ratings answered (items of successful rate
	// requests); Invalid those the model gave no mass on the scale.
	Ratings       int     `json:"ratings"`
	RatingsPerSec float64 `json:"ratings_per_sec"`
	Invalid       int     `json:"invalid"`
	// Users and Personas count the users drawn from and their personas;
	// ByPersona the requests answered per persona (-1: none given).
	Users     int         `json:"users"`
	Personas  int         `json:"personas"`
	ByPersona map[int]int `json:"by_persona"`
	// Memory is the server's memory over the run.
	Memory MemoryStats `json:"memory"`
}

// Requests is the number of requests answered, Errors those that failed.
func (r AgentResult) Requests() int { return r.Rate.Requests + r.Choose.Requests }

// Errors counts the failed requests of both endpoints.
func (r AgentResult) Errors() int { return r.Rate.Errors + r.Choose.Errors }

// String renders the result as a few aligned lines.
func (r AgentResult) String() string {
	var b strings.Builder
	ps := make([]int, 0, len(r.ByPersona))
	for p := range r.ByPersona {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	fmt.Fprintf(&b, "users      %d of %d personas; requests by persona:", r.Users, r.Personas)
	for _, p := range ps {
		fmt.Fprintf(&b, " %d:%d", p, r.ByPersona[p])
	}
	b.WriteString("\n== rate\n")
	b.WriteString(r.Rate.String())
	fmt.Fprintf(&b, "ratings    %d (%.1f/s), %d with no mass on the scale\n", r.Ratings, r.RatingsPerSec, r.Invalid)
	if r.Choose.Requests > 0 {
		b.WriteString("== choose\n")
		b.WriteString(r.Choose.String())
	}
	b.WriteString(r.Memory.String())
	return b.String()
}

// Catalog is what the server's agent API offers, as GET /v1/personas,
// /v1/agents and /v1/items list it.
type Catalog struct {
	Personas []int  // persona IDs
	Users    []User // users with an agent
	Items    []string
}

// User is one user of the catalog.
type User struct {
	ID      string `json:"id"`
	Persona int    `json:"persona"`
}

// FetchCatalog reads the server's personas, users and items, a page at a
// time.
func FetchCatalog(ctx context.Context, c *http.Client, base, apiKey string) (Catalog, error) {
	base = strings.TrimSuffix(base, "/")
	var cat Catalog
	var ps struct {
		Data []struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	if err := getJSON(ctx, c, base+"/v1/personas", apiKey, &ps); err != nil {
		return cat, err
	}
	for _, p := range ps.Data {
		cat.Personas = append(cat.Personas, p.ID)
	}
	var err error
	if cat.Users, err = pages[User](ctx, c, base+"/v1/agents", apiKey); err != nil {
		return cat, err
	}
	items, err := pages[struct {
		ID string `json:"id"`
	}](ctx, c, base+"/v1/items", apiKey)
	if err != nil {
		return cat, err
	}
	for _, it := range items {
		cat.Items = append(cat.Items, it.ID)
	}
	return cat, nil
}

// pages reads every page of a catalog listing.
func pages[T any](ctx context.Context, c *http.Client, u, apiKey string) ([]T, error) {
	var out []T
	for {
		var p struct {
			Data    []T  `json:"data"`
			HasMore bool `json:"has_more"`
		}
		if err := getJSON(ctx, c, fmt.Sprintf("%s?offset=%d&limit=%d", u, len(out), 5000), apiKey, &p); err != nil {
			return nil, err
		}
		out = append(out, p.Data...)
		if !p.HasMore || len(p.Data) == 0 {
			return out, nil
		}
	}
}

func getJSON(ctx context.Context, c *http.Client, u, apiKey string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: status %d: %s", u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// RunAgents load-tests the agent API: each request goes to the next
// persona in turn, for a user of that persona and items drawn at random.
func RunAgents(ctx context.Context, o AgentOptions) (AgentResult, error) {
	if o.URL == "" {
		return AgentResult{}, errors.New("loadtest: a URL is required")
	}
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Items <= 0 {
		o.Items = 10
	}
	if o.SlateSize <= 0 {
		o.SlateSize = 5
	}
	o.MemoryEvery, o.MemoryWindow, o.Client = commonDefaults(o.MemoryEvery, o.MemoryWindow, o.Duration, o.Client, o.Clients+2)
	base := strings.TrimSuffix(o.URL, "/")

	// Whom and what to ask about.
	var users []User
	for _, u := range o.Users {
		users = append(users, User{ID: u, Persona: -1})
	}
	items := o.ItemIDs
	if len(users) == 0 || len(items) == 0 {
		cat, err := FetchCatalog(ctx, o.Client, base, o.APIKey)
		if err != nil {
			return AgentResult{}, fmt.Errorf("loadtest: the server's catalog (give users and items instead): %w", err)
		}
		if len(users) == 0 {
			users = cat.Users
		}
		if len(items) == 0 {
			items = cat.Items
		}
	}
	groups := map[int][]string{}
	for _, u := range users {
		if o.Personas == nil || slices.Contains(o.Personas, u.Persona) {
			groups[u.Persona] = append(groups[u.Persona], u.ID)
		}
	}
	personas := make([]int, 0, len(groups))
	nUsers := 0
	for p, us := range groups {
		personas = append(personas, p)
		nUsers += len(us)
	}
	slices.Sort(personas)
	if nUsers == 0 {
		return AgentResult{}, fmt.Errorf("loadtest: no users to rate as (of personas %v)", o.Personas)
	}
	need := o.Items
	if o.ChooseEvery > 0 {
		need = max(need, o.SlateSize)
	}
	if len(items) < need {
		return AgentResult{}, fmt.Errorf("loadtest: %d items, %d needed per request", len(items), need)
	}

	rngs := make([]*rand.Rand, o.Clients)
	for c := range rngs {
		rngs[c] = rand.New(rand.NewPCG(o.Seed, uint64(c)))
	}
	t0 := time.Now()
	var mem *memSampler
	if o.MemoryEvery > 0 {
		mem = sampleMemory(ctx, o.Client, base, o.APIKey, o.MemoryEvery, t0)
	}
	samples, elapsed := drive(ctx, o.Clients, o.Duration, o.Requests, func(ctx context.Context, c, i int) sample {
		rng := rngs[c]
		p := personas[i%len(personas)]
		us := groups[p]
		user := us[rng.IntN(len(us))]
		choose := o.ChooseEvery > 0 && i%o.ChooseEvery == o.ChooseEvery-1
		n := o.Items
		if choose {
			n = o.SlateSize
		}
		s := agentRequest(ctx, o, base, user, pick(rng, items, n), choose)
		s.persona = p
		return s
	})
	r := AgentResult{Users: nUsers, Personas: len(personas), ByPersona: map[int]int{}}
	var rate, choose []sample
	for _, s := range samples {
		if s.err == nil && s.status == http.StatusOK {
			r.ByPersona[s.persona]++
		}
		if s.choose {
			choose = append(choose, s)
			continue
		}
		rate = append(rate, s)
		if s.err == nil && s.status == http.StatusOK {
			r.Ratings += s.ratings
			r.Invalid += s.invalid
		}
	}
	r.Rate, r.Choose = summarize(rate, elapsed), summarize(choose, elapsed)
	if elapsed > 0 {
		r.RatingsPerSec = float64(r.Ratings) / elapsed.Seconds()
	}
	if mem != nil {
		r.Memory = mem.finish(ctx, o.Client, base, o.APIKey, time.Since(t0), o.MemoryWindow)
	}
	return r, nil
}

// pick draws n distinct entries of from (n ≤ len(from)).
func pick(rng *rand.Rand, from []string, n int) []string {
	out := make([]string, 0, n)
	seen := make(map[int]bool, n)
	for len(out) < n {
		k := rng.IntN(len(from))
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, from[k])
	}
	return out
}

// agentRequest sends one rate (or choose) request and checks its answer.
func agentRequest(ctx context.Context, o AgentOptions, base, user string, items []string, choose bool) sample {
	s := sample{choose: choose}
	endpoint := "rate"
	if choose {
		endpoint = "choose"
	}
	body, _ := json.Marshal(map[string]any{"items": items})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/agents/"+url.PathEscape(user)+"/"+endpoint, bytes.NewReader(body))
	if err != nil {
		s.err = err
		return s
	}
	req.Header.Set("Content-Type", "application/json")
	if o.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
	t0 := time.Now()
	resp, err := o.Client.Do(req)
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close()
	s.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.err = errors.New(strings.TrimSpace(string(b)))
		return s
	}
	if choose {
		var a struct {
			Choice        string             `json:"choice"`
			Probabilities map[string]float64 `json:"probabilities"`
			Exit          float64            `json:"exit"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			s.err = fmt.Errorf("choose answer: %w", err)
			return s
		}
		s.latency = time.Since(t0)
		sum := a.Exit
		for _, p := range a.Probabilities {
			sum += p
		}
		if len(a.Probabilities) != len(items) || (a.Choice != "exit" && !slices.Contains(items, a.Choice)) || math.Abs(sum-1) > 1e-3 {
			s.err = fmt.Errorf("choose answer for %d items: choice %q, %d probabilities summing to %v with exit", len(items), a.Choice, len(a.Probabilities), sum)
		}
		return s
	}
	var a struct {
		Ratings []struct {
			Item         string             `json:"item"`
			Distribution map[string]float64 `json:"distribution"`
			Valid        bool               `json:"valid"`
		} `json:"ratings"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		s.err = fmt.Errorf("rate answer: %w", err)
		return s
	}
	s.latency = time.Since(t0)
	if len(a.Ratings) != len(items) {
		s.err = fmt.Errorf("rate answer: %d ratings for %d items", len(a.Ratings), len(items))
		return s
	}
	for k, r := range a.Ratings {
		sum := 0.0
		for _, p := range r.Distribution {
			sum += p
		}
		switch {
		case r.Item != items[k]:
			s.err = fmt.Errorf("rate answer: rating %d is of %q, not %q", k, r.Item, items[k])
		case r.Valid && math.Abs(sum-1) > 1e-3:
			s.err = fmt.Errorf("rate answer: the distribution of %q sums to %v", r.Item, sum)
		case !r.Valid:
			s.invalid++
		}
		if s.err != nil {
			return s
		}
	}
	s.ratings = len(items)
	return s
}
