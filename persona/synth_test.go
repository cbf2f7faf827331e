package persona

import (
	"context"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/memory"
)

// world is the default synthetic world's input for Build: profiles of the
// stats distiller over the given split, demographics and the truth.
type worldInput struct {
	in    Input
	world *synth.World
}

var (
	worldOnce sync.Map // protocol -> *worldInput
)

// synthInput distils the default synthetic world under a split protocol:
// "random" (every user, 10% test rows) or "paper" (every eligible user,
// temporal 60/40).
func synthInput(t testing.TB, protocol string) Input {
	t.Helper()
	if v, ok := worldOnce.Load(protocol); ok {
		return v.(*worldInput).in
	}
	w, err := synth.Generate(synth.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var s *split.Split
	switch protocol {
	case "random":
		s, err = split.Random(w.Dataset, 0.1, 1)
	case "paper":
		opt := split.DefaultPaperOptions()
		opt.NumUsers = -1
		s, err = split.Paper(w.Dataset, opt)
	}
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := memory.DistillStats(context.Background(), w.Dataset, s, memory.StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Profiles: ps, Users: map[string]dataset.User{}, Truth: map[string]int{}}
	truth := w.Truth.PersonaOf()
	for u, usr := range w.Dataset.Users {
		in.Users[usr.ID] = usr
		in.Truth[usr.ID] = truth[u]
	}
	worldOnce.Store(protocol, &worldInput{in, w})
	return in
}

// TestSynthRecovery is the check: on the default synthetic world
// (4 latent personas) the stats distiller's profiles, clustered with the
// default embedder, recover the true personas (ARI >= 0.9) and the elbow picks
// K = 4; the default separates rating behaviour more than tf-idf.
func TestSynthRecovery(t *testing.T) {
	for _, proto := range []string{"random", "paper"} {
		in := synthInput(t, proto)
		def, _ := NewEmbedder(DefaultEmbedder, 1)
		r, err := Build(context.Background(), in, def, Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		sep := r.Separation
		t.Logf("%s split, %d users, %s: K=%d (elbow %d, silhouette %d), ARI %.3f, η² mean %.3f genre %.3f",
			proto, len(in.Profiles), r.Embedder, r.Selection.K, r.Selection.ElbowK, r.Selection.SilhouetteK, *sep.ARI, sep.MeanRatingEta2, sep.GenreEta2)
		if r.Selection.ElbowK != 4 || r.Selection.K != 4 {
			t.Errorf("%s: elbow K %d, chosen %d; want 4", proto, r.Selection.ElbowK, r.Selection.K)
		}
		if *sep.ARI < 0.9 {
			t.Errorf("%s: ARI %.3f < 0.9", proto, *sep.ARI)
		}
		for _, p := range r.Personas {
			if p.Purity < 0.8 || p.Demographics == nil || p.Text == "" {
				t.Errorf("%s: persona %+v", proto, p)
			}
		}
		tf, err := Build(context.Background(), in, &TFIDF{}, Options{Seed: 1, K: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: tfidf K=4: ARI %.3f, η² mean %.3f genre %.3f", proto, *tf.Separation.ARI, tf.Separation.MeanRatingEta2, tf.Separation.GenreEta2)
		if tf.Separation.GenreEta2 >= sep.GenreEta2 {
			t.Errorf("%s: tf-idf separates genre affinities more (%.3f) than the default (%.3f)", proto, tf.Separation.GenreEta2, sep.GenreEta2)
		}
		// A new user (a profile the clustering never saw, here a copy under
		// another ID) is assigned to its twin's persona.
		twin := in.Profiles[7]
		twin.User = "new"
		got, err := r.Assign(context.Background(), def, []memory.Profile{twin})
		if err != nil || got[0] != r.Clustering.Labels[7] {
			t.Errorf("%s: new user assigned %v (%v), twin in %d", proto, got, err, r.Clustering.Labels[7])
		}
	}
}

// TestML1MSeparation measures, on the paper's protocol with ml-1m (200
// users, seed 1), how much rating behaviour each embedder's personas
// separate at K = 4: the default must separate the users' mean ratings and
// genre affinities more than tf-idf.
func TestML1MSeparation(t *testing.T) {
	if testing.Short() {
		t.Skip("distils ml-1m")
	}
	dir := sharedtest.Path(t, "data", "ml-1m")
	d, err := dataset.LoadML1M(dir)
	if err != nil {
		t.Fatal(err)
	}
	opt := split.DefaultPaperOptions()
	opt.Seed = 1
	s, err := split.Paper(d, opt)
	if err != nil {
		t.Fatal(err)
	}
	ps, _, err := memory.DistillStats(context.Background(), d, s, memory.StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Profiles: ps}
	seps := map[string]Separation{}
	for _, e := range []Embedder{&Behaviour{}, &TFIDF{}, &TFIDF{Components: DefaultLSAComponents, Seed: 1}} {
		r, err := Build(context.Background(), in, e, Options{Seed: 1, K: 4})
		if err != nil {
			t.Fatal(err)
		}
		sel, err := Build(context.Background(), in, e, Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		sp := r.Separation
		seps[e.Name()] = sp
		t.Logf("%s: elbow K %d (sizes %v); K=4 sizes %v, η² mean rating %.3f, genres %.3f, affinities %.3f, persona means span %.2f",
			e.Name(), sel.Selection.K, sel.Clustering.Sizes, r.Clustering.Sizes, sp.MeanRatingEta2, sp.GenreEta2, sp.AffinityEta2, sp.MeanRatingRange)
	}
	def, tf := seps[DefaultEmbedder], seps[EmbedTFIDF]
	if def.MeanRatingEta2 <= tf.MeanRatingEta2 || def.GenreEta2 <= tf.GenreEta2 {
		t.Errorf("default %s separates less than tf-idf: %+v vs %+v", DefaultEmbedder, def, tf)
	}
}
