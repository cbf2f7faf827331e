package hub

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/usersim/usersim/internal/atomicfile"
)

// DefaultCacheDir returns the hub cache folder the way huggingface_hub
// finds it: $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub,
// else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
func DefaultCacheDir() (string, error) {
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(v); d != "" {
			return expandHome(d)
		}
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		d, err := expandHome(d)
		return filepath.Join(d, "hub"), err
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface", "hub"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("hub: no cache folder: set HF_HOME: %w", err)
	}
	return filepath.Join(home, ".cache", "huggingface", "hub"), nil
}

func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("hub: expand %s: %w", p, err)
	}
	return filepath.Join(home, p[1:]), nil
}

// repoCache is the cache folder of one model repository:
// models--{org}--{name} with blobs/, snapshots/{commit}/ and refs/.
type repoCache struct{ dir string }

func newRepoCache(cacheDir, repo string) repoCache {
	return repoCache{filepath.Join(cacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))}
}

func (c repoCache) blob(etag string) string { return filepath.Join(c.dir, "blobs", etag) }

func (c repoCache) snapshot(commit string) string {
	return filepath.Join(c.dir, "snapshots", commit)
}

func (c repoCache) file(commit, name string) string {
	return filepath.Join(c.snapshot(commit), filepath.FromSlash(name))
}

func (c repoCache) ref(rev string) string {
	return filepath.Join(c.dir, "refs", filepath.FromSlash(rev))
}

// readRef returns the commit a revision pointed to when last pulled, or ""
// when unknown. A commit hash is its own ref.
func (c repoCache) readRef(rev string) string {
	if isCommit(rev) {
		return rev
	}
	b, err := os.ReadFile(c.ref(rev))
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if !isCommit(s) {
		return ""
	}
	return s
}

// writeRef records that rev points to commit, atomically.
func (c repoCache) writeRef(rev, commit string) error {
	if rev == commit {
		return nil
	}
	return writeFileAtomic(c.ref(rev), []byte(commit))
}

// link makes snapshots/{commit}/{name} point at blobs/{etag} with a
// relative symbolic link, as huggingface_hub does; where links cannot be
// made the blob is copied.
func (c repoCache) link(commit, name, etag string) error {
	dst := c.file(commit, name)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(dst), c.blob(etag))
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d-%d.tmp-link", dst, os.Getpid(), rand.Uint64())
	if err := os.Symlink(rel, tmp); err != nil {
		// No symbolic links here (some Windows setups): copy the blob.
		return copyFile(c.blob(etag), dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// present reports whether snapshots/{commit}/{name} resolves to a file.
func (c repoCache) present(commit, name string) bool {
	fi, err := os.Stat(c.file(commit, name))
	return err == nil && fi.Mode().IsRegular()
}

func isCommit(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// writeFileAtomic writes data to path atomically, creating its directory
// when missing.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// copyFile copies src to dst atomically.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
