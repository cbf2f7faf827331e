package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Standard file names of a Hugging Face model directory.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// Set is the tensors of a model directory, from one file or from shards.
type Set struct {
	files  []*File
	paths  []string
	owner  map[string]int // tensor name -> index into files
	names  []string
	closed bool
}

// index is model.safetensors.index.json.
type index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// OpenDir opens the safetensors weights of a Hugging Face model directory:
// model.safetensors if present, otherwise model.safetensors.index.json and
// the shards its weight_map names. Every tensor the index lists must be in
// the shard it names, and every tensor in a shard must be listed there.
func OpenDir(dir string) (*Set, error) {
	s, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return s, nil
}

func openDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err == nil {
		f, err := Open(single)
		if err != nil {
			return nil, err
		}
		s := &Set{files: []*File{f}, paths: []string{single}, owner: map[string]int{}}
		for _, t := range f.Tensors() {
			s.owner[t.Name] = 0
		}
		s.names = f.Names()
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}

	idxPath := filepath.Join(dir, IndexFile)
	raw, err := os.ReadFile(idxPath)
	if errors.Is(err, fs.ErrNotExist) {
		found, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
		for i := range found {
			found[i] = filepath.Base(found[i])
		}
		msg := fmt.Sprintf("%s: no %s or %s", dir, SingleFile, IndexFile)
		if len(found) > 0 {
			msg += fmt.Sprintf(" (found %s)", strings.Join(found, ", "))
		}
		return nil, fmt.Errorf("%s: %w", msg, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var idx index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w", idxPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: no weight_map (or an empty one)", idxPath)
	}

	s := &Set{owner: map[string]int{}}
	shardIndex := map[string]int{}
	names := make([]string, 0, len(idx.WeightMap))
	for name := range idx.WeightMap {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		shard := idx.WeightMap[name]
		if shard == "" || shard != filepath.Base(shard) || shard == "." || shard == ".." || strings.ContainsAny(shard, `/\`) {
			s.Close()
			return nil, fmt.Errorf("%s: tensor %q: shard %q is not a file name in the model directory", idxPath, name, shard)
		}
		k, ok := shardIndex[shard]
		if !ok {
			p := filepath.Join(dir, shard)
			f, err := Open(p)
			if err != nil {
				s.Close()
				if errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("%s: shard %q (holding tensor %q) is missing: %w", idxPath, shard, name, err)
				}
				return nil, err
			}
			k = len(s.files)
			shardIndex[shard] = k
			s.files = append(s.files, f)
			s.paths = append(s.paths, p)
		}
		if _, ok := s.files[k].Tensor(name); !ok {
			s.Close()
			return nil, fmt.Errorf("%s: tensor %q is not in shard %q: %w", idxPath, name, shard, ErrNotFound)
		}
		s.owner[name] = k
	}
	for k, f := range s.files {
		for _, t := range f.Tensors() {
			if owner, ok := s.owner[t.Name]; !ok || owner != k {
				s.Close()
				return nil, fmt.Errorf("%s: shard %q holds tensor %q, which the index does not assign to it", idxPath, filepath.Base(s.paths[k]), t.Name)
			}
		}
	}
	s.names = names
	return s, nil
}

// Tensor returns the named tensor, from whichever file holds it.
func (s *Set) Tensor(name string) (TensorInfo, bool) {
	k, ok := s.owner[name]
	if !ok || s.closed {
		return TensorInfo{}, false
	}
	return s.files[k].Tensor(name)
}

// Names returns the names of all tensors, sorted. The slice is shared.
func (s *Set) Names() []string { return s.names }

// Paths returns the files the tensors come from.
func (s *Set) Paths() []string { return s.paths }

// Close closes every file of the set.
func (s *Set) Close() error {
	s.closed = true
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
