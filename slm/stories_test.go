package slm

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

type storiesLogits struct {
	Tokens []int       `json:"tokens"`
	Argmax []int       `json:"argmax"`
	Logits [][]float64 `json:"logits"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadStories(t *testing.T) *Model {
	t.Helper()
	m, err := LoadModel(filepath.Join(sharedDir(t, "models", "stories260K"), "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkStoriesLogits compares m's logits for the golden prompt, fed one
// token at a time and as one prefill, with the float64 reference.
func checkStoriesLogits(t *testing.T, m *Model) {
	t.Helper()
	var g storiesLogits
	readJSON(t, filepath.Join(sharedDir(t, "golden", "stories260K"), "prompt_logits.json"), &g)
	ctx := context.Background()
	out, err := m.Forward(ctx, []Sequence{{Cache: m.NewCache(), Tokens: g.Tokens, Logits: LogitsAll}})
	if err != nil {
		t.Fatal(err)
	}
	oneByOne := runAll(t, m, m.NewCache(), g.Tokens, 1)
	for p := range g.Tokens {
		for name, row := range map[string][]float32{"prefill": out[0][p], "one by one": oneByOne[p]} {
			if d := maxDiff(row, g.Logits[p]); d > 1e-4 {
				t.Errorf("%s position %d: max |Δlogit| %g > 1e-4", name, p, d)
			}
			if a := argmax(row); a != g.Argmax[p] {
				t.Errorf("%s position %d: argmax %d, want %d", name, p, a, g.Argmax[p])
			}
		}
	}
}

func TestStoriesLogits(t *testing.T) {
	checkStoriesLogits(t, loadStories(t))
}

func TestStoriesGreedy(t *testing.T) {
	m := loadStories(t)
	var g struct {
		IDs []int `json:"ids"`
	}
	readJSON(t, filepath.Join(sharedDir(t, "golden", "stories260K"), "generate_greedy_200.json"), &g)
	ctx := context.Background()
	c := m.NewCache()
	tok := m.Config.BOS
	for i, want := range g.IDs {
		out, err := m.Forward(ctx, []Sequence{{Cache: c, Tokens: []int{tok}}})
		if err != nil {
			t.Fatal(err)
		}
		tok = argmax(out[0][0])
		if tok != want {
			t.Fatalf("step %d: generated %d, want %d", i, tok, want)
		}
	}
}
