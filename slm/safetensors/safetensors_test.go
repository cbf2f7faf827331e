package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

func f32s(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func sampleTensors() []TensorInfo {
	return []TensorInfo{
		{Name: "model.layers.0.self_attn.q_proj.weight", DType: tensor.F32, Shape: []int64{2, 3}, Data: f32s(1, 2, 3, 4, 5, 6)},
		{Name: "lm_head.weight", DType: tensor.BF16, Shape: []int64{2}, Data: []byte{0x80, 0x3f, 0, 0xc0}},
		{Name: "scalar", DType: tensor.I64, Shape: []int64{}, Data: make([]byte, 8)},
		{Name: "empty", DType: tensor.F16, Shape: []int64{0, 4}, Data: []byte{}},
		{Name: "mask", DType: tensor.Bool, Shape: []int64{3}, Data: []byte{1, 0, 1}},
		{Name: "odd <name> & \"quotes\" ü", DType: tensor.U8, Shape: []int64{1}, Data: []byte{7}},
	}
}

func encode(t testing.TB, tensors []TensorInfo, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, meta); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	tensors := sampleTensors()
	meta := map[string]string{"format": "pt", "note": "a \"quoted\" <value>"}
	data := encode(t, tensors, meta)
	n := binary.LittleEndian.Uint64(data)
	if (8+n)%8 != 0 || data[8] != '{' {
		t.Errorf("header length %d is not padded to 8", n)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata(), meta) {
		t.Errorf("metadata %v, want %v", f.Metadata(), meta)
	}
	got := f.Tensors()
	if len(got) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(got), len(tensors))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Name >= got[i].Name {
			t.Errorf("Tensors not sorted: %q before %q", got[i-1].Name, got[i].Name)
		}
	}
	for _, want := range tensors {
		g, ok := f.Tensor(want.Name)
		if !ok {
			t.Errorf("tensor %q missing", want.Name)
			continue
		}
		if g.DType != want.DType || !reflect.DeepEqual(g.Shape, want.Shape) || !bytes.Equal(g.Data, want.Data) {
			t.Errorf("tensor %q: %v %v % x, want %v %v % x", want.Name, g.DType, g.Shape, g.Data, want.DType, want.Shape, want.Data)
		}
	}
	if again := encode(t, f.Tensors(), f.Metadata()); !bytes.Equal(again, data) {
		t.Error("re-encoding a parsed file changed its bytes")
	}
	if _, ok := f.Tensor("missing"); ok {
		t.Error("found a missing tensor")
	}
	// No metadata: no __metadata__ entry, and an empty map on reading.
	plain := encode(t, tensors[:1], nil)
	if bytes.Contains(plain, []byte(metadataKey)) {
		t.Error("empty metadata written")
	}
	if f, err := Parse(plain); err != nil || f.Metadata() == nil || len(f.Metadata()) != 0 {
		t.Errorf("no metadata: %v, %v", f.Metadata(), err)
	}
	// An empty file: "{}" padded.
	if f, err := Parse(encode(t, nil, nil)); err != nil || len(f.Tensors()) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	if err := Write(path, sampleTensors(), map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := f.Tensor("mask"); !ok || !bytes.Equal(g.Data, []byte{1, 0, 1}) {
		t.Errorf("mask = %v", g)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	bad := []TensorInfo{{Name: "x", DType: tensor.F32, Shape: []int64{2}, Data: f32s(1)}}
	if err := Write(filepath.Join(dir, "bad.safetensors"), bad, nil); err == nil {
		t.Error("Write with short data succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the good file", len(entries))
	}
}

func TestEncodeRejects(t *testing.T) {
	x := TensorInfo{Name: "x", DType: tensor.F32, Shape: []int64{1}, Data: f32s(1)}
	tests := []struct {
		name    string
		tensors []TensorInfo
		meta    map[string]string
		want    string
	}{
		{"duplicate", []TensorInfo{x, x}, nil, `tensor "x" appears twice`},
		{"reserved", []TensorInfo{{Name: metadataKey, DType: tensor.F32, Shape: []int64{1}, Data: f32s(1)}}, nil, "reserved"},
		{"quantized", []TensorInfo{{Name: "q", DType: tensor.Q8_0, Shape: []int64{32}, Data: make([]byte, 34)}}, nil, "cannot be stored in safetensors"},
		{"size", []TensorInfo{{Name: "x", DType: tensor.F32, Shape: []int64{2}, Data: f32s(1)}}, nil, "needs 8 bytes, data has 4"},
		{"negative", []TensorInfo{{Name: "x", DType: tensor.F32, Shape: []int64{-1}}}, nil, "negative"},
		{"utf8", []TensorInfo{{Name: "\xff", DType: tensor.F32, Shape: []int64{1}, Data: f32s(1)}}, nil, "not valid UTF-8"},
		{"meta utf8", nil, map[string]string{"k": "\xfe"}, "not valid UTF-8"},
	}
	for _, tt := range tests {
		err := Encode(&bytes.Buffer{}, tt.tensors, tt.meta)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// file assembles a safetensors file from a header string and data size.
func file(hdr string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	b = append(b, hdr...)
	return append(b, make([]byte, dataLen)...)
}

func TestBadFiles(t *testing.T) {
	huge := binary.LittleEndian.AppendUint64(nil, 1<<40)
	past := binary.LittleEndian.AppendUint64(nil, 100)
	past = append(past, `{"a":1}`...)
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr error
	}{
		{"empty", nil, "file is 0 bytes", ErrTruncated},
		{"truncated length", []byte{1, 0, 0}, "file is 3 bytes", ErrTruncated},
		{"header length past EOF", past, "header length 100 runs past the end of the 15-byte file", ErrTruncated},
		{"huge header length", huge, "header length 1099511627776 exceeds the limit", nil},
		{"zero header", file("", 0), `does not start with "{"`, nil},
		{"not an object", file(`["x"]`, 0), `does not start with "{"`, nil},
		{"invalid JSON", file(`{"a":{"dtype":"F32",}}`, 0), `tensor "a": header entry`, nil},
		{"unterminated JSON", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`, 4), "header JSON", nil},
		{"trailing data", file(`{} {}`, 0), "data after the closing brace", nil},
		{"bad utf8", file("{\"\xff\":{}}", 0), "not valid UTF-8", nil},
		{"entry not an object", file(`{"a":5}`, 0), `tensor "a": header entry`, nil},
		{"metadata not strings", file(`{"__metadata__":{"n":1}}`, 0), `"__metadata__": want an object of strings`, nil},
		{"duplicate tensor", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `tensor "a" appears twice`, nil},
		{"duplicate metadata", file(`{"__metadata__":{},"__metadata__":{}}`, 0), `"__metadata__" appears twice`, nil},
		{"missing dtype", file(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "a": no dtype`, nil},
		{"bad dtype", file(`{"a":{"dtype":"Q8_0","shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "a": tensor: unknown safetensors dtype "Q8_0"`, nil},
		{"missing shape", file(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), `tensor "a": no shape`, nil},
		{"negative dim", file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), `tensor "a": shape[0] is negative (-1)`, nil},
		{"fractional dim", file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), `tensor "a": shape[0]: 1.5 is not an int64`, nil},
		{"huge dim", file(`{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}}`, 4), `shape[0]: 1e30 is not an int64`, nil},
		{"overflow", file(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, 4), "overflows int64", nil},
		{"byte overflow", file(`{"a":{"dtype":"F64","shape":[2147483648,1073741824],"data_offsets":[0,4]}}`, 4), "byte size overflows", nil},
		{"offsets count", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4), "data_offsets has 1 values, want 2", nil},
		{"offsets reversed", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, 4), "not an increasing pair", nil},
		{"negative offset", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, 4), "not an increasing pair", nil},
		{"tensor past EOF", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 7), `tensor "a": data_offsets [0, 8] run past the end of the 7-byte data region`, ErrTruncated},
		{"size mismatch", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), `tensor "a": F32 [2] needs 8 bytes, data_offsets [0, 4] hold 4`, nil},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `tensor "b" (bytes 4..8) overlaps tensor "a" (ending at 8)`, nil},
		{"gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12), `bytes 4..8, between tensors "a" and "b", belong to no tensor`, nil},
		{"leading gap", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `bytes 0..4 belong to no tensor`, nil},
		{"trailing data", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "the data region has 8 bytes but the tensors cover 4", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded: %v", f.Tensors())
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "safetensors: ") {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
		})
	}
}

func TestEveryTruncation(t *testing.T) {
	data := encode(t, sampleTensors(), map[string]string{"format": "pt"})
	for n := 0; n < len(data); n++ {
		if _, err := Parse(data[:n]); err == nil {
			t.Fatalf("file cut to %d of %d bytes parsed", n, len(data))
		}
	}
}
