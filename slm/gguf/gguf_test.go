package gguf

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

func mustArray(t testing.TB, x any) Value {
	t.Helper()
	v, err := Array(x)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sampleMeta has one value of every type, including nested arrays.
func sampleMeta(t testing.TB) []KV {
	inner1 := Strings([]string{"a", "bc"})
	inner2 := Float32s([]float32{1.5})
	nested := mustArray(t, []Value{inner1, inner2, mustArray(t, []Value{Int32s([]int32{-1})})})
	return []KV{
		{"general.architecture", String("llama")},
		{"general.alignment", Uint32(64)},
		{"u8", Uint8(200)}, {"i8", Int8(-100)}, {"u16", Uint16(60000)}, {"i16", Int16(-30000)},
		{"u32", Uint32(4e9)}, {"i32", Int32(-2e9)}, {"u64", Uint64(1 << 63)}, {"i64", Int64(-1 << 62)},
		{"f32", Float32(0.1)}, {"f64", Float64(math.Pi)}, {"b", Bool(true)}, {"empty", String("")},
		{"unicode", String("naïve ▁token \x00 end")},
		{"tokens", Strings([]string{"<unk>", "<s>", "▁the", ""})},
		{"scores", Float32s([]float32{0, -1.5, float32(math.Inf(-1))})},
		{"types", Int32s([]int32{2, 3, 1})},
		{"u8s", mustArray(t, []uint8{1, 2, 255})}, {"i8s", mustArray(t, []int8{-1})},
		{"u16s", mustArray(t, []uint16{7})}, {"i16s", mustArray(t, []int16{-7})},
		{"u32s", Uint32s([]uint32{9})}, {"u64s", mustArray(t, []uint64{1 << 40})},
		{"i64s", mustArray(t, []int64{-5, 5})}, {"f64s", mustArray(t, []float64{2.5})},
		{"bools", mustArray(t, []bool{true, false})}, {"none", Strings([]string{})},
		{"nested", nested},
	}
}

func f32Bytes(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	if err := tensor.Quantize(b, xs, tensor.F32); err != nil {
		panic(err)
	}
	return b
}

func sampleTensors(t testing.TB) []WriteTensor {
	x := make([]float32, 64)
	for i := range x {
		x[i] = float32(i) - 31.5
	}
	q8 := make([]byte, 2*34)
	if err := tensor.Quantize(q8, x, tensor.Q8_0); err != nil {
		t.Fatal(err)
	}
	f16 := make([]byte, 2*6)
	tensor.Quantize(f16, x[:6], tensor.F16)
	q4k := bytes.Repeat([]byte{0x11}, 144*2)
	return []WriteTensor{
		{Name: "token_embd.weight", Shape: []int64{2, 3}, Type: tensor.F32, Data: f32Bytes(1, 2, 3, 4, 5, 6)},
		{Name: "blk.0.attn_q.weight", Shape: []int64{32, 2}, Type: tensor.Q8_0, Data: q8},
		{Name: "norm", Shape: []int64{6}, Type: tensor.F16, Data: f16},
		{Name: "blk.0.ffn_down.weight", Shape: []int64{256, 1, 2, 1}, Type: tensor.Q4_K, Data: q4k},
	}
}

func encode(t testing.TB, meta []KV, tensors []WriteTensor) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, meta, tensors); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	meta := sampleMeta(t)
	tensors := sampleTensors(t)
	data := encode(t, meta, tensors)
	f, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if f.Version != 3 || f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	if len(f.Meta) != len(meta) {
		t.Fatalf("%d metadata entries, want %d", len(f.Meta), len(meta))
	}
	for i, kv := range meta {
		got := f.Meta[i]
		want := kv
		if want.Key == "none" { // an empty slice comes back non-nil
			want.Value = Strings([]string{})
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("meta %d: got %v = %v, want %v = %v", i, got.Key, got.Value, want.Key, want.Value)
		}
	}
	if len(f.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(tensors))
	}
	for i, wt := range tensors {
		b, ti, err := f.TensorData(wt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ti, f.Tensors[i]) {
			t.Errorf("tensor %d info differs from Tensors[%d]", i, i)
		}
		if ti.Name != wt.Name || !reflect.DeepEqual(ti.Shape, wt.Shape) || ti.Type != wt.Type || ti.Offset%64 != 0 {
			t.Errorf("tensor %d: %+v, want %s %v %v", i, ti, wt.Name, wt.Shape, wt.Type)
		}
		if !bytes.Equal(b, wt.Data) {
			t.Errorf("tensor %q: data differs", wt.Name)
		}
	}
	// Writing what was read gives the same bytes.
	again := encode(t, f.Meta, writeTensorsOf(t, f))
	if !bytes.Equal(again, data) {
		t.Error("re-written file differs from the original")
	}
}

func writeTensorsOf(t testing.TB, f *File) []WriteTensor {
	out := make([]WriteTensor, len(f.Tensors))
	for i, ti := range f.Tensors {
		b, _, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = WriteTensor{Name: ti.Name, Shape: ti.Shape, Type: ti.Type, Data: b}
	}
	return out
}

func TestVersion2AndDefaults(t *testing.T) {
	data := encode(t, []KV{{"a", Uint32(1)}}, []WriteTensor{{Name: "w", Shape: []int64{3}, Type: tensor.F32, Data: f32Bytes(1, 2, 3)}})
	le.PutUint32(data[4:], 2)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 2 || f.Alignment != DefaultAlignment || f.DataOffset%DefaultAlignment != 0 {
		t.Errorf("version %d, alignment %d, data at %d", f.Version, f.Alignment, f.DataOffset)
	}
	// No tensors and no padding at all is a valid file.
	hdr := encode(t, nil, nil)
	if f, err := Parse(hdr[:24]); err != nil || len(f.Tensors) != 0 {
		t.Errorf("header-only file: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	f, err := Parse(encode(t, sampleMeta(t), nil))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.String("general.architecture"); err != nil || s != "llama" {
		t.Errorf("String = %q, %v", s, err)
	}
	for key, want := range map[string]uint64{"u8": 200, "u16": 60000, "u32": 4e9, "u64": 1 << 63, "general.alignment": 64} {
		if u, err := f.Uint(key); err != nil || u != want {
			t.Errorf("Uint(%q) = %d, %v", key, u, err)
		}
	}
	for key, want := range map[string]int64{"i8": -100, "i16": -30000, "i32": -2e9, "i64": -1 << 62, "u32": 4e9} {
		if i, err := f.Int(key); err != nil || i != want {
			t.Errorf("Int(%q) = %d, %v", key, i, err)
		}
	}
	if x, err := f.Float("f32"); err != nil || x != float64(float32(0.1)) {
		t.Errorf("Float(f32) = %v, %v", x, err)
	}
	if x, err := f.Float("u8"); err != nil || x != 200 {
		t.Errorf("Float(u8) = %v, %v", x, err)
	}
	if b, err := f.Bool("b"); err != nil || !b {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if s, err := f.Strings("tokens"); err != nil || len(s) != 4 || s[2] != "▁the" {
		t.Errorf("Strings = %q, %v", s, err)
	}
	if s, err := f.Float32s("scores"); err != nil || len(s) != 3 || s[1] != -1.5 {
		t.Errorf("Float32s = %v, %v", s, err)
	}
	if s, err := f.Int32s("types"); err != nil || !reflect.DeepEqual(s, []int32{2, 3, 1}) {
		t.Errorf("Int32s = %v, %v", s, err)
	}
	if s, err := f.Int32s("u8s"); err != nil || !reflect.DeepEqual(s, []int32{1, 2, 255}) {
		t.Errorf("Int32s(u8s) = %v, %v", s, err)
	}
	if s, err := f.Ints("i64s"); err != nil || !reflect.DeepEqual(s, []int64{-5, 5}) {
		t.Errorf("Ints = %v, %v", s, err)
	}

	errTests := []struct {
		call func() error
		want string
	}{
		{func() error { _, err := f.String("missing"); return err }, `key "missing": not found`},
		{func() error { _, err := f.String("u8"); return err }, `key "u8" has type uint8, want string`},
		{func() error { _, err := f.Uint("i8"); return err }, `key "i8" is negative`},
		{func() error { _, err := f.Uint("f32"); return err }, `want an unsigned integer`},
		{func() error { _, err := f.Int("u64"); return err }, `overflows int64`},
		{func() error { _, err := f.Float("tokens"); return err }, `has type array of string, want a number`},
		{func() error { _, err := f.Bool("u8"); return err }, `want bool`},
		{func() error { _, err := f.Strings("scores"); return err }, `array of float32, want array of string`},
		{func() error { _, err := f.Float32s("f32"); return err }, `type float32, want array of float32`},
		{func() error { _, err := f.Int32s("u64s"); return err }, `overflows int32`},
		{func() error { _, err := f.Ints("scores"); return err }, `want array of integers`},
	}
	for _, tt := range errTests {
		err := tt.call()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got error %v, want %q", err, tt.want)
		}
	}
	if _, err := f.Uint("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key error %v is not ErrNotFound", err)
	}
	if _, _, err := f.TensorData("missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor error %v is not ErrNotFound", err)
	}
	if v, ok := f.Get("nested"); !ok || v.Len() != 3 || !strings.HasPrefix(v.String(), "[3]array{") {
		t.Errorf("nested = %v", v)
	}
}

func TestWriteRejects(t *testing.T) {
	good := WriteTensor{Name: "w", Shape: []int64{2}, Type: tensor.F32, Data: f32Bytes(1, 2)}
	tests := []struct {
		name    string
		meta    []KV
		tensors []WriteTensor
		want    string
	}{
		{"dup key", []KV{{"a", Uint8(1)}, {"a", Uint8(2)}}, nil, `"a" appears twice`},
		{"empty key", []KV{{"", Uint8(1)}}, nil, "length 0"},
		{"zero value", []KV{{"a", Value{}}}, nil, "invalid (zero) value"},
		{"bad alignment", []KV{{KeyAlignment, Uint32(24)}}, nil, "not a power of two"},
		{"alignment type", []KV{{KeyAlignment, Uint64(32)}}, nil, "want uint32"},
		{"dup tensor", nil, []WriteTensor{good, good}, `"w" appears twice`},
		{"size", nil, []WriteTensor{{Name: "w", Shape: []int64{3}, Type: tensor.F32, Data: f32Bytes(1, 2)}}, "needs 12 bytes, data has 8"},
		{"rank", nil, []WriteTensor{{Name: "w", Shape: []int64{1, 1, 1, 1, 2}, Type: tensor.F32, Data: f32Bytes(1, 2)}}, "5 dimensions"},
		{"zero dim", nil, []WriteTensor{{Name: "w", Shape: []int64{0}, Type: tensor.F32}}, "dimension 0 is 0"},
		{"dtype", nil, []WriteTensor{{Name: "w", Shape: []int64{1}, Type: tensor.U8, Data: []byte{1}}}, "no ggml type"},
		{"long name", nil, []WriteTensor{{Name: strings.Repeat("x", 65), Shape: []int64{2}, Type: tensor.F32, Data: f32Bytes(1, 2)}}, "name length 65"},
	}
	for _, tt := range tests {
		err := Write(&bytes.Buffer{}, tt.meta, tt.tensors)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := Array([]Value{String("x")}); err == nil {
		t.Error("Array of non-array Values succeeded")
	}
	if _, err := Array([]complex64{1}); err == nil {
		t.Error("Array of complex64 succeeded")
	}
}

func TestOpenWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	tensors := sampleTensors(t)
	if err := WriteFile(path, sampleMeta(t), tensors); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, ti, err := f.TensorData("norm")
	if err != nil || ti.Type != tensor.F16 || !bytes.Equal(b, tensors[2].Data) {
		t.Errorf("TensorData(norm) = %v, %v, %v", ti, err, b)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.TensorData("norm"); err == nil {
		t.Error("TensorData after Close succeeded")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A failed write leaves neither the file nor a temporary file.
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	if err := WriteFile(bad, []KV{{"a", Value{}}}, nil); err == nil {
		t.Error("WriteFile with a bad value succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(bad)); len(entries) != 0 {
		t.Errorf("failed write left %v", entries)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing.gguf")); err == nil {
		t.Error("Open of a missing file succeeded")
	}
}
