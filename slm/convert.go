package slm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/safetensors"
	"github.com/usersim/usersim/slm/tensor"
	"github.com/usersim/usersim/slm/tokconv"
)

// SaveOptions controls how a model's weights are written.
type SaveOptions struct {
	// DType is the element type of the weight matrices: F32 (the zero value
	// means F32), F16 or BF16; for GGUF also Q8_0 or Q4_0.
	// Norm weights and biases are always written as F32 to GGUF (as
	// llama.cpp does) and in DType to safetensors.
	DType tensor.DType
	// Keep writes quantized matrices in their own type (GGUF only).
	Keep bool
	// NoTokenizer makes the Convert functions convert the weights only.
	NoTokenizer bool
}

func (o SaveOptions) dtype() tensor.DType {
	if o.DType == tensor.Invalid {
		return tensor.F32
	}
	return o.DType
}

// ropePerm returns the row permutation between the NeoX (HF) and the
// interleaved (llama.cpp) layouts of a q or k projection with the given
// heads: toInterleaved[new] = old maps HF rows to GGUF rows, exactly as
// llama.cpp's convert_hf_to_gguf.py permute() does (for k, heads is the
// number of kv heads); the inverse maps them back.
func ropePerm(heads, headDim int, toInterleaved bool) []int {
	perm := make([]int, heads*headDim)
	half := headDim / 2
	for h := 0; h < heads; h++ {
		for i := 0; i < half; i++ {
			for a := 0; a < 2; a++ {
				inter := h*headDim + 2*i + a
				neox := h*headDim + a*half + i
				if toInterleaved {
					perm[inter] = neox
				} else {
					perm[neox] = inter
				}
			}
		}
	}
	return perm
}

// encodeLinear returns the bytes of l's weight matrix in type d (rows
// permuted by perm when non-nil), or in its own quantized type when keep.
func encodeLinear(l *Linear, d tensor.DType, keep bool, perm []int) ([]byte, tensor.DType, error) {
	if keep && l.DType != tensor.F32 {
		rb, err := l.DType.RowBytes(l.In)
		if err != nil {
			return nil, 0, err
		}
		out := make([]byte, len(l.Q))
		for r := 0; r < l.Out; r++ {
			src := r
			if perm != nil {
				src = perm[r]
			}
			copy(out[r*rb:(r+1)*rb], l.Q[src*rb:(src+1)*rb])
		}
		return out, l.DType, nil
	}
	rb, err := d.RowBytes(l.In)
	if err != nil {
		return nil, 0, err
	}
	out := make([]byte, rb*l.Out)
	row := make([]float32, l.In)
	for r := 0; r < l.Out; r++ {
		src := r
		if perm != nil {
			src = perm[r]
		}
		if err := l.Row(row, src); err != nil {
			return nil, 0, err
		}
		if err := tensor.Quantize(out[r*rb:(r+1)*rb], row, d); err != nil {
			return nil, 0, err
		}
	}
	return out, d, nil
}

func encodeVec(v []float32, d tensor.DType) ([]byte, error) {
	if d == tensor.F32 {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return b, nil
	}
	rb, err := d.RowBytes(len(v))
	if err != nil {
		return nil, err
	}
	b := make([]byte, rb)
	return b, tensor.Quantize(b, v, d)
}

// savedTensor is one tensor ready to write, row-major shape.
type savedTensor struct {
	Name  string
	Shape []int64
	DType tensor.DType
	Data  []byte
}

// exportTensors encodes every tensor of m under format f's names. Llama q
// and k rows are permuted between RoPE layouts when the model's layout
// differs from the format's (GGUF llama: interleaved; HF: NeoX).
func (m *Model) exportTensors(f format, o SaveOptions) ([]savedTensor, error) {
	c := &m.Config
	want := RopeNeoX
	if f == formatGGUF && c.Arch == "llama" || f == formatGGUF && c.Arch == "mistral" {
		want = RopeInterleaved
	}
	var qPerm, kPerm []int
	if want != c.RopeStyle {
		if c.FusedQKV {
			return nil, fmt.Errorf("save: cannot change the RoPE layout of a fused qkv projection")
		}
		qPerm = ropePerm(c.Heads, c.HeadDim, want == RopeInterleaved)
		kPerm = ropePerm(c.KVHeads, c.HeadDim, want == RopeInterleaved)
	}
	d := o.dtype()
	switch d {
	case tensor.F32, tensor.F16, tensor.BF16:
	case tensor.Q8_0, tensor.Q4_0:
		if f != formatGGUF {
			return nil, fmt.Errorf("save: safetensors cannot hold %v", d)
		}
	default:
		return nil, fmt.Errorf("save: unsupported weight type %v (want F32, F16, BF16, or Q8_0/Q4_0 for GGUF)", d)
	}
	vecType := d
	if f == formatGGUF || d.Quantized() {
		vecType = tensor.F32
	}
	specs, err := m.specs()
	if err != nil {
		return nil, err
	}
	perms := make(map[*Linear][]int)
	if qPerm != nil {
		for i := range m.Layers {
			perms[&m.Layers[i].Attn.Q] = qPerm
			perms[&m.Layers[i].Attn.K] = kPerm
		}
	}
	var out []savedTensor
	for _, s := range specs {
		name := s.name(f)
		owner := s.Linear
		if owner == nil {
			owner = s.Owner
		}
		perm := perms[owner]
		if s.Linear != nil {
			ld := d
			if s.Linear.In%max(1, d.BlockSize()) != 0 {
				ld = tensor.F32
			}
			data, dt, err := encodeLinear(s.Linear, ld, o.Keep, perm)
			if err != nil {
				return nil, fmt.Errorf("save %s: %w", name, err)
			}
			out = append(out, savedTensor{Name: name, Shape: []int64{int64(s.Shape[0]), int64(s.Shape[1])}, DType: dt, Data: data})
			continue
		}
		v := *s.Vec
		if perm != nil { // a bias of a permuted projection
			pv := make([]float32, len(v))
			for r := range pv {
				pv[r] = v[perm[r]]
			}
			v = pv
		}
		data, err := encodeVec(v, vecType)
		if err != nil {
			return nil, fmt.Errorf("save %s: %w", name, err)
		}
		out = append(out, savedTensor{Name: name, Shape: []int64{int64(len(v))}, DType: vecType, Data: data})
	}
	if f == formatGGUF {
		rs := c.RopeScaling
		switch {
		case rs.FreqFactors != nil:
			data, _ := encodeVec(rs.FreqFactors, tensor.F32)
			out = append(out, savedTensor{Name: "rope_freqs.weight", Shape: []int64{int64(len(rs.FreqFactors))}, DType: tensor.F32, Data: data})
		case rs.Type == "llama3":
			// llama.cpp bakes llama3 scaling into per-pair frequency divisors.
			base := *c
			base.RopeScaling = RopeScaling{}
			plain, _ := base.invFreqs(false)
			scaled, _ := c.invFreqs(false)
			ff := make([]float32, len(plain))
			for i := range ff {
				ff[i] = float32(plain[i] / scaled[i])
			}
			data, _ := encodeVec(ff, tensor.F32)
			out = append(out, savedTensor{Name: "rope_freqs.weight", Shape: []int64{int64(len(ff))}, DType: tensor.F32, Data: data})
		case rs.Type == "longrope":
			for _, fv := range []struct {
				name string
				v    []float64
			}{{"rope_factors_short.weight", rs.ShortFactor}, {"rope_factors_long.weight", rs.LongFactor}} {
				v := make([]float32, len(fv.v))
				for i, x := range fv.v {
					v[i] = float32(x)
				}
				data, _ := encodeVec(v, tensor.F32)
				out = append(out, savedTensor{Name: fv.name, Shape: []int64{int64(len(v))}, DType: tensor.F32, Data: data})
			}
		}
	}
	return out, nil
}

// ggufMeta returns the architecture metadata of m for a GGUF file.
func (m *Model) ggufMeta() ([]gguf.KV, error) {
	c := &m.Config
	arch := c.Arch
	if arch == "mistral" {
		arch = "llama"
	}
	switch arch {
	case "llama", "qwen2", "phi3":
	default:
		return nil, fmt.Errorf("save gguf: unsupported architecture %q", c.Arch)
	}
	u := func(k string, v int) gguf.KV { return gguf.KV{Key: arch + "." + k, Value: gguf.Uint32(uint32(v))} }
	meta := []gguf.KV{
		{Key: "general.architecture", Value: gguf.String(arch)},
		u("context_length", c.MaxContext),
		u("embedding_length", c.Hidden),
		u("block_count", c.Layers),
		u("feed_forward_length", c.FFN),
		u("attention.head_count", c.Heads),
		u("attention.head_count_kv", c.KVHeads),
		u("attention.key_length", c.HeadDim),
		u("attention.value_length", c.HeadDim),
		u("rope.dimension_count", c.RopeDim),
		{Key: arch + ".attention.layer_norm_rms_epsilon", Value: gguf.Float32(c.NormEps)},
		{Key: arch + ".rope.freq_base", Value: gguf.Float32(float32(c.RopeTheta))},
		u("vocab_size", c.Vocab),
	}
	if c.SlidingWindow > 0 {
		meta = append(meta, u("attention.sliding_window", c.SlidingWindow))
	}
	rs := c.RopeScaling
	switch rs.Type {
	case "linear":
		meta = append(meta, gguf.KV{Key: arch + ".rope.scaling.type", Value: gguf.String("linear")},
			gguf.KV{Key: arch + ".rope.scaling.factor", Value: gguf.Float32(float32(rs.Factor))})
	case "longrope":
		meta = append(meta, u("rope.scaling.original_context_length", rs.OriginalContext))
		if rs.AttnFactor != 0 {
			meta = append(meta, gguf.KV{Key: arch + ".rope.scaling.attn_factor", Value: gguf.Float32(float32(rs.AttnFactor))})
		}
	}
	if float64(float32(c.RopeTheta)) != c.RopeTheta {
		return nil, fmt.Errorf("save gguf: rope theta %g is not exact in float32", c.RopeTheta)
	}
	return meta, nil
}

// WriteGGUF writes m to a GGUF file at path, atomically, with the
// tokenizer metadata tok (tokenizer.ggml.* keys; may be nil).
func (m *Model) WriteGGUF(path string, tok []gguf.KV, o SaveOptions) error {
	meta, err := m.ggufMeta()
	if err != nil {
		return err
	}
	for _, kv := range tok {
		if kv.Key == "general.architecture" {
			continue
		}
		meta = append(meta, kv)
	}
	ts, err := m.exportTensors(formatGGUF, o)
	if err != nil {
		return err
	}
	wt := make([]gguf.WriteTensor, len(ts))
	for i, t := range ts {
		wt[i] = gguf.WriteTensor{Name: t.Name, Shape: reverse(t.Shape), Type: t.DType, Data: t.Data}
	}
	return gguf.WriteFile(path, meta, wt)
}

// WriteHF writes m as a Hugging Face directory: config.json and
// model.safetensors (weights in o.DType: F32, F16 or BF16; quantized
// weights are dequantized). Llama models loaded from GGUF have their q and k
// rows un-permuted back to HF's rotate_half layout. Files are written
// atomically; the directory is created if needed. The tokenizer is not
// written (see ConvertGGUFToHF).
func (m *Model) WriteHF(dir string, o SaveOptions) error {
	if o.Keep {
		return errors.New("save hf: safetensors cannot keep quantized weights")
	}
	cfgJSON, err := m.Config.HFConfigJSON()
	if err != nil {
		return fmt.Errorf("save hf: %w", err)
	}
	ts, err := m.exportTensors(formatHF, o)
	if err != nil {
		return err
	}
	st := make([]safetensors.TensorInfo, len(ts))
	for i, t := range ts {
		st[i] = safetensors.TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape, Data: t.Data}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save hf: %w", err)
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), st, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save hf: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), cfgJSON); err != nil {
		return fmt.Errorf("save hf: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ggufTokenizerMeta returns the tokenizer.* metadata of a GGUF file.
func ggufTokenizerMeta(f *gguf.File) []gguf.KV {
	var kv []gguf.KV
	for _, e := range f.Meta {
		if strings.HasPrefix(e.Key, "tokenizer.") {
			kv = append(kv, e)
		}
	}
	return kv
}

// ConvertHFToGGUF converts the Hugging Face directory src to the GGUF file
// dst, with weight matrices in o.DType, applying llama.cpp's q/k
// permutation to llama/mistral models. The tokenizer is embedded from the
// directory's tokenizer.model (SentencePiece, with the added tokens of a
// tokenizer.json beside it) or else its tokenizer.json, with the special
// tokens and chat template of tokenizer_config.json (see package
// slm/tokconv); a directory without a convertible tokenizer is an error
// unless o.NoTokenizer.
func ConvertHFToGGUF(src, dst string, o SaveOptions) error {
	var tok []gguf.KV
	if !o.NoTokenizer {
		v, err := tokconv.FromHFDir(src)
		if err != nil {
			return fmt.Errorf("convert %s: %w (NoTokenizer converts the weights only)", src, err)
		}
		tok = v.GGUFMeta()
	}
	m, err := LoadModel(src)
	if err != nil {
		return err
	}
	if err := m.WriteGGUF(dst, tok, o); err != nil {
		return fmt.Errorf("convert %s to %s: %w", src, dst, err)
	}
	return nil
}

// ConvertGGUFToHF converts the GGUF file src to a Hugging Face directory
// dst: config.json and model.safetensors, with llama.cpp's q/k permutation
// undone for llama models, and the tokenizer as tokenizer.json and
// tokenizer_config.json (chat template included), plus tokenizer.model for
// SentencePiece vocabularies (GGUF tokenizer model "llama"); see package
// slm/tokconv. Other tokenizers are an error unless o.NoTokenizer.
func ConvertGGUFToHF(src, dst string, o SaveOptions) error {
	f, err := gguf.Open(src)
	if err != nil {
		return fmt.Errorf("convert: %w", err)
	}
	defer f.Close()
	var files map[string][]byte
	if !o.NoTokenizer {
		v, err := tokconv.FromGGUFMeta(ggufTokenizerMeta(f))
		if err == nil {
			files, err = v.HFDirFiles()
		}
		if err != nil {
			return fmt.Errorf("convert %s: tokenizer: %w (NoTokenizer converts the weights only)", src, err)
		}
	}
	m, err := loadGGUF(f, LoadOptions{})
	if err != nil {
		return fmt.Errorf("convert %s: %w", src, err)
	}
	if err := m.WriteHF(dst, o); err != nil {
		return fmt.Errorf("convert %s to %s: %w", src, dst, err)
	}
	for name, data := range files {
		if err := writeFileAtomic(filepath.Join(dst, name), data); err != nil {
			return fmt.Errorf("convert %s to %s: %w", src, dst, err)
		}
	}
	return nil
}
