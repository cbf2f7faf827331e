package train

import "math"

// adamW holds the moments of torch.optim.AdamW.
type adamW struct {
	t    int // steps taken
	m, v [][]float32
}

func newAdamW(params []*Param) *adamW {
	o := &adamW{m: make([][]float32, len(params)), v: make([][]float32, len(params))}
	for i, p := range params {
		o.m[i] = make([]float32, len(p.W))
		o.v[i] = make([]float32, len(p.W))
	}
	return o
}

// step applies one AdamW update with the gradients in params, as
// torch.optim.AdamW (amsgrad off, maximize off) does it:
//
//	w ← w·(1 − lr·wd)                  (decoupled decay, if the param decays)
//	m ← β1·m + (1−β1)·g
//	v ← β2·v + (1−β2)·g²
//	w ← w − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps)
//
// Arithmetic is float64 per element, stored as float32.
func (o *adamW) step(params []*Param, lr, beta1, beta2, eps, wd float64) {
	o.t++
	bc1 := 1 - math.Pow(beta1, float64(o.t))
	bc2 := math.Sqrt(1 - math.Pow(beta2, float64(o.t)))
	stepSize := lr / bc1
	for i, p := range params {
		decay := 1.0
		if !p.NoDecay {
			decay = 1 - lr*wd
		}
		m, v := o.m[i], o.v[i]
		for j, g32 := range p.G {
			g := float64(g32)
			mj := beta1*float64(m[j]) + (1-beta1)*g
			vj := beta2*float64(v[j]) + (1-beta2)*g*g
			m[j], v[j] = float32(mj), float32(vj)
			w := float64(p.W[j]) * decay
			w -= stepSize * mj / (math.Sqrt(vj)/bc2 + eps)
			p.W[j] = float32(w)
		}
	}
}
