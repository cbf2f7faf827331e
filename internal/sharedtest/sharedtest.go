// Package sharedtest finds the fixtures that tests read from the shared
// directory beside the repository (../shared relative to the module root:
// MovieLens data, small models, golden files), and skips the test when they
// are absent, as they are on a user's machine.
//
// The environment variable USERSIM_SHARED, when set, names the shared
// directory instead; a relative value is taken from the module root.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// EnvVar is the environment variable that, when set, names the shared
// directory.
const EnvVar = "USERSIM_SHARED"

// Path returns the path of elem joined under the shared directory (the
// directory itself when elem is empty). It skips the test when the module
// root cannot be found or the path does not exist.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Skipf("sharedtest: module root not found: %v", err)
	}
	dir := filepath.Join(root, "..", "shared")
	if env := os.Getenv(EnvVar); env != "" {
		dir = env
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
	}
	p := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("sharedtest: %s not found (the ../shared fixtures are absent)", p)
	}
	return p
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod file.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
