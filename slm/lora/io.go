package lora

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/slm/safetensors"
	"github.com/usersim/usersim/slm/tensor"
)

// The files of an adapter directory, as PEFT names them.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// Save writes the adapter to dir in PEFT's format: adapter_config.json and
// adapter_model.safetensors (float32, PEFT's tensor names, metadata
// {"format": "pt"}). The directory is written as a whole: both files go to a
// new directory beside dir, synced, which then replaces dir, so a crash
// leaves either the old adapter or the new one (and possibly a stray
// temporary directory), never a mixture.
func (a *Adapter) Save(dir string) error {
	cfg, err := a.Config.Marshal()
	if err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	var ts []safetensors.TensorInfo
	for _, p := range a.Pairs() {
		na, nb := TensorNames(p.Layer, p.Module)
		ts = append(ts,
			safetensors.TensorInfo{Name: na, DType: tensor.F32, Shape: []int64{int64(p.R), int64(p.In)}, Data: f32Bytes(p.A)},
			safetensors.TensorInfo{Name: nb, DType: tensor.F32, Shape: []int64{int64(p.Out), int64(p.R)}, Data: f32Bytes(p.B)})
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, ConfigFile), cfg, 0o644); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := safetensors.Write(filepath.Join(tmp, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	// Move an existing directory aside, put the new one in place, then
	// delete the old one. rename(2) cannot replace a non-empty directory.
	var old string
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("save adapter %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	ok = true
	if err := atomicfile.SyncDir(parent); err != nil {
		return fmt.Errorf("save adapter %s: %w", dir, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("save adapter %s: remove previous version: %w", dir, err)
		}
	}
	return nil
}

// Load reads an adapter directory in PEFT's format and checks it against
// base: every projection the configuration targets must have its A and B
// tensors with the base's shapes and the configured rank, and every tensor
// must belong to a targeted projection. Weights stored as F16 or BF16 are
// converted to float32 exactly. Errors name the file and tensor.
func Load(dir string, base Base) (*Adapter, error) {
	cpath := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(cpath)
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("load adapter %s: %w", cpath, err)
	}
	a, err := newAdapter(*cfg, base)
	if err != nil {
		return nil, fmt.Errorf("load adapter %s: %w", dir, err)
	}
	wpath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wpath)
	if err != nil {
		return nil, fmt.Errorf("load adapter: %w", err)
	}
	defer f.Close()
	want := map[string]bool{}
	for _, p := range a.Pairs() {
		na, nb := TensorNames(p.Layer, p.Module)
		want[na], want[nb] = true, true
		if err := readTensor(f, na, p.A, p.R, p.In); err != nil {
			return nil, fmt.Errorf("load adapter %s: %w", wpath, err)
		}
		if err := readTensor(f, nb, p.B, p.Out, p.R); err != nil {
			return nil, fmt.Errorf("load adapter %s: %w", wpath, err)
		}
	}
	for _, name := range f.Names() {
		if !want[name] {
			why := "not a LoRA matrix of this base"
			if strings.Contains(name, ".lora_") {
				why = "its projection is not in target_modules or not in the base"
			}
			return nil, fmt.Errorf("load adapter %s: unexpected tensor %s (%s)", wpath, name, why)
		}
	}
	return a, nil
}

// readTensor copies the named rows×cols matrix into dst as float32.
func readTensor(f *safetensors.File, name string, dst []float32, rows, cols int) error {
	t, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("tensor %s is missing", name)
	}
	if len(t.Shape) != 2 || t.Shape[0] != int64(rows) || t.Shape[1] != int64(cols) {
		return fmt.Errorf("tensor %s has shape %v, want [%d %d]", name, t.Shape, rows, cols)
	}
	n := rows * cols
	switch t.DType {
	case tensor.F32:
		for i := range n {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case tensor.F16:
		for i := range n {
			dst[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	case tensor.BF16:
		for i := range n {
			dst[i] = tensor.BF16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	default:
		return fmt.Errorf("tensor %s has type %v; want F32, F16 or BF16", name, t.DType)
	}
	for i, v := range dst[:n] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("tensor %s: element %d is %v", name, i, v)
		}
	}
	return nil
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// ErrBaseMismatch is returned by Set.Add for an adapter made for another base.
var ErrBaseMismatch = errors.New("adapter does not fit the base")
