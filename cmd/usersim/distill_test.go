package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/memory"
)

func TestDistillCommand(t *testing.T) {
	ws := t.TempDir()
	out, err := runCLI(t, "distill", "--workspace", ws, "--users", "50", "--show", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "50 profiles and") || !strings.Contains(out, "distilling 50 users") || strings.Count(out, "  - I rated ") != 6 {
		t.Errorf("first run output:\n%s", out)
	}
	ps, ms, err := memory.Load(ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 50 || len(ms) == 0 {
		t.Fatalf("%d profiles, %d interactions", len(ps), len(ms))
	}
	if _, err := os.Stat(filepath.Join(ws, "split", "split.bin")); err != nil {
		t.Errorf("split not saved: %v", err)
	}

	// Same inputs: skipped. --json reports it.
	out, err = runCLI(t, "distill", "--workspace", ws, "--users", "50", "--show", "1", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var sum struct {
		Skipped  bool
		Manifest memory.Manifest
		Samples  []struct {
			Profile memory.Profile
			Reasons []string
		}
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &sum); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if !sum.Skipped || sum.Manifest.Profiles != 50 || len(sum.Samples) != 1 || len(sum.Samples[0].Reasons) != 3 {
		t.Errorf("second run: %+v", sum)
	}

	// Other options: redone, and the reuse of the saved split works.
	out, err = runCLI(t, "distill", "--workspace", ws, "--split", filepath.Join(ws, "split", "split.bin"), "--shrink", "5", "--revisions", "--show", "0")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "distiller options") {
		t.Errorf("changed options not reported:\n%s", out)
	}
	ps, _, _ = memory.Load(ws)
	if len(ps[0].Revisions) == 0 {
		t.Error("--revisions wrote no revisions")
	}

	for _, args := range [][]string{
		{"--distiller", "nope"},
		{"--population", "some"},
		{"--protocol", "kfold"},
		{"--show", "-1"},
	} {
		if _, err := runCLI(t, append([]string{"distill", "--workspace", t.TempDir()}, args...)...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
