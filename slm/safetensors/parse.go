package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/usersim/usersim/slm/tensor"
)

// Parse parses and validates a safetensors file held in data. Tensor data
// aliases data.
func Parse(data []byte) (*File, error) {
	f, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

func parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("file is %d bytes, too short for the 8-byte header length: %w", len(data), ErrTruncated)
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("header length %d runs past the end of the %d-byte file: %w", n, len(data), ErrTruncated)
	}
	hdr := data[8 : 8+n]
	if n == 0 || hdr[0] != '{' {
		return nil, errors.New(`header does not start with "{"`)
	}
	if !utf8.Valid(hdr) {
		return nil, errors.New("header is not valid UTF-8")
	}
	start := int64(8 + n)
	size := int64(len(data)) - start
	raw, meta, err := parseHeader(hdr)
	if err != nil {
		return nil, err
	}
	tensors := make([]TensorInfo, len(raw))
	entries := make([]entry, len(raw))
	for i, r := range raw {
		t, e, err := r.validate(size)
		if err != nil {
			return nil, err
		}
		t.Data = data[start+e.begin : start+e.end : start+e.end]
		tensors[i], entries[i] = t, e
	}
	if err := checkLayout(entries, size); err != nil {
		return nil, err
	}
	f := newFile(tensors, meta)
	f.DataOffset = start
	return f, nil
}

// rawEntry is a tensor's header entry as written.
type rawEntry struct {
	name        string
	DType       *string       `json:"dtype"`
	Shape       []json.Number `json:"shape"`
	DataOffsets []json.Number `json:"data_offsets"`
}

func parseHeader(hdr []byte) ([]rawEntry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("header JSON: not an object (%v)", err)
	}
	var (
		entries []rawEntry
		meta    map[string]string
		seen    = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("header JSON: %w", err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("header JSON: unexpected %v at offset %d", tok, dec.InputOffset())
		}
		if seen[name] {
			if name == metadataKey {
				return nil, nil, fmt.Errorf("header JSON: %q appears twice", metadataKey)
			}
			return nil, nil, fmt.Errorf("tensor %q appears twice in the header", name)
		}
		seen[name] = true
		if name == metadataKey {
			if err := dec.Decode(&meta); err != nil {
				return nil, nil, fmt.Errorf("header %q: want an object of strings: %w", metadataKey, err)
			}
			continue
		}
		e := rawEntry{name: name}
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: header entry: %w", name, err)
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("header JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("header JSON: data after the closing brace at offset %d", dec.InputOffset())
	}
	return entries, meta, nil
}

func parseInt(n json.Number) (int64, error) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not an int64", n)
	}
	return v, nil
}

// validate converts a header entry, checking dtype, shape and byte range
// against a data region of size bytes.
func (r rawEntry) validate(size int64) (TensorInfo, entry, error) {
	bad := func(format string, args ...any) (TensorInfo, entry, error) {
		return TensorInfo{}, entry{}, fmt.Errorf("tensor %q: "+format, append([]any{r.name}, args...)...)
	}
	if r.DType == nil {
		return bad("no dtype")
	}
	dt, err := tensor.FromSafetensors(*r.DType)
	if err != nil {
		return bad("%v", err)
	}
	if r.Shape == nil {
		return bad("no shape")
	}
	shape := make([]int64, len(r.Shape))
	for i, n := range r.Shape {
		v, err := parseInt(n)
		if err != nil {
			return bad("shape[%d]: %v", i, err)
		}
		if v < 0 {
			return bad("shape[%d] is negative (%d)", i, v)
		}
		shape[i] = v
	}
	nbytes, err := tensor.Bytes(dt, shape)
	if err != nil {
		return bad("%v", err)
	}
	if len(r.DataOffsets) != 2 {
		return bad("data_offsets has %d values, want 2", len(r.DataOffsets))
	}
	begin, err := parseInt(r.DataOffsets[0])
	if err != nil {
		return bad("data_offsets[0]: %v", err)
	}
	end, err := parseInt(r.DataOffsets[1])
	if err != nil {
		return bad("data_offsets[1]: %v", err)
	}
	if begin < 0 || end < begin {
		return bad("data_offsets [%d, %d] are not an increasing pair of non-negative offsets", begin, end)
	}
	if end > size {
		return TensorInfo{}, entry{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data region: %w", r.name, begin, end, size, ErrTruncated)
	}
	if end-begin != nbytes {
		return bad("%v %v needs %d bytes, data_offsets [%d, %d] hold %d", dt, shape, nbytes, begin, end, end-begin)
	}
	return TensorInfo{Name: r.name, DType: dt, Shape: shape}, entry{r.name, begin, end}, nil
}
