package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/usersim/usersim/internal/atomicfile"
)

// Cache keeps server answers by request key (see RequestKey).
type Cache interface {
	// Get returns the answer stored under key; ok is false when there is none.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Put stores value under key, replacing any earlier value.
	Put(ctx context.Context, key string, value []byte) error
}

// RequestKey is the cache key of a request: the hex SHA-256 of the endpoint
// path (relative to the API root, e.g. "/chat/completions") and the JSON
// body. Everything that shapes the answer (model, messages, temperature,
// seed, response format, ...) is in the body; the server's address and the
// API key are not, so answers obtained through a batch file or another
// server for the same model are found again.
func RequestKey(path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte("POST " + path + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// DirCache is a Cache in a directory: one file per answer at
// Dir/<key[:2]>/<key>.json, written atomically (temporary file, fsync,
// rename), so an interrupted run never leaves a partial entry. Several
// processes may share one directory.
type DirCache struct {
	Dir string
}

// NewDirCache creates dir if needed and returns a cache over it.
func NewDirCache(dir string) (*DirCache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("llm cache: %w", err)
	}
	return &DirCache{Dir: dir}, nil
}

func (c *DirCache) path(key string) (string, error) {
	if len(key) < 8 || len(key) > 128 {
		return "", fmt.Errorf("llm cache: bad key %q", key)
	}
	for _, r := range key {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return "", fmt.Errorf("llm cache: bad key %q (want lower-case hex)", key)
		}
	}
	return filepath.Join(c.Dir, key[:2], key+".json"), nil
}

// Get implements Cache.
func (c *DirCache) Get(_ context.Context, key string) ([]byte, bool, error) {
	p, err := c.path(key)
	if err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("llm cache: %w", err)
	}
	return b, true, nil
}

// Put implements Cache.
func (c *DirCache) Put(_ context.Context, key string, value []byte) error {
	p, err := c.path(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p, value); err != nil {
		return fmt.Errorf("llm cache: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to path atomically, creating its directory
// when missing.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}
