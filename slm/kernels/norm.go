package kernels

import (
	"fmt"
	"math"
)

// RMSNorm normalizes one row: out[i] = x[i] / sqrt(mean(x²)+eps) · w[i].
// out may be x.
func RMSNorm(out, x, w []float32, eps float32) {
	checkLen("RMSNorm", "out", len(out), len(x))
	checkLen("RMSNorm", "w", len(w), len(x))
	if useRef() || len(x) == 0 {
		refRMSNorm(out, x, w, eps)
		return
	}
	ss := dot(x, x)
	r := float32(1 / math.Sqrt(float64(ss/float32(len(x))+eps)))
	out = out[:len(x)]
	w = w[:len(x)]
	for i, v := range x {
		out[i] = v * r * w[i]
	}
}

// Softmax replaces x by softmax(x), subtracting the maximum first so that
// large logits do not overflow. A row containing +Inf or NaN gives NaNs.
func Softmax(x []float32) {
	if useRef() || len(x) == 0 {
		refSoftmax(x)
		return
	}
	mx := x[0]
	finite := true
	for _, v := range x {
		if v > mx {
			mx = v
		}
		if v != v || v > math.MaxFloat32 {
			finite = false
		}
	}
	if !finite {
		refSoftmax(x)
		return
	}
	var sum float32
	m := 0
	if useAsm() {
		m = len(x) &^ 7
		if m > 0 {
			sum = expSumAVX2(&x[0], &x[0], m, mx)
		}
	}
	for i := m; i < len(x); i++ {
		e := float32(math.Exp(float64(x[i] - mx)))
		x[i] = e
		sum += e
	}
	Scale(1/sum, x)
}

// SiLUMul computes out[i] = silu(gate[i])·up[i], silu(g) = g/(1+e^-g), the
// SwiGLU activation. out may be gate or up.
func SiLUMul(out, gate, up []float32) {
	if len(up) < len(gate) || len(out) < len(gate) {
		panic(fmt.Sprintf("kernels.SiLUMul: len(out)=%d len(gate)=%d len(up)=%d", len(out), len(gate), len(up)))
	}
	m := 0
	if useAsm() {
		m = len(gate) &^ 7
		if m > 0 {
			siluMulAVX2(&out[0], &gate[0], &up[0], m)
		}
	}
	refSiLUMul(out[m:], gate[m:], up[m:])
}
