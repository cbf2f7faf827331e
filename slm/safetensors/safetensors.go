// Package safetensors reads and writes the safetensors format of Hugging
// Face (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header, then the tensors' bytes.
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets"}
// (offsets relative to the start of the data that follows the header) and
// may hold "__metadata__", a map of strings to strings. Parse validates it
// as the reference implementation does and then some: the header length
// against the file and a 100 MB cap, the JSON (no duplicate names), each
// dtype, shape and byte range (size = dtype × shape exactly), and that the
// tensors tile the data region contiguously, without gaps or overlaps.
//
// Shapes are row-major as in PyTorch: the last dimension varies fastest.
package safetensors

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/usersim/usersim/slm/internal/mmap"
	"github.com/usersim/usersim/slm/tensor"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation
// does (100 MB).
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header entry for free-form metadata.
const metadataKey = "__metadata__"

// Errors that callers may test for with errors.Is.
var (
	ErrTruncated = errors.New("file truncated")
	ErrNotFound  = errors.New("not found")
)

// TensorInfo is one tensor: its name, element type, row-major shape and
// bytes.
type TensorInfo struct {
	Name  string
	DType tensor.DType
	Shape []int64 // row-major (PyTorch order)
	Data  []byte
}

// NumElements returns the number of elements (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n, _ := tensor.NumElements(t.Shape)
	return n
}

// File is a parsed safetensors file.
type File struct {
	tensors  []TensorInfo // sorted by name
	byName   map[string]int
	metadata map[string]string
	mm       *mmap.File
	// DataOffset is the absolute offset of the data region (8 + header
	// length).
	DataOffset int64
}

// Open maps the file at path into memory and parses it. Tensor data aliases
// the mapping and is valid until Close.
func Open(path string) (*File, error) {
	mm, err := mmap.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Parse(mm.Data())
	if err != nil {
		mm.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.mm = mm
	return f, nil
}

// Close releases the memory mapping, if any. Tensor data from the File must
// not be used afterwards.
func (f *File) Close() error {
	if f.mm == nil {
		return nil
	}
	err := f.mm.Close()
	f.mm = nil
	for i := range f.tensors {
		f.tensors[i].Data = nil
	}
	return err
}

// Tensors returns all tensors sorted by name. The slice is shared.
func (f *File) Tensors() []TensorInfo { return f.tensors }

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, len(f.tensors))
	for i, t := range f.tensors {
		names[i] = t.Name
	}
	return names
}

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.tensors[i], true
}

// Metadata returns the header's "__metadata__" map (empty if absent). The
// map is shared.
func (f *File) Metadata() map[string]string { return f.metadata }

func newFile(tensors []TensorInfo, meta map[string]string) *File {
	sort.Slice(tensors, func(i, j int) bool { return tensors[i].Name < tensors[j].Name })
	f := &File{tensors: tensors, byName: make(map[string]int, len(tensors)), metadata: meta}
	for i, t := range tensors {
		f.byName[t.Name] = i
	}
	if f.metadata == nil {
		f.metadata = map[string]string{}
	}
	return f
}

// entry is a tensor's header entry with its byte range, for validation.
type entry struct {
	name       string
	begin, end int64
}

// checkLayout verifies that the byte ranges tile [0, size) exactly.
func checkLayout(entries []entry, size int64) error {
	slices.SortFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return cmp64(a.begin, b.begin)
		}
		return cmp64(a.end, b.end)
	})
	var pos int64
	prev := ""
	for _, e := range entries {
		switch {
		case e.begin < pos:
			return fmt.Errorf("tensor %q (bytes %d..%d) overlaps tensor %q (ending at %d)", e.name, e.begin, e.end, prev, pos)
		case e.begin > pos:
			if prev == "" {
				return fmt.Errorf("gap: the data region's bytes %d..%d belong to no tensor (the first tensor, %q, starts at %d)", pos, e.begin, e.name, e.begin)
			}
			return fmt.Errorf("gap: the data region's bytes %d..%d, between tensors %q and %q, belong to no tensor", pos, e.begin, prev, e.name)
		}
		pos, prev = e.end, e.name
	}
	if pos != size {
		return fmt.Errorf("the data region has %d bytes but the tensors cover %d", size, pos)
	}
	return nil
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
