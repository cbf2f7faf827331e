package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/slm/tensor"
)

// WriteTensor is a tensor to write: its shape in ggml order (Shape[0] is
// the row length) and its data, exactly tensor.Bytes(Type, Shape) bytes.
type WriteTensor struct {
	Name  string
	Shape []int64
	Type  tensor.DType
	Data  []byte
}

// Write writes a GGUF version 3 file with the given metadata, in order, and
// tensors, laid out in order, each starting at a multiple of the alignment
// (general.alignment from meta, a uint32 power of two, or 32). It validates
// everything Parse validates, so what Write writes, Parse reads back.
func Write(w io.Writer, meta []KV, tensors []WriteTensor) error {
	if err := write(w, meta, tensors); err != nil {
		return fmt.Errorf("gguf: write: %w", err)
	}
	return nil
}

func write(w io.Writer, meta []KV, tensors []WriteTensor) error {
	align := int64(DefaultAlignment)
	seen := make(map[string]bool, len(meta))
	for _, kv := range meta {
		if kv.Key == "" || len(kv.Key) > MaxKeyLen {
			return fmt.Errorf("metadata key %q: length %d, want 1 to %d", kv.Key, len(kv.Key), MaxKeyLen)
		}
		if seen[kv.Key] {
			return fmt.Errorf("metadata key %q appears twice", kv.Key)
		}
		seen[kv.Key] = true
		if err := checkValue(kv.Value, 0); err != nil {
			return fmt.Errorf("metadata %q: %w", kv.Key, err)
		}
		if kv.Key == KeyAlignment {
			a, err := checkAlignment(kv.Value)
			if err != nil {
				return err
			}
			align = int64(a)
		}
	}
	offsets := make([]int64, len(tensors))
	names := make(map[string]bool, len(tensors))
	var off int64
	for i, t := range tensors {
		if t.Name == "" || len(t.Name) > MaxNameLen {
			return fmt.Errorf("tensor %q: name length %d, want 1 to %d", t.Name, len(t.Name), MaxNameLen)
		}
		if names[t.Name] {
			return fmt.Errorf("tensor %q appears twice", t.Name)
		}
		names[t.Name] = true
		if len(t.Shape) == 0 || len(t.Shape) > MaxDims {
			return fmt.Errorf("tensor %q has %d dimensions, want 1 to %d", t.Name, len(t.Shape), MaxDims)
		}
		for j, n := range t.Shape {
			if n <= 0 {
				return fmt.Errorf("tensor %q dimension %d is %d, want a positive size", t.Name, j, n)
			}
		}
		if _, err := t.Type.GGMLType(); err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		size, err := tensor.Bytes(t.Type, t.Shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != size {
			return fmt.Errorf("tensor %q: %v %v needs %d bytes, data has %d", t.Name, t.Type, t.Shape, size, len(t.Data))
		}
		offsets[i] = off
		if size > math.MaxInt64-off-align {
			return fmt.Errorf("tensor %q: data section size overflows", t.Name)
		}
		off = alignUp(off+size, align)
	}

	e := &encoder{w: bufio.NewWriterSize(w, 1<<16)}
	e.raw([]byte(Magic))
	e.u32(supportedVersion)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(meta)))
	for _, kv := range meta {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.typ))
		e.value(kv.Value)
	}
	for i, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, n := range t.Shape {
			e.u64(uint64(n))
		}
		e.u32(t.Type.GGML())
		e.u64(uint64(offsets[i]))
	}
	e.pad(align)
	for _, t := range tensors {
		e.raw(t.Data)
		e.pad(align)
	}
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// checkValue verifies that v is a well-formed value (the zero Value is not).
func checkValue(v Value, depth int) error {
	if !v.Valid() {
		return errors.New("invalid (zero) value")
	}
	if v.typ >= numTypes {
		return fmt.Errorf("unknown value type %d", uint32(v.typ))
	}
	if v.typ != TypeArray || v.elem != TypeArray {
		return nil
	}
	if depth+1 >= MaxArrayDepth {
		return fmt.Errorf("arrays nested deeper than %d", MaxArrayDepth)
	}
	for i, x := range v.v.([]Value) {
		if x.typ != TypeArray {
			return fmt.Errorf("element %d is a %v in an array of arrays", i, x.typ)
		}
		if err := checkValue(x, depth+1); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
	}
	return nil
}

type encoder struct {
	w   *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err != nil {
		return
	}
	var n int
	n, e.err = e.w.Write(b)
	e.n += int64(n)
}

func (e *encoder) u8(x uint8)   { e.raw([]byte{x}) }
func (e *encoder) u16(x uint16) { e.raw(le.AppendUint16(e.buf[:0], x)) }
func (e *encoder) u32(x uint32) { e.raw(le.AppendUint32(e.buf[:0], x)) }
func (e *encoder) u64(x uint64) { e.raw(le.AppendUint64(e.buf[:0], x)) }

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		var n int
		n, e.err = e.w.WriteString(s)
		e.n += int64(n)
	}
}

func (e *encoder) pad(align int64) {
	var zeros [64]byte
	for n := alignUp(e.n, align) - e.n; n > 0; {
		k := min(n, int64(len(zeros)))
		e.raw(zeros[:k])
		n -= k
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (e *encoder) value(v Value) {
	switch x := v.v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case bool:
		e.u8(b2u(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case string:
		e.str(x)
	default:
		e.u32(uint32(v.elem))
		e.u64(uint64(v.Len()))
		e.array(v.v)
	}
}

func (e *encoder) array(a any) {
	switch xs := a.(type) {
	case []uint8:
		e.raw(xs)
	case []int8:
		for _, x := range xs {
			e.u8(uint8(x))
		}
	case []bool:
		for _, x := range xs {
			e.u8(b2u(x))
		}
	case []uint16:
		for _, x := range xs {
			e.u16(x)
		}
	case []int16:
		for _, x := range xs {
			e.u16(uint16(x))
		}
	case []uint32:
		for _, x := range xs {
			e.u32(x)
		}
	case []int32:
		for _, x := range xs {
			e.u32(uint32(x))
		}
	case []float32:
		for _, x := range xs {
			e.u32(math.Float32bits(x))
		}
	case []uint64:
		for _, x := range xs {
			e.u64(x)
		}
	case []int64:
		for _, x := range xs {
			e.u64(uint64(x))
		}
	case []float64:
		for _, x := range xs {
			e.u64(math.Float64bits(x))
		}
	case []string:
		for _, x := range xs {
			e.str(x)
		}
	case []Value:
		for _, x := range xs {
			e.value(x)
		}
	}
}

// WriteFile writes a GGUF file atomically (see package atomicfile): readers
// of path see the old file or the complete new one.
func WriteFile(path string, meta []KV, tensors []WriteTensor) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return Write(w, meta, tensors) })
}
