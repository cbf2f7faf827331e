package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/sharedtest"
)

// runCLI runs the usersim command tree with args and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDataStatsJSON(t *testing.T) {
	dir := sharedtest.Path(t, "data", "ml-100k")
	out, err := runCLI(t, "data", "stats", "--dataset", "ml-100k", "--data-dir", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s dataset.Stats
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if s.Name != "ml-100k" || s.Ratings != 100000 || s.Users != 943 || s.Items != 1682 || len(s.Histogram) != 5 {
		t.Errorf("stats %+v", s)
	}
}

func TestDataStatsText(t *testing.T) {
	dir := sharedtest.Path(t, "data", "ml-1m")
	out, err := runCLI(t, "data", "stats", "--dataset", "ml-1m", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1,000,209", "6,040", "3,706 with ratings", "no timestamps"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestDataErrors(t *testing.T) {
	if _, err := runCLI(t, "data", "stats", "--dataset", "ml-2m"); err == nil || !strings.Contains(err.Error(), "ml-1m") {
		t.Errorf("unknown dataset: %v", err)
	}
	dir := t.TempDir()
	_, err := runCLI(t, "data", "stats", "--dataset", "ml-1m", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "movies.dat")) {
		t.Errorf("empty dir: %v", err)
	}
	// Nothing listens on port 1: the error must point at --data-dir.
	_, err = runCLI(t, "data", "fetch", "ml-1m", "--base-url", "http://127.0.0.1:1", "--cache-dir", t.TempDir(), "--retries", "-1")
	if err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("offline fetch: %v", err)
	}
}
