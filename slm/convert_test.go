package slm

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

// TestGGUFRoundTrip writes random models of every test architecture to
// GGUF and reads them back: a NeoX (HF-layout) llama is written with
// llama.cpp's q/k permutation and read back as interleaved RoPE, which must
// give the same logits.
func TestGGUFRoundTrip(t *testing.T) {
	ctx := context.Background()
	for name, cfg := range testConfigs(t) {
		if name == "smol" {
			cfg = smolConfig(1)
			cfg.Vocab = 1000
		}
		t.Run(name, func(t *testing.T) {
			m := randomModel(t, cfg, 11)
			toks := []int{1, 5, 9, 200, 7, 3, 3, 250, 17}
			want, err := m.Forward(ctx, []Sequence{{Cache: m.NewCache(), Tokens: toks, Logits: LogitsAll}})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
				path := filepath.Join(t.TempDir(), "m.gguf")
				if err := m.WriteGGUF(path, nil, SaveOptions{DType: d}); err != nil {
					t.Fatal(err)
				}
				back, err := LoadModel(path)
				if err != nil {
					t.Fatal(err)
				}
				wantStyle := RopeNeoX
				if cfg.Arch == "llama" {
					wantStyle = RopeInterleaved
				}
				if back.Config.RopeStyle != wantStyle {
					t.Errorf("%v: rope style %v, want %v", d, back.Config.RopeStyle, wantStyle)
				}
				got, err := back.Forward(ctx, []Sequence{{Cache: back.NewCache(), Tokens: toks, Logits: LogitsAll}})
				if err != nil {
					t.Fatal(err)
				}
				tol := 1e-5
				if d != tensor.F32 {
					tol = 0.05 // rounding of the weights
				}
				for i := range toks {
					if diff := maxDiff(got[0][i], want[0][i]); diff > tol {
						t.Errorf("%v: position %d: max |Δlogit| %g", d, i, diff)
					}
				}
			}
		})
	}
}
