package dataset

import (
	"archive/zip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is where GroupLens serves the MovieLens zips, as
// {DefaultBaseURL}/{name}.zip with {name}.zip.md5 beside each.
const DefaultBaseURL = "https://files.grouplens.org/datasets/movielens"

// knownMD5 pins the checksums of the GroupLens releases that never change
// (as published in their .zip.md5 files). ml-latest and ml-latest-small are
// rebuilt from time to time, so theirs is read from the server.
var knownMD5 = map[string]string{
	"ml-100k": "0e33842e24a9c977be4e0107933c0723",
	"ml-1m":   "c4d9eecfca2ab87c1945afe126590906",
	"ml-10m":  "ce571fd55effeba0271552578f2648bd",
	"ml-20m":  "cd245b17a1ae2cc31bb14903e1204af3",
	"ml-25m":  "6b51fb2759a8657d3bfcbfc42b592ada",
}

// ErrChecksum is returned when a download does not match its checksum.
var ErrChecksum = errors.New("checksum mismatch")

// FetchOptions configures Fetch. The zero value downloads from GroupLens
// into the user cache directory.
type FetchOptions struct {
	// BaseURL replaces DefaultBaseURL (a mirror, or a test server).
	BaseURL string
	// CacheDir holds the unpacked datasets; default DefaultCacheDir().
	CacheDir string
	// Client makes the requests; default a client with header timeouts.
	Client *http.Client
	// Progress, if set, is called as bytes arrive with the bytes of the zip
	// on disk so far and its total size (-1 when unknown).
	Progress func(done, total int64)
	// MD5 is the expected hex MD5 of the zip. Default: the pinned checksum
	// of a known release, else the {name}.zip.md5 file the server has.
	MD5 string
	// Retries is the number of further attempts after a transient failure
	// (network error, HTTP 5xx, 408, 429); default 4, negative means none.
	Retries int
	// Backoff is the wait before the first retry, doubled for each next
	// one (at most 30 s); default 1 s.
	Backoff time.Duration
}

// DefaultCacheDir returns os.UserCacheDir()/usersim/datasets.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(dir, "usersim", "datasets"), nil
}

// doneMarker is written into an unpacked dataset before it is moved into
// place; a cache entry without it is not used.
const doneMarker = ".usersim-fetched"

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Fetch makes sure the named MovieLens release (e.g. "ml-1m") is unpacked in
// the cache and returns its directory, ready for Load. The first call
// downloads {BaseURL}/{name}.zip, resuming a partial download left by an
// earlier attempt (HTTP Range) and retrying transient failures with
// exponential backoff; it verifies the zip's MD5, unpacks it into a
// temporary directory and renames that into place, so the cache never holds
// a half-unpacked dataset. Later calls return the cached directory without
// touching the network. Concurrent Fetch calls for the same name from
// several processes are not coordinated (the checksum catches a mixed file).
func Fetch(ctx context.Context, name string, opt FetchOptions) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("fetch: invalid dataset name %q", name)
	}
	cache := opt.CacheDir
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			return "", fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	final := filepath.Join(cache, name)
	if _, err := os.Stat(filepath.Join(final, doneMarker)); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("fetch %s: %w", name, err)
	}
	f := &fetcher{opt: opt, name: name}
	f.defaults()
	url := strings.TrimSuffix(f.opt.BaseURL, "/") + "/" + name + ".zip"
	want, source, err := f.checksum(ctx, url)
	if err != nil {
		return "", err
	}
	part := filepath.Join(cache, name+".zip.part")
	if err := f.download(ctx, url, part); err != nil {
		return "", err
	}
	got, err := fileMD5(part)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", name, err)
	}
	if got != want {
		os.Remove(part) // start afresh next time
		return "", fmt.Errorf("fetch %s: %w: %s has MD5 %s, want %s (%s); the partial download was deleted, run again to retry",
			name, ErrChecksum, url, got, want, source)
	}
	if err := unpack(ctx, part, cache, name, final); err != nil {
		return "", fmt.Errorf("fetch %s: unpack: %w", name, err)
	}
	os.Remove(part)
	return final, nil
}

type fetcher struct {
	opt  FetchOptions
	name string
}

func (f *fetcher) defaults() {
	if f.opt.BaseURL == "" {
		f.opt.BaseURL = DefaultBaseURL
	}
	if f.opt.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.ResponseHeaderTimeout = 60 * time.Second
		f.opt.Client = &http.Client{Transport: tr}
	}
	if f.opt.Retries == 0 {
		f.opt.Retries = 4
	} else if f.opt.Retries < 0 {
		f.opt.Retries = 0
	}
	if f.opt.Backoff <= 0 {
		f.opt.Backoff = time.Second
	}
}

// offline wraps a failure to reach the server with what to do instead.
func (f *fetcher) offline(url string, err error) error {
	return fmt.Errorf("fetch %s: cannot download %s: %w\n"+
		"If this machine is offline, fetch %s.zip elsewhere, unzip it, and pass --data-dir DIR "+
		"(the directory holding its files) instead of downloading", f.name, url, err, f.name)
}

// transientError marks a failure worth retrying.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// unreachableError marks a failure to reach the server that retrying will
// not cure (the host name does not resolve).
type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }
func (e unreachableError) Unwrap() error { return e.err }

// isOffline reports whether err means the server could not be reached.
func isOffline(err error) bool {
	var te transientError
	var ue unreachableError
	return errors.As(err, &te) || errors.As(err, &ue)
}

// retry runs op until it succeeds, fails permanently, or the retries are
// spent; it returns the last error.
func (f *fetcher) retry(ctx context.Context, what string, op func() error) error {
	delay := f.opt.Backoff
	for attempt := 0; ; attempt++ {
		err := op()
		var te transientError
		if err == nil || !errors.As(err, &te) || attempt >= f.opt.Retries || ctx.Err() != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		slog.Warn("retrying download", "what", what, "attempt", attempt+1, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// get performs one GET; network errors and retryable statuses are transient.
func (f *fetcher) get(ctx context.Context, url string, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "usersim")
	resp, err := f.opt.Client.Do(req)
	if err != nil {
		var dns *net.DNSError
		if errors.As(err, &dns) && dns.IsNotFound {
			return nil, unreachableError{err} // no name service answer: offline, not worth retrying
		}
		return nil, transientError{err}
	}
	switch c := resp.StatusCode; {
	case c == http.StatusOK, c == http.StatusPartialContent, c == http.StatusRequestedRangeNotSatisfiable:
		return resp, nil
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		resp.Body.Close()
		return nil, transientError{fmt.Errorf("GET %s: %s", url, resp.Status)}
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
}

var md5Pattern = regexp.MustCompile(`\b[0-9a-fA-F]{32}\b`)

// checksum returns the expected MD5 of the zip and where it came from.
func (f *fetcher) checksum(ctx context.Context, url string) (sum, source string, err error) {
	if s := f.opt.MD5; s != "" {
		if !md5Pattern.MatchString(s) || len(s) != 32 {
			return "", "", fmt.Errorf("fetch %s: %q is not a hex MD5", f.name, s)
		}
		return strings.ToLower(s), "given", nil
	}
	if s, ok := knownMD5[f.name]; ok {
		return s, "pinned in usersim", nil
	}
	var body []byte
	err = f.retry(ctx, url+".md5", func() error {
		resp, err := f.get(ctx, url+".md5", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s.md5: %s", url, resp.Status)
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 4096))
		if err != nil {
			return transientError{err}
		}
		return nil
	})
	if err != nil {
		if isOffline(err) {
			return "", "", f.offline(url+".md5", err)
		}
		return "", "", fmt.Errorf("fetch %s: no checksum to verify the download against: %w", f.name, err)
	}
	m := md5Pattern.Find(body)
	if m == nil {
		return "", "", fmt.Errorf("fetch %s: %s.md5 holds no MD5 (%q)", f.name, url, body)
	}
	return strings.ToLower(string(m)), url + ".md5", nil
}

// download brings the zip to part, resuming what is already there.
func (f *fetcher) download(ctx context.Context, url, part string) error {
	err := f.retry(ctx, url, func() error { return f.downloadOnce(ctx, url, part) })
	if err == nil {
		return nil
	}
	if isOffline(err) {
		return f.offline(url, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fetch %s: %w (partial download kept in %s, resumed next time)", f.name, err, part)
	}
	return fmt.Errorf("fetch %s: %w", f.name, err)
}

func (f *fetcher) downloadOnce(ctx context.Context, url, part string) error {
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
	}
	hdr := http.Header{}
	if have > 0 {
		hdr.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := f.get(ctx, url, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flag := os.O_WRONLY | os.O_CREATE
	total := int64(-1)
	switch resp.StatusCode {
	case http.StatusRequestedRangeNotSatisfiable:
		if have > 0 {
			return nil // already complete; the checksum decides
		}
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	case http.StatusPartialContent:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != have {
			return transientError{fmt.Errorf("GET %s: server answered range %q to a request from byte %d", url, resp.Header.Get("Content-Range"), have)}
		}
		flag |= os.O_APPEND
		total = size
		slog.Debug("resuming download", "url", url, "from", have)
	default: // 200: the whole file again
		flag |= os.O_TRUNC
		have = 0
		if resp.ContentLength >= 0 {
			total = resp.ContentLength
		}
	}
	out, err := os.OpenFile(part, flag, 0o644)
	if err != nil {
		return err
	}
	w := &progressWriter{w: out, done: have, total: total, fn: f.opt.Progress}
	w.report()
	_, cerr := io.Copy(w, resp.Body)
	if err := out.Sync(); err != nil && cerr == nil {
		cerr = err
	}
	if err := out.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if cerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return transientError{fmt.Errorf("GET %s: after %d bytes: %w", url, w.done, cerr)}
	}
	if total >= 0 && w.done != total {
		return transientError{fmt.Errorf("GET %s: got %d of %d bytes", url, w.done, total)}
	}
	return nil
}

// parseContentRange parses "bytes start-end/size" (size may be "*": -1).
func parseContentRange(s string) (start, size int64, ok bool) {
	s, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	a, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

type progressWriter struct {
	w           io.Writer
	done, total int64
	fn          func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	p.report()
	return n, err
}

func (p *progressWriter) report() {
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
}

func fileMD5(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// unpack extracts zipPath into a temporary directory under cache and
// renames the dataset's directory to final. A zip whose entries all sit in
// one top-level directory (as GroupLens' do: ml-1m/...) is unpacked from
// inside that directory.
func unpack(ctx context.Context, zipPath, cache, name, final string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	tmp, err := os.MkdirTemp(cache, ".tmp-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	top := commonTop(zr.File)
	for _, zf := range zr.File {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Clean(strings.ReplaceAll(zf.Name, `\`, "/"))
		if !fs.ValidPath(p) || p == "." {
			return fmt.Errorf("zip entry %q: unsafe path", zf.Name)
		}
		if strings.HasPrefix(path.Base(p), "._") || strings.HasPrefix(p, "__MACOSX/") {
			continue // macOS resource forks
		}
		dst := filepath.Join(tmp, filepath.FromSlash(p))
		if zf.FileInfo().IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			continue
		}
		if !zf.Mode().IsRegular() {
			return fmt.Errorf("zip entry %q: not a regular file", zf.Name)
		}
		if err := extractFile(zf, dst); err != nil {
			return err
		}
	}
	root := tmp
	if top != "" {
		root = filepath.Join(tmp, top)
	}
	if err := os.WriteFile(filepath.Join(root, doneMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(root, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, doneMarker)); serr == nil {
			return nil // another process got there first
		}
		// A leftover directory without the marker: replace it.
		if rerr := os.RemoveAll(final); rerr != nil {
			return err
		}
		return os.Rename(root, final)
	}
	return nil
}

// commonTop returns the one top-level directory holding every entry of a
// zip, or "" when there is none.
func commonTop(files []*zip.File) string {
	top := ""
	for _, zf := range files {
		p := path.Clean(strings.ReplaceAll(zf.Name, `\`, "/"))
		if strings.HasPrefix(p, "__MACOSX/") || p == "__MACOSX" {
			continue
		}
		first, _, nested := strings.Cut(p, "/")
		if !nested && !zf.FileInfo().IsDir() {
			return "" // a file at the root
		}
		if top == "" {
			top = first
		} else if first != top {
			return ""
		}
	}
	return top
}

func extractFile(zf *zip.File, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	rc, err := zf.Open()
	if err != nil {
		return fmt.Errorf("zip entry %q: %w", zf.Name, err)
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("zip entry %q: %w", zf.Name, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
