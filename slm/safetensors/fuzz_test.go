package safetensors

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/usersim/usersim/slm/tensor"
)

func FuzzParseSafetensors(f *testing.F) {
	f.Add(encode(f, sampleTensors(), map[string]string{"format": "pt"}))
	f.Add(encode(f, []TensorInfo{{Name: "w", DType: tensor.F32, Shape: []int64{2, 2}, Data: make([]byte, 16)}}, nil))
	f.Add(encode(f, nil, nil))
	f.Add(file(`{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[],"data_offsets":[4,8]}}`, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		var total int64
		for _, x := range file.Tensors() {
			n, err := tensor.Bytes(x.DType, x.Shape)
			if err != nil || n != int64(len(x.Data)) {
				t.Fatalf("tensor %q: %d bytes for %v %v (%v)", x.Name, len(x.Data), x.DType, x.Shape, err)
			}
			total += n
		}
		if total != int64(len(data))-file.DataOffset {
			t.Fatalf("tensors cover %d bytes of a %d-byte data region", total, int64(len(data))-file.DataOffset)
		}
		// What parses can be written, and reads back the same.
		var buf bytes.Buffer
		if err := Encode(&buf, file.Tensors(), file.Metadata()); err != nil {
			t.Fatalf("re-writing a parsed file: %v", err)
		}
		again, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("re-parsing a written file: %v", err)
		}
		if !reflect.DeepEqual(file.Metadata(), again.Metadata()) {
			t.Fatalf("metadata %v, want %v", again.Metadata(), file.Metadata())
		}
		a, b := file.Tensors(), again.Tensors()
		if len(a) != len(b) {
			t.Fatalf("%d tensors, want %d", len(b), len(a))
		}
		for i := range a {
			if a[i].Name != b[i].Name || a[i].DType != b[i].DType || !reflect.DeepEqual(a[i].Shape, b[i].Shape) || !bytes.Equal(a[i].Data, b[i].Data) {
				t.Fatalf("tensor %d: %+v, want %+v", i, b[i], a[i])
			}
		}
		var buf2 bytes.Buffer
		if err := Encode(&buf2, again.Tensors(), again.Metadata()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
			t.Fatal("writing is not idempotent")
		}
	})
}
