package memory

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset/split"
)

func TestStoreRoundTrip(t *testing.T) {
	w := testWorld(t)
	s := paperSplit(t, w.Dataset)
	ps, ms, err := DistillStats(context.Background(), w.Dataset, s, StatsOptions{Revisions: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pp, ip := filepath.Join(dir, "p.jsonl"), filepath.Join(dir, "sub", "i.jsonl")
	if err := WriteProfiles(pp, ps); err != nil {
		t.Fatal(err)
	}
	if err := WriteInteractions(ip, ms); err != nil {
		t.Fatal(err)
	}
	ps2, err := ReadProfiles(pp)
	if err != nil {
		t.Fatal(err)
	}
	ms2, err := ReadInteractions(ip)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ps, ps2) || !reflect.DeepEqual(ms, ms2) {
		t.Fatal("round trip changed the memories")
	}
	// One record a line, no temporary files left behind.
	b, _ := os.ReadFile(ip)
	if n := strings.Count(string(b), "\n"); n != len(ms) {
		t.Errorf("%d lines for %d interactions", n, len(ms))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub"))
	if len(entries) != 1 {
		t.Errorf("files left in the directory: %v", entries)
	}
}

func TestReadErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	good := `{"user":"1","item":"10","rating":4,"order":0,"reason":"x"}`
	for _, c := range []struct {
		name, text, want string
		profiles         bool
	}{
		{"bad-json", good + "\n\n{\"user\":\"1\",\n", ":3:", false},
		{"no-item", good + "\n" + `{"user":"1","rating":4,"order":1}` + "\n", `:2: missing "item"`, false},
		{"neg-order", `{"user":"1","item":"2","order":-1}`, `:1: "order" -1 is negative`, false},
		{"wrong-type", `{"user":"1","item":"2","rating":"four"}`, ":1:", false},
		{"profile-no-user", `{"description":"x"}`, `:1: missing "user"`, true},
	} {
		path := filepath.Join(dir, c.name+".jsonl")
		os.WriteFile(path, []byte(c.text), 0o644)
		var err error
		if c.profiles {
			_, err = ReadProfiles(path)
		} else {
			_, err = ReadInteractions(path)
		}
		if err == nil || !strings.Contains(err.Error(), path+c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, path+c.want)
		}
	}
	if _, err := ReadProfiles(filepath.Join(dir, "absent.jsonl")); err == nil {
		t.Error("missing file: no error")
	}
	// Blank lines and a missing final newline are fine.
	path := filepath.Join(dir, "ok.jsonl")
	os.WriteFile(path, []byte("\n"+good+"\n\n"+good), 0o644)
	if ms, err := ReadInteractions(path); err != nil || len(ms) != 2 {
		t.Errorf("blank lines: %d records, %v", len(ms), err)
	}
}

func TestManifestUpToDate(t *testing.T) {
	w := testWorld(t)
	d := w.Dataset
	s := paperSplit(t, d)
	ps, ms, err := DistillStats(context.Background(), d, s, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := json.Marshal(StatsOptions{})
	m := Manifest{Dataset: split.FingerprintOf(d), Split: SplitInfoOf(s), Distiller: "stats", Options: opts, Users: len(ps)}
	ws := t.TempDir()
	if ok, why, err := UpToDate(ws, m); ok || err != nil || why == "" {
		t.Fatalf("empty workspace: ok=%v why=%q err=%v", ok, why, err)
	}
	if err := Save(ws, m, ps, ms); err != nil {
		t.Fatal(err)
	}
	if ok, why, err := UpToDate(ws, m); !ok || err != nil {
		t.Fatalf("same inputs: ok=%v why=%q err=%v", ok, why, err)
	}
	// Options compared as JSON values: key order and spacing do not matter.
	m2 := m
	var generic map[string]any
	json.Unmarshal(opts, &generic)
	m2.Options, _ = json.MarshalIndent(generic, "", "   ")
	if ok, why, _ := UpToDate(ws, m2); !ok {
		t.Fatalf("reformatted options: %s", why)
	}

	other, _ := split.Paper(d, split.PaperOptions{Seed: 2})
	changed := map[string]Manifest{}
	mm := m
	mm.Split = SplitInfoOf(other)
	changed["split"] = mm
	mm = m
	mm.Dataset.SHA256 = "00"
	changed["dataset"] = mm
	mm = m
	mm.Distiller = "llm:x"
	changed["distiller"] = mm
	mm = m
	mm.Options = json.RawMessage(`{"shrink":5}`)
	changed["options"] = mm
	mm = m
	mm.AllUsers = true
	changed["users"] = mm
	for what, mm := range changed {
		if ok, why, err := UpToDate(ws, mm); ok || err != nil || !strings.Contains(why, what) {
			t.Errorf("changed %s: ok=%v why=%q err=%v", what, ok, why, err)
		}
	}
	// A damaged output is detected.
	path := filepath.Join(ws, Dir, InteractionsFile)
	os.WriteFile(path, []byte("{}\n"), 0o644)
	if ok, why, _ := UpToDate(ws, m); ok || !strings.Contains(why, InteractionsFile) {
		t.Errorf("damaged interactions: ok=%v why=%q", ok, why)
	}
	ps2, ms2, err := Load(ws)
	if err == nil {
		t.Errorf("Load read a damaged file: %d %d", len(ps2), len(ms2))
	}
}
