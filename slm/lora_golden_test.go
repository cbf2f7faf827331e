package slm

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/usersim/usersim/slm/lora"
)

// goldenLoRA is golden/hf/llama/adapter/golden_lora.json.
type goldenLoRA struct {
	Scale     float64 `json:"scale"`
	Sequences []struct {
		InputIDs   []int          `json:"input_ids"`
		Argmax     []int          `json:"argmax"`
		LogSumExp  []float64      `json:"logsumexp"`
		LastLogits []float64      `json:"last_logits"`
		Top20      [][][2]float64 `json:"top20"`
	} `json:"sequences"`
	Loss struct {
		SequenceIndex int     `json:"sequence_index"`
		InputIDs      []int   `json:"input_ids"`
		Labels        []int   `json:"labels"`
		Value         float64 `json:"value"`
	} `json:"loss"`
	Grads map[string]json.RawMessage `json:"grads"`
}

func loadGoldenLoRA(t *testing.T) (*Model, *lora.Adapter, *goldenLoRA) {
	t.Helper()
	dir := sharedDir(t, "golden", "hf", "llama")
	m, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.Load(filepath.Join(dir, "adapter"), m.Config.LoRABase())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "adapter", "golden_lora.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenLoRA
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return m, a, &g
}

// TestGoldenLoRAForward checks the logits of the base run with the PEFT
// fixture adapter (r 4, alpha 8, all seven projections) against PyTorch's
// float64 reference.
func TestGoldenLoRAForward(t *testing.T) {
	m, a, g := loadGoldenLoRA(t)
	if n := len(a.Pairs()); n != 14 {
		t.Fatalf("adapter has %d pairs, want 14", n)
	}
	for i, s := range g.Sequences {
		out, err := m.Forward(context.Background(), []Sequence{{Cache: m.NewAdapterCache(a), Tokens: s.InputIDs, Logits: LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		rows := out[0]
		if d := maxDiff(rows[len(rows)-1], s.LastLogits); d > 1e-5 {
			t.Errorf("sequence %d: last logits differ by %g", i, d)
		}
		for p, row := range rows {
			if got := argmax(row); got != s.Argmax[p] {
				t.Errorf("sequence %d position %d: argmax %d, want %d", i, p, got, s.Argmax[p])
			}
			if d := math.Abs(logSumExp(row) - s.LogSumExp[p]); d > 1e-5 {
				t.Errorf("sequence %d position %d: logsumexp off by %g", i, p, d)
			}
			for _, e := range s.Top20[p] {
				if d := math.Abs(float64(row[int(e[0])]) - e[1]); d > 1e-5 {
					t.Errorf("sequence %d position %d: logit of %d off by %g", i, p, int(e[0]), d)
				}
			}
		}
	}
}

// TestGoldenLoRAGrad checks the masked loss and every dLoss/dA, dLoss/dB of
// the PEFT fixture against PyTorch autograd in float64, and that the
// backward leaves the base weights bit-identical.
func TestGoldenLoRAGrad(t *testing.T) {
	m, a, g := loadGoldenLoRA(t)
	mask := make([]bool, len(g.Loss.Labels))
	for i, l := range g.Loss.Labels {
		mask[i] = l != -100
	}
	before := snapshotWeights(m)
	sum, ntok, err := m.LossAndGrad(context.Background(), []TrainSeq{{Tokens: g.Loss.InputIDs, Mask: mask, Adapter: a}})
	if err != nil {
		t.Fatal(err)
	}
	if ntok != 3 {
		t.Fatalf("%d target tokens, want 3", ntok)
	}
	if d := math.Abs(sum/float64(ntok) - g.Loss.Value); d > 1e-5 {
		t.Errorf("loss %.9f, want %.9f (Δ %g)", sum/float64(ntok), g.Loss.Value, d)
	}
	if !slices.EqualFunc(before, snapshotWeights(m), slices.Equal) {
		t.Error("the backward changed base weights")
	}
	checked := 0
	var worst float64
	for _, p := range a.Pairs() {
		na, nb := lora.TensorNames(p.Layer, p.Module)
		for _, c := range []struct {
			name string
			g    []float32
			cols int
		}{{na, p.GA, p.In}, {nb, p.GB, p.R}} {
			raw, ok := g.Grads[c.name+".grad"]
			if !ok {
				t.Fatalf("golden has no gradient for %s", c.name)
			}
			var want [][]float64
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if len(want)*c.cols != len(c.g) {
				t.Fatalf("%s: golden gradient of %d×%d, ours %d values", c.name, len(want), c.cols, len(c.g))
			}
			for i, row := range want {
				for j, w := range row {
					d := math.Abs(float64(c.g[i*c.cols+j])/float64(ntok) - w)
					worst = math.Max(worst, d)
					if d > 1e-5 {
						t.Errorf("%s[%d,%d]: %g, want %g", c.name, i, j, float64(c.g[i*c.cols+j])/float64(ntok), w)
					}
				}
			}
			checked++
		}
	}
	if checked != 28 {
		t.Errorf("checked %d gradient tensors, want 28", checked)
	}
	t.Logf("loss %.9f (golden %.9f), max |Δgrad| %.3g over 28 tensors", sum/float64(ntok), g.Loss.Value, worst)
}

// snapshotWeights copies the bits of every weight, bias and norm of m.
func snapshotWeights(m *Model) [][]uint32 {
	specs, _ := m.specs()
	var out [][]uint32
	bits := func(x []float32) []uint32 {
		b := make([]uint32, len(x))
		for i, v := range x {
			b[i] = math.Float32bits(v)
		}
		return b
	}
	for _, s := range specs {
		switch {
		case s.Linear != nil:
			out = append(out, bits(s.Linear.W), bits(s.Linear.Bias))
		case s.Vec != nil:
			out = append(out, bits(*s.Vec))
		}
	}
	return out
}
