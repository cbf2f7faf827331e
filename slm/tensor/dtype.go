// Package tensor describes the element types of model tensors: their
// storage layout (block size and bytes per block, following ggml's
// ggml-common.h), their codes in the GGUF and safetensors formats, and
// reference conversions between stored bytes and float32.
//
// Shapes passed to this package are in ggml order: shape[0] is the
// fastest-varying dimension (the length of a row). For block-quantized types
// the row length must be a multiple of the block size. For plain types the
// order does not matter.
package tensor

import (
	"fmt"
	"math"
	"math/bits"
)

// DType is the element type of a tensor. The zero value is Invalid.
type DType uint8

// Element types. The quantized types have the block layouts of ggml.
const (
	Invalid DType = iota
	F32
	F16
	BF16
	F64
	Q4_0
	Q4_1
	Q5_0
	Q5_1
	Q8_0
	Q8_1
	Q2_K
	Q3_K
	Q4_K
	Q5_K
	Q6_K
	Q8_K
	I8
	I16
	I32
	I64
	// The following types exist in safetensors files only; they have no
	// GGML code.
	U8
	U16
	U32
	U64
	Bool
	F8_E4M3
	F8_E5M2
	numDTypes
)

// QK_K is the number of elements in a K-quant super-block.
const QK_K = 256

// noGGML marks a type without a ggml code.
const noGGML = math.MaxUint32

type traits struct {
	name       string
	blockSize  int
	blockBytes int
	ggml       uint32 // noGGML if none
	st         string // safetensors name, "" if none
}

var dtypeTraits = [numDTypes]traits{
	Invalid: {"invalid", 0, 0, noGGML, ""},
	F32:     {"F32", 1, 4, 0, "F32"},
	F16:     {"F16", 1, 2, 1, "F16"},
	BF16:    {"BF16", 1, 2, 30, "BF16"},
	F64:     {"F64", 1, 8, 28, "F64"},
	Q4_0:    {"Q4_0", 32, 2 + 16, 2, ""},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16, 3, ""},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16, 6, ""},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16, 7, ""},
	Q8_0:    {"Q8_0", 32, 2 + 32, 8, ""},
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32, 9, ""},
	Q2_K:    {"Q2_K", QK_K, QK_K/16 + QK_K/4 + 2 + 2, 10, ""},
	Q3_K:    {"Q3_K", QK_K, QK_K/8 + QK_K/4 + 12 + 2, 11, ""},
	Q4_K:    {"Q4_K", QK_K, 2 + 2 + 12 + QK_K/2, 12, ""},
	Q5_K:    {"Q5_K", QK_K, 2 + 2 + 12 + QK_K/8 + QK_K/2, 13, ""},
	Q6_K:    {"Q6_K", QK_K, QK_K/2 + QK_K/4 + QK_K/16 + 2, 14, ""},
	Q8_K:    {"Q8_K", QK_K, 4 + QK_K + QK_K/16*2, 15, ""},
	I8:      {"I8", 1, 1, 24, "I8"},
	I16:     {"I16", 1, 2, 25, "I16"},
	I32:     {"I32", 1, 4, 26, "I32"},
	I64:     {"I64", 1, 8, 27, "I64"},
	U8:      {"U8", 1, 1, noGGML, "U8"},
	U16:     {"U16", 1, 2, noGGML, "U16"},
	U32:     {"U32", 1, 4, noGGML, "U32"},
	U64:     {"U64", 1, 8, noGGML, "U64"},
	Bool:    {"BOOL", 1, 1, noGGML, "BOOL"},
	F8_E4M3: {"F8_E4M3", 1, 1, noGGML, "F8_E4M3"},
	F8_E5M2: {"F8_E5M2", 1, 1, noGGML, "F8_E5M2"},
}

// ggmlNames names the ggml types this package does not support, so that
// errors can say which type a file uses.
var ggmlNames = map[uint32]string{
	4: "Q4_2 (removed)", 5: "Q4_3 (removed)",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
	21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 29: "IQ1_M",
	31: "Q4_0_4_4 (removed)", 32: "Q4_0_4_8 (removed)", 33: "Q4_0_8_8 (removed)",
	34: "TQ1_0", 35: "TQ2_0",
	36: "IQ4_NL_4_4 (removed)", 37: "IQ4_NL_4_8 (removed)", 38: "IQ4_NL_8_8 (removed)",
	39: "MXFP4",
}

// Valid reports whether d is a known element type.
func (d DType) Valid() bool { return d > Invalid && d < numDTypes }

// String returns the conventional name of the type ("F32", "Q4_K", ...).
func (d DType) String() string {
	if !d.Valid() {
		return fmt.Sprintf("DType(%d)", uint8(d))
	}
	return dtypeTraits[d].name
}

// BlockSize returns the number of elements in one storage block: 1 for
// plain types, 32 for Q4_0..Q8_1, 256 for the K-quants. It is 0 for an
// invalid type.
func (d DType) BlockSize() int {
	if !d.Valid() {
		return 0
	}
	return dtypeTraits[d].blockSize
}

// BlockBytes returns the number of bytes in one storage block (the element
// size for plain types). It is 0 for an invalid type.
func (d DType) BlockBytes() int {
	if !d.Valid() {
		return 0
	}
	return dtypeTraits[d].blockBytes
}

// Quantized reports whether d is a block-quantized type.
func (d DType) Quantized() bool { return d.BlockSize() > 1 }

// RowBytes returns the number of bytes that n consecutive elements occupy.
// n must be non-negative and a multiple of the block size.
func (d DType) RowBytes(n int) (int, error) {
	b, err := Bytes(d, []int64{int64(n)})
	if err != nil {
		return 0, err
	}
	if b > math.MaxInt {
		return 0, fmt.Errorf("tensor: %d elements of %v overflow int", n, d)
	}
	return int(b), nil
}

// NumElements returns the product of the dimensions of shape (1 for an
// empty shape, a scalar). Every dimension must be non-negative and the
// product must fit in an int64.
func NumElements(shape []int64) (int64, error) {
	n := uint64(1)
	for i, dim := range shape {
		if dim < 0 {
			return 0, fmt.Errorf("tensor: dimension %d is negative (%d)", i, dim)
		}
		hi, lo := bits.Mul64(n, uint64(dim))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("tensor: shape %v: element count overflows int64", shape)
		}
		n = lo
	}
	return int64(n), nil
}

// Bytes returns the storage size in bytes of a tensor of type d and the
// given shape (ggml order: shape[0] is the row length, which must be a
// multiple of d.BlockSize()). It fails on an invalid type, a negative
// dimension, or a size that overflows int64.
func Bytes(d DType, shape []int64) (int64, error) {
	if !d.Valid() {
		return 0, fmt.Errorf("tensor: invalid dtype %v", d)
	}
	n, err := NumElements(shape)
	if err != nil {
		return 0, err
	}
	t := dtypeTraits[d]
	if bs := int64(t.blockSize); bs > 1 {
		if len(shape) > 0 && shape[0]%bs != 0 {
			return 0, fmt.Errorf("tensor: %v row length %d is not a multiple of the block size %d", d, shape[0], bs)
		}
		if len(shape) == 0 {
			return 0, fmt.Errorf("tensor: %v scalar is not a whole block", d)
		}
	}
	blocks := uint64(n) / uint64(t.blockSize)
	hi, lo := bits.Mul64(blocks, uint64(t.blockBytes))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, fmt.Errorf("tensor: %v shape %v: byte size overflows int64", d, shape)
	}
	return int64(lo), nil
}

// FromGGML returns the type with ggml type code t (GGML_TYPE_*).
func FromGGML(t uint32) (DType, error) {
	for d := F32; d < numDTypes; d++ {
		if dtypeTraits[d].ggml == t {
			return d, nil
		}
	}
	if name, ok := ggmlNames[t]; ok {
		return Invalid, fmt.Errorf("tensor: unsupported ggml type %s (%d)", name, t)
	}
	return Invalid, fmt.Errorf("tensor: unknown ggml type %d", t)
}

// GGML returns the ggml type code of d, or math.MaxUint32 if d has none
// (the safetensors-only types and Invalid). See also GGMLType.
func (d DType) GGML() uint32 {
	if !d.Valid() {
		return noGGML
	}
	return dtypeTraits[d].ggml
}

// GGMLType returns the ggml type code of d, or an error if d has none.
func (d DType) GGMLType() (uint32, error) {
	c := d.GGML()
	if c == noGGML {
		return 0, fmt.Errorf("tensor: dtype %v has no ggml type", d)
	}
	return c, nil
}

// FromSafetensors returns the type named s in a safetensors header
// ("F32", "BF16", "I64", ...).
func FromSafetensors(s string) (DType, error) {
	for d := F32; d < numDTypes; d++ {
		if dtypeTraits[d].st != "" && dtypeTraits[d].st == s {
			return d, nil
		}
	}
	return Invalid, fmt.Errorf("tensor: unknown safetensors dtype %q", s)
}

// Safetensors returns the name of d in a safetensors header, or an error if
// the format cannot store d (the quantized types).
func (d DType) Safetensors() (string, error) {
	if !d.Valid() || dtypeTraits[d].st == "" {
		return "", fmt.Errorf("tensor: dtype %v cannot be stored in safetensors", d)
	}
	return dtypeTraits[d].st, nil
}
