package raft

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/memory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// tiny is a hand-built world: two users, five movies. Rows 0–6 train,
// rows 7–8 test. User "u1" rates m1, m2, m3 (train, times 10, 20, 30) and
// m4 (test); "u2" rates m1, m3, m2, m5 (train) and m4 (test).
type tiny struct {
	d  *dataset.Dataset
	s  *split.Split
	ps []memory.Profile
	ms []memory.Interaction
}

func newTiny(t testing.TB) *tiny {
	t.Helper()
	d := &dataset.Dataset{Name: "tiny", Scale: dataset.FiveStars}
	for _, id := range []string{"u1", "u2"} {
		d.AddUser(dataset.User{ID: id})
	}
	for _, it := range []dataset.Item{
		{ID: "m1", Title: "Matrix, The", Year: 1999, Genres: []string{"Action", "Sci-Fi"}},
		{ID: "m2", Title: "Toy Story", Year: 1995, Genres: []string{"Animation", "Comedy"}},
		{ID: "m3", Title: "Heat", Year: 1995, Genres: []string{"Action", "Crime"}},
		{ID: "m4", Title: "Fargo", Year: 1996, Genres: []string{"Crime", "Drama"}},
		{ID: "m5", Title: "Babe", Genres: nil},
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
		{0, 3, 1, 40}, {1, 3, 5, 50},
	}
	for _, r := range rows {
		d.Append(r.u, r.i, r.v, r.t, true)
	}
	s := &split.Split{Protocol: split.ProtocolPaper, Users: []int32{0, 1}, Train: []int32{0, 1, 2, 3, 4, 5, 6}, Test: []int32{7, 8}}
	tr := memory.Traits{Activity: 3, ActivityLevel: memory.Low, Conformity: 0.5, ConformityLevel: memory.High, Diversity: 2, DiversityLevel: memory.Medium}
	ps := []memory.Profile{
		{User: "u1", Traits: tr, Description: "I love Sci-Fi films.", MeanRating: 4, NumRatings: 3},
		{User: "u2", Traits: tr, Description: "I am hard to please.", MeanRating: 3.5, NumRatings: 4},
	}
	ms := []memory.Interaction{
		{User: "u1", Item: "m1", Rating: 5, Time: 10, Order: 0, Reason: "it is mind-bending"},
		{User: "u1", Item: "m2", Rating: 3, Time: 20, Order: 1, Reason: "cartoons are not for me"},
		{User: "u1", Item: "m3", Rating: 4, Time: 30, Order: 2, Reason: "I like a good heist"},
		{User: "u2", Item: "m1", Rating: 4, Time: 15, Order: 0, Reason: "the effects are great"},
		{User: "u2", Item: "m3", Rating: 2, Time: 25, Order: 1, Reason: "it drags"},
		{User: "u2", Item: "m2", Rating: 5, Time: 35, Order: 2, Reason: "it is charming"},
		{User: "u2", Item: "m5", Rating: 3, Time: 45, Order: 3, Reason: "it is fine"},
	}
	return &tiny{d: d, s: s, ps: ps, ms: ms}
}

func (w *tiny) inputs() Inputs {
	return Inputs{Dataset: w.d, Split: w.s, Profiles: w.ps, Interactions: w.ms, Personas: map[string]int{"u1": 0, "u2": 1}}
}

type constAnchor float64

func (c constAnchor) Predict(user, item int32) float64 { return float64(c) }

// render joins examples as the golden files hold them.
func render(exs []Example) string {
	var sb strings.Builder
	for _, e := range exs {
		sb.WriteString("=== " + e.User + " " + e.Item + "\n")
		sb.WriteString(e.Prompt + " " + e.Answer + "\n")
	}
	return sb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendering:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	w := newTiny(t)
	for _, tc := range []struct {
		file string
		in   func(Inputs) Inputs
		opt  Options
	}{
		{"paper.golden", nil, Options{}},
		{"paper_msonly.golden", nil, Options{NoMemory: true}},
		{"default.golden", func(in Inputs) Inputs { in.Anchor = constAnchor(3.74); return in }, Options{Variant: VariantDefault}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in := w.inputs()
			if tc.in != nil {
				in = tc.in(in)
			}
			exs, err := Build(context.Background(), in, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(exs) != 7 {
				t.Fatalf("%d examples, want one per training rating (7)", len(exs))
			}
			golden(t, tc.file, render(exs))
		})
	}
}
