package slm

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"unsafe"

	"github.com/usersim/usersim/slm/tensor"
)

// format names a checkpoint layout, and with it the tensor-name tag used.
type format int

const (
	formatGGUF format = iota // llama.cpp GGUF file (tag gguf)
	formatHF                 // Hugging Face safetensors directory (tag hf)
)

func (f format) String() string {
	if f == formatGGUF {
		return "gguf"
	}
	return "hf"
}

func (s *tensorSpec) name(f format) string {
	if f == formatGGUF {
		return s.GGUF
	}
	return s.HF
}

// rawTensor is a tensor as a file stores it: row-major shape (outermost
// dimension first), element type and bytes.
type rawTensor struct {
	Shape []int64
	DType tensor.DType
	Data  []byte
}

// tensorSource looks tensors up by name in an opened checkpoint.
type tensorSource interface {
	// tensor returns the named tensor, ok false when absent.
	tensor(name string) (rawTensor, bool, error)
	// names lists every tensor of the checkpoint.
	names() []string
}

// maxNewParams bounds the size of a model New allocates (64 GiB of float32).
const maxNewParams = 1 << 34

// New returns a model of the given architecture with float32 weights set to
// zero (norm weights to one). See InitRandom.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Layers: make([]Layer, cfg.Layers)}
	specs, err := m.specs()
	if err != nil {
		return nil, err
	}
	var params int64
	for _, s := range specs {
		n := int64(1)
		for _, d := range s.Shape {
			n *= int64(d)
		}
		params += n
	}
	if params > maxNewParams {
		return nil, fmt.Errorf("new model: %d parameters exceed the limit of %d", params, int64(maxNewParams))
	}
	for _, s := range specs {
		switch {
		case s.Linear != nil:
			*s.Linear = Linear{Out: s.Shape[0], In: s.Shape[1], DType: tensor.F32, W: make([]float32, s.Shape[0]*s.Shape[1])}
		case s.Bias:
			*s.Vec = make([]float32, s.Shape[0])
		default:
			w := make([]float32, s.Shape[0])
			for i := range w {
				w[i] = 1
			}
			*s.Vec = w
		}
	}
	return m, nil
}

// InitRandom fills the float32 weights of m with N(0, std²) values, norm
// weights with 1 + N(0, 0.1²) and biases with N(0, 0.1²), from rng.
func (m *Model) InitRandom(rng *rand.Rand, std float32) error {
	specs, err := m.specs()
	if err != nil {
		return err
	}
	for _, s := range specs {
		switch {
		case s.Linear != nil:
			if s.Linear.DType != tensor.F32 {
				return fmt.Errorf("init %s: weights are %v", s.HF, s.Linear.DType)
			}
			for i := range s.Linear.W {
				s.Linear.W[i] = float32(rng.NormFloat64()) * std
			}
		case s.Bias:
			for i := range *s.Vec {
				(*s.Vec)[i] = float32(rng.NormFloat64()) * 0.1
			}
		default:
			for i := range *s.Vec {
				(*s.Vec)[i] = 1 + float32(rng.NormFloat64())*0.1
			}
		}
	}
	return nil
}

// loadWeights fills m (whose Config is set) from src, naming tensors as
// format f does. Every tensor the config requires must be present with the
// right shape and a supported type; extra tensors are an error too, except
// those listed in ignored (rotary caches and the like).
func (m *Model) loadWeights(src tensorSource, f format, ignore func(string) bool, o LoadOptions) error {
	m.Layers = make([]Layer, m.Config.Layers)
	specs, err := m.specs()
	if err != nil {
		return err
	}
	used := make(map[string]bool, len(specs))
	for _, s := range specs {
		name := s.name(f)
		used[name] = true
		t, ok, err := src.tensor(name)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if !ok {
			return fmt.Errorf("tensor %s: missing (required by the %s config)", name, m.Config.Arch)
		}
		if !sameShape(t.Shape, s.Shape) {
			return fmt.Errorf("tensor %s: shape %v, want %v", name, t.Shape, s.Shape)
		}
		want, err := tensor.Bytes(t.DType, reverse(t.Shape))
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		if int64(len(t.Data)) != want {
			return fmt.Errorf("tensor %s: %d bytes of data, want %d for %v %v", name, len(t.Data), want, t.DType, t.Shape)
		}
		if s.Linear != nil {
			l, err := linearFrom(t, s.Shape[0], s.Shape[1], o)
			if err != nil {
				return fmt.Errorf("tensor %s: %w", name, err)
			}
			*s.Linear = l
			continue
		}
		v, err := toF32(t)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", name, err)
		}
		*s.Vec = v
	}
	for _, name := range src.names() {
		if !used[name] && (ignore == nil || !ignore(name)) {
			return fmt.Errorf("tensor %s: not used by the %s architecture (unsupported variant?)", name, m.Config.Arch)
		}
	}
	return nil
}

func sameShape(a []int64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != int64(b[i]) {
			return false
		}
	}
	return true
}

func reverse(s []int64) []int64 {
	r := make([]int64, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

// LoadOptions adjust how a model's weights are kept in memory.
type LoadOptions struct {
	// QuantizeQ8_0 converts float weight matrices (F32, F16, BF16, and
	// quantized types without a kernel) whose rows are whole Q8_0 blocks to
	// Q8_0 one at a time as they are loaded, so that a 16-bit checkpoint
	// never needs its float32 size in memory. Like Model.QuantizeQ8_0.
	QuantizeQ8_0 bool
	// Mmap keeps quantized and (4-byte aligned, little-endian) float32
	// weight matrices in the file's read-only memory mapping instead of
	// copying them: loading is faster and the pages are shared with the
	// page cache. The model must then be released with Model.Close, and its
	// weights must never be written (a write faults).
	Mmap bool
}

// linearFrom keeps quantized weights that have a kernel as they are and
// converts everything else to float32 (or Q8_0, see LoadOptions).
func linearFrom(t rawTensor, out, in int, o LoadOptions) (Linear, error) {
	l := Linear{Out: out, In: in}
	if _, ok := quantKernels[t.DType]; ok {
		l.DType, l.Q = t.DType, t.Data
		if !o.Mmap {
			l.Q = append([]byte(nil), t.Data...)
		}
		return l, nil
	}
	if o.Mmap && !o.QuantizeQ8_0 && t.DType == tensor.F32 {
		if w, ok := aliasF32(t.Data); ok {
			if err := checkFinite(w); err != nil {
				return l, err
			}
			l.DType, l.W = tensor.F32, w
			return l, nil
		}
	}
	w, err := toF32(t)
	if err != nil {
		return l, err
	}
	l.DType, l.W = tensor.F32, w
	if o.QuantizeQ8_0 && in%32 == 0 {
		if err := l.quantizeQ8_0(); err != nil {
			return l, err
		}
	}
	return l, nil
}

// toF32 converts a tensor's data to float32, rejecting NaN and Inf.
func toF32(t rawTensor) ([]float32, error) {
	n, err := tensor.NumElements(t.Shape)
	if err != nil {
		return nil, err
	}
	if !t.DType.Valid() {
		return nil, fmt.Errorf("invalid dtype %v", t.DType)
	}
	switch t.DType {
	case tensor.I8, tensor.I16, tensor.I32, tensor.I64, tensor.U8, tensor.U16, tensor.U32, tensor.U64, tensor.Bool:
		return nil, fmt.Errorf("integer dtype %v for a weight", t.DType)
	}
	v := make([]float32, n)
	if t.DType == tensor.F32 {
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	} else if err := tensor.Dequantize(v, t.Data, t.DType); err != nil {
		return nil, err
	}
	if err := checkFinite(v); err != nil {
		return nil, err
	}
	return v, nil
}

func checkFinite(v []float32) error {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("element %d is %v", i, x)
		}
	}
	return nil
}

// aliasF32 views little-endian float32 bytes as a []float32 without
// copying, when the host is little-endian and the bytes 4-byte aligned.
func aliasF32(b []byte) ([]float32, bool) {
	if len(b) == 0 || len(b)%4 != 0 || uintptr(unsafe.Pointer(&b[0]))%4 != 0 || !littleEndian {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4), true
}

var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
