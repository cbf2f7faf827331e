package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// fakeAgents is an AgentService over a fixed set of users and items that
// answers uniform distributions.
type fakeAgents struct{ users, items map[string]bool }

func (f fakeAgents) check(user string, items []string) error {
	if !f.users[user] {
		return fmt.Errorf("user %q: %w", user, ErrNotFound)
	}
	for _, it := range items {
		if !f.items[it] {
			return fmt.Errorf("item %q: %w", it, ErrNotFound)
		}
	}
	return nil
}

func (f fakeAgents) Rate(_ context.Context, user string, items []string, explain bool) ([]ItemRating, error) {
	if err := f.check(user, items); err != nil {
		return nil, err
	}
	out := make([]ItemRating, len(items))
	for i, it := range items {
		out[i] = ItemRating{Item: it, Distribution: map[string]float64{"1": 0.5, "2": 0.5}, Expected: 1.5, Argmax: 1, Mass: 1, Valid: true}
	}
	return out, nil
}

func (f fakeAgents) Choose(_ context.Context, user string, items []string) (SlateChoice, error) {
	if err := f.check(user, items); err != nil {
		return SlateChoice{}, err
	}
	c := SlateChoice{Choice: items[0], Probabilities: map[string]float64{}}
	for _, it := range items {
		c.Probabilities[it] = 1 / float64(len(items)+1)
	}
	c.Exit = 1 / float64(len(items)+1)
	return c, nil
}

func (fakeAgents) Personas() []PersonaInfo { return []PersonaInfo{{ID: 0, Adapter: "persona-0"}} }

// FuzzAgentRequests sends arbitrary bodies to the agent endpoints: never a
// 5xx, every error in OpenAI's shape, every success well-formed JSON.
func FuzzAgentRequests(f *testing.F) {
	aw := newAgentWorld(f)
	s, err := New(aw.m, aw.tok, Options{Name: "base", MaxBodyBytes: 2 << 10})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	s.HandleAgents(fakeAgents{users: map[string]bool{"u1": true}, items: map[string]bool{"m1": true, "m2": true}}, AgentOptions{MaxRateItems: 4})
	ts := httptest.NewServer(s.Handler())
	f.Cleanup(ts.Close)
	for _, seed := range []string{
		`{"items":["m1","m2"]}`, `{"items":["m1"],"explain":true}`, `{"items":[]}`, `{"items":["m1","m1"]}`,
		`{"items":null}`, `{"items":[1]}`, `{}`, `[]`, `null`, `{"items":["m1"],"extra":1}`, `{"items":["exit"]}`,
	} {
		f.Add("u1", "rate", seed)
		f.Add("u1", "choose", seed)
	}
	f.Add("u%2F..", "rate", `{"items":["m1"]}`)
	f.Add("", "choose", `{"items":["m1"]}`)
	f.Fuzz(func(t *testing.T, user, action, body string) {
		// The segments escaped: what a client sends; raw request lines
		// that net/http itself refuses are not the handlers' business.
		path := "/v1/agents/" + url.PathEscape(user) + "/" + url.PathEscape(action)
		req, err := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
		if err != nil {
			return // not a URL
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("POST %q %q: status %d: %s", path, body, resp.StatusCode, data)
		}
		if resp.StatusCode != http.StatusOK {
			var e errorBody
			if err := json.Unmarshal(data, &e); err != nil || e.Error.Message == "" {
				t.Fatalf("POST %q %q: status %d, not an OpenAI error: %s", path, body, resp.StatusCode, data)
			}
			return
		}
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil || v["user"] == nil {
			t.Fatalf("POST %q %q: a 200 that is not an agent answer: %s", path, body, data)
		}
	})
}
