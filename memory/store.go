package memory

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/internal/atomicfile"
)

// Workspace file names, under the workspace's memory/ directory.
const (
	Dir              = "memory"
	ProfilesFile     = "profiles.jsonl"
	InteractionsFile = "interactions.jsonl"
	ManifestFile     = "manifest.json"
)

// WriteProfiles writes profiles to path as JSON Lines, one profile a line,
// atomically (a synced temporary file in the same directory, then a rename).
func WriteProfiles(path string, ps []Profile) error { return writeJSONL(path, ps) }

// WriteInteractions writes interactions to path as JSON Lines, atomically.
func WriteInteractions(path string, ms []Interaction) error { return writeJSONL(path, ms) }

// ReadProfiles reads a JSON Lines file of profiles. A malformed line or a
// profile without a user is an error naming the file and line.
func ReadProfiles(path string) ([]Profile, error) {
	return readJSONL(path, func(p *Profile) error {
		if p.User == "" {
			return errors.New(`missing "user"`)
		}
		return nil
	})
}

// ReadInteractions reads a JSON Lines file of interactions. A malformed
// line, or one without user or item or with a negative order, is an error
// naming the file and line.
func ReadInteractions(path string) ([]Interaction, error) {
	return readJSONL(path, func(m *Interaction) error {
		switch {
		case m.User == "":
			return errors.New(`missing "user"`)
		case m.Item == "":
			return errors.New(`missing "item"`)
		case m.Order < 0:
			return fmt.Errorf(`"order" %d is negative`, m.Order)
		}
		return nil
	})
}

// writeJSONL writes xs to path as JSON Lines, atomically, creating the
// directory when missing.
func writeJSONL[T any](path string, xs []T) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for k := range xs {
			if err := enc.Encode(&xs[k]); err != nil {
				return fmt.Errorf("record %d: %w", k+1, err)
			}
		}
		return nil
	})
}

func readJSONL[T any](path string, check func(*T) error) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	var out []T
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			var x T
			if err := json.Unmarshal(t, &x); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			if err := check(&x); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			out = append(out, x)
		}
		if err == io.EOF {
			return out, nil
		}
	}
}

// ManifestVersion is the version of the manifest layout.
const ManifestVersion = 1

// SplitInfo identifies a split: its protocol, seed and a SHA-256 of its
// users, training and test rows.
type SplitInfo struct {
	Protocol string `json:"protocol"`
	Seed     int64  `json:"seed"`
	Temporal bool   `json:"temporal"`
	Users    int    `json:"users"`
	Train    int    `json:"train"`
	Test     int    `json:"test"`
	SHA256   string `json:"sha256"`
}

// SplitInfoOf describes s.
func SplitInfoOf(s *split.Split) SplitInfo {
	h := sha256.New()
	var b [4]byte
	for _, part := range [][]int32{s.Users, s.Train, s.Test} {
		binary.LittleEndian.PutUint32(b[:], uint32(len(part)))
		h.Write(b[:])
		for _, v := range part {
			binary.LittleEndian.PutUint32(b[:], uint32(v))
			h.Write(b[:])
		}
	}
	return SplitInfo{
		Protocol: s.Protocol, Seed: s.Seed, Temporal: s.Temporal,
		Users: len(s.Users), Train: len(s.Train), Test: len(s.Test),
		SHA256: hex.EncodeToString(h.Sum(nil)),
	}
}

// Manifest records what a distillation in a workspace was made from, so a
// rerun with the same inputs can be skipped and different inputs detected.
type Manifest struct {
	Version   int               `json:"version"`
	Dataset   split.Fingerprint `json:"dataset"`
	Split     SplitInfo         `json:"split"`
	Distiller string            `json:"distiller"`
	// Options are the distiller's options as JSON (compared as JSON values).
	Options json.RawMessage `json:"options,omitempty"`
	// Users is the number of profiled users; AllUsers says every user with
	// training rows was profiled rather than the split's users.
	Users    int  `json:"users"`
	AllUsers bool `json:"all_users,omitempty"`

	// Outputs: record counts and SHA-256 of the files, filled by Save.
	Profiles           int    `json:"profiles"`
	Interactions       int    `json:"interactions"`
	ProfilesSHA256     string `json:"profiles_sha256"`
	InteractionsSHA256 string `json:"interactions_sha256"`
}

// Diff describes how m's inputs differ from o's ("" when they are the same).
func (m Manifest) Diff(o Manifest) string {
	switch {
	case m.Version != o.Version:
		return fmt.Sprintf("manifest version %d, want %d", m.Version, o.Version)
	case m.Dataset != o.Dataset:
		return fmt.Sprintf("dataset %s (%.12s) != %s (%.12s)", m.Dataset.Name, m.Dataset.SHA256, o.Dataset.Name, o.Dataset.SHA256)
	case m.Split != o.Split:
		return fmt.Sprintf("split %s seed %d (%.12s) != %s seed %d (%.12s)", m.Split.Protocol, m.Split.Seed, m.Split.SHA256, o.Split.Protocol, o.Split.Seed, o.Split.SHA256)
	case m.Distiller != o.Distiller:
		return fmt.Sprintf("distiller %q != %q", m.Distiller, o.Distiller)
	case !jsonEqual(m.Options, o.Options):
		return fmt.Sprintf("distiller options %s != %s", compact(m.Options), compact(o.Options))
	case m.Users != o.Users || m.AllUsers != o.AllUsers:
		return fmt.Sprintf("users %d (all %v) != %d (all %v)", m.Users, m.AllUsers, o.Users, o.AllUsers)
	}
	return ""
}

func compact(b json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// Save writes the profiles, the interactions and then the manifest into
// the workspace's memory/ directory, each atomically; the manifest, written
// last, vouches for the other two.
func Save(workspace string, m Manifest, ps []Profile, ms []Interaction) error {
	dir := filepath.Join(workspace, Dir)
	pp, ip := filepath.Join(dir, ProfilesFile), filepath.Join(dir, InteractionsFile)
	// A stale manifest must not vouch for half-written outputs.
	if err := os.Remove(filepath.Join(dir, ManifestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := WriteProfiles(pp, ps); err != nil {
		return err
	}
	if err := WriteInteractions(ip, ms); err != nil {
		return err
	}
	var err error
	if m.ProfilesSHA256, err = fileSHA256(pp); err != nil {
		return err
	}
	if m.InteractionsSHA256, err = fileSHA256(ip); err != nil {
		return err
	}
	m.Version = ManifestVersion
	m.Profiles, m.Interactions = len(ps), len(ms)
	return atomicfile.Write(filepath.Join(dir, ManifestFile), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	})
}

// ReadManifest reads the manifest of the workspace's memory/ directory.
func ReadManifest(workspace string) (Manifest, error) {
	path := filepath.Join(workspace, Dir, ManifestFile)
	var m Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// UpToDate reports whether the workspace holds a distillation made from
// the inputs want describes, with outputs intact (their SHA-256 as the
// manifest records). When it does not, why says what differs or is missing.
func UpToDate(workspace string, want Manifest) (ok bool, why string, err error) {
	want.Version = ManifestVersion
	have, err := ReadManifest(workspace)
	if errors.Is(err, os.ErrNotExist) {
		return false, "no earlier distillation", nil
	}
	if err != nil {
		return false, "", err
	}
	if d := have.Diff(want); d != "" {
		return false, d, nil
	}
	dir := filepath.Join(workspace, Dir)
	for _, f := range []struct{ name, sum string }{{ProfilesFile, have.ProfilesSHA256}, {InteractionsFile, have.InteractionsSHA256}} {
		got, err := fileSHA256(filepath.Join(dir, f.name))
		if errors.Is(err, os.ErrNotExist) {
			return false, f.name + " is missing", nil
		}
		if err != nil {
			return false, "", err
		}
		if got != f.sum {
			return false, f.name + " changed since it was written", nil
		}
	}
	return true, "", nil
}

// Load reads the profiles and interactions of the workspace.
func Load(workspace string) ([]Profile, []Interaction, error) {
	dir := filepath.Join(workspace, Dir)
	ps, err := ReadProfiles(filepath.Join(dir, ProfilesFile))
	if err != nil {
		return nil, nil, err
	}
	ms, err := ReadInteractions(filepath.Join(dir, InteractionsFile))
	if err != nil {
		return nil, nil, err
	}
	return ps, ms, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
