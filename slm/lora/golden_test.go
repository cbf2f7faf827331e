package lora_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
)

// linearOf returns the base projection an adapter pair applies to.
func linearOf(m *slm.Model, p *lora.Pair) *slm.Linear {
	ly := &m.Layers[p.Layer]
	switch p.Module {
	case lora.Q:
		return &ly.Attn.Q
	case lora.K:
		return &ly.Attn.K
	case lora.V:
		return &ly.Attn.V
	case lora.QKV:
		return &ly.Attn.QKV
	case lora.O:
		return &ly.Attn.O
	case lora.Gate:
		return &ly.MLP.Gate
	case lora.Up:
		return &ly.MLP.Up
	case lora.GateUp:
		return &ly.MLP.GateUp
	case lora.Down:
		return &ly.MLP.Down
	}
	return nil
}

// TestGoldenMergedLogits merges the PEFT fixture into its base and checks
// the logits and the masked loss against PyTorch's float64 reference in
// golden_lora.json: names, shapes, scale (alpha/r) and B·A orientation
// must all be right for this to pass.
func TestGoldenMergedLogits(t *testing.T) {
	dir := sharedtest.Path(t, "golden", "hf", "llama")
	m, err := slm.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.Load(dir+"/adapter", baseOf(&m.Config))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range a.Pairs() {
		l := linearOf(m, p)
		if l == nil || l.W == nil || l.Out != p.Out || l.In != p.In {
			t.Fatalf("%s: no float32 base projection of %d×%d", p.Name(), p.Out, p.In)
		}
		p.Merge(l.W)
	}
	data, err := os.ReadFile(dir + "/adapter/golden_lora.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Sequences []struct {
			InputIDs   []int     `json:"input_ids"`
			Argmax     []int     `json:"argmax"`
			LogSumExp  []float64 `json:"logsumexp"`
			LastLogits []float64 `json:"last_logits"`
		}
		Loss struct {
			SequenceIndex int   `json:"sequence_index"`
			Positions     []int `json:"predicting_positions"`
			Targets       []int `json:"targets"`
			Value         float64
		}
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	const tol = 1e-5
	for si, s := range g.Sequences {
		out, err := m.Forward(context.Background(), []slm.Sequence{{Cache: m.NewCache(), Tokens: s.InputIDs, Logits: slm.LogitsAll}})
		if err != nil {
			t.Fatal(err)
		}
		rows := out[0]
		for pos, row := range rows {
			best, lse := argmaxLSE(row)
			if best != s.Argmax[pos] {
				t.Errorf("sequence %d position %d: argmax %d, reference %d", si, pos, best, s.Argmax[pos])
			}
			if math.Abs(lse-s.LogSumExp[pos]) > tol {
				t.Errorf("sequence %d position %d: logsumexp %.8f, reference %.8f", si, pos, lse, s.LogSumExp[pos])
			}
		}
		var maxErr float64
		for i, v := range rows[len(rows)-1] {
			maxErr = max(maxErr, math.Abs(float64(v)-s.LastLogits[i]))
		}
		if maxErr > tol {
			t.Errorf("sequence %d: last logits differ by up to %g", si, maxErr)
		}
		if si == g.Loss.SequenceIndex {
			var loss float64
			for j, pos := range g.Loss.Positions {
				_, lse := argmaxLSE(rows[pos])
				loss += lse - float64(rows[pos][g.Loss.Targets[j]])
			}
			loss /= float64(len(g.Loss.Positions))
			if math.Abs(loss-g.Loss.Value) > tol {
				t.Errorf("masked loss %.8f, reference %.8f", loss, g.Loss.Value)
			}
			t.Logf("masked loss %.9f, reference %.9f; last logits max error %.2g", loss, g.Loss.Value, maxErr)
		}
	}
}

func argmaxLSE(row []float32) (int, float64) {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	mx := float64(row[best])
	var s float64
	for _, v := range row {
		s += math.Exp(float64(v) - mx)
	}
	return best, mx + math.Log(s)
}
