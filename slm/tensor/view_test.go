package tensor

import (
	"math"
	"testing"
)

func TestFloat32View(t *testing.T) {
	buf := make([]byte, 4*4+1)
	x := []float32{1.5, -2, float32(math.Inf(1)), 0.1}
	if err := Quantize(buf[:16], x, F32); err != nil {
		t.Fatal(err)
	}
	v, ok := Float32View(buf[:16])
	if !ok || len(v) != 4 {
		t.Fatalf("view of aligned bytes: %v, %v", v, ok)
	}
	for i := range x {
		if v[i] != x[i] {
			t.Errorf("v[%d] = %g, want %g", i, v[i], x[i])
		}
	}
	if _, ok := Float32View(buf[1:17]); ok {
		t.Error("view of misaligned bytes succeeded")
	}
	if _, ok := Float32View(buf[:15]); ok {
		t.Error("view of 15 bytes succeeded")
	}
	if v, ok := Float32View(nil); !ok || len(v) != 0 {
		t.Error("view of no bytes failed")
	}
}
