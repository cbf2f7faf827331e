package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
)

func TestDataSynthAndSplit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "world")
	out, err := runCLI(t, "data", "synth", "--out", dir, "--seed", "3", "--users", "300", "--items", "800", "--personas", "3")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "300 users, 800 movies") || !strings.Contains(out, "noise floor") || strings.Count(out, "persona ") != 3 {
		t.Errorf("synth output:\n%s", out)
	}
	w, err := synth.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.Truth.Config.Seed != 3 || len(w.Truth.Personas) != 3 || w.Dataset.NumUsers() != 300 {
		t.Fatalf("world: seed %d, %d personas, %d users", w.Truth.Config.Seed, len(w.Truth.Personas), w.Dataset.NumUsers())
	}
	if _, err := runCLI(t, "data", "synth", "--out", dir); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("overwriting a world without --force: %v", err)
	}

	file := filepath.Join(t.TempDir(), "paper.bin")
	out, err = runCLI(t, "data", "split", "--dataset", "synthetic", "--data-dir", dir, "--users", "100", "--seed", "2", "--out", file, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var report []struct {
		Users, Train, Test int
		Temporal           bool
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil || len(report) != 1 {
		t.Fatalf("%v in %s", err, out)
	}
	s, err := split.Load(file, w.Dataset)
	if err != nil {
		t.Fatal(err)
	}
	if r := report[0]; len(s.Users) != 100 || r.Users != 100 || !s.Temporal || !r.Temporal || len(s.Test) != r.Test || len(s.Train)+len(s.Test) != w.Dataset.Ratings.Len() {
		t.Errorf("split %s; report %+v", s, r)
	}

	kfile := filepath.Join(t.TempDir(), "cv.bin")
	if out, err := runCLI(t, "data", "split", "--dataset", "synthetic", "--data-dir", dir, "--protocol", "kfold", "--folds", "3", "--out", kfile); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range []string{"cv.fold1.bin", "cv.fold2.bin", "cv.fold3.bin"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(kfile), f)); err != nil {
			t.Error(err)
		}
	}
	for _, args := range [][]string{
		{"data", "split", "--dataset", "synthetic", "--data-dir", dir},
		{"data", "split", "--dataset", "synthetic", "--data-dir", dir, "--out", file, "--protocol", "temporal"},
		{"data", "split", "--dataset", "synthetic", "--data-dir", dir, "--out", file, "--users", "1000"},
		{"data", "synth"},
	} {
		if _, err := runCLI(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
