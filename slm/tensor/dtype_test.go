package tensor

import (
	"math"
	"strings"
	"testing"
)

func TestBlockLayouts(t *testing.T) {
	// Sizes from ggml-common.h (static_asserts there).
	want := map[DType][2]int{
		F32: {1, 4}, F16: {1, 2}, BF16: {1, 2}, F64: {1, 8},
		Q4_0: {32, 18}, Q4_1: {32, 20}, Q5_0: {32, 22}, Q5_1: {32, 24},
		Q8_0: {32, 34}, Q8_1: {32, 36},
		Q2_K: {256, 84}, Q3_K: {256, 110}, Q4_K: {256, 144}, Q5_K: {256, 176},
		Q6_K: {256, 210}, Q8_K: {256, 292},
		I8: {1, 1}, I16: {1, 2}, I32: {1, 4}, I64: {1, 8},
		U8: {1, 1}, U16: {1, 2}, U32: {1, 4}, U64: {1, 8}, Bool: {1, 1},
		F8_E4M3: {1, 1}, F8_E5M2: {1, 1},
	}
	for d := F32; d < numDTypes; d++ {
		w, ok := want[d]
		if !ok {
			t.Errorf("%v: no expected layout", d)
			continue
		}
		if d.BlockSize() != w[0] || d.BlockBytes() != w[1] {
			t.Errorf("%v: block %d×%dB, want %d×%dB", d, d.BlockSize(), d.BlockBytes(), w[0], w[1])
		}
	}
	if Invalid.BlockSize() != 0 || DType(200).BlockBytes() != 0 || DType(200).String() != "DType(200)" {
		t.Error("invalid dtype has a layout")
	}
}

func TestGGMLCodes(t *testing.T) {
	// ggml.h enum ggml_type.
	want := map[DType]uint32{F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9,
		Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13, Q6_K: 14, Q8_K: 15,
		I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, BF16: 30}
	for d, code := range want {
		if d.GGML() != code {
			t.Errorf("%v.GGML() = %d, want %d", d, d.GGML(), code)
		}
		got, err := FromGGML(code)
		if err != nil || got != d {
			t.Errorf("FromGGML(%d) = %v, %v; want %v", code, got, err, d)
		}
	}
	for _, d := range []DType{U8, Bool, F8_E4M3, Invalid} {
		if d.GGML() != math.MaxUint32 {
			t.Errorf("%v has ggml code %d", d, d.GGML())
		}
		if _, err := d.GGMLType(); err == nil {
			t.Errorf("%v.GGMLType() succeeded", d)
		}
	}
	for code, frag := range map[uint32]string{16: "IQ2_XXS", 4: "removed", 99: "unknown ggml type 99"} {
		_, err := FromGGML(code)
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("FromGGML(%d) error %v, want mention of %q", code, err, frag)
		}
	}
}

func TestSafetensorsNames(t *testing.T) {
	for _, name := range []string{"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL", "F8_E4M3", "F8_E5M2"} {
		d, err := FromSafetensors(name)
		if err != nil {
			t.Fatalf("FromSafetensors(%q): %v", name, err)
		}
		back, err := d.Safetensors()
		if err != nil || back != name {
			t.Errorf("%q -> %v -> %q, %v", name, d, back, err)
		}
	}
	for _, bad := range []string{"", "f32", "Q8_0", "FLOAT"} {
		if _, err := FromSafetensors(bad); err == nil {
			t.Errorf("FromSafetensors(%q) succeeded", bad)
		}
	}
	if _, err := Q4_K.Safetensors(); err == nil {
		t.Error("Q4_K.Safetensors() succeeded")
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		d       DType
		shape   []int64
		want    int64
		wantErr string
	}{
		{F32, []int64{64, 512}, 64 * 512 * 4, ""},
		{F32, nil, 4, ""},
		{BF16, []int64{3, 0, 5}, 0, ""},
		{Q8_0, []int64{64, 10}, 2 * 34 * 10, ""},
		{Q4_K, []int64{512, 3}, 2 * 144 * 3, ""},
		{Q6_K, []int64{256}, 210, ""},
		{Q4_0, []int64{48, 2}, 0, "not a multiple of the block size 32"},
		{Q4_0, nil, 0, "scalar"},
		{F32, []int64{4, -1}, 0, "negative"},
		{F32, []int64{1 << 32, 1 << 32}, 0, "overflows"},
		{F64, []int64{1 << 31, 1 << 30}, 0, "overflows"}, // elements fit, bytes do not
		{Invalid, []int64{1}, 0, "invalid dtype"},
	}
	for _, tt := range tests {
		got, err := Bytes(tt.d, tt.shape)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Bytes(%v, %v) = %d, %v; want error containing %q", tt.d, tt.shape, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Bytes(%v, %v) = %d, %v; want %d", tt.d, tt.shape, got, err, tt.want)
		}
	}
	if n, err := Q8_0.RowBytes(96); err != nil || n != 3*34 {
		t.Errorf("Q8_0.RowBytes(96) = %d, %v", n, err)
	}
	if _, err := Q8_0.RowBytes(33); err == nil {
		t.Error("Q8_0.RowBytes(33) succeeded")
	}
}
