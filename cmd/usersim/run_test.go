package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/pipeline"
)

// TestRunFlagsResolve checks that --quick picks the quick preset and that
// given flags (and only those) override it.
func TestRunFlagsResolve(t *testing.T) {
	var f runFlags
	cmd := newRunCmdFlags(&f)
	if err := cmd.ParseFlags([]string{"--quick", "--k", "3", "--workspace", "w", "--no-shared", "--baselines", "bias,svd"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.resolve(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	q := pipeline.QuickConfig()
	if cfg.K != 3 || cfg.Workspace != "w" || cfg.Adapters.Shared || strings.Join(cfg.Eval.Baselines, ",") != "bias,svd" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	if cfg.Base.Steps != q.Base.Steps || cfg.Users != q.Users || cfg.Adapters.Steps != q.Adapters.Steps {
		t.Errorf("quick preset not used for unset flags: %+v", cfg)
	}
	if _, err := (&runFlags{cfg: pipeline.DefaultConfig()}).resolve(newRunCmd().Flags()); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
}

// TestRunQuickCLI runs `usersim run --quick` twice: the first run writes the
// report, the second finds every stage cached.
func TestRunQuickCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick pipeline")
	}
	ws := t.TempDir()
	run := func() string {
		root := newRootCmd()
		var out, errb bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&errb)
		root.SetArgs([]string{"run", "--quick", "--workspace", ws, "--k", "2"})
		if err := root.Execute(); err != nil {
			t.Fatalf("run: %v\n%s", err, errb.String())
		}
		return out.String()
	}
	first := run()
	for _, want := range []string{"agent-paper-K2", "bias", "RMSE"} {
		if !strings.Contains(first, want) {
			t.Errorf("output lacks %q:\n%s", want, first)
		}
	}
	if _, err := os.Stat(filepath.Join(ws, "results", "report.md")); err != nil {
		t.Error(err)
	}
	second := run()
	if strings.Count(second, "cached") != len(pipeline.Stages) {
		t.Errorf("second run did not skip every stage:\n%s", second)
	}
}
