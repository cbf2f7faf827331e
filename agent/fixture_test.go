package agent

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train/raft"
)

// world is a hand-built world: three users, six movies. Users u1 and u2
// have personas 0 and 1; u3 has none.
type world struct {
	d  *dataset.Dataset
	s  *split.Split
	ps []memory.Profile
	ms []memory.Interaction
}

func newWorld(t testing.TB, sc dataset.Scale) *world {
	t.Helper()
	d := &dataset.Dataset{Name: "tiny", Scale: sc}
	for _, id := range []string{"u1", "u2", "u3"} {
		d.AddUser(dataset.User{ID: id})
	}
	for _, it := range []dataset.Item{
		{ID: "m1", Title: "Matrix, The", Year: 1999, Genres: []string{"Action", "Sci-Fi"}},
		{ID: "m2", Title: "Toy Story", Year: 1995, Genres: []string{"Animation", "Comedy"}},
		{ID: "m3", Title: "Heat", Year: 1995, Genres: []string{"Action", "Crime"}},
		{ID: "m4", Title: "Fargo", Year: 1996, Genres: []string{"Crime", "Drama"}},
		{ID: "m5", Title: "Babe", Genres: nil},
		{ID: "m6", Title: "Casino", Year: 1995, Genres: []string{"Crime", "Drama"}},
	} {
		d.AddItem(it)
	}
	rows := []struct {
		u, i int32
		v    float32
		t    int64
	}{
		{0, 0, 5, 10}, {0, 1, 3, 20}, {0, 2, 4, 30},
		{1, 0, 4, 15}, {1, 2, 2, 25}, {1, 1, 5, 35}, {1, 4, 3, 45},
		{2, 1, 4, 12}, {2, 2, 3, 22},
		{0, 3, 1, 40}, {1, 3, 5, 50}, {2, 5, 2, 60}, {0, 5, 4, 70},
	}
	for _, r := range rows {
		d.Append(r.u, r.i, r.v, r.t, true)
	}
	s := &split.Split{Protocol: split.ProtocolPaper, Users: []int32{0, 1, 2},
		Train: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8}, Test: []int32{9, 10, 11, 12}}
	tr := memory.Traits{Activity: 3, ActivityLevel: memory.Low, Conformity: 0.5, ConformityLevel: memory.High, Diversity: 2, DiversityLevel: memory.Medium}
	ps := []memory.Profile{
		{User: "u1", Traits: tr, Description: "I love Sci-Fi films. I rate generously, 4.0 stars on average against 3.6 overall.", MeanRating: 4, NumRatings: 3},
		{User: "u2", Traits: tr, Description: "I am hard to please.", MeanRating: 3.5, NumRatings: 4},
		{User: "u3", Traits: tr, Description: "I like cartoons.", MeanRating: 3.5, NumRatings: 2},
	}
	ms := []memory.Interaction{
		{User: "u1", Item: "m1", Rating: 5, Time: 10, Order: 0, Reason: "it is mind-bending"},
		{User: "u1", Item: "m2", Rating: 3, Time: 20, Order: 1, Reason: "cartoons are not for me"},
		{User: "u1", Item: "m3", Rating: 4, Time: 30, Order: 2, Reason: "I like a good heist"},
		{User: "u2", Item: "m1", Rating: 4, Time: 15, Order: 0, Reason: "the effects are great"},
		{User: "u2", Item: "m3", Rating: 2, Time: 25, Order: 1, Reason: "it drags"},
		{User: "u2", Item: "m2", Rating: 5, Time: 35, Order: 2, Reason: "it is charming"},
		{User: "u2", Item: "m5", Rating: 3, Time: 45, Order: 3, Reason: "it is fine"},
		{User: "u3", Item: "m2", Rating: 4, Time: 12, Order: 0, Reason: "it is funny"},
		{User: "u3", Item: "m3", Rating: 3, Time: 22, Order: 1, Reason: "it is long"},
	}
	return &world{d: d, s: s, ps: ps, ms: ms}
}

func (w *world) inputs() raft.Inputs {
	return raft.Inputs{Dataset: w.d, Split: w.s, Profiles: w.ps, Interactions: w.ms, Personas: map[string]int{"u1": 0, "u2": 1}}
}

// corpus renders every user's prompt for every item with every answer, the
// text a tokenizer for these prompts is trained on.
func (w *world) corpus(t testing.TB) string {
	t.Helper()
	b, err := raft.NewBuilder(w.inputs(), raft.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, u := range w.d.Users {
		for _, it := range w.d.Items {
			ex, err := b.BuildQuery(u.ID, it.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range w.d.Scale.Values() {
				sb.WriteString(ex.Prompt + " " + raft.FormatRating(v) + "\n\n")
			}
		}
	}
	sb.WriteString("A. B. C. D. E. F. 0. CHOICE: A B C D E F 0 because\n")
	return sb.String()
}

// tinyModel is a random compact model with a tokenizer trained on the
// world's prompts, and two random adapters "p0" and "p1" (B not zero, so
// that they change the output).
type tinyModel struct {
	m   *slm.Model
	tok *tokenizer.Tokenizer
	set *lora.Set
}

func newTinyModel(t testing.TB, w *world) *tinyModel {
	t.Helper()
	return newTinyModelSpecial(t, w, nil)
}

// newTinyModelSpecial is newTinyModel with more special tokens (chat
// markers) in the tokenizer.
func newTinyModelSpecial(t testing.TB, w *world, special []string) *tinyModel {
	t.Helper()
	opt := tokenizer.DefaultTrainOptions()
	opt.VocabSize = 600
	opt.Special = append(opt.Special, special...)
	tr, err := tokenizer.Train(context.Background(), strings.NewReader(w.corpus(t)), opt)
	if err != nil {
		t.Fatal(err)
	}
	tok := tr.Tokenizer()
	cfg, err := slm.CompactConfig(slm.CompactOptions{Preset: "tiny", Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2,
		Vocab: tok.VocabSize(), BOS: tok.BOS(), EOS: []int{tok.EOS()}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := slm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if err := m.InitRandom(rng, 0.1); err != nil {
		t.Fatal(err)
	}
	set, err := lora.NewSet(cfg.LoRABase())
	if err != nil {
		t.Fatal(err)
	}
	for k, name := range []string{"p0", "p1"} {
		a, err := lora.New(lora.NewConfig("tiny", 4, 8, lora.AllLinear), cfg.LoRABase(), uint64(10+k))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range a.Pairs() {
			for i := range p.B {
				p.B[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
		if err := set.Add(name, a); err != nil {
			t.Fatal(err)
		}
	}
	return &tinyModel{m: m, tok: tok, set: set}
}

func newLocalPool(t testing.TB, w *world, tm *tinyModel, cfg Config) (*Pool, *Local) {
	t.Helper()
	l, err := NewLocal(tm.m, tm.tok, tm.set)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Adapter == nil {
		cfg.Adapter = PersonaAdapters("p%d")
	}
	p, err := NewPool(w.inputs(), raft.Options{}, l, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, l
}

func raftOptions() raft.Options { return raft.Options{} }

func memoryOf(item string, r float64, reason string) memory.Interaction {
	return memory.Interaction{Item: item, Rating: r, Reason: reason}
}

// newTinyModelFor puts model m (same vocabulary) behind tm's tokenizer with
// random adapters p0 and p1 for m.
func newTinyModelFor(t testing.TB, tm *tinyModel, m *slm.Model) *tinyModel {
	t.Helper()
	set, err := lora.NewSet(m.Config.LoRABase())
	if err != nil {
		t.Fatal(err)
	}
	for k, name := range []string{"p0", "p1"} {
		a, err := lora.New(lora.NewConfig("tiny", 4, 8, lora.AllLinear), m.Config.LoRABase(), uint64(20+k))
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Add(name, a); err != nil {
			t.Fatal(err)
		}
	}
	return &tinyModel{m: m, tok: tm.tok, set: set}
}
