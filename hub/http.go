package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// networkError marks a failure to talk to the server (as opposed to an
// answer it gave); such failures are retried.
type networkError struct{ err error }

func (e *networkError) Error() string { return e.err.Error() }
func (e *networkError) Unwrap() error { return e.err }

// statusErr is an HTTP answer that is not a success.
type statusErr struct {
	status    int
	retryable bool
	err       error
}

func (e *statusErr) Error() string { return e.err.Error() }
func (e *statusErr) Unwrap() error { return e.err }

func retryable(err error) bool {
	var ne *networkError
	var se *statusErr
	return errors.As(err, &ne) || errors.As(err, &se) && se.retryable
}

// retry runs f until it succeeds, fails for good, or the retries are spent,
// waiting with exponential backoff between tries.
func (p *puller) retry(ctx context.Context, what string, f func() error) error {
	wait := p.opt.Backoff
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil || !retryable(err) || attempt >= p.opt.Retries || ctx.Err() != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("hub: %s: %w", what, ctx.Err())
			}
			return err
		}
		p.opt.Logger.Warn("hub: retrying", "what", what, "attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("hub: %s: %w", what, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// send makes one request without following redirects. auth adds the token.
func (p *puller) send(ctx context.Context, method, u string, header http.Header, auth bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("hub: %s %s: %w", method, u, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "usersim-hub/1")
	if auth && p.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.opt.Token)
	}
	c := *p.opt.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &networkError{fmt.Errorf("hub: %s %s: %w", method, u, err)}
	}
	return resp, nil
}

// statusError turns a failed answer into an error that says what to do.
func (p *puller) statusError(resp *http.Response, what string) error {
	code := resp.Header.Get("X-Error-Code")
	msg := resp.Header.Get("X-Error-Message")
	detail := resp.Status
	if msg != "" {
		detail += ": " + msg
	}
	var err error
	switch s := resp.StatusCode; {
	case code == "GatedRepo" || (s == http.StatusForbidden && p.opt.Token == ""):
		err = fmt.Errorf("%w: %s (%s): the repository is gated: accept its terms on %s/%s and set HF_TOKEN to an access token of that account", ErrUnauthorized, what, detail, p.opt.Endpoint, p.repo)
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		if p.opt.Token == "" {
			err = fmt.Errorf("%w: %s (%s): the repository is private or gated, or does not exist; set HF_TOKEN to an access token that can read it", ErrUnauthorized, what, detail)
		} else {
			err = fmt.Errorf("%w: %s (%s): the token in HF_TOKEN was refused or cannot read this repository", ErrUnauthorized, what, detail)
		}
	case s == http.StatusNotFound:
		switch code {
		case "RevisionNotFound":
			err = fmt.Errorf("%w: %s (%s): no such revision", ErrNotFound, what, detail)
		case "EntryNotFound":
			err = fmt.Errorf("%w: %s (%s): no such file", ErrNotFound, what, detail)
		default:
			err = fmt.Errorf("%w: %s (%s): check the repository id and revision", ErrNotFound, what, detail)
		}
	default:
		err = fmt.Errorf("hub: %s: %s", what, detail)
	}
	retry := resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout
	return &statusErr{status: resp.StatusCode, retryable: retry, err: err}
}

// head reads a file's metadata: HEAD on its resolve URL, following only
// relative redirects (a renamed repository); a redirect elsewhere (the CDN
// of an LFS file) is not followed, since the Hub puts the metadata on the
// redirect itself. The ETag is X-Linked-Etag, else ETag; the size is
// X-Linked-Size, else Content-Length.
func (p *puller) head(ctx context.Context, u string) (fileMeta, error) {
	var meta fileMeta
	err := p.retry(ctx, "metadata of "+u, func() error {
		cur := u
		for hops := 0; ; hops++ {
			resp, err := p.send(ctx, http.MethodHead, cur, http.Header{"Accept-Encoding": {"identity"}}, true)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 && resp.StatusCode < 400 {
				loc := resp.Header.Get("Location")
				if strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && hops < 10 {
					base, _ := url.Parse(cur)
					next, err := base.Parse(loc)
					if err != nil {
						return fmt.Errorf("hub: %s: bad redirect %q", cur, loc)
					}
					cur = next.String()
					continue
				}
			} else if resp.StatusCode != http.StatusOK {
				return p.statusError(resp, "file "+u)
			}
			etag := resp.Header.Get("X-Linked-Etag")
			if etag == "" {
				etag = resp.Header.Get("ETag")
			}
			meta = fileMeta{etag: normalizeETag(etag), size: -1, commit: resp.Header.Get("X-Repo-Commit")}
			if meta.etag == "" {
				return fmt.Errorf("hub: %s: the answer has no ETag, so the file cannot be checked or cached", u)
			}
			size := resp.Header.Get("X-Linked-Size")
			if size == "" {
				size = resp.Header.Get("Content-Length")
			}
			if size != "" {
				n, err := strconv.ParseInt(size, 10, 64)
				if err != nil || n < 0 {
					return fmt.Errorf("hub: %s: bad size %q", u, size)
				}
				meta.size = n
			}
			return nil
		}
	})
	return meta, err
}

func normalizeETag(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	return strings.Trim(s, `"`)
}

// download fetches u into blob through blob.incomplete, resuming a partial
// file, and checks the result against the ETag before moving it in place.
func (p *puller) download(ctx context.Context, u, name, blob string, meta fileMeta) error {
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	part := blob + ".incomplete"
	var bar *progressbar.ProgressBar
	if p.opt.Progress != nil {
		bar = progressbar.NewOptions64(meta.size,
			progressbar.OptionSetWriter(p.opt.Progress),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.opt.Progress) }),
		)
	}
	err := p.retry(ctx, "download "+name, func() error { return p.fetchOnce(ctx, u, part, meta.size, bar) })
	if err != nil {
		return err
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err := verify(part, meta); err != nil {
		_ = os.Remove(part)
		return fmt.Errorf("hub: %s (%s): %w", name, u, err)
	}
	if err := os.Rename(part, blob); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// fetchOnce makes one GET for the missing part of the file, following
// redirects by hand: the token goes only to the Hub's own host, never to a
// CDN on another host.
func (p *puller) fetchOnce(ctx context.Context, u, part string, size int64, bar *progressbar.ProgressBar) error {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	defer f.Close()
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if size >= 0 && offset == size {
		return nil
	}
	if size >= 0 && offset > size {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		offset = 0
	}
	hubURL, _ := url.Parse(p.opt.Endpoint)
	cur := u
	var resp *http.Response
	for hops := 0; ; hops++ {
		h := http.Header{"Accept-Encoding": {"identity"}}
		if offset > 0 {
			h.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		cu, _ := url.Parse(cur)
		resp, err = p.send(ctx, http.MethodGet, cur, h, cu.Host == hubURL.Host)
		if err != nil {
			return err
		}
		if resp.StatusCode < 300 || resp.StatusCode >= 400 {
			break
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		next, err := cu.Parse(loc)
		if loc == "" || err != nil || hops >= 10 {
			return fmt.Errorf("hub: %s: bad or too many redirects (%q)", u, loc)
		}
		cur = next.String()
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			// Not the part asked for: start over.
			if err := f.Truncate(0); err != nil {
				return fmt.Errorf("hub: %w", err)
			}
			return &networkError{fmt.Errorf("hub: %s: asked for bytes from %d, got Content-Range %q", u, offset, resp.Header.Get("Content-Range"))}
		}
	case http.StatusOK:
		if offset > 0 {
			if err := f.Truncate(0); err != nil {
				return fmt.Errorf("hub: %w", err)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("hub: %w", err)
			}
			offset = 0
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		return &networkError{fmt.Errorf("hub: %s: range from %d not satisfiable; restarting", u, offset)}
	default:
		return p.statusError(resp, "file "+u)
	}
	if bar != nil {
		bar.Reset()
		_ = bar.Set64(offset)
	}
	var w io.Writer = f
	if bar != nil {
		w = io.MultiWriter(f, bar)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &networkError{fmt.Errorf("hub: %s: connection lost after %d bytes: %w", u, offset+n, err)}
	}
	if size >= 0 && offset+n != size {
		return &networkError{fmt.Errorf("hub: %s: got %d of %d bytes", u, offset+n, size)}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

func contentRangeStart(s string) (int64, bool) {
	s, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(s, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

// verify checks a complete file against its size and ETag: a 64-digit ETag
// is the sha256 of an LFS file, a 40-digit one the git blob hash of a
// regular file. Other ETags are checked by size only.
func verify(file string, meta fileMeta) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if meta.size >= 0 && fi.Size() != meta.size {
		return fmt.Errorf("%w: size %d, want %d", ErrChecksum, fi.Size(), meta.size)
	}
	var h hash.Hash
	kind := ""
	switch {
	case isHex(meta.etag, 64):
		h, kind = sha256.New(), "sha256"
	case isHex(meta.etag, 40):
		h, kind = sha1.New(), "git blob sha1"
		fmt.Fprintf(h, "blob %d\x00", fi.Size())
	default:
		return nil
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(meta.etag) {
		return fmt.Errorf("%w: %s %s, want %s", ErrChecksum, kind, got, meta.etag)
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
