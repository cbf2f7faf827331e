package split

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// sharedData returns ../shared/data/NAME from the module root, skipping the
// test when it is absent (a user's machine has no ../shared).
func sharedData(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s absent: this test needs the MovieLens fixtures in ../shared/data", p)
	}
	return p
}

// TestPaperML100K runs the paper's protocol on MovieLens 100K, which has
// timestamps: 216 users have 100–200 ratings (as the prototype in
// ../shared/notes found), 200 are sampled and split 60/40 by time.
func TestPaperML100K(t *testing.T) {
	d, err := dataset.Load(t.Context(), "ml-100k", sharedData(t, "ml-100k"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := Paper(d, PaperOptions{NumUsers: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Users) != 216 {
		t.Errorf("%d eligible users, want 216", len(all.Users))
	}
	s, err := Paper(d, PaperOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	opt := DefaultPaperOptions()
	checkPaper(t, d, s, opt)
	if !s.Temporal || len(s.Users) != 200 {
		t.Errorf("temporal %v, %d users", s.Temporal, len(s.Users))
	}
	t.Log(s)
}

// TestPaperML1MNoTimestamps runs the protocol on MovieLens 1M from
// ratings_no_ts.dat: without timestamps the per-user split is a seeded
// random one, and says so.
func TestPaperML1MNoTimestamps(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a million ratings")
	}
	dir := sharedData(t, "ml-1m")
	d, err := dataset.Load(t.Context(), "ml-1m", dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.HasTime() {
		t.Skip("this ml-1m has timestamps; the test is about ratings_no_ts.dat")
	}
	s, err := Paper(d, PaperOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	checkPaper(t, d, s, DefaultPaperOptions())
	if s.Temporal || len(s.Users) != 200 || len(s.Train)+len(s.Test) != 1_000_209 {
		t.Errorf("temporal %v, %d users, %d rows", s.Temporal, len(s.Users), len(s.Train)+len(s.Test))
	}
	path := filepath.Join(t.TempDir(), "ml1m.split")
	if err := Save(path, s, d); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Test) != len(s.Test) {
		t.Errorf("reloaded %d test rows, saved %d", len(got.Test), len(s.Test))
	}
	t.Log(s)
}
