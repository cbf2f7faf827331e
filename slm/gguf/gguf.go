// Package gguf reads and writes GGUF files (versions 2 and 3), the model
// format of ggml and llama.cpp, as specified in ggml's docs/gguf.md.
//
// Parse validates the whole file before returning: the magic and version,
// every count, string and array length against the bytes that remain (so a
// hostile header cannot make it allocate more than the file's size), array
// nesting depth, key and tensor name uniqueness, tensor ranks, dimensions,
// types and offsets, and that each tensor's data lies inside the file
// without overlapping another's. Errors name the key or tensor at fault.
//
// Tensor shapes are in ggml order: Shape[0] is the fastest-varying dimension
// (the row length), the reverse of the row-major order of PyTorch and
// safetensors.
package gguf

import (
	"errors"
	"fmt"
	"math"

	"github.com/usersim/usersim/slm/internal/mmap"
	"github.com/usersim/usersim/slm/tensor"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment of files without general.alignment.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the data alignment (a uint32).
const KeyAlignment = "general.alignment"

// Limits enforced by Parse and Write.
const (
	MaxDims          = 4       // GGML_MAX_DIMS
	MaxNameLen       = 64      // bytes in a tensor name (gguf.md)
	MaxKeyLen        = 65535   // bytes in a metadata key (gguf.md)
	MaxArrayDepth    = 8       // nesting of arrays of arrays
	MaxAlignment     = 1 << 16 // general.alignment (no real file comes close)
	supportedVersion = 3
)

// Errors that callers may test for with errors.Is.
var (
	ErrNotGGUF   = errors.New("not a GGUF file")
	ErrVersion   = errors.New("unsupported GGUF version")
	ErrTruncated = errors.New("file truncated")
	ErrNotFound  = errors.New("not found")
)

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string
	Shape  []int64 // ggml order: Shape[0] is the row length
	Type   tensor.DType
	Offset int64 // from the start of the data section; a multiple of the alignment
	Size   int64 // bytes
}

// NumElements returns the number of elements of the tensor.
func (t TensorInfo) NumElements() int64 {
	n, _ := tensor.NumElements(t.Shape) // validated by Parse
	return n
}

// File is a parsed GGUF file. Its fields must be treated as read-only.
type File struct {
	Version    uint32
	Alignment  int
	Meta       []KV
	Tensors    []TensorInfo
	DataOffset int64 // absolute offset of the data section

	data   []byte
	mm     *mmap.File
	keys   map[string]int
	byName map[string]int
}

// Open maps the file at path into memory and parses it. The tensor data
// returned by TensorData aliases the mapping and is valid until Close.
func Open(path string) (*File, error) {
	mm, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Parse(mm.Data())
	if err != nil {
		mm.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.mm = mm
	return f, nil
}

// Close releases the file's memory mapping, if any. The File must not be
// used afterwards.
func (f *File) Close() error {
	f.data = nil
	if f.mm != nil {
		err := f.mm.Close()
		f.mm = nil
		return err
	}
	return nil
}

// Get returns the metadata value for key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.Meta[i].Value, true
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorData returns the bytes of the named tensor. For a file from Open
// they alias the memory mapping: do not modify them, and copy them if they
// must outlive Close. For a file from Parse they alias the parsed slice.
func (f *File) TensorData(name string) ([]byte, TensorInfo, error) {
	ti, ok := f.Tensor(name)
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("gguf: tensor %q: %w", name, ErrNotFound)
	}
	if f.data == nil {
		return nil, ti, fmt.Errorf("gguf: tensor %q: file is closed", name)
	}
	start := f.DataOffset + ti.Offset
	return f.data[start : start+ti.Size : start+ti.Size], ti, nil
}

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("gguf: key %q: %w", key, ErrNotFound)
	}
	return v, nil
}

func typeErr(key string, v Value, want string) error {
	t := v.typ.String()
	if v.typ == TypeArray {
		t = "array of " + v.elem.String()
	}
	return fmt.Errorf("gguf: key %q has type %s, want %s", key, t, want)
}

// String returns the string value of key.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.AsString()
	if !ok {
		return "", typeErr(key, v, "string")
	}
	return s, nil
}

// Uint returns the value of key, which may have any integer type but must
// not be negative.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	u, ok := v.AsUint()
	if !ok {
		if _, isInt := v.AsInt(); isInt {
			return 0, fmt.Errorf("gguf: key %q is negative (%v)", key, v)
		}
		return 0, typeErr(key, v, "an unsigned integer")
	}
	return u, nil
}

// Int returns the value of key, which may have any integer type that fits
// in an int64.
func (f *File) Int(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, ok := v.AsInt()
	if !ok {
		if _, isUint := v.AsUint(); isUint {
			return 0, fmt.Errorf("gguf: key %q = %v overflows int64", key, v)
		}
		return 0, typeErr(key, v, "an integer")
	}
	return i, nil
}

// Float returns the value of key, a float32 or float64 (an integer value is
// converted too).
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	if x, ok := v.AsFloat(); ok {
		return x, nil
	}
	if i, ok := v.AsInt(); ok {
		return float64(i), nil
	}
	if u, ok := v.AsUint(); ok {
		return float64(u), nil
	}
	return 0, typeErr(key, v, "a number")
}

// Bool returns the bool value of key.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.AsBool()
	if !ok {
		return false, typeErr(key, v, "bool")
	}
	return b, nil
}

// Strings returns the value of key, an array of strings. The slice is
// shared with the File.
func (f *File) Strings(key string) ([]string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.v.([]string)
	if !ok {
		return nil, typeErr(key, v, "array of string")
	}
	return s, nil
}

// Float32s returns the value of key, an array of float32. The slice is
// shared with the File.
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.v.([]float32)
	if !ok {
		return nil, typeErr(key, v, "array of float32")
	}
	return s, nil
}

// Int32s returns the value of key, an array of any integer type whose
// values fit in an int32.
func (f *File) Int32s(key string) ([]int32, error) {
	if v, err := f.lookup(key); err == nil {
		if s, ok := v.v.([]int32); ok {
			return s, nil
		}
	}
	xs, err := f.Ints(key)
	if err != nil {
		return nil, err
	}
	out := make([]int32, len(xs))
	for i, x := range xs {
		if x < math.MinInt32 || x > math.MaxInt32 {
			return nil, fmt.Errorf("gguf: key %q element %d = %d overflows int32", key, i, x)
		}
		out[i] = int32(x)
	}
	return out, nil
}

// Ints returns the value of key, an array of any integer type whose values
// fit in an int64, converted to int64.
func (f *File) Ints(key string) ([]int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if v.typ != TypeArray {
		return nil, typeErr(key, v, "array of integers")
	}
	n := v.Len()
	out := make([]int64, n)
	for i := 0; i < n; i++ {
		x, ok := v.index(i).AsInt()
		if !ok {
			if _, isUint := v.index(i).AsUint(); isUint {
				return nil, fmt.Errorf("gguf: key %q element %d overflows int64", key, i)
			}
			return nil, typeErr(key, v, "array of integers")
		}
		out[i] = x
	}
	return out, nil
}
