package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/usersim/usersim/pipeline"
)

// runFlags are the flags of `usersim run`; each overrides one field of the
// preset (the default, or --quick) when given.
type runFlags struct {
	quick      bool
	experiment string
	asJSON     bool
	cfg        pipeline.Config // flag values (defaults from DefaultConfig)
	noShared   bool
	agents     []string
}

func newRunCmd() *cobra.Command { return newRunCmdFlags(&runFlags{}) }

// newRunCmdFlags builds `usersim run` with its flags bound to f.
func newRunCmdFlags(f *runFlags) *cobra.Command {
	f.cfg = pipeline.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the whole pipeline over a workspace: data, split, distill, personas, base, adapters, evaluation",
		Long: "run executes every stage of usersim over the workspace directory: the dataset and\n" +
			"the paper protocol's split (split/), stats distillation (memory/), personas\n" +
			"(personas/), the compact base model with its own tokenizer pretrained on the RAFT\n" +
			"corpus (models/base/, Hugging Face format), one LoRA adapter per persona started from\n" +
			"a shared adapter for each prompt family (adapters/FAMILY/NAME/, PEFT format), and every\n" +
			"agent configuration's predictions on the test rows scored beside the classic baselines,\n" +
			"with diagnostics and charts (results/results.json, results/report.md, results/*.svg).\n\n" +
			"The default agents: usersim's prompt (a collaborative anchor, the out-of-fold SVD\n" +
			"estimate, and the key facts next to the answer) with persona adapters and with one\n" +
			"shared adapter, and the paper's prompt with the same two.\n\n" +
			"Every stage records a hash of its inputs and configuration in WORKSPACE/.stages; a\n" +
			"rerun skips what is done, and a killed run resumes (training from its checkpoints).\n" +
			"With no flags it runs the embedded offline default (synthetic world); --quick is a\n" +
			"smoke run of a few seconds. The resolved configuration is written to config.yaml.",
		Example: "  usersim run\n" +
			"  usersim run --quick --workspace /tmp/ws\n" +
			"  usersim run --dataset ml-100k --data-dir ../shared/data/ml-100k --workspace ws-ml100k\n" +
			"  usersim run --experiment experiments/ml-100k.yaml --data-dir ../shared/data/ml-100k",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runRun(cmd, f) },
	}
	fs := cmd.Flags()
	c := &f.cfg
	fs.BoolVar(&f.quick, "quick", false, "smoke-run preset: a tiny world, model and few steps (flags still override it)")
	fs.StringVar(&f.experiment, "experiment", "", "experiment `FILE`: YAML with the fields of a workspace's config.yaml (base, adapters, agents, eval, ...) over the preset; flags override it")
	fs.BoolVar(&f.asJSON, "json", false, "print the stage report and results as JSON")
	fs.StringVar(&c.Workspace, "workspace", c.Workspace, "experiment `DIR`")
	fs.StringVar(&c.Dataset, "dataset", c.Dataset, "dataset: synthetic, or a MovieLens name (ml-100k, ml-1m, ...)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory holding the dataset's own files (default: generate / download)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "seed of the split, the personas and the training")
	fs.IntVar(&c.Users, "users", c.Users, "paper protocol: users to sample (negative: every eligible user)")
	fs.IntVar(&c.MinRatings, "min-ratings", c.MinRatings, "paper protocol: fewest ratings of an eligible user")
	fs.IntVar(&c.MaxRatings, "max-ratings", c.MaxRatings, "paper protocol: most ratings of an eligible user")
	fs.Float64Var(&c.TrainFrac, "train-frac", c.TrainFrac, "paper protocol: share of each sampled user's ratings that train")
	fs.IntVar(&c.K, "k", c.K, "number of personas (0: choose by the elbow)")
	fs.StringVar(&c.Embedder, "embedder", c.Embedder, "persona embedder: behaviour, tfidf or lsa")
	fs.StringVar(&c.Base.Preset, "preset", c.Base.Preset, "compact base size: tiny, small or base")
	fs.IntVar(&c.Base.Steps, "base-steps", c.Base.Steps, "pretraining steps of the compact base")
	fs.IntVar(&c.Base.PromptsPerUser, "prompts-per-user", c.Base.PromptsPerUser, "rating prompts per user in the pretraining corpus")
	fs.IntVar(&c.Adapters.Rank, "rank", c.Adapters.Rank, "LoRA rank")
	fs.Float64Var(&c.Adapters.Alpha, "alpha", c.Adapters.Alpha, "LoRA alpha")
	fs.IntVar(&c.Adapters.Steps, "steps", c.Adapters.Steps, "training steps per persona adapter")
	fs.IntVar(&c.Adapters.SharedSteps, "shared-steps", c.Adapters.SharedSteps, "training steps of the shared adapter")
	fs.BoolVar(&f.noShared, "no-shared", false, "train each persona adapter from scratch, without the shared adapter")
	var agents []string
	for _, a := range c.Agents {
		agents = append(agents, a.String())
	}
	fs.StringSliceVar(&f.agents, "agents", agents, "agent configurations `VARIANT[-ms]:ADAPTER,...`; variant default or paper, -ms for the profile only (no memory), adapter persona, shared (K = 1) or none (zero-shot); the first is the main agent")
	fs.StringVar(&c.Adapters.Anchor, "anchor", c.Adapters.Anchor, "baseline whose out-of-fold estimate the default prompt carries (none: no anchor)")
	fs.StringSliceVar(&c.Eval.Baselines, "baselines", c.Eval.Baselines, "classic baselines scored beside the agents")
	fs.IntVar(&c.Eval.MaxTestUsers, "max-test-users", c.Eval.MaxTestUsers, "score the test rows of this many split users only (0: all)")
	fs.IntVar(&c.Eval.ProbeRows, "probe-rows", c.Eval.ProbeRows, "test prompts edited by the counterfactual probes, per agent")
	fs.IntVar(&c.Eval.GenerateRows, "generate-rows", c.Eval.GenerateRows, "test prompts answered by free generation for the URR, per agent")
	return cmd
}

// resolve builds the config: the preset, then every flag given.
func (f *runFlags) resolve(fs *pflag.FlagSet) (pipeline.Config, error) {
	cfg := pipeline.DefaultConfig()
	if f.quick {
		cfg = pipeline.QuickConfig()
	}
	if f.experiment != "" {
		var err error
		if cfg, err = pipeline.LoadConfig(f.experiment, cfg); err != nil {
			return cfg, err
		}
	}
	set := map[string]func(){
		"workspace":        func() { cfg.Workspace = f.cfg.Workspace },
		"dataset":          func() { cfg.Dataset = f.cfg.Dataset },
		"data-dir":         func() { cfg.DataDir = f.cfg.DataDir },
		"seed":             func() { cfg.Seed = f.cfg.Seed },
		"users":            func() { cfg.Users = f.cfg.Users },
		"min-ratings":      func() { cfg.MinRatings = f.cfg.MinRatings },
		"max-ratings":      func() { cfg.MaxRatings = f.cfg.MaxRatings },
		"train-frac":       func() { cfg.TrainFrac = f.cfg.TrainFrac },
		"k":                func() { cfg.K = f.cfg.K },
		"embedder":         func() { cfg.Embedder = f.cfg.Embedder },
		"preset":           func() { cfg.Base.Preset = f.cfg.Base.Preset },
		"base-steps":       func() { cfg.Base.Steps = f.cfg.Base.Steps },
		"prompts-per-user": func() { cfg.Base.PromptsPerUser = f.cfg.Base.PromptsPerUser },
		"rank":             func() { cfg.Adapters.Rank = f.cfg.Adapters.Rank },
		"alpha":            func() { cfg.Adapters.Alpha = f.cfg.Adapters.Alpha },
		"steps":            func() { cfg.Adapters.Steps = f.cfg.Adapters.Steps },
		"shared-steps":     func() { cfg.Adapters.SharedSteps = f.cfg.Adapters.SharedSteps },
		"no-shared":        func() { cfg.Adapters.Shared = !f.noShared },
		"anchor":           func() { cfg.Adapters.Anchor = f.cfg.Adapters.Anchor },
		"baselines":        func() { cfg.Eval.Baselines = f.cfg.Eval.Baselines },
		"max-test-users":   func() { cfg.Eval.MaxTestUsers = f.cfg.Eval.MaxTestUsers },
		"probe-rows":       func() { cfg.Eval.ProbeRows = f.cfg.Eval.ProbeRows },
		"generate-rows":    func() { cfg.Eval.GenerateRows = f.cfg.Eval.GenerateRows },
	}
	for name, apply := range set {
		if fs.Changed(name) {
			apply()
		}
	}
	if fs.Changed("agents") {
		cfg.Agents = nil
		for _, a := range f.agents {
			sp, err := pipeline.ParseAgentSpec(a)
			if err != nil {
				return cfg, fmt.Errorf("--agents: %w", err)
			}
			cfg.Agents = append(cfg.Agents, sp)
		}
	}
	return cfg, cfg.Validate()
}

func runRun(cmd *cobra.Command, f *runFlags) error {
	cfg, err := f.resolve(cmd.Flags())
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "usersim run: workspace %s, dataset %s\n", cfg.Workspace, cfg.Dataset)
	rep, err := pipeline.Run(cmd.Context(), cfg, pipeline.Options{Progress: stderr, Logger: slog.Default()})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			*pipeline.Report
			Results any `json:"results"`
		}{rep, rep.Results})
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tstatus\ttime")
	for _, s := range rep.Stages {
		st := "done"
		if s.Skipped {
			st = "cached"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Stage, st, s.Took.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if rep.Results != nil {
		if err := rep.Results.WriteTable(out); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(out, "\ntotal %s; report in %s\n", rep.Took.Round(time.Millisecond),
		filepath.Join(cfg.Workspace, pipeline.ResultsDir, "report.md"))
	return err
}
