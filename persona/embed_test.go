package persona

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersim/usersim/internal/vec"
	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
)

func TestTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"I love Sci-Fi and Film-Noir films", []string{"love", "sci-fi", "film-noir", "films"}},
		{"Children's films, the 1990s!", []string{"children", "films", "1990s"}},
		{"I do NOT like -dashes- or a", []string{"not", "like", "dashes"}},
		{"", nil},
	} {
		if got := tokens(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("tokens(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := termCounts("Drama films. Drama rocks", 2)
	want := map[string]int{"drama": 2, "films": 1, "drama films": 1, "rocks": 1, "drama rocks": 1}
	if len(got) != len(want) {
		t.Fatalf("termCounts = %v, want %v (no bigram across sentences)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("termCounts[%q] = %d, want %d", k, got[k], v)
		}
	}
}

func profiles(descs ...string) []memory.Profile {
	ps := make([]memory.Profile, len(descs))
	for i, d := range descs {
		ps[i] = memory.Profile{User: string(rune('a' + i)), Description: d}
	}
	return ps
}

func TestTFIDFWeights(t *testing.T) {
	ps := profiles("drama drama comedy", "drama horror", "comedy horror", "western")
	tf := &TFIDF{NGram: 1, MinDF: 1}
	if _, err := tf.Embed(context.Background(), ps); err == nil {
		t.Error("Embed before Fit: no error")
	}
	if err := tf.Fit(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tf.Terms(), []string{"comedy", "drama", "horror", "western"}) {
		t.Fatalf("terms %v", tf.Terms())
	}
	v, err := tf.Embed(context.Background(), ps[:1])
	if err != nil {
		t.Fatal(err)
	}
	idf := func(df int) float64 { return math.Log(5/float64(1+df)) + 1 }
	drama := (1 + math.Log(2)) * idf(2)
	comedy := idf(2)
	norm := math.Hypot(drama, comedy)
	want := []float64{comedy / norm, drama / norm, 0, 0}
	for j := range want {
		if math.Abs(float64(v[0][j])-want[j]) > 1e-6 {
			t.Errorf("weight of %s = %v, want %v", tf.Terms()[j], v[0][j], want[j])
		}
	}
	// A new user with unseen words only gets a zero vector, not an error.
	v, err = tf.Embed(context.Background(), profiles("zombies everywhere"))
	if err != nil || slices.ContainsFunc(v[0], func(f float32) bool { return f != 0 }) {
		t.Errorf("unseen words: %v, %v", v, err)
	}
	// MinDF 2 drops the terms of a single profile.
	tf2 := &TFIDF{NGram: 1}
	if err := tf2.Fit(context.Background(), ps); err != nil || slices.Contains(tf2.Terms(), "western") {
		t.Errorf("MinDF 2: terms %v, %v", tf2.Terms(), err)
	}
	tf3 := &TFIDF{Vocabulary: []string{"Drama", "Western"}, MinDF: 1}
	if err := tf3.Fit(context.Background(), ps); err != nil || !slices.Equal(tf3.Terms(), []string{"drama", "western"}) {
		t.Errorf("Vocabulary: terms %v, %v", tf3.Terms(), err)
	}
	if err := (&TFIDF{}).Fit(context.Background(), profiles("a", "b")); err == nil {
		t.Error("no terms: no error")
	}
}

func TestLSA(t *testing.T) {
	in := synthInput(t, "paper")
	full := &TFIDF{}
	lsa := &TFIDF{Components: 400, Seed: 1}
	small := &TFIDF{Components: 8, Seed: 1}
	for _, e := range []Embedder{full, lsa, small} {
		if err := e.Fit(context.Background(), in.Profiles); err != nil {
			t.Fatal(err)
		}
	}
	// The components are orthonormal.
	for a := range small.comp {
		for b := range small.comp {
			var dot float64
			for j := range small.comp[a] {
				dot += float64(small.comp[a][j]) * float64(small.comp[b][j])
			}
			want := 0.0
			if a == b {
				want = 1
			}
			if math.Abs(dot-want) > 1e-4 {
				t.Fatalf("components %d·%d = %v, want %v", a, b, dot, want)
			}
		}
	}
	if !slices.IsSortedFunc(small.sv, func(a, b float64) int { return cmpF(b, a) }) {
		t.Errorf("singular values not decreasing: %v", small.sv)
	}
	// With as many components as the rank, LSA keeps the cosines of tf-idf.
	fv, _ := full.Embed(context.Background(), in.Profiles[:20])
	lv, _ := lsa.Embed(context.Background(), in.Profiles[:20])
	if len(lsa.comp) != min(400, len(full.terms), len(in.Profiles)) {
		t.Fatalf("%d components", len(lsa.comp))
	}
	rank := min(len(in.Profiles), len(full.terms))
	if rank <= 400 {
		for i := range 5 {
			for j := range 5 {
				a, b := cos(fv[i], fv[j]), cos(lv[i], lv[j])
				if math.Abs(a-b) > 1e-3 {
					t.Errorf("cos(%d,%d): tf-idf %v, LSA %v", i, j, a, b)
				}
			}
		}
	}
	if small.Name() != "lsa" || full.Name() != "tfidf" {
		t.Errorf("names %s %s", small.Name(), full.Name())
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cos(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return d / math.Sqrt(na*nb)
}

func TestBehaviour(t *testing.T) {
	ps := []memory.Profile{
		{User: "a", MeanRating: 3, Features: map[string]float64{"genre:Drama": 1, "share:Drama": 0.5, "mean": 3}},
		{User: "b", MeanRating: 4, Features: map[string]float64{"genre:Drama": -1, "share:Drama": 0.1, "mean": 4}},
		{User: "c", MeanRating: 5, Features: map[string]float64{"share:Drama": 0.3, "mean": 5}},
	}
	for i := range ps {
		ps[i].Traits.Activity = 10 * (i + 1)
		ps[i].Traits.Conformity = 1 // constant: left out
	}
	b := &Behaviour{}
	if err := b.Fit(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	// "mean" is not an affinity; conformity and diversity are constant.
	if want := []string{FeatMeanRating, FeatActivity, "genre:Drama", "share:Drama"}; !slices.Equal(b.Keys(), want) {
		t.Fatalf("keys %v, want %v", b.Keys(), want)
	}
	v, err := b.Embed(context.Background(), ps)
	if err != nil {
		t.Fatal(err)
	}
	for j := range b.Keys() {
		var s, ss float64
		n := 0.0
		for i := range v {
			s += float64(v[i][j])
			ss += float64(v[i][j]) * float64(v[i][j])
			n++
		}
		if j != 2 && (math.Abs(s/n) > 1e-6 || math.Abs(ss/n-1) > 1e-5) {
			t.Errorf("%s: mean %v, variance %v; want 0, 1", b.Keys()[j], s/n, ss/n)
		}
	}
	if v[2][2] != 0 {
		t.Errorf("missing genre:Drama embedded as %v, want 0 (the mean)", v[2][2])
	}
	if math.Abs(float64(v[0][2])-1) > 1e-6 || math.Abs(float64(v[1][2])+1) > 1e-6 {
		t.Errorf("genre:Drama z = %v, %v; want ±1", v[0][2], v[1][2])
	}
	all := &Behaviour{Prefixes: []string{""}, NoTraits: true}
	if err := all.Fit(context.Background(), ps); err != nil || !slices.Contains(all.Keys(), "mean") {
		t.Errorf("all features: keys %v, %v", all.Keys(), err)
	}
	bad := []memory.Profile{{User: "x", Features: map[string]float64{"genre:A": math.NaN()}}}
	if err := (&Behaviour{}).Fit(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "user x") {
		t.Errorf("NaN feature: %v", err)
	}
}

// embeddingServer speaks POST /v1/embeddings: a vector of
// (len(text), count of 'a', 1) per input. It counts requests and inputs.
func embeddingServer(t *testing.T, dims int) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/embeddings" {
			http.NotFound(w, r)
			return
		}
		calls.Add(1)
		var req llm.EmbeddingRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		resp := llm.EmbeddingResponse{Object: "list", Model: req.Model}
		for i, s := range req.Input {
			v := []float32{float32(len(s)), float32(strings.Count(s, "a")), 1}
			resp.Data = append(resp.Data, llm.Embedding{Object: "embedding", Index: i, Embedding: v[:dims]})
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestOpenAIEmbedder(t *testing.T) {
	srv, calls := embeddingServer(t, 3)
	c := &llm.Client{BaseURL: srv.URL + "/v1"}
	o := &OpenAI{Client: LLMClient{Client: c}, Model: "test-embed", BatchSize: 2}
	ps := profiles("aaa", "ab", "b", "banana", "zz")
	if err := o.Fit(context.Background(), ps); err != nil {
		t.Fatal(err)
	}
	calls.Store(0)
	v, err := o.Embed(context.Background(), ps)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d requests for 5 inputs in batches of 2, want 3", calls.Load())
	}
	for i, p := range ps {
		want := []float32{float32(len(p.Description)), float32(strings.Count(p.Description, "a")), 1}
		vec.Normalize(want)
		for j := range want {
			if math.Abs(float64(v[i][j]-want[j])) > 1e-6 {
				t.Fatalf("profile %d: %v, want %v", i, v[i], want)
			}
		}
	}
	if o.Name() != "openai:test-embed" {
		t.Errorf("name %q", o.Name())
	}
	if _, err := o.Embed(context.Background(), profiles("")); err == nil {
		t.Error("empty description: no error")
	}
	// A server whose vectors change length is an error naming the user.
	srv2, _ := embeddingServer(t, 2)
	o.Client = LLMClient{Client: &llm.Client{BaseURL: srv2.URL + "/v1"}}
	if _, err := o.Embed(context.Background(), ps); err == nil || !strings.Contains(err.Error(), "dimensions") {
		t.Errorf("dimension change: %v", err)
	}
	if err := (&OpenAI{}).Fit(context.Background(), ps); err == nil {
		t.Error("no client: no error")
	}
}

func FuzzTermCounts(f *testing.F) {
	for _, s := range []string{"I love Sci-Fi films.", "Children's -x- 'quoted' don't", "a-", "-'s", "é’s ß-ü", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for term, c := range termCounts(s, 2) {
			if c <= 0 || term == "" || strings.TrimSpace(term) != term {
				t.Fatalf("term %q count %d from %q", term, c, s)
			}
			for _, w := range strings.Fields(term) {
				if stopWords[w] || len([]rune(w)) < 2 {
					t.Fatalf("term %q holds stop word or short token %q", term, w)
				}
			}
		}
	})
}
