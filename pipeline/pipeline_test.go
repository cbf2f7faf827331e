package pipeline

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/eval"
)

// TestQuickEndToEnd runs the Quick pipeline in a temporary workspace, checks
// the artefacts and the results, and that a second run skips every stage.
func TestQuickEndToEnd(t *testing.T) {
	ctx := context.Background()
	cfg := QuickConfig()
	cfg.Workspace = t.TempDir()
	var log bytes.Buffer
	rep, err := Run(ctx, cfg, Options{Progress: &log, Logger: quiet})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	t.Logf("first run %s\n%s", rep.Took, log.String())
	for _, st := range rep.Stages {
		if st.Skipped {
			t.Errorf("first run skipped stage %s", st.Stage)
		}
	}
	for _, f := range []string{
		ConfigFile, SplitFile, "memory/profiles.jsonl", "memory/interactions.jsonl",
		"personas/assignments.json", "models/base/config.json", "models/base/model.safetensors",
		"models/base/tokenizer.json",
		"adapters/default/shared/adapter_config.json", "adapters/default/shared/adapter_model.safetensors",
		"adapters/paper/shared/adapter_model.safetensors",
		"results/results.json", "results/report.md", "results/run.json", "results/rmse.svg",
	} {
		if _, err := os.Stat(filepath.Join(cfg.Workspace, f)); err != nil {
			t.Errorf("missing artefact: %v", err)
		}
	}
	persona := 0
	for p := range 8 {
		if _, err := os.Stat(filepath.Join(cfg.Workspace, AdapterDir("default", PersonaAdapter(p)), "adapter_model.safetensors")); err == nil {
			persona++
		}
	}
	if persona == 0 {
		t.Error("no persona adapter written")
	}
	res := readResults(t, filepath.Join(cfg.Workspace, "results", "results.json"))
	want := map[string]bool{"global": false, "bias": false, "agent-default-K2": false, "agent-paper-K2": false, "agent-paper-K1": false, "agent-paper-zeroshot": false}
	for _, p := range res.Predictors {
		for w := range want {
			if p.Name == w || strings.HasPrefix(p.Name, w+"-") {
				want[w] = true
				rmse := float64(p.RMSE)
				if math.IsNaN(rmse) || rmse <= 0 || rmse > 4 {
					t.Errorf("%s: RMSE %v", p.Name, rmse)
				}
			}
		}
	}
	for w, ok := range want {
		if !ok {
			t.Errorf("results.json lacks predictor %s", w)
		}
	}

	// A second run is a no-op.
	log.Reset()
	rep2, err := Run(ctx, cfg, Options{Progress: &log, Logger: quiet})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, st := range rep2.Stages {
		if !st.Skipped {
			t.Errorf("second run redid stage %s", st.Stage)
		}
	}
	if rep2.Results == nil || len(rep2.Results.Predictors) != len(res.Predictors) {
		t.Error("second run lost the results")
	}

	// A changed adapter config redoes the adapters and eval only.
	cfg.Adapters.Steps++
	log.Reset()
	rep3, err := Run(ctx, cfg, Options{Progress: &log, Logger: quiet})
	if err != nil {
		t.Fatalf("third run: %v", err)
	}
	for _, st := range rep3.Stages {
		redo := st.Stage == StageAdapters || st.Stage == StageEval
		if st.Skipped == redo {
			t.Errorf("after changing adapters.steps: stage %s skipped=%v", st.Stage, st.Skipped)
		}
	}
	// The retrained adapters are those of a fresh run with the new
	// settings: no checkpoint of the old settings was continued.
	fresh := cfg
	fresh.Workspace = t.TempDir()
	if _, err := Run(ctx, fresh, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	resumed := readResults(t, filepath.Join(cfg.Workspace, "results", "results.json"))
	clean := readResults(t, filepath.Join(fresh.Workspace, "results", "results.json"))
	for k, p := range resumed.Predictors {
		if w := clean.Predictors[k]; p.Name != w.Name || p.RMSE != w.RMSE {
			t.Errorf("after changing adapters.steps: %s RMSE %v, a fresh run's %s %v", p.Name, p.RMSE, w.Name, w.RMSE)
		}
	}
}

var quiet = slog.New(slog.DiscardHandler)

func readResults(t *testing.T, path string) *eval.Results {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := eval.ReadResults(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Config)
	}{
		{"workspace", func(c *Config) { c.Workspace = "" }},
		{"users", func(c *Config) { c.Users = 0 }},
		{"train_frac", func(c *Config) { c.TrainFrac = 1 }},
		{"k", func(c *Config) { c.K = -1 }},
		{"variant", func(c *Config) { c.Agents[0].Variant = "x" }},
		{"adapter", func(c *Config) { c.Agents[0].Adapter = "everyone" }},
		{"no agents", func(c *Config) { c.Agents = nil }},
		{"two names", func(c *Config) { c.Agents = append(c.Agents, c.Agents[0]) }},
		{"anchor", func(c *Config) { c.Adapters.Anchor = "oracle" }},
		{"anchor folds", func(c *Config) { c.Adapters.AnchorFolds = 1 }},
		{"rank", func(c *Config) { c.Adapters.Rank = 0 }},
		{"baselines", func(c *Config) { c.Eval.Baselines = []string{"user"} }},
	} {
		cfg := DefaultConfig()
		if err := cfg.Validate(); err != nil {
			t.Fatalf("default: %v", err)
		}
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: bad config accepted", c.name)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("k: 3\nadapters:\n  rank: 16\n"), 0o644)
	c, err := LoadConfig(p, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if c.K != 3 || c.Adapters.Rank != 16 || c.Adapters.Steps != DefaultConfig().Adapters.Steps {
		t.Errorf("loaded %+v", c)
	}
	os.WriteFile(p, []byte("kk: 3\n"), 0o644)
	if _, err := LoadConfig(p, DefaultConfig()); err == nil {
		t.Error("unknown field accepted")
	}
}

// cancelOn cancels when a line containing marker is written.
type cancelOn struct {
	marker string
	cancel context.CancelFunc
}

func (c cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// TestResumeAfterKill interrupts the pipeline in each of its slow stages
// (pretraining the base, training the adapters, evaluating) and checks that
// each rerun skips what was finished, and that the interrupted-and-resumed
// run ends with exactly the results of an uninterrupted one.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick pipeline four times")
	}
	cfg := QuickConfig()
	cfg.Agents = []AgentSpec{{Variant: "default", Adapter: AdapterPersona}}
	cfg.Eval.ProbeRows, cfg.Eval.GenerateRows = 0, 0
	ref := cfg
	ref.Workspace = t.TempDir()
	if _, err := Run(context.Background(), ref, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	cfg.Workspace = t.TempDir()
	for _, kill := range []struct {
		marker  string   // cancel when the progress shows this
		skipped []string // stages this run finds done
	}{
		{"parameters, vocab", nil}, // pretraining starts
		{"adapter adapters/default/shared:", []string{StageSplit, StageMemory, StagePersonas}},
		{"agent-default-K2: fitted", []string{StageSplit, StageMemory, StagePersonas, StageBase}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var log bytes.Buffer
		rep, err := Run(ctx, cfg, Options{Progress: io.MultiWriter(&log, cancelOn{kill.marker, cancel}), Logger: quiet})
		cancel()
		if err == nil {
			t.Fatalf("run cancelled at %q returned no error", kill.marker)
		}
		var skipped []string
		for _, st := range rep.Stages {
			if st.Skipped {
				skipped = append(skipped, st.Stage)
			}
		}
		if !slices.Equal(skipped, kill.skipped) {
			t.Errorf("run killed at %q skipped %v, want %v", kill.marker, skipped, kill.skipped)
		}
		if kill.marker == "agent-default-K2: fitted" && !strings.Contains(log.String(), "adapter adapters/default/shared: up to date") {
			t.Errorf("the finished shared adapter was trained again:\n%s", log.String())
		}
		if _, err := os.Stat(filepath.Join(cfg.Workspace, "results", "results.json")); err == nil {
			t.Fatalf("run cancelled at %q wrote results", kill.marker)
		}
	}
	var log bytes.Buffer
	rep, err := Run(context.Background(), cfg, Options{Progress: &log, Logger: quiet})
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, log.String())
	}
	for _, st := range rep.Stages {
		redo := st.Stage == StageEval
		if st.Skipped == redo {
			t.Errorf("final run: stage %s skipped=%v", st.Stage, st.Skipped)
		}
	}
	got := readResults(t, filepath.Join(cfg.Workspace, "results", "results.json"))
	want := readResults(t, filepath.Join(ref.Workspace, "results", "results.json"))
	if len(got.Predictors) != len(want.Predictors) {
		t.Fatalf("%d predictors, uninterrupted run %d", len(got.Predictors), len(want.Predictors))
	}
	for k, p := range got.Predictors {
		if w := want.Predictors[k]; p.Name != w.Name || p.RMSE != w.RMSE || p.MAE != w.MAE {
			t.Errorf("%s: RMSE %v MAE %v after kills, %s: %v %v uninterrupted", p.Name, p.RMSE, p.MAE, w.Name, w.RMSE, w.MAE)
		}
	}
}

// TestPerUserAgent trains per-user adapters for a sample of users and
// reports them in their own section, on those users' rows only.
func TestPerUserAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick pipeline")
	}
	cfg := QuickConfig()
	cfg.Agents = []AgentSpec{{Variant: "paper", Adapter: AdapterPersona}, {Variant: "paper", Adapter: AdapterUser, Users: 2}}
	cfg.Adapters.UserSteps = 4
	cfg.Eval.ProbeRows, cfg.Eval.GenerateRows = 0, 0
	cfg.Workspace = t.TempDir()
	var log bytes.Buffer
	if _, err := Run(context.Background(), cfg, Options{Progress: &log, Logger: quiet}); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	users, err := filepath.Glob(filepath.Join(cfg.Workspace, "adapters", "paper", "users", "u*", "adapter_model.safetensors"))
	if err != nil || len(users) != 2 {
		t.Fatalf("per-user adapters %v (%v), want 2", users, err)
	}
	res := readResults(t, filepath.Join(cfg.Workspace, "results", "results.json"))
	for _, p := range res.Predictors {
		if strings.Contains(p.Name, "user") && p.Name != "user-mean" {
			t.Errorf("per-user agent %s in the main table", p.Name)
		}
	}
	var sec string
	for _, s := range res.Sections {
		if strings.HasPrefix(s.Title, "Per-user") {
			sec = s.Markdown
		}
	}
	for _, want := range []string{"agent-paper-user2", "2 sampled users", "| bias |", "| agent-paper-K2 |"} {
		if !strings.Contains(sec, want) {
			t.Errorf("per-user section lacks %q:\n%s", want, sec)
		}
	}
}

// TestExperimentFiles loads every experiment file in experiments/ and
// validates it.
func TestExperimentFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "experiments", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no experiment files (%v)", err)
	}
	for _, f := range files {
		c, err := LoadConfig(f, DefaultConfig())
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if filepath.Base(f) == "ml-100k.yaml" {
			users := slices.ContainsFunc(c.Agents, func(a AgentSpec) bool { return a.Adapter == AdapterUser })
			if len(c.Agents) != 10 || !users || c.Dataset != "ml-100k" {
				t.Errorf("%s: %d agents (per-user %v), dataset %s", f, len(c.Agents), users, c.Dataset)
			}
		}
	}
}

// TestSeededSamples: a shorter sample is the prefix of a longer one (the
// per-user agents of different sizes share users), sampleRows keeps the
// rows' order, and out-of-range sizes neither panic nor invent rows.
func TestSeededSamples(t *testing.T) {
	rows := []int32{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	long := seededPrefix(rows, 8, 3, 1)
	short := seededPrefix(rows, 3, 3, 1)
	if !slices.Equal(short, long[:3]) {
		t.Errorf("sample of 3 %v is not the prefix of the sample of 8 %v", short, long)
	}
	if len(seededPrefix(rows, -1, 3, 1)) != 0 || len(seededPrefix(rows, 99, 3, 1)) != len(rows) {
		t.Error("sizes outside 0..len not clamped")
	}
	got := sampleRows(rows, 5, 3, 1)
	if !slices.IsSorted(got) || len(got) != 5 {
		t.Errorf("sampleRows %v: want 5 rows in their original order", got)
	}
	for _, r := range got {
		if !slices.Contains(seededPrefix(rows, 5, 3, 1), r) {
			t.Errorf("sampleRows row %d is not in the seeded sample", r)
		}
	}
}
