package slm

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

type hfGolden struct {
	Sequences []struct {
		InputIDs   []int         `json:"input_ids"`
		Argmax     []int         `json:"argmax"`
		Top20      [][][]float64 `json:"top20"`
		Logsumexp  []float64     `json:"logsumexp"`
		LastLogits []float64     `json:"last_logits"`
		Logits     [][]float64   `json:"logits"`
	} `json:"sequences"`
}

// checkHFGolden compares m's logits with a golden_logits*.json: every
// position's argmax exactly, its top-20 logits, its logsumexp, and the full
// rows given (the last row, or all rows for qwen2) within tol.
func checkHFGolden(t *testing.T, m *Model, goldenPath string, tol float64) {
	t.Helper()
	var g hfGolden
	readJSON(t, goldenPath, &g)
	if len(g.Sequences) == 0 {
		t.Fatal("no sequences in", goldenPath)
	}
	ctx := context.Background()
	worst := 0.0
	for si, s := range g.Sequences {
		out, err := m.Forward(ctx, []Sequence{{Cache: m.NewCache(), Tokens: s.InputIDs, Logits: LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		rows := out[0]
		for p, row := range rows {
			if a := argmax(row); a != s.Argmax[p] {
				t.Errorf("seq %d pos %d: argmax %d, want %d", si, p, a, s.Argmax[p])
			}
			for _, e := range s.Top20[p] {
				d := math.Abs(float64(row[int(e[0])]) - e[1])
				worst = math.Max(worst, d)
				if d > tol {
					t.Errorf("seq %d pos %d: logit[%d] = %g, want %g", si, p, int(e[0]), row[int(e[0])], e[1])
					break
				}
			}
			if d := math.Abs(lse(row) - s.Logsumexp[p]); d > tol {
				t.Errorf("seq %d pos %d: logsumexp %g, want %g", si, p, lse(row), s.Logsumexp[p])
			}
			if s.Logits != nil {
				d := maxDiff(row, s.Logits[p])
				worst = math.Max(worst, d)
				if d > tol {
					t.Errorf("seq %d pos %d: max |Δlogit| %g", si, p, d)
				}
			}
		}
		if s.LastLogits != nil {
			d := maxDiff(rows[len(rows)-1], s.LastLogits)
			worst = math.Max(worst, d)
			if d > tol {
				t.Errorf("seq %d last row: max |Δlogit| %g", si, d)
			}
		}
	}
	t.Logf("%s: max |Δlogit| %.3g", filepath.Base(filepath.Dir(goldenPath))+"/"+filepath.Base(goldenPath), worst)
}

func lse(row []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range row {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(s)
}

func TestHFGolden(t *testing.T) {
	for _, name := range []string{"llama", "qwen2", "phi3"} {
		t.Run(name, func(t *testing.T) {
			dir := sharedDir(t, "golden", "hf", name)
			m, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			checkHFGolden(t, m, filepath.Join(dir, "golden_logits.json"), 1e-5)
		})
	}
	t.Run("llama-bf16", func(t *testing.T) {
		dir := sharedDir(t, "golden", "hf", "llama")
		m, err := LoadHF(filepath.Join(dir, "config.json"), filepath.Join(dir, "model.bf16.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		checkHFGolden(t, m, filepath.Join(dir, "golden_logits.bf16.json"), 1e-5)
	})
}
