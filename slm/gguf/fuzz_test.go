package gguf

import (
	"bytes"
	"math"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

// assertSameFile checks that g holds the same metadata (bit for bit) and
// the same tensors (name, shape, type, bytes) as f, in the same order.
func assertSameFile(t testing.TB, f, g *File) {
	t.Helper()
	if len(f.Meta) != len(g.Meta) || len(f.Tensors) != len(g.Tensors) || f.Alignment != g.Alignment {
		t.Fatalf("%d keys, %d tensors, alignment %d; want %d, %d, %d",
			len(g.Meta), len(g.Tensors), g.Alignment, len(f.Meta), len(f.Tensors), f.Alignment)
	}
	for i := range f.Meta {
		if f.Meta[i].Key != g.Meta[i].Key || !sameValue(f.Meta[i].Value, g.Meta[i].Value) {
			t.Fatalf("key %d: %q = %v, want %q = %v", i, g.Meta[i].Key, g.Meta[i].Value, f.Meta[i].Key, f.Meta[i].Value)
		}
	}
	for i, ti := range f.Tensors {
		tg := g.Tensors[i]
		if ti.Name != tg.Name || ti.Type != tg.Type || !equalShape(ti.Shape, tg.Shape) || ti.Size != tg.Size {
			t.Fatalf("tensor %d: %+v, want %+v", i, tg, ti)
		}
		a, _, err1 := f.TensorData(ti.Name)
		b, _, err2 := g.TensorData(ti.Name)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("tensor %q: data differs (%v, %v)", ti.Name, err1, err2)
		}
	}
}

// sameValue compares values bit for bit (so NaN equals the same NaN).
func sameValue(a, b Value) bool {
	if a.typ != b.typ || a.elem != b.elem {
		return false
	}
	if a.typ != TypeArray {
		switch x := a.v.(type) {
		case float32:
			return math.Float32bits(x) == math.Float32bits(b.v.(float32))
		case float64:
			return math.Float64bits(x) == math.Float64bits(b.v.(float64))
		}
		return a.v == b.v
	}
	if a.Len() != b.Len() {
		return false
	}
	for i := 0; i < a.Len(); i++ {
		if !sameValue(a.index(i), b.index(i)) {
			return false
		}
	}
	return true
}

func FuzzParseGGUF(f *testing.F) {
	f.Add(encode(f, sampleMeta(f), sampleTensors(f)))
	f.Add(encode(f, []KV{{"general.architecture", String("llama")}, {"n", Uint32(3)}},
		[]WriteTensor{{Name: "w", Shape: []int64{2, 2}, Type: tensor.F32, Data: make([]byte, 16)}}))
	small := encode(f, []KV{{"a", Strings([]string{"x", "yz"})}}, []WriteTensor{
		{Name: "q", Shape: []int64{32}, Type: tensor.Q8_0, Data: make([]byte, 34)},
		{Name: "k", Shape: []int64{256}, Type: tensor.Q6_K, Data: make([]byte, 210)},
	})
	f.Add(small)
	v2 := bytes.Clone(small)
	le.PutUint32(v2[4:], 2)
	f.Add(v2)
	f.Add(encode(f, nil, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		// Every tensor's data is reachable.
		for _, ti := range file.Tensors {
			b, _, err := file.TensorData(ti.Name)
			if err != nil || int64(len(b)) != ti.Size {
				t.Fatalf("TensorData(%q): %d bytes, %v", ti.Name, len(b), err)
			}
		}
		// What parses can be written, and reads back the same.
		var buf bytes.Buffer
		if err := Write(&buf, file.Meta, writeTensorsOf(t, file)); err != nil {
			t.Fatalf("re-writing a parsed file: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parsing a written file: %v", err)
		}
		assertSameFile(t, file, again)
		var buf2 bytes.Buffer
		if err := Write(&buf2, again.Meta, writeTensorsOf(t, again)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("writing is not idempotent")
		}
	})
}
