package slm

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

// This file keeps a plain-loop float64 forward pass, written from the HF
// reference semantics (golden/hf/README.md) independently of forward.go, as
// the definition the fast batched/cached forward is compared with.

// denseW returns W of l as float64 rows (dequantizing if needed).
func denseW(t *testing.T, l *Linear) [][]float64 {
	t.Helper()
	w := make([][]float64, l.Out)
	row := make([]float32, l.In)
	for i := range w {
		if err := l.Row(row, i); err != nil {
			t.Fatal(err)
		}
		w[i] = make([]float64, l.In)
		for j, v := range row {
			w[i][j] = float64(v)
		}
	}
	return w
}

func refLinear(w [][]float64, bias []float32, x []float64) []float64 {
	y := make([]float64, len(w))
	for i, r := range w {
		var s float64
		for j, v := range r {
			s += v * x[j]
		}
		if bias != nil {
			s += float64(bias[i])
		}
		y[i] = s
	}
	return y
}

func refNorm(x []float64, w []float32, eps float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * r * float64(w[i])
	}
	return y
}

// refRope rotates one head in place, by position pos.
func refRope(c *Config, v []float64, pos int) {
	half := c.RopeDim / 2
	long := c.RopeScaling.Type == "longrope" && pos >= c.RopeScaling.OriginalContext
	f, mul := c.invFreqs(long)
	for i := 0; i < half; i++ {
		s, co := math.Sincos(float64(pos) * f[i])
		s, co = s*mul, co*mul
		a, b := 2*i, 2*i+1
		if c.RopeStyle == RopeNeoX {
			a, b = i, i+half
		}
		x, y := v[a], v[b]
		v[a] = x*co - y*s
		v[b] = y*co + x*s
	}
}

// refForward returns the logits of every position of tokens, recomputed
// from scratch with no cache, in float64.
func refForward(t *testing.T, m *Model, tokens []int) [][]float64 {
	t.Helper()
	c := &m.Config
	T, hd := len(tokens), c.HeadDim
	emb := denseW(t, &m.Embed)
	h := make([][]float64, T)
	for i, tok := range tokens {
		h[i] = append([]float64(nil), emb[tok]...)
	}
	for l := range m.Layers {
		ly := &m.Layers[l]
		var q, k, v [][]float64
		var qw, kw, vw [][]float64
		if c.FusedQKV {
			all := denseW(t, &ly.Attn.QKV)
			qw, kw, vw = all[:c.QDim()], all[c.QDim():c.QDim()+c.KVDim()], all[c.QDim()+c.KVDim():]
		} else {
			qw, kw, vw = denseW(t, &ly.Attn.Q), denseW(t, &ly.Attn.K), denseW(t, &ly.Attn.V)
		}
		for i := range tokens {
			x := refNorm(h[i], ly.AttnNorm.W, c.NormEps)
			qi := refLinear(qw, ly.Attn.Q.Bias, x)
			ki := refLinear(kw, ly.Attn.K.Bias, x)
			vi := refLinear(vw, ly.Attn.V.Bias, x)
			for hh := 0; hh < c.Heads; hh++ {
				refRope(c, qi[hh*hd:(hh+1)*hd], i)
			}
			for hh := 0; hh < c.KVHeads; hh++ {
				refRope(c, ki[hh*hd:(hh+1)*hd], i)
			}
			q, k, v = append(q, qi), append(k, ki), append(v, vi)
		}
		ow := denseW(t, &ly.Attn.O)
		for i := range tokens {
			att := make([]float64, c.QDim())
			for hh := 0; hh < c.Heads; hh++ {
				kh := hh / (c.Heads / c.KVHeads)
				lo := 0
				if c.SlidingWindow > 0 {
					lo = max(0, i-c.SlidingWindow+1)
				}
				sc := make([]float64, i+1)
				mx := math.Inf(-1)
				for j := lo; j <= i; j++ {
					var s float64
					for d := 0; d < hd; d++ {
						s += q[i][hh*hd+d] * k[j][kh*hd+d]
					}
					sc[j] = s / math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[j])
				}
				var sum float64
				for j := lo; j <= i; j++ {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j := lo; j <= i; j++ {
					for d := 0; d < hd; d++ {
						att[hh*hd+d] += sc[j] / sum * v[j][kh*hd+d]
					}
				}
			}
			o := refLinear(ow, nil, att)
			for d := range o {
				h[i][d] += o[d]
			}
		}
		var gw, uw [][]float64
		if c.FusedGateUp {
			all := denseW(t, &ly.MLP.GateUp)
			gw, uw = all[:c.FFN], all[c.FFN:]
		} else {
			gw, uw = denseW(t, &ly.MLP.Gate), denseW(t, &ly.MLP.Up)
		}
		dw := denseW(t, &ly.MLP.Down)
		for i := range tokens {
			x := refNorm(h[i], ly.MLPNorm.W, c.NormEps)
			g, u := refLinear(gw, nil, x), refLinear(uw, nil, x)
			for j := range g {
				g[j] = g[j] / (1 + math.Exp(-g[j])) * u[j]
			}
			d := refLinear(dw, nil, g)
			for j := range d {
				h[i][j] += d[j]
			}
		}
	}
	out := denseW(t, m.output())
	logits := make([][]float64, T)
	for i := range h {
		logits[i] = refLinear(out, nil, refNorm(h[i], m.Norm.W, c.NormEps))
	}
	return logits
}

// sharedDir returns ../shared relative to the module root, skipping the
// test when it is absent.
func sharedDir(t testing.TB, parts ...string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared"}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared fixtures absent (%s): %v", p, err)
	}
	return p
}

// maxDiff is the largest |a-b| over two logit rows.
func maxDiff[A, B float32 | float64](a []A, b []B) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func argmax[F float32 | float64](x []F) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

var _ = tensor.F32
