package lora

import (
	"fmt"
	"slices"
	"sync"
)

// Set holds several adapters of one base by name (one per persona, say).
// Adapters share nothing with the base but its dimensions, so adding one
// costs its own megabytes, never a copy of the model. A Set is safe for
// concurrent use.
type Set struct {
	base Base
	mu   sync.RWMutex
	m    map[string]*Adapter
}

// NewSet returns an empty set for adapters of base.
func NewSet(base Base) (*Set, error) {
	if err := base.Validate(); err != nil {
		return nil, err
	}
	return &Set{base: base, m: map[string]*Adapter{}}, nil
}

// Base returns the dimensions the set's adapters share.
func (s *Set) Base() Base { return s.base }

// Add stores a under name, replacing any adapter of that name. It fails with
// ErrBaseMismatch when a was made for other dimensions.
func (s *Set) Add(name string, a *Adapter) error {
	if name == "" {
		return fmt.Errorf("lora set: empty adapter name")
	}
	if a.Base != s.base {
		return fmt.Errorf("lora set: adapter %q (base %+v, set %+v): %w", name, a.Base, s.base, ErrBaseMismatch)
	}
	s.mu.Lock()
	s.m[name] = a
	s.mu.Unlock()
	return nil
}

// LoadDir loads the PEFT adapter in dir (see Load) and adds it as name.
func (s *Set) LoadDir(name, dir string) (*Adapter, error) {
	a, err := Load(dir, s.base)
	if err != nil {
		return nil, err
	}
	return a, s.Add(name, a)
}

// Get returns the adapter called name.
func (s *Set) Get(name string) (*Adapter, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.m[name]
	return a, ok
}

// Remove drops the adapter called name.
func (s *Set) Remove(name string) {
	s.mu.Lock()
	delete(s.m, name)
	s.mu.Unlock()
}

// Names returns the adapters' names, sorted.
func (s *Set) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.m))
	for n := range s.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Len is the number of adapters.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
