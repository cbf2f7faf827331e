package split

import (
	"path/filepath"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/sharedtest"
)

// TestPaperML100K runs the paper's protocol on MovieLens 100K, which has
// timestamps: 216 users have 100–200 ratings (as the prototype in
// ../shared/notes found), 200 are sampled and split 60/40 by time.
func TestPaperML100K(t *testing.T) {
	d, err := dataset.Load(t.Context(), "ml-100k", sharedtest.Path(t, "data", "ml-100k"))
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
	dir := sharedtest.Path(t, "data", "ml-1m")
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
