package persona

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/memory"
)

// Workspace layout: the files Save writes under WORKSPACE/personas/.
const (
	Dir             = "personas"
	AssignmentsFile = "assignments.json"
	CentroidsFile   = "centroids.json"
	SummaryFile     = "summary.json"
	ManifestFile    = "manifest.json"
	ManifestVersion = 1
)

// Assignments is assignments.json: every clustered user's persona.
type Assignments struct {
	Embedder string         `json:"embedder"`
	K        int            `json:"k"`
	Seed     int64          `json:"seed"`
	Personas map[string]int `json:"personas"` // user ID → persona
}

// Centroids is centroids.json: the personas' centres in the embedder's
// space, for assigning new users (re-Fit the embedder on the same profiles
// first; every built-in embedder is deterministic).
type Centroids struct {
	Embedder  string      `json:"embedder"`
	K         int         `json:"k"`
	Dim       int         `json:"dim"`
	Centroids [][]float32 `json:"centroids"`
}

// Summary is summary.json: how K was chosen, what the clustering separates
// and the personas in words.
type Summary struct {
	Embedder   string     `json:"embedder"`
	Options    Options    `json:"options"`
	Users      int        `json:"users"`
	K          int        `json:"k"`
	Inertia    float64    `json:"inertia"`
	Sizes      []int      `json:"sizes"`
	Selection  Selection  `json:"selection"`
	Separation Separation `json:"separation"`
	Personas   []Persona  `json:"personas"`
	// Comparison, when several embedders were measured, holds each one's
	// separation at the chosen options.
	Comparison []Comparison `json:"comparison,omitempty"`
}

// Comparison is one embedder's outcome in a comparison.
type Comparison struct {
	Embedder   string     `json:"embedder"`
	K          int        `json:"k"`
	Separation Separation `json:"separation"`
	Error      string     `json:"error,omitempty"`
}

// Manifest records what the personas of a workspace were made from, so a
// rerun with the same inputs is skipped.
type Manifest struct {
	Version int    `json:"version"`
	Key     string `json:"key"` // InputKey of the inputs and options
	// Files maps each output file name to its SHA-256.
	Files map[string]string `json:"files"`
}

// InputKey is the manifest key of a clustering: a SHA-256 over the
// profiles' JSON, the embedder's name, the options (Workers aside) and
// extra (anything else the outputs depend on, e.g. the dataset used for
// demographics).
func InputKey(profiles []memory.Profile, embedder string, opt Options, extra string) (string, error) {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, p := range profiles {
		if err := enc.Encode(p); err != nil {
			return "", fmt.Errorf("persona: hash profile %s: %w", p.User, err)
		}
	}
	opt.fill()
	opt.Workers = 0
	if err := enc.Encode(struct {
		Embedder string
		Options  Options
		Extra    string
	}{embedder, opt, extra}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Save writes assignments.json, centroids.json, summary.json and, last,
// manifest.json under workspace/personas, each atomically. The old manifest
// is removed first, so a crash never leaves one vouching for mixed outputs.
func Save(workspace, key string, r *Result, comparison []Comparison) error {
	dir := filepath.Join(workspace, Dir)
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("persona: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("persona: %w", err)
	}
	c := r.Clustering
	a := Assignments{Embedder: r.Embedder, K: c.K, Seed: r.Options.Seed, Personas: make(map[string]int, len(r.Users))}
	for i, u := range r.Users {
		a.Personas[u] = c.Labels[i]
	}
	files := []struct {
		name string
		v    any
	}{
		{AssignmentsFile, a},
		{CentroidsFile, Centroids{Embedder: r.Embedder, K: c.K, Dim: c.Dim, Centroids: c.Centroids}},
		{SummaryFile, Summary{
			Embedder: r.Embedder, Options: r.Options, Users: len(r.Users), K: c.K, Inertia: c.Inertia, Sizes: c.Sizes,
			Selection: r.Selection, Separation: r.Separation, Personas: r.Personas, Comparison: comparison,
		}},
	}
	m := Manifest{Version: ManifestVersion, Key: key, Files: map[string]string{}}
	for _, f := range files {
		h := sha256.New()
		err := atomicfile.Write(filepath.Join(dir, f.name), 0o644, func(w io.Writer) error {
			enc := json.NewEncoder(io.MultiWriter(w, h))
			enc.SetIndent("", "  ")
			return enc.Encode(f.v)
		})
		if err != nil {
			return fmt.Errorf("persona: %w", err)
		}
		m.Files[f.name] = hex.EncodeToString(h.Sum(nil))
	}
	err := atomicfile.Write(filepath.Join(dir, ManifestFile), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	})
	if err != nil {
		return fmt.Errorf("persona: %w", err)
	}
	return nil
}

// UpToDate reports whether workspace/personas holds outputs made from the
// inputs key names, with every file intact; why says what differs when not.
func UpToDate(workspace, key string) (ok bool, why string, err error) {
	dir := filepath.Join(workspace, Dir)
	var m Manifest
	if err := readJSON(filepath.Join(dir, ManifestFile), &m); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, "no manifest", nil
		}
		return false, "", err
	}
	if m.Version != ManifestVersion {
		return false, fmt.Sprintf("manifest version %d, want %d", m.Version, ManifestVersion), nil
	}
	if m.Key != key {
		return false, "inputs or options changed", nil
	}
	for _, name := range []string{AssignmentsFile, CentroidsFile, SummaryFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return false, fmt.Sprintf("%s unreadable: %v", name, err), nil
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != m.Files[name] {
			return false, name + " changed since it was written", nil
		}
	}
	return true, "", nil
}

// LoadSummary reads workspace/personas/summary.json.
func LoadSummary(workspace string) (*Summary, error) {
	var s Summary
	if err := readJSON(filepath.Join(workspace, Dir, SummaryFile), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// LoadAssignments reads workspace/personas/assignments.json.
func LoadAssignments(workspace string) (*Assignments, error) {
	var a Assignments
	if err := readJSON(filepath.Join(workspace, Dir, AssignmentsFile), &a); err != nil {
		return nil, err
	}
	for u, p := range a.Personas {
		if p < 0 || p >= a.K {
			return nil, fmt.Errorf("persona: %s: user %s has persona %d, want 0..%d", AssignmentsFile, u, p, a.K-1)
		}
	}
	return &a, nil
}

// LoadCentroids reads workspace/personas/centroids.json as a Clustering
// whose Assign places new vectors (Labels and Sizes are left empty).
func LoadCentroids(workspace string) (*Clustering, error) {
	path := filepath.Join(workspace, Dir, CentroidsFile)
	var c Centroids
	if err := readJSON(path, &c); err != nil {
		return nil, err
	}
	if c.K != len(c.Centroids) || c.K == 0 {
		return nil, fmt.Errorf("persona: %s: k = %d but %d centroids", path, c.K, len(c.Centroids))
	}
	for i, v := range c.Centroids {
		if len(v) != c.Dim {
			return nil, fmt.Errorf("persona: %s: centroid %d has %d dimensions, dim = %d", path, i, len(v), c.Dim)
		}
	}
	return &Clustering{K: c.K, Dim: c.Dim, Centroids: c.Centroids}, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("persona: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("persona: %s: %w", path, err)
	}
	return nil
}

// Assigner places new users into the personas saved in a workspace.
type Assigner struct {
	emb Embedder
	c   *Clustering
}

// NewAssigner loads the centroids saved in workspace and fits emb on
// population, the profiles that were clustered (every built-in embedder is
// deterministic, so the refitted space is the one the centroids live in).
// emb must be the embedder named in centroids.json.
func NewAssigner(ctx context.Context, workspace string, emb Embedder, population []memory.Profile) (*Assigner, error) {
	var saved Centroids
	if err := readJSON(filepath.Join(workspace, Dir, CentroidsFile), &saved); err != nil {
		return nil, err
	}
	if saved.Embedder != emb.Name() {
		return nil, fmt.Errorf("persona: the personas were made with the %s embedder, not %s", saved.Embedder, emb.Name())
	}
	c, err := LoadCentroids(workspace)
	if err != nil {
		return nil, err
	}
	if err := emb.Fit(ctx, population); err != nil {
		return nil, err
	}
	return &Assigner{emb: emb, c: c}, nil
}

// Assign returns the nearest persona of each profile.
func (a *Assigner) Assign(ctx context.Context, profiles []memory.Profile) ([]int, error) {
	vecs, err := a.emb.Embed(ctx, profiles)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(vecs))
	for i, v := range vecs {
		if out[i], _, err = a.c.Assign(v); err != nil {
			return nil, fmt.Errorf("persona: user %s: %w", profiles[i].User, err)
		}
	}
	return out, nil
}
