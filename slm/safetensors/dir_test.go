package safetensors

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

func writeFile(t *testing.T, path string, tensors []TensorInfo) {
	t.Helper()
	if err := Write(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

func writeIndex(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ti(name string, vals ...float32) TensorInfo {
	return TensorInfo{Name: name, DType: tensor.F32, Shape: []int64{int64(len(vals))}, Data: f32s(vals...)}
}

func TestOpenDirSingle(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, SingleFile), []TensorInfo{ti("b", 1), ti("a", 2, 3)})
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !reflect.DeepEqual(s.Names(), []string{"a", "b"}) {
		t.Errorf("Names = %v", s.Names())
	}
	if x, ok := s.Tensor("a"); !ok || x.NumElements() != 2 {
		t.Errorf("Tensor(a) = %v, %v", x, ok)
	}
	if len(s.Paths()) != 1 {
		t.Errorf("Paths = %v", s.Paths())
	}
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "model-00001-of-00002.safetensors"), []TensorInfo{ti("embed", 1, 2), ti("layer.0", 3)})
	writeFile(t, filepath.Join(dir, "model-00002-of-00002.safetensors"), []TensorInfo{ti("lm_head", 4)})
	writeIndex(t, dir, `{"metadata":{"total_size":16},"weight_map":{
		"embed":"model-00001-of-00002.safetensors",
		"layer.0":"model-00001-of-00002.safetensors",
		"lm_head":"model-00002-of-00002.safetensors"}}`)
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Names(), []string{"embed", "layer.0", "lm_head"}) {
		t.Errorf("Names = %v", s.Names())
	}
	if x, ok := s.Tensor("lm_head"); !ok || x.NumElements() != 1 || x.Data[3] != 0x40 {
		t.Errorf("lm_head = %v, %v", x, ok)
	}
	if len(s.Paths()) != 2 {
		t.Errorf("Paths = %v", s.Paths())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Tensor("embed"); ok {
		t.Error("Tensor after Close succeeded")
	}
}

func TestOpenDirErrors(t *testing.T) {
	shard := "model-00001-of-00001.safetensors"
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
		is    error
	}{
		{"nothing", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "adapter_model.safetensors"), []TensorInfo{ti("x", 1)})
		}, "no model.safetensors or model.safetensors.index.json (found adapter_model.safetensors)", ErrNotFound},
		{"bad index JSON", func(t *testing.T, dir string) { writeIndex(t, dir, `{"weight_map":`) }, "model.safetensors.index.json: unexpected end", nil},
		{"no weight_map", func(t *testing.T, dir string) { writeIndex(t, dir, `{"metadata":{}}`) }, "no weight_map", nil},
		{"missing shard", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"x":"`+shard+`"}}`)
		}, `shard "` + shard + `" (holding tensor "x") is missing`, fs.ErrNotExist},
		{"path escape", func(t *testing.T, dir string) {
			writeIndex(t, dir, `{"weight_map":{"x":"../model.safetensors"}}`)
		}, `shard "../model.safetensors" is not a file name in the model directory`, nil},
		{"tensor not in shard", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, shard), []TensorInfo{ti("x", 1)})
			writeIndex(t, dir, `{"weight_map":{"x":"`+shard+`","y":"`+shard+`"}}`)
		}, `tensor "y" is not in shard`, ErrNotFound},
		{"unlisted tensor", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, shard), []TensorInfo{ti("x", 1), ti("z", 2)})
			writeIndex(t, dir, `{"weight_map":{"x":"`+shard+`"}}`)
		}, `holds tensor "z", which the index does not assign to it`, nil},
		{"corrupt shard", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, shard), []byte("garbage!garbage!"), 0o644)
			writeIndex(t, dir, `{"weight_map":{"x":"`+shard+`"}}`)
		}, shard + `: safetensors: header length`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatal("OpenDir succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}
