package persona

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestWorkspaceRoundTrip(t *testing.T) {
	in := synthInput(t, "paper")
	ws := t.TempDir()
	emb := &Behaviour{}
	opt := Options{Seed: 2, K: 4}
	r, err := Build(context.Background(), in, emb, opt)
	if err != nil {
		t.Fatal(err)
	}
	key, err := InputKey(in.Profiles, emb.Name(), opt, "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, why, err := UpToDate(ws, key); ok || err != nil || why != "no manifest" {
		t.Fatalf("empty workspace: %v %q %v", ok, why, err)
	}
	if err := Save(ws, key, r, []Comparison{{Embedder: "x", K: 4}}); err != nil {
		t.Fatal(err)
	}
	if ok, why, err := UpToDate(ws, key); !ok || err != nil {
		t.Fatalf("after Save: %v %q %v", ok, why, err)
	}
	// Other options or other profiles give another key.
	opt2 := opt
	opt2.Seed = 3
	key2, _ := InputKey(in.Profiles, emb.Name(), opt2, "")
	key3, _ := InputKey(in.Profiles[1:], emb.Name(), opt, "")
	opt4 := opt
	opt4.Workers = 7 // does not change the result, so not the key
	key4, _ := InputKey(in.Profiles, emb.Name(), opt4, "")
	if key2 == key || key3 == key || key4 != key {
		t.Error("keys: seed or profiles ignored, or workers counted")
	}
	if ok, _, _ := UpToDate(ws, key2); ok {
		t.Error("other seed: up to date")
	}

	a, err := LoadAssignments(ws)
	if err != nil {
		t.Fatal(err)
	}
	if a.K != 4 || a.Embedder != "behaviour" || a.Seed != 2 || len(a.Personas) != len(in.Profiles) {
		t.Fatalf("assignments %+v", a)
	}
	for i, u := range r.Users {
		if a.Personas[u] != r.Clustering.Labels[i] {
			t.Fatalf("user %s: saved %d, clustered %d", u, a.Personas[u], r.Clustering.Labels[i])
		}
	}
	c, err := LoadCentroids(ws)
	if err != nil {
		t.Fatal(err)
	}
	vecs, _ := emb.Embed(context.Background(), in.Profiles)
	for i, v := range vecs {
		if l, _, err := c.Assign(v); err != nil || l != r.Clustering.Labels[i] {
			t.Fatalf("reloaded centroids assign user %d to %d (%v), want %d", i, l, err, r.Clustering.Labels[i])
		}
	}
	// A fresh embedder refitted on the population reproduces the saved
	// assignments; another embedder is refused.
	as, err := NewAssigner(context.Background(), ws, &Behaviour{}, in.Profiles)
	if err != nil {
		t.Fatal(err)
	}
	got, err := as.Assign(context.Background(), in.Profiles)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range r.Users {
		if got[i] != a.Personas[u] {
			t.Fatalf("assigner puts user %s in %d, saved %d", u, got[i], a.Personas[u])
		}
	}
	if _, err := NewAssigner(context.Background(), ws, &TFIDF{}, in.Profiles); err == nil {
		t.Error("assigner with another embedder: no error")
	}
	s, err := LoadSummary(ws)
	if err != nil {
		t.Fatal(err)
	}
	if s.K != 4 || len(s.Personas) != 4 || s.Separation.ARI == nil || len(s.Comparison) != 1 {
		t.Errorf("summary %+v", s)
	}

	// A changed output file is detected.
	p := filepath.Join(ws, Dir, AssignmentsFile)
	if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, why, _ := UpToDate(ws, key); ok || why == "" {
		t.Error("edited assignments: still up to date")
	}
	if err := os.WriteFile(p, []byte(`{"k": 2, "personas": {"u": 5}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAssignments(ws); err == nil {
		t.Error("persona out of range: no error")
	}
}
