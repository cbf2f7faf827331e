package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/usersim/usersim/slm/safetensors"
	"github.com/usersim/usersim/slm/tensor"
)

// CheckpointFile is the checkpoint's name in Config.CheckpointDir: a
// safetensors file with tensors "w/NAME", "m/NAME", "v/NAME" (weights and
// AdamW moments, float32) and, with RestoreBest, "best/NAME", and the run's
// state (step, optimizer step, data order RNG and cursor, evaluation
// history, loss curve) as JSON in the metadata key "usersim.train".
const CheckpointFile = "checkpoint.safetensors"

const stateKey = "usersim.train"

type ckptState struct {
	state
	OptStep int `json:"opt_step"`
}

func saveCheckpoint(path string, params []*Param, opt *adamW, st *state, best [][]float32) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	cs := ckptState{state: *st, OptStep: opt.t}
	if cs.BestStep == 0 {
		cs.BestLoss = 0 // +Inf until the first evaluation; JSON has no infinity
	}
	meta, err := json.Marshal(cs)
	if err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	var ts []safetensors.TensorInfo
	add := func(prefix, name string, v []float32) {
		ts = append(ts, safetensors.TensorInfo{Name: prefix + name, DType: tensor.F32, Shape: []int64{int64(len(v))}, Data: f32Bytes(v)})
	}
	for i, p := range params {
		add("w/", p.Name, p.W)
		add("m/", p.Name, opt.m[i])
		add("v/", p.Name, opt.v[i])
		if best != nil && best[i] != nil {
			add("best/", p.Name, best[i])
		}
	}
	if err := safetensors.Write(path, ts, map[string]string{stateKey: string(meta)}); err != nil {
		return fmt.Errorf("train: checkpoint: %w", err)
	}
	return nil
}

// loadCheckpoint restores a checkpoint if path exists (false otherwise).
func loadCheckpoint(path string, params []*Param, opt *adamW, st *state, best [][]float32) (bool, error) {
	if !exists(path) {
		return false, nil
	}
	f, err := safetensors.Open(path)
	if err != nil {
		return false, fmt.Errorf("train: resume: %w", err)
	}
	defer f.Close()
	var cs ckptState
	raw, ok := f.Metadata()[stateKey]
	if !ok {
		return false, fmt.Errorf("train: resume %s: no %s metadata", path, stateKey)
	}
	if err := json.Unmarshal([]byte(raw), &cs); err != nil {
		return false, fmt.Errorf("train: resume %s: state: %w", path, err)
	}
	switch {
	case cs.Seed != st.Seed:
		return false, fmt.Errorf("train: resume %s: checkpoint seed %d, run seed %d", path, cs.Seed, st.Seed)
	case cs.BatchSize != st.BatchSize:
		return false, fmt.Errorf("train: resume %s: checkpoint batch size %d, run batch size %d", path, cs.BatchSize, st.BatchSize)
	case cs.Examples != st.Examples:
		return false, fmt.Errorf("train: resume %s: checkpoint has %d training examples, run %d", path, cs.Examples, st.Examples)
	}
	read := func(prefix string, p *Param, dst []float32, required bool) (bool, error) {
		t, ok := f.Tensor(prefix + p.Name)
		if !ok {
			if required {
				return false, fmt.Errorf("train: resume %s: tensor %s%s is missing", path, prefix, p.Name)
			}
			return false, nil
		}
		if t.DType != tensor.F32 || len(t.Shape) != 1 || t.Shape[0] != int64(len(dst)) {
			return false, fmt.Errorf("train: resume %s: tensor %s%s is %v %v, want F32 [%d]", path, prefix, p.Name, t.DType, t.Shape, len(dst))
		}
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return true, nil
	}
	for i, p := range params {
		for _, x := range []struct {
			prefix string
			dst    []float32
		}{{"w/", p.W}, {"m/", opt.m[i]}, {"v/", opt.v[i]}} {
			if _, err := read(x.prefix, p, x.dst, true); err != nil {
				return false, err
			}
		}
		if best != nil {
			b := make([]float32, len(p.W))
			ok, err := read("best/", p, b, false)
			if err != nil {
				return false, err
			}
			if ok {
				best[i] = b
			}
		}
	}
	known := map[string]bool{}
	for _, p := range params {
		for _, prefix := range []string{"w/", "m/", "v/", "best/"} {
			known[prefix+p.Name] = true
		}
	}
	for _, name := range f.Names() {
		if !known[name] {
			return false, fmt.Errorf("train: resume %s: tensor %s is not a parameter of this objective", path, name)
		}
	}
	*st = cs.state
	if st.BestStep == 0 {
		st.BestLoss = math.Inf(1)
	}
	opt.t = cs.OptStep
	return true, nil
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}
