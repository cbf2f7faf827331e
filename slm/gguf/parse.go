package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/usersim/usersim/slm/tensor"
)

var le = binary.LittleEndian

// decoder reads little-endian values from data, checking every length
// against the bytes that remain.
type decoder struct {
	data []byte
	off  int
}

func (d *decoder) left() int { return len(d.data) - d.off }

func (d *decoder) need(n uint64, what string) error {
	if n > uint64(d.left()) {
		return fmt.Errorf("%s at offset %d: need %d bytes, %d left: %w", what, d.off, n, d.left(), ErrTruncated)
	}
	return nil
}

func (d *decoder) bytes(n int) []byte {
	b := d.data[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	return le.Uint32(d.bytes(4)), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	return le.Uint64(d.bytes(8)), nil
}

// str reads a gguf_string_t (uint64 length + bytes) of at most max bytes.
func (d *decoder) str(what string, max uint64) (string, error) {
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > max {
		return "", fmt.Errorf("%s at offset %d: length %d exceeds the limit %d", what, d.off-8, n, max)
	}
	if err := d.need(n, what); err != nil {
		return "", err
	}
	return string(d.bytes(int(n))), nil
}

// minSize is the fewest bytes a value of type t can occupy, used to bound
// array lengths before allocating.
func minSize(t Type) uint64 {
	switch t {
	case TypeString:
		return 8
	case TypeArray:
		return 4 + 8
	}
	return uint64(t.size())
}

func (d *decoder) value(t Type, depth int) (Value, error) {
	if t >= numTypes {
		return Value{}, fmt.Errorf("unknown value type %d at offset %d", uint32(t), d.off-4)
	}
	if t == TypeString {
		s, err := d.str("string", math.MaxUint64)
		return String(s), err
	}
	if t == TypeArray {
		return d.array(depth)
	}
	if err := d.need(uint64(t.size()), t.String()); err != nil {
		return Value{}, err
	}
	switch t {
	case TypeUint8:
		return Uint8(d.bytes(1)[0]), nil
	case TypeInt8:
		return Int8(int8(d.bytes(1)[0])), nil
	case TypeBool:
		b := d.bytes(1)[0]
		if b > 1 {
			return Value{}, fmt.Errorf("bool at offset %d is %d, want 0 or 1", d.off-1, b)
		}
		return Bool(b == 1), nil
	case TypeUint16:
		return Uint16(le.Uint16(d.bytes(2))), nil
	case TypeInt16:
		return Int16(int16(le.Uint16(d.bytes(2)))), nil
	case TypeUint32:
		return Uint32(le.Uint32(d.bytes(4))), nil
	case TypeInt32:
		return Int32(int32(le.Uint32(d.bytes(4)))), nil
	case TypeFloat32:
		return Float32(math.Float32frombits(le.Uint32(d.bytes(4)))), nil
	case TypeUint64:
		return Uint64(le.Uint64(d.bytes(8))), nil
	case TypeInt64:
		return Int64(int64(le.Uint64(d.bytes(8)))), nil
	default: // TypeFloat64
		return Float64(math.Float64frombits(le.Uint64(d.bytes(8)))), nil
	}
}

func readN[T any](d *decoder, n, size int, conv func([]byte) T) []T {
	out := make([]T, n)
	b := d.bytes(n * size)
	for i := range out {
		out[i] = conv(b[i*size:])
	}
	return out
}

func (d *decoder) array(depth int) (Value, error) {
	start := d.off
	et, err := d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	e := Type(et)
	if e >= numTypes {
		return Value{}, fmt.Errorf("array at offset %d: unknown element type %d", start, et)
	}
	if e == TypeArray && depth+1 >= MaxArrayDepth {
		return Value{}, fmt.Errorf("array at offset %d: arrays nested deeper than %d", start, MaxArrayDepth)
	}
	n, err := d.u64("array length")
	if err != nil {
		return Value{}, err
	}
	if n > uint64(d.left())/minSize(e) {
		return Value{}, fmt.Errorf("array at offset %d: %d elements of %v cannot fit in the %d bytes left: %w", start, n, e, d.left(), ErrTruncated)
	}
	count := int(n)
	var v any
	switch e {
	case TypeUint8:
		v = slices.Clone(d.bytes(count))
	case TypeInt8:
		v = readN(d, count, 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeBool:
		bs := d.bytes(count)
		out := make([]bool, count)
		for i, b := range bs {
			if b > 1 {
				return Value{}, fmt.Errorf("array at offset %d: bool element %d is %d, want 0 or 1", start, i, b)
			}
			out[i] = b == 1
		}
		v = out
	case TypeUint16:
		v = readN(d, count, 2, le.Uint16)
	case TypeInt16:
		v = readN(d, count, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case TypeUint32:
		v = readN(d, count, 4, le.Uint32)
	case TypeInt32:
		v = readN(d, count, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case TypeFloat32:
		v = readN(d, count, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case TypeUint64:
		v = readN(d, count, 8, le.Uint64)
	case TypeInt64:
		v = readN(d, count, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case TypeFloat64:
		v = readN(d, count, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	case TypeString:
		// Variable-size elements: grow as they parse rather than trust count.
		out := make([]string, 0, min(count, prealloc))
		for i := 0; i < count; i++ {
			s, err := d.str("string", math.MaxUint64)
			if err != nil {
				return Value{}, fmt.Errorf("array at offset %d: element %d: %w", start, i, err)
			}
			out = append(out, s)
		}
		v = out
	case TypeArray:
		out := make([]Value, 0, min(count, prealloc))
		for i := 0; i < count; i++ {
			x, err := d.array(depth + 1)
			if err != nil {
				return Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			out = append(out, x)
		}
		v = out
	}
	return Value{typ: TypeArray, elem: e, v: v}, nil
}

// prealloc caps the capacity allocated from a count read from the file for
// variable-size entries, which then grow as they parse: a count that the
// file cannot back fails before it costs memory.
const prealloc = 1 << 12

// Minimum encoded sizes, used to bound the header counts.
const (
	minKVSize     = 8 + 1 + 4 + 1         // key length, 1-byte key, type, 1-byte value
	minTensorSize = 8 + 1 + 4 + 8 + 4 + 8 // name length, name, n_dims, one dim, type, offset
)

// Parse parses and validates a GGUF file held in data. The File's tensor
// data aliases data.
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return f, nil
}

func parse(data []byte) (*File, error) {
	d := &decoder{data: data}
	if len(data) < 4 {
		return nil, fmt.Errorf("magic: file is %d bytes: %w", len(data), ErrTruncated)
	}
	if string(data[:4]) != Magic {
		return nil, fmt.Errorf("bad magic %q: %w", data[:4], ErrNotGGUF)
	}
	d.off = 4
	version, err := d.u32("version")
	if err != nil {
		return nil, err
	}
	switch {
	case version == 1:
		return nil, fmt.Errorf("version 1 (the 2023 pre-release format with 32-bit counts) is not supported; convert the file with a current llama.cpp: %w", ErrVersion)
	case version&0xffff == 0 && bits.ReverseBytes32(version) >= 1 && bits.ReverseBytes32(version) <= supportedVersion:
		return nil, fmt.Errorf("big-endian GGUF (version %d byte-swapped) is not supported: %w", bits.ReverseBytes32(version), ErrVersion)
	case version < 2 || version > supportedVersion:
		return nil, fmt.Errorf("version %d (want 2 or 3): %w", version, ErrVersion)
	}
	nTensors, err := d.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nKV, err := d.u64("metadata count")
	if err != nil {
		return nil, err
	}
	if nKV > uint64(d.left())/minKVSize {
		return nil, fmt.Errorf("metadata count %d cannot fit in the file's %d remaining bytes: %w", nKV, d.left(), ErrTruncated)
	}
	if nTensors > uint64(d.left())/minTensorSize {
		return nil, fmt.Errorf("tensor count %d cannot fit in the file's %d remaining bytes: %w", nTensors, d.left(), ErrTruncated)
	}

	f := &File{
		Version:   version,
		Alignment: DefaultAlignment,
		Meta:      make([]KV, 0, min(nKV, prealloc)),
		keys:      make(map[string]int, min(nKV, prealloc)),
		data:      data,
	}
	for i := uint64(0); i < nKV; i++ {
		key, err := d.str(fmt.Sprintf("metadata key %d", i), MaxKeyLen)
		if err != nil {
			return nil, err
		}
		if key == "" {
			return nil, fmt.Errorf("metadata key %d is empty", i)
		}
		if _, dup := f.keys[key]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		t, err := d.u32(fmt.Sprintf("type of metadata %q", key))
		if err != nil {
			return nil, err
		}
		v, err := d.value(Type(t), 0)
		if err != nil {
			return nil, fmt.Errorf("metadata %q: %w", key, err)
		}
		f.keys[key] = len(f.Meta)
		f.Meta = append(f.Meta, KV{Key: key, Value: v})
	}
	if v, ok := f.Get(KeyAlignment); ok {
		a, err := checkAlignment(v)
		if err != nil {
			return nil, err
		}
		f.Alignment = a
	}

	f.Tensors = make([]TensorInfo, 0, min(nTensors, prealloc))
	f.byName = make(map[string]int, min(nTensors, prealloc))
	for i := uint64(0); i < nTensors; i++ {
		ti, err := d.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.byName[ti.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", ti.Name)
		}
		if ti.Offset%int64(f.Alignment) != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d is not a multiple of the alignment %d", ti.Name, ti.Offset, f.Alignment)
		}
		f.byName[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}

	// The data section starts at the next multiple of the alignment.
	start := alignUp(int64(d.off), int64(f.Alignment))
	f.DataOffset = start
	if len(f.Tensors) == 0 {
		return f, nil
	}
	if start > int64(len(data)) {
		return nil, fmt.Errorf("data section at offset %d starts past the end of the %d-byte file: %w", start, len(data), ErrTruncated)
	}
	avail := int64(len(data)) - start
	for _, ti := range f.Tensors {
		if ti.Offset > avail || ti.Size > avail-ti.Offset {
			return nil, fmt.Errorf("tensor %q: data [%d, %d) of the data section runs past the end of the file (%d bytes of data): %w",
				ti.Name, ti.Offset, ti.Offset+min(ti.Size, math.MaxInt64-ti.Offset), avail, ErrTruncated)
		}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ta, tb := f.Tensors[a], f.Tensors[b]
		if ta.Offset != tb.Offset {
			return compare(ta.Offset, tb.Offset)
		}
		return compare(ta.Size, tb.Size)
	})
	for k := 1; k < len(order); k++ {
		prev, cur := f.Tensors[order[k-1]], f.Tensors[order[k]]
		if cur.Offset < prev.Offset+prev.Size {
			return nil, fmt.Errorf("tensor %q (bytes %d..%d) overlaps tensor %q (bytes %d..%d)",
				cur.Name, cur.Offset, cur.Offset+cur.Size, prev.Name, prev.Offset, prev.Offset+prev.Size)
		}
	}
	return f, nil
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func checkAlignment(v Value) (int, error) {
	if v.Type() != TypeUint32 {
		return 0, fmt.Errorf("metadata %q has type %v, want uint32", KeyAlignment, v.Type())
	}
	a := v.Any().(uint32)
	if a == 0 || a&(a-1) != 0 {
		return 0, fmt.Errorf("metadata %q = %d is not a power of two", KeyAlignment, a)
	}
	if a > MaxAlignment {
		return 0, fmt.Errorf("metadata %q = %d exceeds the limit %d", KeyAlignment, a, MaxAlignment)
	}
	return int(a), nil
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

func (d *decoder) tensorInfo(i uint64) (TensorInfo, error) {
	name, err := d.str(fmt.Sprintf("tensor %d name", i), MaxNameLen)
	if err != nil {
		return TensorInfo{}, err
	}
	if name == "" {
		return TensorInfo{}, fmt.Errorf("tensor %d has an empty name", i)
	}
	nDims, err := d.u32(fmt.Sprintf("tensor %q rank", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if nDims == 0 || nDims > MaxDims {
		return TensorInfo{}, fmt.Errorf("tensor %q has %d dimensions, want 1 to %d", name, nDims, MaxDims)
	}
	shape := make([]int64, nDims)
	for j := range shape {
		n, err := d.u64(fmt.Sprintf("tensor %q dimension %d", name, j))
		if err != nil {
			return TensorInfo{}, err
		}
		if n == 0 || n > math.MaxInt64 {
			return TensorInfo{}, fmt.Errorf("tensor %q dimension %d is %d, want a positive int64", name, j, int64(n))
		}
		shape[j] = int64(n)
	}
	code, err := d.u32(fmt.Sprintf("tensor %q type", name))
	if err != nil {
		return TensorInfo{}, err
	}
	dt, err := tensor.FromGGML(code)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	size, err := tensor.Bytes(dt, shape)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %q: %w", name, err)
	}
	off, err := d.u64(fmt.Sprintf("tensor %q offset", name))
	if err != nil {
		return TensorInfo{}, err
	}
	if off > math.MaxInt64 {
		return TensorInfo{}, fmt.Errorf("tensor %q: offset %d overflows int64", name, off)
	}
	return TensorInfo{Name: name, Shape: shape, Type: dt, Offset: int64(off), Size: size}, nil
}
