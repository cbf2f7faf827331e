package memory

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// fixed is an ItemEmbedder over given vectors.
type fixed map[int32][]float32

func (f fixed) Embed(i int32) []float32 { return f[i] }

func TestRetrieveTiny(t *testing.T) {
	d, _ := tiny(t)
	emb := fixed{0: {1, 0}, 1: {0, 1}, 2: {1, 1}, 3: {1, 0}}
	r := NewRetriever(d, emb)
	mem := []Interaction{
		{User: "u", Item: "i0", Order: 0},
		{User: "u", Item: "i1", Order: 1},
		{User: "u", Item: "i2", Order: 2},
		{User: "u", Item: "i3", Order: 3},
	}
	items := func(ss []Scored) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Item)
		}
		return out
	}
	for _, c := range []struct {
		name   string
		target int32
		k      int
		opts   []RetrieveOption
		want   []string
	}{
		// i0 and i3 tie at cosine 1: the more recent (i3) first.
		{"top-1 tie", 0, 1, nil, []string{"i3"}},
		{"top-3", 0, 3, nil, []string{"i3", "i0", "i2"}},
		{"all", 1, 10, nil, []string{"i1", "i2", "i3", "i0"}},
		{"before 3", 0, 2, []RetrieveOption{Before(3)}, []string{"i0", "i2"}},
		{"before 0", 0, 2, []RetrieveOption{Before(0)}, nil},
		{"k 0", 0, 0, nil, nil},
	} {
		got, err := r.Retrieve(c.target, mem, c.k, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(items(got), c.want) {
			t.Errorf("%s: got %v, want %v", c.name, items(got), c.want)
		}
	}
	got, _ := r.Retrieve(0, mem, 3)
	if math.Abs(got[2].Score-1/math.Sqrt2) > 1e-6 {
		t.Errorf("cosine of (1,0) and (1,1) = %v", got[2].Score)
	}
	if _, err := r.Retrieve(0, []Interaction{{User: "u", Item: "nope"}}, 1); err == nil {
		t.Error("unknown item: no error")
	}
	if _, err := r.Retrieve(99, mem, 1); err == nil {
		t.Error("target out of range: no error")
	}
}

// TestRetrieveMatchesBruteForce compares Retrieve's top-k with a full sort
// over the built-in embedder on the synthetic world.
func TestRetrieveMatchesBruteForce(t *testing.T) {
	w := testWorld(t)
	d := w.Dataset
	s := paperSplit(t, d)
	st, err := NewStats(d, s.Train, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, ms, err := DistillWith(context.Background(), st, s.Users[:5], StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	emb := NewFeatureEmbedder(st, FeatureOptions{})
	for i := range int32(d.NumItems()) {
		if v := emb.Embed(i); len(v) != emb.Dim() {
			t.Fatalf("item %d: dim %d", i, len(v))
		} else if n := Cosine(v, v); n != 0 && math.Abs(n-1) > 1e-6 {
			t.Fatalf("item %d: not normalised", i)
		}
	}
	r := NewRetriever(d, emb)
	user := ms[0].User
	var mem []Interaction
	for _, m := range ms {
		if m.User == user {
			mem = append(mem, m)
		}
	}
	for _, target := range []int32{0, 17, 400, 1200} {
		var all []Scored
		for _, m := range mem {
			i, _ := d.ItemIndex(m.Item)
			all = append(all, Scored{Interaction: m, Score: Cosine(emb.Embed(target), emb.Embed(i))})
		}
		slices.SortFunc(all, better)
		for _, k := range []int{1, 5} {
			got, err := r.Retrieve(target, mem, k)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, all[:k], func(a, b Scored) bool { return a.Item == b.Item && a.Score == b.Score }) {
				t.Errorf("target %d k %d: %v, want %v", target, k, got, all[:k])
			}
		}
		// Before(n) sees only the first n memories.
		got, _ := r.Retrieve(target, mem, 3, Before(20))
		for _, g := range got {
			if g.Order >= 20 {
				t.Errorf("Before(20) returned order %d", g.Order)
			}
		}
	}
}

func TestTitleBlockAndBeforeTime(t *testing.T) {
	d, train := tiny(t)
	// Three more items of the same genre and year: a sequel and two others.
	a := d.AddItem(dataset.Item{ID: "t1", Title: "Toy Story", Year: 1995, Genres: []string{"Action"}})
	b := d.AddItem(dataset.Item{ID: "t2", Title: "Toy Story 2", Year: 1995, Genres: []string{"Action"}})
	c := d.AddItem(dataset.Item{ID: "t3", Title: "Heat", Year: 1995, Genres: []string{"Action"}})
	for _, i := range []int32{a, b, c} {
		train = append(train, int32(d.Ratings.Len()))
		d.Append(0, i, 4, 10, true)
	}
	st, err := NewStats(d, train, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	with := NewFeatureEmbedder(st, FeatureOptions{})
	without := NewFeatureEmbedder(st, FeatureOptions{Genre: 1, Era: 0.5, Pop: 0.5, Average: 0.5, Title: -1})
	if with.Dim() != without.Dim()+TitleDims {
		t.Fatalf("dims %d and %d", with.Dim(), without.Dim())
	}
	if s1, s2 := Cosine(without.Embed(a), without.Embed(b)), Cosine(without.Embed(a), without.Embed(c)); s1 != s2 {
		t.Fatalf("without titles the sequel and the other film should tie: %v %v", s1, s2)
	}
	if s1, s2 := Cosine(with.Embed(a), with.Embed(b)), Cosine(with.Embed(a), with.Embed(c)); s1 <= s2 {
		t.Errorf("with titles the sequel is not closer: %v <= %v", s1, s2)
	}

	r := NewRetriever(d, with)
	mem := []Interaction{{User: "u", Item: "t2", Time: 100}, {User: "u", Item: "t3", Time: 50}}
	got, _ := r.Retrieve(a, mem, 1)
	if len(got) != 1 || got[0].Item != "t2" {
		t.Errorf("top-1 for Toy Story: %v", got)
	}
	got, _ = r.Retrieve(a, mem, 1, BeforeTime(100))
	if len(got) != 1 || got[0].Item != "t3" {
		t.Errorf("BeforeTime(100): %v", got)
	}
}
