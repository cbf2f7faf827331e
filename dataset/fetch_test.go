package dataset

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testZip builds a zip of a tiny ml-1m release under a top-level directory,
// as GroupLens lays theirs out.
func testZip(t *testing.T, top string, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	if top != "" {
		if _, err := zw.Create(top + "/"); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		w, err := zw.Create(strings.TrimPrefix(top+"/"+name, "/"))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

var tinyRelease = map[string]string{
	"movies.dat":  tinyMovies,
	"users.dat":   tinyUsers,
	"ratings.dat": "1::1::5::978300760\n2::3::3::978302109\n",
	"README":      "test release\n",
}

// zipServer serves /name.zip (with Range support) and /name.zip.md5;
// before, if set, may answer a request itself and return true.
type zipServer struct {
	t      *testing.T
	name   string
	zip    []byte
	md5    string
	before func(n int, w http.ResponseWriter, r *http.Request) bool

	mu     sync.Mutex
	ranges []string // Range header of each zip request
}

func (s *zipServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/" + s.name + ".zip.md5":
		fmt.Fprintf(w, "MD5 (%s.zip) = %s\n", s.name, s.md5)
	case "/" + s.name + ".zip":
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		n := len(s.ranges)
		s.mu.Unlock()
		if s.before != nil && s.before(n, w, r) {
			return
		}
		http.ServeContent(w, r, s.name+".zip", time.Unix(0, 0), bytes.NewReader(s.zip))
	default:
		http.NotFound(w, r)
	}
}

func (s *zipServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func newZipServer(t *testing.T, name string) (*zipServer, *httptest.Server) {
	z := testZip(t, name, tinyRelease)
	s := &zipServer{t: t, name: name, zip: z, md5: md5hex(z)}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func fastOpts(ts *httptest.Server, cache string) FetchOptions {
	return FetchOptions{BaseURL: ts.URL, CacheDir: cache, Client: ts.Client(), Retries: 3, Backoff: time.Millisecond}
}

func TestFetch(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	cache := t.TempDir()
	opt := fastOpts(ts, cache)
	var last, total int64
	opt.Progress = func(done, tot int64) { last, total = done, tot }
	dir, err := Fetch(context.Background(), "ml-tiny", opt)
	if err != nil {
		t.Fatal(err)
	}
	if dir != filepath.Join(cache, "ml-tiny") {
		t.Errorf("dir = %s", dir)
	}
	if last != int64(len(s.zip)) || total != int64(len(s.zip)) {
		t.Errorf("progress ended at %d/%d, want %d", last, total, len(s.zip))
	}
	d, err := Load(context.Background(), "ml-1m", dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Ratings.Len() != 2 || d.NumUsers() != 2 || d.Items[2].Title != "Misérables, Les" {
		t.Errorf("loaded %+v", d)
	}
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 || entries[0].Name() != "ml-tiny" {
		t.Errorf("cache holds %v, want only ml-tiny (no .part, no temp dirs)", entries)
	}
	// The second call uses the cache, even with the server gone.
	ts.Close()
	dir2, err := Fetch(context.Background(), "ml-tiny", opt)
	if err != nil || dir2 != dir {
		t.Errorf("cached fetch = %q, %v", dir2, err)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d zip requests, want 1", n)
	}
}

func TestFetchResumesBrokenDownload(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	half := len(s.zip) / 2
	s.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false
		}
		// Promise the whole file, send half, and drop the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(s.zip)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.zip[:half])
		return true
	}
	dir, err := Fetch(context.Background(), "ml-tiny", fastOpts(ts, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ratings.dat")); err != nil {
		t.Error(err)
	}
	got := s.requests()
	if len(got) != 2 || got[0] != "" || got[1] != fmt.Sprintf("bytes=%d-", half) {
		t.Errorf("zip requests with Range %q, want [\"\" \"bytes=%d-\"]", got, half)
	}
}

func TestFetchResumesPartFile(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	cache := t.TempDir()
	if err := os.WriteFile(filepath.Join(cache, "ml-tiny.zip.part"), s.zip[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), "ml-tiny", fastOpts(ts, cache)); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); len(got) != 1 || got[0] != "bytes=100-" {
		t.Errorf("Range headers %q, want [bytes=100-]", got)
	}
}

func TestFetchChecksumMismatch(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	s.md5 = strings.Repeat("0", 32)
	cache := t.TempDir()
	_, err := Fetch(context.Background(), "ml-tiny", fastOpts(ts, cache))
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), s.md5) || !strings.Contains(err.Error(), md5hex(s.zip)) {
		t.Fatalf("err = %v, want ErrChecksum naming both sums", err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("cache holds %v after a bad download", entries)
	}
	// A given checksum overrides the server's.
	opt := fastOpts(ts, cache)
	opt.MD5 = md5hex(s.zip)
	if _, err := Fetch(context.Background(), "ml-tiny", opt); err != nil {
		t.Errorf("with the right MD5 given: %v", err)
	}
	// Pinned checksums of known releases apply to any server.
	opt.MD5 = ""
	_, ts2 := newZipServer(t, "ml-1m")
	_, err = Fetch(context.Background(), "ml-1m", fastOpts(ts2, t.TempDir()))
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), knownMD5["ml-1m"]) {
		t.Errorf("fake ml-1m: err = %v, want a mismatch with the pinned MD5", err)
	}
}

func TestFetchRetriesServerErrors(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	s.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n <= 2 {
			http.Error(w, "busy", http.StatusInternalServerError)
			return true
		}
		return false
	}
	if _, err := Fetch(context.Background(), "ml-tiny", fastOpts(ts, t.TempDir())); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 3 {
		t.Errorf("%d zip requests, want 3 (two 500s, then success)", n)
	}
	// Retries spent: the last error is reported.
	s2, ts2 := newZipServer(t, "ml-tiny")
	s2.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	}
	opt := fastOpts(ts2, t.TempDir())
	opt.Retries = 2
	_, err := Fetch(context.Background(), "ml-tiny", opt)
	if err == nil || !strings.Contains(err.Error(), "503") || len(s2.requests()) != 3 {
		t.Errorf("err = %v after %d requests, want a 503 after 3", err, len(s2.requests()))
	}
}

func TestFetchNotFound(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	s.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		http.NotFound(w, r)
		return true
	}
	_, err := Fetch(context.Background(), "ml-tiny", fastOpts(ts, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), "404") || len(s.requests()) != 1 {
		t.Errorf("err = %v after %d requests, want a 404 without retries", err, len(s.requests()))
	}
	if _, err := Fetch(context.Background(), "../etc", fastOpts(ts, t.TempDir())); err == nil {
		t.Error("name with a path accepted")
	}
}

func TestFetchOffline(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, name := range []string{"ml-1m", "ml-unpinned"} {
		opt := FetchOptions{BaseURL: "http://" + addr, CacheDir: t.TempDir(), Retries: 1, Backoff: time.Millisecond}
		_, err = Fetch(context.Background(), name, opt)
		if err == nil || !strings.Contains(err.Error(), "--data-dir") || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: err = %v, want one naming the URL and --data-dir", name, err)
		}
	}
}

func TestFetchRejectsUnsafeZip(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("../evil.txt")
	w.Write([]byte("x"))
	zw.Close()
	s, ts := newZipServer(t, "ml-tiny")
	s.zip, s.md5 = buf.Bytes(), md5hex(buf.Bytes())
	cache := t.TempDir()
	_, err := Fetch(context.Background(), "ml-tiny", fastOpts(ts, cache))
	if err == nil || !strings.Contains(err.Error(), "unsafe path") {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cache), "evil.txt")); err == nil {
		t.Error("zip entry escaped the cache")
	}
}

func TestCommonTop(t *testing.T) {
	flat := testZip(t, "", map[string]string{"a": "1", "b": "2"})
	s, ts := newZipServer(t, "flat")
	s.zip, s.md5 = flat, md5hex(flat)
	dir, err := Fetch(context.Background(), "flat", fastOpts(ts, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "b")); err != nil || string(b) != "2" {
		t.Errorf("flat zip: %q %v", b, err)
	}
}

// An interrupted Fetch keeps what it has; the next one resumes from there.
func TestFetchCancelKeepsPartial(t *testing.T) {
	s, ts := newZipServer(t, "ml-tiny")
	half := len(s.zip) / 2
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	s.before = func(n int, w http.ResponseWriter, r *http.Request) bool {
		if n > 1 {
			return false
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(s.zip)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.zip[:half])
		w.(http.Flusher).Flush()
		<-release
		return true
	}
	cache := t.TempDir()
	opt := fastOpts(ts, cache)
	var seen int64
	opt.Progress = func(done, total int64) {
		if seen = done; done > 0 {
			cancel() // the user presses Ctrl-C mid-download
		}
	}
	_, err := Fetch(ctx, "ml-tiny", opt)
	opt.Progress = nil
	close(release)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "resumed next time") {
		t.Fatalf("err = %v, want context.Canceled saying the download resumes", err)
	}
	st, err := os.Stat(filepath.Join(cache, "ml-tiny.zip.part"))
	if err != nil || st.Size() != seen || seen == 0 {
		t.Fatalf("partial file: %v, size %v, progress %d", err, st, seen)
	}
	if _, err := Fetch(context.Background(), "ml-tiny", opt); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); len(got) != 2 || got[1] != fmt.Sprintf("bytes=%d-", seen) {
		t.Errorf("Range headers %q, want the second from byte %d", got, seen)
	}
}
