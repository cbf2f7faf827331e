package tensor

import (
	"encoding/binary"
	"unsafe"
)

// littleEndian reports whether the host stores integers little-endian, as
// GGUF and safetensors data are.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Float32View returns b reinterpreted as float32 values without copying, or
// false when that is not possible: b's length is not a multiple of 4, its
// address is not 4-byte aligned, or the host is big-endian. The view
// shares b's memory (for a memory-mapped file: read-only, valid until the
// file is closed); otherwise decode with Dequantize(dst, b, F32).
func Float32View(b []byte) ([]float32, bool) {
	if !littleEndian || len(b)%4 != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 != 0 {
		return nil, false
	}
	if len(b) == 0 {
		return []float32{}, true
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4), true
}
