package slm

import (
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/tensor"
)

// Model is a Llama-family transformer: weights plus the Config that says how
// to use them. Each field carries its tensor name in the GGUF file (tag
// gguf) and in a Hugging Face checkpoint (tag hf); nested names are joined
// with dots, slices insert the index (blk.3.attn_q.weight,
// model.layers.3.self_attn.q_proj.weight). The shape tag names the
// dimensions as rows,cols of the row-major matrix, and the if tag the config
// condition under which the tensor exists. One loader (load.go) walks these
// tags for both formats; the writer (convert.go) walks them to save.
type Model struct {
	Config Config

	// closer releases the memory mapping the weights alias (LoadOptions.Mmap).
	closer io.Closer

	Embed  Linear  `gguf:"token_embd" hf:"model.embed_tokens" shape:"vocab,hidden"`
	Layers []Layer `gguf:"blk" hf:"model.layers"`
	Norm   RMSNorm `gguf:"output_norm" hf:"model.norm" shape:"hidden"`
	// Output is the unembedding; unused (zero) when Config.TiedEmbeddings,
	// in which case Embed is used.
	Output Linear `gguf:"output" hf:"lm_head" shape:"vocab,hidden" if:"!tied"`
}

// Layer is one transformer block: pre-norm attention and pre-norm SwiGLU
// MLP, each added to the residual stream.
type Layer struct {
	AttnNorm RMSNorm   `gguf:"attn_norm" hf:"input_layernorm" shape:"hidden"`
	Attn     Attention `gguf:"" hf:"self_attn"`
	MLPNorm  RMSNorm   `gguf:"ffn_norm" hf:"post_attention_layernorm" shape:"hidden"`
	MLP      MLP       `gguf:"" hf:"mlp"`
}

// Attention is grouped-query causal self-attention with RoPE. Either Q, K
// and V or the fused QKV (rows [q; k; v], Phi-3) are present.
type Attention struct {
	Q   Linear `gguf:"attn_q" hf:"q_proj" shape:"qdim,hidden" if:"!fused_qkv" bias:"qkv_bias"`
	K   Linear `gguf:"attn_k" hf:"k_proj" shape:"kvdim,hidden" if:"!fused_qkv" bias:"qkv_bias"`
	V   Linear `gguf:"attn_v" hf:"v_proj" shape:"kvdim,hidden" if:"!fused_qkv" bias:"qkv_bias"`
	QKV Linear `gguf:"attn_qkv" hf:"qkv_proj" shape:"qkvdim,hidden" if:"fused_qkv"`
	O   Linear `gguf:"attn_output" hf:"o_proj" shape:"hidden,qdim"`
}

// MLP is the SwiGLU feed-forward block: down(silu(gate(x)) * up(x)). Either
// Gate and Up or the fused GateUp (rows [gate; up], Phi-3) are present.
// llama.cpp stores Phi-3's fused gate_up under the name ffn_up.
type MLP struct {
	Gate   Linear `gguf:"ffn_gate" hf:"gate_proj" shape:"ffn,hidden" if:"!fused_gate_up"`
	Up     Linear `gguf:"ffn_up" hf:"up_proj" shape:"ffn,hidden" if:"!fused_gate_up"`
	GateUp Linear `gguf:"ffn_up" hf:"gate_up_proj" shape:"ffn2,hidden" if:"fused_gate_up"`
	Down   Linear `gguf:"ffn_down" hf:"down_proj" shape:"hidden,ffn"`
}

// RMSNorm is x · w / sqrt(mean(x²) + eps), row by row.
type RMSNorm struct {
	W []float32
}

// Forward normalises the n rows of x (each len(W) wide) into out.
func (r *RMSNorm) Forward(out, x []float32, n int, eps float32) {
	d := len(r.W)
	for i := 0; i < n; i++ {
		kernels.RMSNorm(out[i*d:(i+1)*d], x[i*d:(i+1)*d], r.W, eps)
	}
}

// Backward adds into dx the gradient at the n rows of x, the input of
// Forward, given dy, the gradient at its output. With r = 1/sqrt(mean(x²)+eps)
// and y = x·r·w:
//
//	dx_i = r·w_i·dy_i − x_i·r³/d · Σ_j w_j·dy_j·x_j
//
// The weight w gets no gradient (it is part of the frozen base).
func (r *RMSNorm) Backward(dx, x, dy []float32, n int, eps float32) {
	d := len(r.W)
	parallelFor(n, max(1, 16384/d), func(lo, hi int) { r.backward(dx, x, dy, lo, hi, d, eps) })
}

func (r *RMSNorm) backward(dx, x, dy []float32, lo, hi, d int, eps float32) {
	for i := lo; i < hi; i++ {
		xs, dys, dxs := x[i*d:(i+1)*d], dy[i*d:(i+1)*d], dx[i*d:(i+1)*d]
		var ss, dot float64
		for j, v := range xs {
			ss += float64(v) * float64(v)
			dot += float64(r.W[j]) * float64(dys[j]) * float64(v)
		}
		rs := 1 / math.Sqrt(ss/float64(d)+float64(eps))
		c := float32(dot * rs * rs * rs / float64(d))
		rf := float32(rs)
		for j, v := range xs {
			dxs[j] += rf*r.W[j]*dys[j] - v*c
		}
	}
}

// Linear is y = x·Wᵀ + b with W of Out rows and In columns. Weights are
// float32 (W), or, for quantized GGUF files, blocks of type DType (Q) whose
// matrix products use the quantized kernels. F16 and BF16 weights, and
// quantized types without a kernel, are converted to float32 when loaded.
type Linear struct {
	Out, In int
	DType   tensor.DType // F32, Q8_0, Q4_0, Q4_K or Q6_K
	W       []float32    // Out×In when DType is F32
	Q       []byte       // Out rows of In/blocksize blocks otherwise
	Bias    []float32    // Out, or nil
}

// Forward computes out[n×Out] = x[n×In]·Wᵀ + b for n rows at once (a
// matrix product, so that prefill runs as GEMM).
func (l *Linear) Forward(out, x []float32, n int) {
	if l.DType == tensor.F32 {
		kernels.MatMulNT(out[:n*l.Out], x[:n*l.In], l.W, n, l.Out, l.In)
	} else {
		matMulQuant(out[:n*l.Out], x[:n*l.In], l.Q, l.DType, n, l.Out, l.In)
	}
	if l.Bias != nil {
		for i := 0; i < n; i++ {
			row := out[i*l.Out : (i+1)*l.Out]
			for j, b := range l.Bias {
				row[j] += b
			}
		}
	}
}

// Backward adds into dx[n×In] the gradient at the input of Forward, dy·W
// for dy[n×Out], the gradient at its output. The weights get no gradient.
// Quantized weights are dequantized panelRows rows at a time (a LoRA on a
// quantized base, as QLoRA trains).
func (l *Linear) Backward(dx, dy []float32, n int) {
	if l.DType == tensor.F32 {
		kernels.MatMulNNAcc(dx[:n*l.In], dy[:n*l.Out], l.W, n, l.In, l.Out)
		return
	}
	rb, err := l.DType.RowBytes(l.In)
	if err != nil {
		panic("slm: " + err.Error()) // sizes were validated at load
	}
	pr := min(panelRows, l.Out)
	panel := make([]float32, pr*l.In)
	dyp := make([]float32, n*pr)
	for j0 := 0; j0 < l.Out; j0 += pr {
		p := min(pr, l.Out-j0)
		if err := tensor.Dequantize(panel[:p*l.In], l.Q[j0*rb:(j0+p)*rb], l.DType); err != nil {
			panic("slm: " + err.Error())
		}
		for i := 0; i < n; i++ {
			copy(dyp[i*p:(i+1)*p], dy[i*l.Out+j0:i*l.Out+j0+p])
		}
		kernels.MatMulNNAcc(dx[:n*l.In], dyp[:n*p], panel[:p*l.In], n, l.In, p)
	}
}

// Row writes row i of W, as float32, into dst (an embedding lookup).
func (l *Linear) Row(dst []float32, i int) error {
	if l.DType == tensor.F32 {
		copy(dst[:l.In], l.W[i*l.In:(i+1)*l.In])
		return nil
	}
	rb, err := l.DType.RowBytes(l.In)
	if err != nil {
		return err
	}
	return tensor.Dequantize(dst[:l.In], l.Q[i*rb:(i+1)*rb], l.DType)
}

// Bytes is the storage size of the weights and bias.
func (l *Linear) Bytes() int64 {
	return int64(len(l.W))*4 + int64(len(l.Q)) + int64(len(l.Bias))*4
}

// tensorSpec is one tensor of a model as the struct tags describe it.
type tensorSpec struct {
	GGUF, HF string     // full names, ".weight"/".bias" included
	Shape    []int      // row-major: [rows, cols] or [n]
	Linear   *Linear    // destination when a matrix
	Vec      *[]float32 // destination when a vector (norm weight, bias)
	Bias     bool       // Vec is Linear's bias
	Owner    *Linear    // the Linear a bias belongs to
}

// dim resolves a shape name of the shape tag.
func (c *Config) dim(name string) (int, error) {
	switch name {
	case "hidden":
		return c.Hidden, nil
	case "vocab":
		return c.Vocab, nil
	case "qdim":
		return c.QDim(), nil
	case "kvdim":
		return c.KVDim(), nil
	case "qkvdim":
		return c.QDim() + 2*c.KVDim(), nil
	case "ffn":
		return c.FFN, nil
	case "ffn2":
		return 2 * c.FFN, nil
	}
	return 0, fmt.Errorf("unknown dimension %q", name)
}

// cond evaluates an if/bias tag ("" is true, "!x" negates).
func (c *Config) cond(expr string) (bool, error) {
	if expr == "" {
		return true, nil
	}
	neg := strings.HasPrefix(expr, "!")
	var v bool
	switch strings.TrimPrefix(expr, "!") {
	case "tied":
		v = c.TiedEmbeddings
	case "fused_qkv":
		v = c.FusedQKV
	case "fused_gate_up":
		v = c.FusedGateUp
	case "qkv_bias":
		v = c.QKVBias
	default:
		return false, fmt.Errorf("unknown condition %q", expr)
	}
	return v != neg, nil
}

// specs lists every tensor the config requires, with pointers into m. The
// Layers slice must already have Config.Layers elements.
func (m *Model) specs() ([]tensorSpec, error) {
	var out []tensorSpec
	err := walk(&m.Config, reflect.ValueOf(m).Elem(), "", "", &out)
	return out, err
}

var (
	linearType = reflect.TypeOf(Linear{})
	normType   = reflect.TypeOf(RMSNorm{})
)

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

func walk(c *Config, v reflect.Value, gp, hp string, out *[]tensorSpec) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		gtag, ok := f.Tag.Lookup("gguf")
		if !ok {
			continue
		}
		htag := f.Tag.Get("hf")
		present, err := c.cond(f.Tag.Get("if"))
		if err != nil {
			return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		if !present {
			continue
		}
		g, h := join(gp, gtag), join(hp, htag)
		var shape []int
		if s := f.Tag.Get("shape"); s != "" {
			for _, name := range strings.Split(s, ",") {
				d, err := c.dim(name)
				if err != nil {
					return fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
				}
				shape = append(shape, d)
			}
		}
		fv := v.Field(i)
		switch {
		case f.Type == linearType:
			l := fv.Addr().Interface().(*Linear)
			*out = append(*out, tensorSpec{GGUF: g + ".weight", HF: h + ".weight", Shape: shape, Linear: l})
			bias, err := c.cond(f.Tag.Get("bias"))
			if err != nil {
				return err
			}
			if f.Tag.Get("bias") != "" && bias {
				*out = append(*out, tensorSpec{GGUF: g + ".bias", HF: h + ".bias", Shape: shape[:1], Vec: &l.Bias, Bias: true, Owner: l})
			}
		case f.Type == normType:
			n := fv.Addr().Interface().(*RMSNorm)
			*out = append(*out, tensorSpec{GGUF: g + ".weight", HF: h + ".weight", Shape: shape, Vec: &n.W})
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			for j := 0; j < fv.Len(); j++ {
				if err := walk(c, fv.Index(j), fmt.Sprintf("%s.%d", g, j), fmt.Sprintf("%s.%d", h, j), out); err != nil {
					return err
				}
			}
		case f.Type.Kind() == reflect.Struct:
			if err := walk(c, fv, g, h, out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s.%s: unsupported field type %s", t.Name(), f.Name, f.Type)
		}
	}
	return nil
}

// linears returns every weight matrix of m.
func (m *Model) linears() []*Linear {
	specs, _ := m.specs()
	var ls []*Linear
	for _, s := range specs {
		if s.Linear != nil {
			ls = append(ls, s.Linear)
		}
	}
	return ls
}

// Close releases the file mapping of a model loaded with LoadOptions.Mmap;
// the model must not be used afterwards. For other models it does nothing.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// output returns the unembedding matrix (the embedding when tied).
func (m *Model) output() *Linear {
	if m.Config.TiedEmbeddings {
		return &m.Embed
	}
	return &m.Output
}

// QuantizeQ8_0 converts every float32 weight matrix whose rows are whole
// Q8_0 blocks (In a multiple of 32) to Q8_0, for faster inference with a
// quarter of the memory. Norms and biases stay float32.
func (m *Model) QuantizeQ8_0() error {
	for _, l := range m.linears() {
		if l.DType != tensor.F32 || l.In%32 != 0 {
			continue
		}
		if err := l.quantizeQ8_0(); err != nil {
			return err
		}
	}
	return nil
}

// quantizeQ8_0 converts float32 weights (In a multiple of 32) to Q8_0.
func (l *Linear) quantizeQ8_0() error {
	rb, err := tensor.Q8_0.RowBytes(l.In)
	if err != nil {
		return err
	}
	q := make([]byte, rb*l.Out)
	if err := tensor.Quantize(q, l.W, tensor.Q8_0); err != nil {
		return err
	}
	l.Q, l.W, l.DType = q, nil, tensor.Q8_0
	return nil
}
