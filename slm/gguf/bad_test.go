package gguf

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// raw builds GGUF bytes field by field, so tests can write files that
// Write refuses to.
type raw struct{ b []byte }

func (r *raw) u32(x uint32) *raw   { r.b = le.AppendUint32(r.b, x); return r }
func (r *raw) u64(x uint64) *raw   { r.b = le.AppendUint64(r.b, x); return r }
func (r *raw) bytes(p []byte) *raw { r.b = append(r.b, p...); return r }
func (r *raw) str(s string) *raw   { r.u64(uint64(len(s))); r.b = append(r.b, s...); return r }
func (r *raw) header(v uint32, nT, nKV uint64) *raw {
	r.b = append(r.b, "GGUF"...)
	return r.u32(v).u64(nT).u64(nKV)
}
func (r *raw) kvU32(k string, v uint32) *raw { return r.str(k).u32(uint32(TypeUint32)).u32(v) }
func (r *raw) tensor(name string, dims []uint64, typ uint32, off uint64) *raw {
	r.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		r.u64(d)
	}
	return r.u32(typ).u64(off)
}

// data pads to 32 and appends n zero bytes of tensor data.
func (r *raw) data(n int) []byte {
	for len(r.b)%32 != 0 {
		r.b = append(r.b, 0)
	}
	return append(r.b, make([]byte, n)...)
}

func TestBadFiles(t *testing.T) {
	const f32, q8 = 0, 8
	nested := func(depth int) []byte {
		r := (&raw{}).header(3, 0, 1).str("deep").u32(uint32(TypeArray))
		for i := 0; i < depth; i++ {
			r.u32(uint32(TypeArray)).u64(1)
		}
		return r.u32(uint32(TypeUint8)).u64(0).b
	}
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr error
	}{
		{"empty", nil, "magic: file is 0 bytes", ErrTruncated},
		{"truncated magic", []byte("GGU"), "file is 3 bytes", ErrTruncated},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), `bad magic "GGML"`, ErrNotGGUF},
		{"truncated version", []byte("GGUF\x03\x00"), "version at offset 4", ErrTruncated},
		{"version 1", (&raw{}).header(1, 0, 0).b, "version 1", ErrVersion},
		{"version 4", (&raw{}).header(4, 0, 0).b, "version 4 (want 2 or 3)", ErrVersion},
		{"big endian", []byte("GGUF\x00\x00\x00\x03" + strings.Repeat("\x00", 16)), "big-endian", ErrVersion},
		{"truncated counts", (&raw{}).header(3, 0, 0).b[:20], "metadata count", ErrTruncated},
		{"huge tensor count", (&raw{}).header(3, 1<<60, 0).b, "tensor count 1152921504606846976 cannot fit", ErrTruncated},
		{"huge kv count", (&raw{}).header(3, 0, 1<<62).b, "metadata count 4611686018427387904 cannot fit", ErrTruncated},
		{"huge key length", (&raw{}).header(3, 0, 1).u64(1 << 40).u64(0).b, "metadata key 0 at offset 24: length 1099511627776 exceeds the limit 65535", nil},
		{"key past EOF", (&raw{}).header(3, 0, 1).u64(100).bytes([]byte("abcdefghijklmn")).b, "metadata key 0 at offset 32: need 100 bytes", ErrTruncated},
		{"huge string", (&raw{}).header(3, 0, 1).str("k").u32(uint32(TypeString)).u64(1 << 62).b, `metadata "k": string at offset`, ErrTruncated},
		{"huge array", (&raw{}).header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1 << 61).b, "array at offset 37: 2305843009213693952 elements of uint32 cannot fit", ErrTruncated},
		{"huge string array", (&raw{}).header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 40).u64(0).b, "1099511627776 elements of string cannot fit", ErrTruncated},
		{"deep nesting", nested(MaxArrayDepth), "nested deeper than 8", nil},
		{"empty key", (&raw{}).header(3, 0, 1).str("").u32(0).bytes([]byte{1, 0}).b, "metadata key 0 is empty", nil},
		{"duplicate key", (&raw{}).header(3, 0, 2).kvU32("a", 1).kvU32("a", 2).b, `metadata key "a" appears twice`, nil},
		{"unknown value type", (&raw{}).header(3, 0, 1).str("k").u32(13).u32(0).b, `metadata "k": unknown value type 13`, nil},
		{"bad bool", (&raw{}).header(3, 0, 1).str("k").u32(uint32(TypeBool)).bytes([]byte{2}).b, "bool at offset", nil},
		{"alignment type", (&raw{}).header(3, 0, 1).str(KeyAlignment).u32(uint32(TypeUint64)).u64(32).b, "want uint32", nil},
		{"alignment zero", (&raw{}).header(3, 0, 1).kvU32(KeyAlignment, 0).b, "= 0 is not a power of two", nil},
		{"alignment huge", (&raw{}).header(3, 0, 1).kvU32(KeyAlignment, 1<<31).b, "exceeds the limit 65536", nil},
		{"alignment 48", (&raw{}).header(3, 0, 1).kvU32(KeyAlignment, 48).b, "= 48 is not a power of two", nil},
		{"empty tensor name", (&raw{}).header(3, 1, 0).tensor("", []uint64{1}, f32, 0).data(4), "tensor 0 has an empty name", nil},
		{"long tensor name", (&raw{}).header(3, 1, 0).tensor(strings.Repeat("n", 65), []uint64{1}, f32, 0).data(4), "length 65 exceeds the limit 64", nil},
		{"zero rank", (&raw{}).header(3, 1, 0).tensor("w", nil, f32, 0).data(4), `tensor "w" has 0 dimensions`, nil},
		{"rank 5", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1, 1, 1, 1, 1}, f32, 0).data(4), `tensor "w" has 5 dimensions, want 1 to 4`, nil},
		{"zero dim", (&raw{}).header(3, 1, 0).tensor("w", []uint64{4, 0}, f32, 0).data(4), `tensor "w" dimension 1 is 0`, nil},
		{"negative dim", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1 << 63}, f32, 0).data(4), `tensor "w" dimension 0 is -9223372036854775808`, nil},
		{"size overflow", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1 << 32, 1 << 32}, f32, 0).data(4), `tensor "w": tensor: shape [4294967296 4294967296]: element count overflows int64`, nil},
		{"byte overflow", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1 << 31, 1 << 31}, f32, 0).data(4), "byte size overflows int64", nil},
		{"unsupported dtype", (&raw{}).header(3, 1, 0).tensor("w", []uint64{256}, 16, 0).data(256), `tensor "w": tensor: unsupported ggml type IQ2_XXS (16)`, nil},
		{"unknown dtype", (&raw{}).header(3, 1, 0).tensor("w", []uint64{4}, 200, 0).data(16), `tensor "w": tensor: unknown ggml type 200`, nil},
		{"partial block", (&raw{}).header(3, 1, 0).tensor("w", []uint64{33}, q8, 0).data(64), "row length 33 is not a multiple of the block size 32", nil},
		{"misaligned offset", (&raw{}).header(3, 2, 0).tensor("a", []uint64{1}, f32, 0).tensor("b", []uint64{1}, f32, 4).data(64), `tensor "b": offset 4 is not a multiple of the alignment 32`, nil},
		{"duplicate tensor", (&raw{}).header(3, 2, 0).tensor("a", []uint64{1}, f32, 0).tensor("a", []uint64{1}, f32, 32).data(64), `tensor "a" appears twice`, nil},
		{"tensor past EOF", (&raw{}).header(3, 1, 0).tensor("w", []uint64{16}, f32, 0).data(63), `tensor "w": data [0, 64) of the data section runs past the end of the file (63 bytes of data)`, ErrTruncated},
		{"offset past EOF", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1}, f32, 1<<62).data(64), "runs past the end", ErrTruncated},
		{"offset overflow", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1}, f32, 1<<63).data(64), "offset 9223372036854775808 overflows int64", nil},
		{"no data section", (&raw{}).header(3, 1, 0).tensor("w", []uint64{1}, f32, 0).b, "data section at offset", ErrTruncated},
		{"overlap", (&raw{}).header(3, 3, 0).tensor("a", []uint64{16}, f32, 0).tensor("b", []uint64{8}, f32, 64).tensor("c", []uint64{8}, f32, 32).data(128), `tensor "c" (bytes 32..64) overlaps tensor "a" (bytes 0..64)`, nil},
		{"same offset", (&raw{}).header(3, 2, 0).tensor("a", []uint64{8}, f32, 0).tensor("b", []uint64{8}, f32, 0).data(64), "overlaps", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
		})
	}
	// Nesting just under the limit is accepted.
	if _, err := Parse(nested(MaxArrayDepth - 2)); err != nil {
		t.Errorf("nesting depth %d: %v", MaxArrayDepth-1, err)
	}
}

// TestEveryTruncation cuts a valid file at every length short of its last
// tensor byte: each must fail cleanly.
func TestEveryTruncation(t *testing.T) {
	data := encode(t, sampleMeta(t), sampleTensors(t))
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	end := int64(0)
	for _, ti := range f.Tensors {
		end = max(end, f.DataOffset+ti.Offset+ti.Size)
	}
	for n := int64(0); n < end; n++ {
		if _, err := Parse(data[:n]); err == nil {
			t.Fatalf("file cut to %d of %d bytes parsed", n, len(data))
		}
	}
	if _, err := Parse(data[:end]); err != nil {
		t.Errorf("file cut after the last tensor: %v", err)
	}
	// Trailing bytes after the data are tolerated.
	if _, err := Parse(append(bytes.Clone(data), 1, 2, 3)); err != nil {
		t.Errorf("trailing bytes: %v", err)
	}
}

// TestBoundedAllocation parses 1 MiB files whose header counts claim as
// many entries as the file could hold but whose first entry is bad: the
// parser must fail before allocating for the claim.
func TestBoundedAllocation(t *testing.T) {
	const size = 1 << 20
	pad := func(b []byte) []byte { return append(b, make([]byte, size-len(b))...) }
	files := map[string][]byte{
		"string array": pad((&raw{}).header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(size / 8).u64(1 << 40).b),
		"nested array": pad((&raw{}).header(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeArray)).u64(size / 12).u32(99).b),
		"kv count":     pad((&raw{}).header(3, 0, size/minKVSize).u64(1 << 40).b),
		"tensor count": pad((&raw{}).header(3, size/minTensorSize, 0).u64(1 << 40).b),
	}
	for name, data := range files {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Parse(data)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: parsed", name)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<10 {
			t.Errorf("%s: allocated %d bytes for a failing %d-byte file", name, alloc, size)
		}
	}
}
