package slm

import (
	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/tensor"
)

// quantKernels are the quantized weight types with a matrix-product kernel
// (c[m×n] = a[m×k]·bᵀ with b n rows of k/blocksize blocks). Linear keeps
// weights of these types quantized; any other type is converted to float32
// when loaded.
var quantKernels = map[tensor.DType]func(c, a []float32, b []byte, m, n, k int){
	tensor.Q8_0: kernels.MatMulNTQ8_0,
	tensor.Q4_0: kernels.MatMulNTQ4_0,
	tensor.Q4_K: kernels.MatMulNTQ4K,
	tensor.Q6_K: kernels.MatMulNTQ6K,
}

// panelRows is how many weight rows the fallback dequantizes at once.
const panelRows = 64

// matMulQuant computes c[m×n] = a[m×k]·Wᵀ for quantized W of type d, with
// the type's kernel when there is one, else by dequantizing panels of rows
// and using the float32 kernel.
func matMulQuant(c, a []float32, w []byte, d tensor.DType, m, n, k int) {
	if f, ok := quantKernels[d]; ok {
		f(c, a, w, m, n, k)
		return
	}
	rb, _ := d.RowBytes(k)
	panel := make([]float32, panelRows*k)
	tmp := make([]float32, m*panelRows)
	for j0 := 0; j0 < n; j0 += panelRows {
		pr := min(panelRows, n-j0)
		if err := tensor.Dequantize(panel[:pr*k], w[j0*rb:(j0+pr)*rb], d); err != nil {
			panic("slm: " + err.Error()) // sizes were validated at load
		}
		kernels.MatMulNT(tmp[:m*pr], a, panel[:pr*k], m, pr, k)
		for i := 0; i < m; i++ {
			copy(c[i*n+j0:i*n+j0+pr], tmp[i*pr:(i+1)*pr])
		}
	}
}
