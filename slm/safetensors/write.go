package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/slm/tensor"
)

// Write writes a safetensors file atomically (see package atomicfile):
// readers of path see the old file or the complete new one. See Encode.
func Write(path string, tensors []TensorInfo, metadata map[string]string) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return Encode(w, tensors, metadata) })
}

// Encode writes tensors, sorted by name with contiguous data, and the
// metadata (omitted when empty) in the safetensors format. The header is
// padded with spaces to a multiple of 8 bytes, as the reference
// implementation does, so that the data region is 8-byte aligned.
func Encode(w io.Writer, tensors []TensorInfo, metadata map[string]string) error {
	hdr, order, err := header(tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	bw.Write(n[:])
	bw.Write(hdr)
	for _, i := range order {
		bw.Write(tensors[i].Data)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

func quote(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // cannot fail for a string
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// header validates the tensors and returns the padded JSON header and the
// order in which to write the tensors' data.
func header(tensors []TensorInfo, metadata map[string]string) ([]byte, []int, error) {
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return tensors[order[a]].Name < tensors[order[b]].Name })

	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		h.Write(quote(metadataKey))
		h.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(metadata[k]) {
				return nil, nil, fmt.Errorf("metadata %q: not valid UTF-8", k)
			}
			if i > 0 {
				h.WriteByte(',')
			}
			h.Write(quote(k))
			h.WriteByte(':')
			h.Write(quote(metadata[k]))
		}
		h.WriteByte('}')
	}
	var off int64
	for k, i := range order {
		t := tensors[i]
		if k > 0 && t.Name == tensors[order[k-1]].Name {
			return nil, nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		if t.Name == metadataKey {
			return nil, nil, fmt.Errorf("tensor name %q is reserved", metadataKey)
		}
		if !utf8.ValidString(t.Name) {
			return nil, nil, fmt.Errorf("tensor %q: name is not valid UTF-8", t.Name)
		}
		dt, err := t.DType.Safetensors()
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		nbytes, err := tensor.Bytes(t.DType, t.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if int64(len(t.Data)) != nbytes {
			return nil, nil, fmt.Errorf("tensor %q: %v %v needs %d bytes, data has %d", t.Name, t.DType, t.Shape, nbytes, len(t.Data))
		}
		if h.Len() > 1 {
			h.WriteByte(',')
		}
		h.Write(quote(t.Name))
		h.WriteString(`:{"dtype":"`)
		h.WriteString(dt)
		h.WriteString(`","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.FormatInt(d, 10))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, off+nbytes)
		off += nbytes
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header of %d bytes exceeds the limit of %d", h.Len(), MaxHeaderSize)
	}
	return h.Bytes(), order, nil
}
