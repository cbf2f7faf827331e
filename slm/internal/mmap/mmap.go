// Package mmap maps files read-only into memory, falling back to reading
// them whole where memory mapping is not available.
package mmap

import (
	"fmt"
	"os"
)

// File is a read-only view of a whole file.
type File struct {
	data   []byte
	mapped bool
}

// Open maps the file at path. An empty file gives an empty Data.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 {
		return &File{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: file of %d bytes too large to map", path, size)
	}
	data, err := mapFile(f, int(size))
	if err == nil {
		return &File{data: data, mapped: true}, nil
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &File{data: data}, nil
}

// Data returns the file's bytes. They must not be modified and are invalid
// after Close.
func (f *File) Data() []byte { return f.data }

// Mapped reports whether the data is memory-mapped (rather than read).
func (f *File) Mapped() bool { return f.mapped }

// Close unmaps the file. Calling Close more than once is harmless.
func (f *File) Close() error {
	data, mapped := f.data, f.mapped
	f.data, f.mapped = nil, false
	if mapped {
		return unmap(data)
	}
	return nil
}
