package slm

import (
	"strings"
	"testing"
)

func TestInfoSmolLM2Shape(t *testing.T) {
	m, err := New(smolConfig(30))
	if err != nil {
		t.Fatal(err)
	}
	in := m.Info()
	// SmolLM2-135M's published parameter count.
	if in.Params != 134515008 {
		t.Errorf("params %d, want 134515008", in.Params)
	}
	if in.Bytes != 4*134515008 {
		t.Errorf("bytes %d, want %d", in.Bytes, 4*134515008)
	}
	if len(in.DTypes) != 1 || in.DTypes[0].DType != "F32" || in.DTypes[0].Tensors != 1+30*9+1 {
		t.Errorf("dtypes %+v", in.DTypes)
	}
	if in.KVBytesPerToken != 30*2*192*4 {
		t.Errorf("kv bytes per token %d", in.KVBytesPerToken)
	}
	if err := m.QuantizeQ8_0(); err != nil {
		t.Fatal(err)
	}
	q := m.Info()
	if q.Params != in.Params {
		t.Errorf("Q8_0 params %d, want %d", q.Params, in.Params)
	}
	// Q8_0: 34 bytes per 32 weights; norms stay F32.
	norms := int64(61 * 576)
	if want := (in.Params-norms)/32*34 + norms*4; q.Bytes != want {
		t.Errorf("Q8_0 bytes %d, want %d", q.Bytes, want)
	}
	if s := q.String(); !strings.Contains(s, "Q8_0") || !strings.Contains(s, "134.52 M") {
		t.Errorf("String:\n%s", s)
	}
}
