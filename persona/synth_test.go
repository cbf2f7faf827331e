package persona

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
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

func TestSynthExplore(t *testing.T) {
	for _, proto := range []string{"random", "paper"} {
		in := synthInput(t, proto)
		for _, emb := range []Embedder{&TFIDF{NGram: 1}, &TFIDF{}, &TFIDF{Components: 32}, &Behaviour{}, &Behaviour{Prefixes: []string{"genre:"}}, &Behaviour{Prefixes: []string{""}}} {
			r, err := Build(context.Background(), in, emb, Options{Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			rk, err := Build(context.Background(), in, emb, Options{Seed: 1, K: 4})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("%s %s %d users: K=%d (elbow %d, sil %d) ARI(K)=%.3f ARI(4)=%.3f eta2 mean %.3f genre %.3f aff %.3f range %.2f\n", proto, emb.Name(), len(in.Profiles), r.Selection.K, r.Selection.ElbowK, r.Selection.SilhouetteK, *r.Separation.ARI, *rk.Separation.ARI, rk.Separation.MeanRatingEta2, rk.Separation.GenreEta2, rk.Separation.AffinityEta2, rk.Separation.MeanRatingRange)
			for _, row := range r.Selection.Table {
				fmt.Printf("   K=%d inertia %.2f sil %.3f\n", row.K, row.Inertia, row.Silhouette)
			}
		}
	}
}
