package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

type remoteFile struct {
	data []byte
	lfs  bool
}

// fakeHub speaks the part of the Hub's protocol Pull uses: the revision
// API, HEAD and GET on resolve URLs with the Hub's headers, LFS files
// redirected to a CDN on another host, Range requests.
type fakeHub struct {
	t        *testing.T
	hub, cdn *httptest.Server
	repo     string
	files    map[string]remoteFile
	token    string // required when not ""
	gated    bool
	apiOpen  bool // the revision API answers without a token (gated repos)

	mu        sync.Mutex
	requests  []string // "METHOD path" on both servers
	cdnAuth   []string // Authorization headers the CDN saw
	ranges    []string // Range headers of body requests
	cutOnce   map[string]bool
	corrupt   map[string]bool
	fail503   int // answer the API with 503 this many times
	block     chan struct{}
	apiServed int
}

func newFakeHub(t *testing.T) *fakeHub {
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	h := &fakeHub{
		t:    t,
		repo: "acme/tiny-model",
		files: map[string]remoteFile{
			"config.json":              {data: []byte(`{"model_type": "llama"}`)},
			"tokenizer.json":           {data: []byte(`{"model": {}}`)},
			"tokenizer_config.json":    {data: []byte(`{}`)},
			"model.safetensors":        {data: big, lfs: true},
			"README.md":                {data: []byte("# tiny")},
			"gguf/model-Q8_0.gguf":     {data: []byte("GGUF...."), lfs: true},
			"onnx/model.onnx":          {data: []byte("onnx"), lfs: true},
			"generation_config.json":   {data: []byte(`{"do_sample": false}`)},
			"consolidated.safetensors": {data: []byte("same weights, other layout"), lfs: true},
			"onnx/config.json":         {data: []byte(`{}`)},
		},
		cutOnce: map[string]bool{},
		corrupt: map[string]bool{},
	}
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serveCDN))
	h.hub = httptest.NewServer(http.HandlerFunc(h.serveHub))
	t.Cleanup(func() { h.hub.Close(); h.cdn.Close() })
	return h
}

func sha256hex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func gitSHA(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (h *fakeHub) etag(f remoteFile) string {
	if f.lfs {
		return sha256hex(f.data)
	}
	return gitSHA(f.data)
}

func (h *fakeHub) log(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, r.Method+" "+r.URL.Path)
	if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
		h.ranges = append(h.ranges, r.URL.Path+" "+r.Header.Get("Range"))
	}
}

func (h *fakeHub) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

func (h *fakeHub) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests, h.cdnAuth, h.ranges = nil, nil, nil
}

// authorize answers like the Hub: 401 without a good token for private
// repos, 403 GatedRepo for gated ones.
func (h *fakeHub) authorize(w http.ResponseWriter, r *http.Request) bool {
	if h.token == "" {
		return true
	}
	got := r.Header.Get("Authorization")
	if got == "Bearer "+h.token {
		return true
	}
	if h.gated {
		w.Header().Set("X-Error-Code", "GatedRepo")
		w.Header().Set("X-Error-Message", "Access to model "+h.repo+" is restricted.")
		http.Error(w, "gated", http.StatusForbidden)
		return false
	}
	w.Header().Set("X-Error-Code", "RepoNotFound")
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	return false
}

func (h *fakeHub) serveHub(w http.ResponseWriter, r *http.Request) {
	h.log(r)
	p := r.URL.Path
	if rest, ok := strings.CutPrefix(p, "/api/models/"); ok {
		h.mu.Lock()
		fail := h.fail503 > 0
		if fail {
			h.fail503--
		}
		h.apiServed++
		h.mu.Unlock()
		if fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		repo, rev, ok := strings.Cut(rest, "/revision/")
		if !ok || repo != h.repo {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if !h.apiOpen && !h.authorize(w, r) {
			return
		}
		if rev != "main" && rev != commit {
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			http.Error(w, "no revision", http.StatusNotFound)
			return
		}
		var sib []map[string]string
		for name := range h.files {
			sib = append(sib, map[string]string{"rfilename": name})
		}
		json.NewEncoder(w).Encode(map[string]any{"id": h.repo, "sha": commit, "siblings": sib})
		return
	}
	// A renamed repository: relative redirect to the new name.
	if rest, ok := strings.CutPrefix(p, "/acme/old-name/"); ok {
		http.Redirect(w, r, "/"+h.repo+"/"+rest, http.StatusTemporaryRedirect)
		return
	}
	rest, ok := strings.CutPrefix(p, "/"+h.repo+"/resolve/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !h.authorize(w, r) {
		return
	}
	rev, name, _ := strings.Cut(rest, "/")
	f, ok := h.files[name]
	if !ok || (rev != commit && rev != "main") {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "no entry", http.StatusNotFound)
		return
	}
	w.Header().Set("X-Repo-Commit", commit)
	if f.lfs {
		w.Header().Set("X-Linked-Etag", `"`+h.etag(f)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(f.data)))
		w.Header().Set("ETag", `"not-the-sha"`)
		http.Redirect(w, r, h.cdn.URL+"/blobs/"+name, http.StatusFound)
		return
	}
	w.Header().Set("ETag", `"`+h.etag(f)+`"`)
	h.serveBody(w, r, name, f)
}

func (h *fakeHub) serveCDN(w http.ResponseWriter, r *http.Request) {
	h.log(r)
	h.mu.Lock()
	h.cdnAuth = append(h.cdnAuth, r.Header.Get("Authorization"))
	h.mu.Unlock()
	name, _ := strings.CutPrefix(r.URL.Path, "/blobs/")
	f, ok := h.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.serveBody(w, r, name, f)
}

// serveBody serves a file with Range support, cutting the connection or
// corrupting the content when asked.
func (h *fakeHub) serveBody(w http.ResponseWriter, r *http.Request, name string, f remoteFile) {
	data := f.data
	h.mu.Lock()
	if h.corrupt[name] {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xff
	}
	cut := h.cutOnce[name] && r.Method == http.MethodGet
	if cut {
		delete(h.cutOnce, name)
	}
	block := h.block
	h.mu.Unlock()
	if block != nil && r.Method == http.MethodGet {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	start := 0
	if rg := r.Header.Get("Range"); rg != "" {
		var s int
		if _, err := fmt.Sscanf(rg, "bytes=%d-", &s); err != nil || s > len(data) {
			http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = s
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, len(data)-1, len(data)))
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)-start))
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	}
	if r.Method == http.MethodHead {
		return
	}
	body := data[start:]
	if cut {
		// Declare the full length, send half, and drop the connection.
		w.Write(body[:len(body)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler)
	}
	w.Write(body)
}

func (h *fakeHub) opts(t *testing.T, cache string) Options {
	return Options{
		Endpoint: h.hub.URL,
		Token:    h.token,
		CacheDir: cache,
		Backoff:  time.Millisecond,
		Retries:  3,
		Logger:   slog.New(slog.DiscardHandler),
	}
}

// checkSnapshot verifies the cache layout and the content of the files.
func checkSnapshot(t *testing.T, h *fakeHub, cache, dir string, want []string) {
	t.Helper()
	repoDir := filepath.Join(cache, "models--acme--tiny-model")
	if dir != filepath.Join(repoDir, "snapshots", commit) {
		t.Fatalf("snapshot dir %s", dir)
	}
	ref, err := os.ReadFile(filepath.Join(repoDir, "refs", "main"))
	if err != nil || string(ref) != commit {
		t.Fatalf("refs/main = %q, %v", ref, err)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if strings.Join(sorted(got), ",") != strings.Join(sorted(want), ",") {
		t.Fatalf("snapshot holds %v, want %v", got, want)
	}
	for _, name := range want {
		f := h.files[name]
		p := filepath.Join(dir, filepath.FromSlash(name))
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatalf("%s is not a symlink: %v", name, err)
		}
		wantTarget := strings.Repeat("../", 2+strings.Count(name, "/")) + "blobs/" + h.etag(f)
		if filepath.ToSlash(target) != wantTarget {
			t.Fatalf("%s -> %s, want %s", name, target, wantTarget)
		}
		data, err := os.ReadFile(p)
		if err != nil || string(data) != string(f.data) {
			t.Fatalf("%s: content differs (%d bytes, %v)", name, len(data), err)
		}
	}
	incomplete, _ := filepath.Glob(filepath.Join(repoDir, "blobs", "*.incomplete"))
	if len(incomplete) > 0 {
		t.Fatalf("left over: %v", incomplete)
	}
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

var defaultFiles = []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"}

func TestPullFreshThenCached(t *testing.T) {
	h := newFakeHub(t)
	h.token = "hf_secret"
	cache := t.TempDir()
	var progress strings.Builder
	o := h.opts(t, cache)
	o.Progress = &progress
	dir, err := Pull(context.Background(), h.repo, "main", o)
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, h, cache, dir, defaultFiles)
	if !strings.Contains(progress.String(), "model.safetensors") || !strings.Contains(progress.String(), "100%") {
		t.Fatalf("progress output %q", progress.String())
	}
	for _, a := range h.cdnAuth {
		if a != "" {
			t.Fatalf("the CDN on another host received Authorization %q", a)
		}
	}
	if len(h.cdnAuth) == 0 {
		t.Fatal("the LFS file did not come from the CDN")
	}

	// Second run: only the revision API, no HEAD and no body request.
	h.reset()
	dir2, err := Pull(context.Background(), h.repo, "", h.opts(t, cache))
	if err != nil || dir2 != dir {
		t.Fatalf("second pull: %s, %v", dir2, err)
	}
	if n := len(h.requests); n != 1 || h.count("GET /api/models/") != 1 {
		t.Fatalf("second pull made requests %v, want only the revision API", h.requests)
	}

	// Offline: no request at all.
	h.reset()
	dir3, err := Pull(context.Background(), h.repo, "main", Options{CacheDir: cache, Offline: true, Endpoint: h.hub.URL})
	if err != nil || dir3 != dir || len(h.requests) != 0 {
		t.Fatalf("offline pull: %s, %v, requests %v", dir3, err, h.requests)
	}
	// Hub unreachable: falls back to the cached snapshot.
	h.hub.Close()
	dir4, err := Pull(context.Background(), h.repo, "main", h.opts(t, cache))
	if err != nil || dir4 != dir {
		t.Fatalf("pull with the Hub down: %s, %v", dir4, err)
	}
	// Offline with nothing cached for that revision.
	if _, err := Pull(context.Background(), h.repo, "v2", Options{CacheDir: cache, Offline: true}); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline, uncached revision: %v", err)
	}
}

func TestPullByCommitAndBlobReuse(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	if _, err := Pull(context.Background(), h.repo, "main", h.opts(t, cache)); err != nil {
		t.Fatal(err)
	}
	// Remove the snapshot links: the blobs are reused without a body request.
	os.RemoveAll(filepath.Join(cache, "models--acme--tiny-model", "snapshots"))
	h.reset()
	dir, err := Pull(context.Background(), h.repo, commit, h.opts(t, cache))
	if err != nil {
		t.Fatal(err)
	}
	if n := h.count("GET /"+h.repo+"/resolve") + h.count("GET /blobs"); n != 0 {
		t.Fatalf("%d body requests for blobs already cached: %v", n, h.requests)
	}
	if h.count("HEAD ") != len(defaultFiles) {
		t.Fatalf("HEAD requests: %v", h.requests)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
}

func TestPullInclude(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	o := h.opts(t, cache)
	o.Include = []string{"*.gguf", "config.json"}
	dir, err := Pull(context.Background(), h.repo, "main", o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"gguf/model-Q8_0.gguf", "config.json"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Fatal("model.safetensors pulled although not included")
	}
	o.Include = []string{"*.bin"}
	if _, err := Pull(context.Background(), h.repo, "main", o); !errors.Is(err, ErrNoFiles) || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("no match: %v", err)
	}
	o.Include = []string{"[bad"}
	if _, err := Pull(context.Background(), h.repo, "main", o); err == nil || !strings.Contains(err.Error(), "bad include pattern") {
		t.Fatalf("bad pattern: %v", err)
	}
}

func TestPullResume(t *testing.T) {
	t.Run("connection cut mid-file", func(t *testing.T) {
		h := newFakeHub(t)
		h.cutOnce["model.safetensors"] = true
		h.cutOnce["config.json"] = true
		cache := t.TempDir()
		dir, err := Pull(context.Background(), h.repo, "main", h.opts(t, cache))
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshot(t, h, cache, dir, defaultFiles)
		half := len(h.files["model.safetensors"].data) / 2
		want := fmt.Sprintf("/blobs/model.safetensors bytes=%d-", half)
		found := false
		for _, r := range h.ranges {
			found = found || r == want
		}
		if !found {
			t.Fatalf("no resume request %q among %v", want, h.ranges)
		}
	})
	t.Run("partial file from an earlier run", func(t *testing.T) {
		h := newFakeHub(t)
		cache := t.TempDir()
		f := h.files["model.safetensors"]
		blobs := filepath.Join(cache, "models--acme--tiny-model", "blobs")
		os.MkdirAll(blobs, 0o755)
		os.WriteFile(filepath.Join(blobs, h.etag(f)+".incomplete"), f.data[:1000], 0o644)
		dir, err := Pull(context.Background(), h.repo, "main", h.opts(t, cache))
		if err != nil {
			t.Fatal(err)
		}
		checkSnapshot(t, h, cache, dir, defaultFiles)
		if n := len(h.ranges); n == 0 || h.ranges[n-1] != "/blobs/model.safetensors bytes=1000-" {
			t.Fatalf("range requests %v", h.ranges)
		}
	})
}

func TestPullChecksumMismatch(t *testing.T) {
	for _, name := range []string{"model.safetensors", "config.json"} { // sha256 and git blob hash
		t.Run(name, func(t *testing.T) {
			h := newFakeHub(t)
			h.corrupt[name] = true
			cache := t.TempDir()
			_, err := Pull(context.Background(), h.repo, "main", h.opts(t, cache))
			if !errors.Is(err, ErrChecksum) {
				t.Fatalf("error %v, want ErrChecksum", err)
			}
			left, _ := filepath.Glob(filepath.Join(cache, "models--acme--tiny-model", "blobs", h.etag(h.files[name])+"*"))
			if len(left) != 0 {
				t.Fatalf("corrupt download kept: %v", left)
			}
		})
	}
}

func TestPullErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(h *fakeHub)
		token   string
		repo    string
		rev     string
		is      error
		message string
	}{
		{"private without token", func(h *fakeHub) { h.token = "hf_good" }, "", "", "main", ErrUnauthorized, "set HF_TOKEN"},
		{"private with a bad token", func(h *fakeHub) { h.token = "hf_good" }, "hf_bad", "", "main", ErrUnauthorized, "token in HF_TOKEN was refused"},
		{"gated", func(h *fakeHub) { h.token = "hf_good"; h.gated = true }, "", "", "main", ErrUnauthorized, "gated"},
		{"gated files, public listing", func(h *fakeHub) { h.token = "hf_good"; h.gated = true; h.apiOpen = true }, "", "", "main", ErrUnauthorized, "accept its terms"},
		{"unknown repo", nil, "", "acme/nothing", "main", ErrNotFound, "check the repository id"},
		{"unknown revision", nil, "", "", "v9", ErrNotFound, "no such revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHub(t)
			if tt.setup != nil {
				tt.setup(h)
			}
			o := h.opts(t, t.TempDir())
			o.Token = tt.token
			repo := tt.repo
			if repo == "" {
				repo = h.repo
			}
			_, err := Pull(context.Background(), repo, tt.rev, o)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("error %v, want %v with %q", err, tt.is, tt.message)
			}
			if n := h.count("GET /api"); n != 1 || h.count("HEAD ") > 1 {
				t.Fatalf("%d API requests: a refusal must not be retried", n)
			}
		})
	}
}

func TestPullRetries(t *testing.T) {
	h := newFakeHub(t)
	h.fail503 = 2
	cache := t.TempDir()
	if _, err := Pull(context.Background(), h.repo, "main", h.opts(t, cache)); err != nil {
		t.Fatal(err)
	}
	if h.apiServed != 3 {
		t.Fatalf("API served %d times, want 3", h.apiServed)
	}
	h.fail503 = 10
	if _, err := Pull(context.Background(), h.repo, "main", h.opts(t, t.TempDir())); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("persistent 503: %v", err)
	}
}

func TestPullCancel(t *testing.T) {
	h := newFakeHub(t)
	h.block = make(chan struct{})
	defer close(h.block)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	_, err := Pull(ctx, h.repo, "main", h.opts(t, t.TempDir()))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

func TestRelativeRedirect(t *testing.T) {
	h := newFakeHub(t)
	p := &puller{opt: Options{Endpoint: h.hub.URL, Client: &http.Client{}, Retries: 1, Backoff: time.Millisecond}, repo: "acme/old-name"}
	p.opt, _ = p.opt.withDefaults()
	meta, err := p.head(context.Background(), h.hub.URL+"/acme/old-name/resolve/"+commit+"/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if meta.etag != gitSHA(h.files["config.json"].data) || meta.size != int64(len(h.files["config.json"].data)) || meta.commit != commit {
		t.Fatalf("metadata %+v", meta)
	}
	// An LFS file: the metadata of the redirect, not of the CDN.
	meta, err = p.head(context.Background(), h.hub.URL+"/acme/tiny-model/resolve/"+commit+"/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if meta.etag != sha256hex(h.files["model.safetensors"].data) || meta.size != 300_000 {
		t.Fatalf("LFS metadata %+v", meta)
	}
}

func TestBadRevision(t *testing.T) {
	for _, rev := range []string{"../../etc", "/abs", `a\b`} {
		if _, err := Pull(context.Background(), "acme/x", rev, Options{CacheDir: t.TempDir(), Endpoint: "http://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "bad revision") {
			t.Errorf("revision %q: %v", rev, err)
		}
	}
}

func TestHostileServer(t *testing.T) {
	h := newFakeHub(t)
	h.files["../../evil.json"] = remoteFile{data: []byte("x")}
	o := h.opts(t, t.TempDir())
	o.Include = []string{"*.json"}
	if _, err := Pull(context.Background(), h.repo, "main", o); err == nil || !strings.Contains(err.Error(), "refusing file name") {
		t.Fatalf("error %v", err)
	}
}

func TestParseRefAndMatch(t *testing.T) {
	for _, tt := range []struct{ in, repo, rev, err string }{
		{"HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "main", ""},
		{"Qwen/Qwen2.5-0.5B-Instruct@v1.0", "Qwen/Qwen2.5-0.5B-Instruct", "v1.0", ""},
		{"gpt2", "gpt2", "main", ""},
		{"a/b/c", "", "", "bad repository id"},
		{"../x", "", "", "bad repository id"},
		{"org/na--me", "", "", "bad repository id"},
		{"", "", "", "bad repository id"},
	} {
		repo, rev, err := ParseRef(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseRef(%q) error %v", tt.in, err)
			}
			continue
		}
		if err != nil || repo != tt.repo || rev != tt.rev {
			t.Errorf("ParseRef(%q) = %q, %q, %v", tt.in, repo, rev, err)
		}
	}
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"config.json", true}, {"tokenizer.json", true}, {"tokenizer_config.json", true},
		{"model-00001-of-00002.safetensors", true}, {"model.safetensors.index.json", true},
		{"sub/model.safetensors", true}, {"README.md", false}, {"pytorch_model.bin", false},
		{"onnx/config.json", true}, {"model.gguf", false},
	} {
		if got := Match(DefaultInclude, tt.name); got != tt.want {
			t.Errorf("Match(DefaultInclude, %q) = %v", tt.name, got)
		}
	}
}

func TestSelectFiles(t *testing.T) {
	files := []string{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
		"model.safetensors.index.json", "consolidated.safetensors", "original/model.safetensors", "onnx/config.json",
		"tokenizer.json", "README.md", "gguf/m-Q8_0.gguf"}
	got := SelectFiles(DefaultInclude, files, true)
	want := []string{"config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json"}
	if !slices.Equal(got, want) {
		t.Fatalf("defaults select %v, want %v", got, want)
	}
	// Only consolidated weights: those are the weights.
	if got := SelectFiles(DefaultInclude, []string{"config.json", "consolidated.safetensors"}, true); len(got) != 2 {
		t.Fatalf("consolidated only: %v", got)
	}
	// User patterns reach into folders.
	if got := SelectFiles([]string{"*.gguf"}, files, false); !slices.Equal(got, []string{"gguf/m-Q8_0.gguf"}) {
		t.Fatalf("*.gguf selects %v", got)
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_HOME", "/x/hf")
	if d, _ := DefaultCacheDir(); d != "/x/hf/hub" {
		t.Errorf("HF_HOME: %s", d)
	}
	t.Setenv("HF_HUB_CACHE", "/y/cache")
	if d, _ := DefaultCacheDir(); d != "/y/cache" {
		t.Errorf("HF_HUB_CACHE: %s", d)
	}
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", "")
	t.Setenv("XDG_CACHE_HOME", "/z")
	if d, _ := DefaultCacheDir(); d != "/z/huggingface/hub" {
		t.Errorf("XDG_CACHE_HOME: %s", d)
	}
}

// TestConcurrentPulls: two pulls of one repository into one cache at once
// both succeed and leave one intact copy.
func TestConcurrentPulls(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	dirs := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = Pull(context.Background(), h.repo, "main", h.opts(t, cache))
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	checkSnapshot(t, h, cache, dirs[0], defaultFiles)
	locks, _ := filepath.Glob(filepath.Join(cache, ".locks", "models--acme--tiny-model", "*.lock"))
	if len(locks) == 0 {
		t.Fatal("no lock files in .locks")
	}
}
