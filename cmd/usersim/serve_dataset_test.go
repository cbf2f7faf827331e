package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/usersim/usersim/pipeline"
)

// TestWorkspaceDataset checks that serve --workspace reopens the dataset a
// `usersim run` recorded in config.yaml (a small synthetic world here), and
// that flags win over it.
func TestWorkspaceDataset(t *testing.T) {
	ws := t.TempDir()
	cfg := pipeline.QuickConfig()
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, pipeline.ConfigFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, got, err := workspaceDataset(ctx, ws, dataSource{Name: "synthetic"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.SynthUsers != cfg.SynthUsers || len(got.Agents) != len(cfg.Agents) {
		t.Errorf("workspace config %+v, want the run's", got)
	}
	if d.NumUsers() != cfg.SynthUsers {
		t.Errorf("workspace dataset has %d users, want the run's %d", d.NumUsers(), cfg.SynthUsers)
	}
	d, _, err = workspaceDataset(ctx, ws, dataSource{Name: "synthetic"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if d.NumUsers() == cfg.SynthUsers {
		t.Errorf("flags were ignored: got the workspace's %d-user world", d.NumUsers())
	}
	if err := os.WriteFile(filepath.Join(ws, pipeline.ConfigFile), []byte("no_such_field: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := workspaceDataset(ctx, ws, dataSource{Name: "synthetic"}, false); err == nil {
		t.Error("a bad config.yaml was accepted")
	}
	// With the dataset from the flags, a config that cannot be read is
	// passed over.
	if d, cfg, err := workspaceDataset(ctx, ws, dataSource{Name: "synthetic"}, true); err != nil || d == nil || cfg != nil {
		t.Errorf("bad config.yaml with flags: %v, %v", cfg, err)
	}
}
