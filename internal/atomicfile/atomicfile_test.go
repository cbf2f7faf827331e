package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/usersim/usersim/internal/atomicfile"
)

// entries returns the names in dir, sorted.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// onlyEntries fails the test unless dir holds exactly the names want.
func onlyEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := entries(t, dir)
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("%s holds %q, want %q (a temporary file left behind?)", dir, got, want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteFilePerm(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix permissions")
	}
	tests := []struct {
		perm, want os.FileMode
	}{
		{0, 0o644},
		{0o600, 0o600},
		{0o640, 0o640},
		{0o666, 0o666}, // exactly perm: the umask does not apply
		{0o755, 0o755},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%o", tt.perm), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f.txt")
			if err := atomicfile.WriteFile(p, []byte("hello\n"), tt.perm); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.want {
				t.Errorf("mode %v, want %v", fi.Mode(), tt.want)
			}
			if got := readFile(t, p); got != "hello\n" {
				t.Errorf("content %q", got)
			}
			onlyEntries(t, dir, "f.txt")
		})
	}
}

func TestReplaceExisting(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	if err := os.WriteFile(p, []byte(strings.Repeat("old content ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != "new" {
		t.Errorf("content %q, want %q", got, "new")
	}
	if fi, err := os.Stat(p); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode() != 0o644 {
		t.Errorf("mode %v, want the new perm 0644", fi.Mode())
	}
	onlyEntries(t, dir, "f.json")
}

func TestWriteStreams(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big")
	var want bytes.Buffer
	err := atomicfile.Write(p, 0, func(w io.Writer) error {
		// Many small writes and one larger than the buffer.
		for i := range 20000 {
			fmt.Fprintf(w, "%d,", i)
			fmt.Fprintf(&want, "%d,", i)
		}
		big := bytes.Repeat([]byte{'x'}, 200<<10)
		want.Write(big)
		_, err := w.Write(big)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p); got != want.String() {
		t.Errorf("content differs: %d bytes, want %d", len(got), want.Len())
	}
	onlyEntries(t, dir, "big")
}

func TestRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := atomicfile.WriteFile("rel.txt", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "rel.txt")); got != "x" {
		t.Errorf("content %q", got)
	}
	onlyEntries(t, dir, "rel.txt")
}

func TestErrors(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		// setup prepares dir and returns the path to write.
		setup   func(t *testing.T, dir string) string
		write   func(w io.Writer) error
		wantErr error  // errors.Is target, if any
		wantIn  string // substring of the message
		// the entries dir must hold afterwards
		left []string
	}{
		{
			name:    "callback fails, no file before",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "f") },
			write:   func(w io.Writer) error { return errBoom },
			wantErr: errBoom,
		},
		{
			name: "callback fails after writing, old file kept",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "f")
				if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			},
			write: func(w io.Writer) error {
				w.Write(bytes.Repeat([]byte("partial"), 100000)) // more than the buffer
				return errBoom
			},
			wantErr: errBoom,
			left:    []string{"f"},
		},
		{
			name:    "directory missing",
			setup:   func(t *testing.T, dir string) string { return filepath.Join(dir, "no", "such", "f") },
			write:   func(w io.Writer) error { return nil },
			wantErr: os.ErrNotExist,
		},
		{
			name: "path is a directory",
			setup: func(t *testing.T, dir string) string {
				p := filepath.Join(dir, "d")
				if err := os.MkdirAll(filepath.Join(p, "inner"), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
			write: func(w io.Writer) error { _, err := io.WriteString(w, "data"); return err },
			left:  []string{"d"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tt.setup(t, dir)
			var before []byte
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				before, _ = os.ReadFile(p)
			}
			err := atomicfile.Write(p, 0o644, tt.write)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name %s", err, p)
			}
			if before != nil {
				if got := readFile(t, p); got != string(before) {
					t.Errorf("target changed to %.20q, want %.20q", got, before)
				}
			}
			onlyEntries(t, dir, tt.left...)
		})
	}
}

func TestReadOnlyDir(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("needs Unix permissions enforced (not root)")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	p := filepath.Join(dir, "f")
	called := false
	err := atomicfile.Write(p, 0, func(w io.Writer) error { called = true; return nil })
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("error %v, want a permission error", err)
	}
	if called {
		t.Error("write was called although no temporary file could be made")
	}
	onlyEntries(t, dir)
}

// TestConcurrentWriters: writers racing on one path leave it holding one
// writer's complete output and no temporary files.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "shared.bin")
	const writers, size = 8, 300 << 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('a' + i)}, size)
			errs <- atomicfile.Write(p, 0, func(w io.Writer) error {
				// Write in pieces so that the writers interleave.
				for off := 0; off < len(data); off += 4096 {
					if _, err := w.Write(data[off:min(off+4096, len(data))]); err != nil {
						return err
					}
					runtime.Gosched()
				}
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size {
		t.Fatalf("%d bytes, want %d", len(got), size)
	}
	if c := got[0]; c < 'a' || c >= 'a'+writers || !bytes.Equal(got, bytes.Repeat([]byte{c}, size)) {
		t.Errorf("file mixes writers' output (starts with %q)", c)
	}
	onlyEntries(t, dir, "shared.bin")
}

func TestSyncDir(t *testing.T) {
	if err := atomicfile.SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := atomicfile.SyncDir(filepath.Join(t.TempDir(), "missing")); runtime.GOOS != "windows" && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v, want ErrNotExist", err)
	}
}

func ExampleWrite() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "greeting.txt")
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, "hello, world")
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output: hello, world
}
