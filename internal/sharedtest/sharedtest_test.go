package sharedtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
)

// run calls Path in a subtest and reports what it returned and whether
// the subtest was skipped.
func run(t *testing.T, elem ...string) (path string, skipped bool) {
	t.Helper()
	t.Run("path", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		path = sharedtest.Path(t, elem...)
	})
	return path, skipped
}

func TestEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "data", "ml-1m"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(sharedtest.EnvVar, dir)

	p, skipped := run(t, "data", "ml-1m")
	if skipped || p != filepath.Join(dir, "data", "ml-1m") {
		t.Errorf("present: got %q, skipped %v; want %q", p, skipped, filepath.Join(dir, "data", "ml-1m"))
	}
	if p, skipped := run(t); skipped || p != dir {
		t.Errorf("no elem: got %q, skipped %v; want %q", p, skipped, dir)
	}
	if p, skipped := run(t, "data", "ml-25m"); !skipped || p != "" {
		t.Errorf("absent: got %q, skipped %v; want a skip", p, skipped)
	}
}

func TestEnvRelative(t *testing.T) {
	// Relative to the module root, two levels up from this package.
	t.Setenv(sharedtest.EnvVar, filepath.Join("internal", "sharedtest"))
	p, skipped := run(t, "sharedtest.go")
	want, err := filepath.Abs("sharedtest.go")
	if err != nil {
		t.Fatal(err)
	}
	if skipped || p != want {
		t.Errorf("got %q, skipped %v; want %q", p, skipped, want)
	}
}

func TestDefault(t *testing.T) {
	t.Setenv(sharedtest.EnvVar, "")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root is not %s: %v", root, err)
	}
	want := filepath.Join(filepath.Dir(root), "shared")
	p, skipped := run(t)
	if _, err := os.Stat(want); err != nil {
		if !skipped {
			t.Errorf("%s is absent but Path returned %q without skipping", want, p)
		}
		return
	}
	if skipped || p != want {
		t.Errorf("got %q, skipped %v; want %q", p, skipped, want)
	}
	if p, skipped := run(t, "no-such-fixture"); !skipped || p != "" {
		t.Errorf("absent fixture: got %q, skipped %v; want a skip", p, skipped)
	}
}

func TestSkipMessage(t *testing.T) {
	t.Setenv(sharedtest.EnvVar, t.TempDir())
	var msg string
	t.Run("path", func(t *testing.T) {
		rec := &recorder{TB: t}
		defer func() { msg = rec.msg }()
		sharedtest.Path(rec, "missing")
	})
	if !strings.Contains(msg, "missing not found (the ../shared fixtures are absent)") {
		t.Errorf("skip message %q", msg)
	}
}

// recorder records the message of a skip.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Skipf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	r.TB.SkipNow()
}
