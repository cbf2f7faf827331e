// Package hub downloads model repositories from the Hugging Face Hub into
// the cache layout huggingface_hub uses, so that files are shared with
// Python tools.
//
// The cache of a repository org/name lives in
// {cache}/models--org--name/: blobs/{etag} holds each file's content, named
// by its sha256 (LFS files) or git blob hash, snapshots/{commit}/{path} are
// relative symbolic links to the blobs, and refs/{revision} holds the commit
// a branch or tag pointed to when last pulled. Downloads go to
// blobs/{etag}.incomplete and resume from there with a Range request; each
// completed file is checked against its hash before it is moved into place.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DefaultInclude selects what inference needs from a Hugging Face model
// repository: configuration, tokenizer and safetensors weights.
var DefaultInclude = []string{
	"config.json",
	"generation_config.json",
	"tokenizer*.json",
	"tokenizer.model",
	"special_tokens_map.json",
	"*.safetensors",
	"*.safetensors.index.json",
}

// DefaultEndpoint is the Hub's address; HF_ENDPOINT overrides it.
const DefaultEndpoint = "https://huggingface.co"

// Options configures Pull. The zero value reads everything from the
// environment the way huggingface_hub does.
type Options struct {
	// Endpoint is the Hub's base URL; default $HF_ENDPOINT, else
	// https://huggingface.co.
	Endpoint string
	// Token is sent as a bearer token; default $HF_TOKEN, else the token
	// file that `huggingface-cli login` writes ($HF_TOKEN_PATH or
	// $HF_HOME/token).
	Token string
	// CacheDir is the hub cache folder; default DefaultCacheDir().
	CacheDir string
	// Include lists glob patterns (path.Match syntax) of the files to pull;
	// a pattern without a slash also matches the base name of files in
	// subfolders. Default DefaultInclude, applied as SelectFiles does with
	// defaults (top folder only, one copy of the weights).
	Include []string
	// Client is the HTTP client; default a client without a timeout
	// (downloads are bounded by the context).
	Client *http.Client
	// Progress receives one progress bar per downloaded file; nil shows
	// none.
	Progress io.Writer
	// Retries is how many times a failed request is tried again (network
	// errors, 5xx, 429); default 5. Backoff is the first wait, doubled each
	// time up to 30 s; default 1 s.
	Retries int
	Backoff time.Duration
	// Offline uses only the cache (also set by HF_HUB_OFFLINE=1).
	Offline bool
	// Logger receives debug and warning messages; default slog.Default().
	Logger *slog.Logger
}

// Errors that Pull wraps, for errors.Is.
var (
	// ErrUnauthorized: the Hub refused access (401/403): a private or gated
	// repository, or a bad token.
	ErrUnauthorized = errors.New("hub: access refused")
	// ErrNotFound: no such repository, revision or file (404).
	ErrNotFound = errors.New("hub: not found")
	// ErrChecksum: a downloaded file does not match its hash.
	ErrChecksum = errors.New("hub: checksum mismatch")
	// ErrNoFiles: no file of the repository matches the include patterns.
	ErrNoFiles = errors.New("hub: no file matches")
	// ErrOffline: offline mode and the cache lacks what was asked.
	ErrOffline = errors.New("hub: not in the cache (offline)")
)

// ParseRef splits "org/name@revision" into repository and revision; the
// revision defaults to "main".
func ParseRef(ref string) (repo, rev string, err error) {
	repo, rev, _ = strings.Cut(ref, "@")
	if rev == "" {
		rev = "main"
	}
	if err := checkRepo(repo); err != nil {
		return "", "", err
	}
	return repo, rev, nil
}

var repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkRepo(repo string) error {
	parts := strings.Split(repo, "/")
	if len(parts) > 2 || repo == "" {
		return fmt.Errorf("hub: bad repository id %q: want org/name", repo)
	}
	for _, p := range parts {
		if !repoPart.MatchString(p) || strings.Contains(p, "--") || strings.Contains(p, "..") || len(p) > 96 {
			return fmt.Errorf("hub: bad repository id %q: want org/name of letters, digits, '-', '_' and '.'", repo)
		}
	}
	return nil
}

func (o Options) withDefaults() (Options, error) {
	if o.Endpoint == "" {
		o.Endpoint = os.Getenv("HF_ENDPOINT")
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultEndpoint
	}
	o.Endpoint = strings.TrimRight(o.Endpoint, "/")
	if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("hub: bad endpoint %q: want http(s)://host", o.Endpoint)
	}
	if o.Token == "" {
		o.Token = defaultToken()
	}
	if o.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return o, err
		}
		o.CacheDir = d
	}
	if len(o.Include) == 0 {
		o.Include = DefaultInclude
	}
	for _, p := range o.Include {
		if _, err := path.Match(p, ""); err != nil {
			return o, fmt.Errorf("hub: bad include pattern %q: %w", p, err)
		}
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if v := os.Getenv("HF_HUB_OFFLINE"); v == "1" || strings.EqualFold(v, "true") {
		o.Offline = true
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

func defaultToken() string {
	for _, v := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if t := strings.TrimSpace(os.Getenv(v)); t != "" {
			return t
		}
	}
	p := os.Getenv("HF_TOKEN_PATH")
	if p == "" {
		home := os.Getenv("HF_HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return ""
			}
			home = filepath.Join(h, ".cache", "huggingface")
		}
		p = filepath.Join(home, "token")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Match reports whether the repository file name matches one of the
// patterns: path.Match against the whole name, and for patterns without a
// slash also against its base name.
func Match(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
		if !strings.Contains(p, "/") {
			if ok, _ := path.Match(p, path.Base(name)); ok {
				return true
			}
		}
	}
	return false
}

// SelectFiles returns the repository files that match the patterns. With
// defaults (the patterns are DefaultInclude) it keeps to the top folder,
// where the model's loaders look, and when model*.safetensors weights are
// there it leaves out other safetensors files (the consolidated.safetensors
// that some repositories carry beside them), so weights are pulled once.
func SelectFiles(patterns, files []string, defaults bool) []string {
	hasModel := false
	if defaults {
		for _, f := range files {
			if ok, _ := path.Match("model*.safetensors", f); ok {
				hasModel = true
			}
		}
	}
	var out []string
	for _, f := range files {
		if !Match(patterns, f) {
			continue
		}
		if defaults {
			if strings.Contains(f, "/") {
				continue
			}
			if ok, _ := path.Match("*.safetensors", f); ok && hasModel {
				if m, _ := path.Match("model*.safetensors", f); !m {
					continue
				}
			}
		}
		out = append(out, f)
	}
	return out
}

// Pull downloads the files of repository repo (org/name) at revision rev (a
// branch, tag or commit; "" means "main") that match opt.Include, and
// returns the snapshot folder that holds them. Files already in the cache
// are not downloaded again; an interrupted download resumes.
func Pull(ctx context.Context, repo, rev string, opt Options) (snapshotDir string, err error) {
	if err := checkRepo(repo); err != nil {
		return "", err
	}
	if rev == "" {
		rev = "main"
	}
	if !filepath.IsLocal(filepath.FromSlash(rev)) || strings.ContainsAny(rev, "\\\x00") || len(rev) > 256 {
		return "", fmt.Errorf("hub: bad revision %q", rev)
	}
	defaults := len(opt.Include) == 0
	opt, err = opt.withDefaults()
	if err != nil {
		return "", err
	}
	p := &puller{opt: opt, repo: repo, cache: newRepoCache(opt.CacheDir, repo), defaults: defaults}
	if opt.Offline {
		return p.fromCache(rev, nil)
	}
	info, err := p.repoInfo(ctx, rev)
	if err != nil {
		var netErr *networkError
		if errors.As(err, &netErr) {
			if dir, cerr := p.fromCache(rev, err); cerr == nil {
				opt.Logger.Warn("hub: the Hub cannot be reached; using the cached snapshot", "repo", repo, "revision", rev, "err", err)
				return dir, nil
			}
		}
		return "", err
	}
	var all []string
	for _, s := range info.Siblings {
		all = append(all, s.RFilename)
	}
	files := SelectFiles(opt.Include, all, p.defaults)
	for _, f := range files {
		if !filepath.IsLocal(filepath.FromSlash(f)) || strings.Contains(f, `\`) {
			return "", fmt.Errorf("hub: %s@%s: refusing file name %q", repo, rev, f)
		}
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%w %q in %s@%s; its files are %q", ErrNoFiles, opt.Include, repo, rev, all)
	}
	commit := info.SHA
	for _, f := range files {
		if err := p.file(ctx, commit, f); err != nil {
			return "", err
		}
	}
	if err := p.cache.writeRef(rev, commit); err != nil {
		return "", fmt.Errorf("hub: write ref %s: %w", rev, err)
	}
	return p.cache.snapshot(commit), nil
}

type puller struct {
	opt      Options
	repo     string
	cache    repoCache
	defaults bool // opt.Include was empty: DefaultInclude applies
}

// fromCache returns the cached snapshot of rev, if any.
func (p *puller) fromCache(rev string, cause error) (string, error) {
	commit := p.cache.readRef(rev)
	if commit == "" {
		if cause != nil {
			return "", cause
		}
		return "", fmt.Errorf("%w: %s@%s has no ref in %s", ErrOffline, p.repo, rev, p.cache.dir)
	}
	dir := p.cache.snapshot(commit)
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if rel, rerr := filepath.Rel(dir, path); rerr == nil && Match(p.opt.Include, filepath.ToSlash(rel)) {
				n++
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		return "", fmt.Errorf("%w: snapshot %s of %s@%s holds no file matching %q", ErrOffline, commit, p.repo, rev, p.opt.Include)
	}
	return dir, nil
}

type repoInfo struct {
	SHA      string `json:"sha"`
	Siblings []struct {
		RFilename string `json:"rfilename"`
	} `json:"siblings"`
}

// repoInfo lists the repository's files at rev and resolves rev to a
// commit.
func (p *puller) repoInfo(ctx context.Context, rev string) (*repoInfo, error) {
	u := p.opt.Endpoint + "/api/models/" + p.repo + "/revision/" + url.PathEscape(rev)
	var info repoInfo
	err := p.retry(ctx, "list "+p.repo+"@"+rev, func() error {
		resp, err := p.send(ctx, http.MethodGet, u, nil, true)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return p.statusError(resp, "repository "+p.repo+" at revision "+rev)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return &networkError{err}
		}
		info = repoInfo{}
		if err := json.Unmarshal(body, &info); err != nil {
			return fmt.Errorf("hub: %s: bad JSON: %w", u, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !isCommit(info.SHA) {
		return nil, fmt.Errorf("hub: %s: the Hub gave %q as the commit of %s, not a commit hash", u, info.SHA, rev)
	}
	return &info, nil
}

// resolveURL is where a file's content is served at a commit.
func (p *puller) resolveURL(commit, name string) string {
	parts := strings.Split(name, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return p.opt.Endpoint + "/" + p.repo + "/resolve/" + commit + "/" + strings.Join(parts, "/")
}

var etagOK = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// file makes snapshots/{commit}/{name} present, downloading its blob when
// the cache lacks it.
func (p *puller) file(ctx context.Context, commit, name string) error {
	if p.cache.present(commit, name) {
		p.opt.Logger.Debug("hub: cached", "repo", p.repo, "file", name)
		return nil
	}
	u := p.resolveURL(commit, name)
	meta, err := p.head(ctx, u)
	if err != nil {
		return err
	}
	if !etagOK.MatchString(meta.etag) {
		return fmt.Errorf("hub: %s: unusable ETag %q", u, meta.etag)
	}
	blob := p.cache.blob(meta.etag)
	unlock, err := lockBlob(ctx, p.opt.CacheDir, filepath.Base(p.cache.dir), meta.etag)
	if err != nil {
		return err
	}
	defer unlock()
	if fi, err := os.Stat(blob); err != nil || (meta.size >= 0 && fi.Size() != meta.size) {
		if err := p.download(ctx, u, name, blob, meta); err != nil {
			return err
		}
	}
	if err := p.cache.link(commit, name, meta.etag); err != nil {
		return fmt.Errorf("hub: link %s: %w", name, err)
	}
	return nil
}

type fileMeta struct {
	etag   string
	size   int64 // -1 when unknown
	commit string
}
