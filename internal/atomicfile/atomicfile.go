// Package atomicfile writes files atomically: readers of a path see either
// its old content or the complete new content, never a part, and a crash
// leaves at worst a stray temporary file beside it.
//
// A file is written to a temporary file in the same directory (so that the
// final rename stays within one file system), flushed, synced to disk,
// given its permissions and renamed over the path; then the directory is
// synced so that the rename itself survives a crash.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// DefaultPerm is the permission a file gets when Write or WriteFile is
// passed a zero perm.
const DefaultPerm os.FileMode = 0o644

// Write writes the file at path with the bytes that write writes to w. w
// is buffered; Write flushes it. The file gets exactly perm (not reduced
// by the umask), or DefaultPerm when perm is 0; an existing file at path
// is replaced, whatever its permissions were.
//
// The directory of path must exist. When write or any step before the
// rename fails, the temporary file is removed, path is left as it was and
// the error, which names path, wraps the cause. Once the rename is done an
// error can only come from syncing the directory: the new file is then in
// place but may not survive a crash.
//
// Concurrent calls for the same path each write their own temporary file;
// the last rename wins, and path always holds one writer's complete output.
func Write(path string, perm os.FileMode, write func(w io.Writer) error) (err error) {
	if perm == 0 {
		perm = DefaultPerm
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err == nil {
			return
		}
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
		err = fmt.Errorf("write %s: %w", path, err)
	}()
	bw := bufio.NewWriterSize(f, 64<<10)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	renamed = true
	return SyncDir(dir)
}

// WriteFile writes data to the file at path as Write does.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir syncs the directory dir, making the creation, removal and
// renaming of its entries durable. Where directories cannot be synced
// (Windows, and file systems that answer EINVAL or ENOTSUP) it does
// nothing.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return err
}
