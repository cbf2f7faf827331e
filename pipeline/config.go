// Package pipeline runs usersim's stages end to end over a workspace
// directory (DESIGN.md §3): data → split → distill → personas → compact base
// (tokenizer, init, pretraining) → one LoRA adapter per persona → predictions
// on the test rows → evaluation against the classic baselines → report.
//
// Every stage writes its outputs into the workspace and, last, a manifest
// holding the hash of its inputs and configuration (the previous stage's key
// included). A rerun skips every stage whose manifest matches; a killed run
// redoes only the unfinished stages, and the training stages resume from
// their checkpoints. The memory and persona stages use their packages' own
// manifests (memory.UpToDate, persona.UpToDate).
package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/usersim/usersim/eval/baseline"

	"gopkg.in/yaml.v3"
)

// Config describes one experiment. Zero fields are not defaulted: start from
// DefaultConfig or QuickConfig and change what differs.
type Config struct {
	Workspace string `yaml:"workspace" json:"workspace"`
	// Dataset is "synthetic" or a MovieLens name (see dataset.Names);
	// DataDir holds its files (empty: generate the synthetic world, or
	// download the release).
	Dataset string `yaml:"dataset" json:"dataset"`
	DataDir string `yaml:"data_dir" json:"data_dir"`
	Seed    int64  `yaml:"seed" json:"seed"`

	// Synthetic world size (used when Dataset is "synthetic" and DataDir
	// is empty; 0 keeps synth.DefaultConfig's value).
	SynthUsers int `yaml:"synth_users" json:"synth_users"`
	SynthItems int `yaml:"synth_items" json:"synth_items"`

	// Paper protocol split.
	Users      int     `yaml:"users" json:"users"`
	MinRatings int     `yaml:"min_ratings" json:"min_ratings"`
	MaxRatings int     `yaml:"max_ratings" json:"max_ratings"`
	TrainFrac  float64 `yaml:"train_frac" json:"train_frac"`

	// Personas: K (0: elbow over KMin..KMax) and the embedder.
	K        int    `yaml:"k" json:"k"`
	KMin     int    `yaml:"k_min" json:"k_min"`
	KMax     int    `yaml:"k_max" json:"k_max"`
	Embedder string `yaml:"embedder" json:"embedder"`

	Base     BaseConfig    `yaml:"base" json:"base"`
	Adapters AdapterConfig `yaml:"adapters" json:"adapters"`
	// Agents are the agent configurations trained and scored; the first
	// is the experiment's main agent (the one `usersim serve` runs).
	Agents []AgentSpec `yaml:"agents" json:"agents"`
	Eval   EvalConfig  `yaml:"eval" json:"eval"`
}

// BaseConfig is the compact base: its size, tokenizer and pretraining.
type BaseConfig struct {
	Preset  string `yaml:"preset" json:"preset"`
	Hidden  int    `yaml:"hidden" json:"hidden"`
	Layers  int    `yaml:"layers" json:"layers"`
	Heads   int    `yaml:"heads" json:"heads"`
	KVHeads int    `yaml:"kv_heads" json:"kv_heads"`
	Context int    `yaml:"context" json:"context"`
	// Vocab is the BPE vocabulary size (0: slm.CompactTokenizerOptions).
	Vocab int `yaml:"vocab" json:"vocab"`
	// PromptsPerUser bounds the rating prompts per user in the corpus.
	PromptsPerUser int     `yaml:"prompts_per_user" json:"prompts_per_user"`
	Steps          int     `yaml:"steps" json:"steps"`
	Batch          int     `yaml:"batch" json:"batch"`
	MicroBatch     int     `yaml:"micro_batch" json:"micro_batch"`
	SeqLen         int     `yaml:"seq_len" json:"seq_len"`
	LR             float64 `yaml:"lr" json:"lr"`
}

// AdapterConfig is the LoRA training of the persona adapters.
type AdapterConfig struct {
	Rank  int     `yaml:"rank" json:"rank"`
	Alpha float64 `yaml:"alpha" json:"alpha"`
	// Shared trains one adapter on every user first and starts each
	// persona's adapter from it; SharedSteps are its steps.
	Shared      bool    `yaml:"shared" json:"shared"`
	SharedSteps int     `yaml:"shared_steps" json:"shared_steps"`
	Steps       int     `yaml:"steps" json:"steps"`
	Batch       int     `yaml:"batch" json:"batch"`
	MicroBatch  int     `yaml:"micro_batch" json:"micro_batch"`
	LR          float64 `yaml:"lr" json:"lr"`
	// Anchor is the classic baseline whose estimate the default variant's
	// prompts carry (eval/baseline's names). Training prompts get its
	// out-of-fold estimate over AnchorFolds folds of the training rows, so
	// no anchor has seen the rating it anchors; test prompts get the
	// estimate fitted on every training row. "none" leaves the anchor out.
	Anchor      string `yaml:"anchor" json:"anchor"`
	AnchorFolds int    `yaml:"anchor_folds" json:"anchor_folds"`
	// UserSteps are the training steps of each per-user adapter (agents
	// with adapter "user"); 0 means Steps.
	UserSteps int `yaml:"user_steps,omitempty" json:"user_steps,omitempty"`
}

// EvalConfig is the evaluation.
type EvalConfig struct {
	// Baselines are the classic baselines scored beside the agents.
	Baselines []string `yaml:"baselines" json:"baselines"`
	Bootstrap int      `yaml:"bootstrap" json:"bootstrap"`
	// MaxTestUsers, when positive, scores the agents (and baselines) on
	// the test rows of that many split users only.
	MaxTestUsers int `yaml:"max_test_users" json:"max_test_users"`
	// ProbeRows is the number of test prompts the counterfactual probes
	// edit per agent (0: none).
	ProbeRows int `yaml:"probe_rows" json:"probe_rows"`
	// GenerateRows is the number of test prompts answered by free
	// generation per agent, parsed strictly for the URR (0: none).
	GenerateRows int `yaml:"generate_rows" json:"generate_rows"`
}

// DefaultConfig is the embedded offline default: the default synthetic
// world, the paper protocol with seed 1, the stats distiller, the behaviour
// embedder with K chosen by the elbow, the tiny compact base pretrained on
// the RAFT corpus, LoRA r 8 on all projections started from a shared adapter.
func DefaultConfig() Config {
	return Config{
		Workspace:  "workspace",
		Dataset:    "synthetic",
		Seed:       1,
		Users:      200,
		MinRatings: 100,
		MaxRatings: 200,
		TrainFrac:  0.6,
		K:          4,
		KMin:       2,
		KMax:       10,
		Embedder:   "behaviour",
		Base: BaseConfig{
			Preset: "tiny", PromptsPerUser: 4,
			Steps: 250, Batch: 16, MicroBatch: 8, SeqLen: 256, LR: 2e-3,
		},
		Adapters: AdapterConfig{
			Rank: 8, Alpha: 16, Shared: true, SharedSteps: 360,
			Steps: 120, Batch: 8, MicroBatch: 8, LR: 2e-3, Anchor: "svdpp", AnchorFolds: 20,
		},
		Agents: []AgentSpec{
			{Variant: "default", Adapter: AdapterPersona},
			{Variant: "default", Adapter: AdapterShared},
			{Variant: "paper", Adapter: AdapterShared},
		},

		Eval: EvalConfig{
			Baselines: []string{"global-mean", "user-mean", "item-mean", "bias", "svd", "svdpp"},
			Bootstrap: 200, ProbeRows: 40, GenerateRows: 100,
		},
	}
}

// QuickConfig is a smoke run: a small world and a very small model with a
// few steps, the whole pipeline in well under two minutes on two cores.
func QuickConfig() Config {
	c := DefaultConfig()
	c.SynthUsers, c.SynthItems = 60, 500
	c.Users, c.MinRatings, c.MaxRatings = 16, 20, 500
	c.K = 2
	c.Base = BaseConfig{
		Preset: "tiny", Hidden: 32, Layers: 2, Heads: 4, KVHeads: 2, Context: 1024, Vocab: 1000,
		PromptsPerUser: 2, Steps: 60, Batch: 8, MicroBatch: 8, SeqLen: 128, LR: 3e-3,
	}
	c.Adapters.SharedSteps, c.Adapters.Steps, c.Adapters.Batch, c.Adapters.MicroBatch = 20, 10, 4, 4
	c.Adapters.Rank, c.Adapters.Alpha = 4, 8
	c.Eval.Baselines = []string{"global-mean", "bias"}
	c.Eval.Bootstrap = -1
	c.Eval.MaxTestUsers = 8
	c.Eval.ProbeRows, c.Eval.GenerateRows = 4, 8
	c.Agents = []AgentSpec{
		{Variant: "default", Adapter: AdapterPersona},
		{Variant: "paper", Adapter: AdapterPersona},
		{Variant: "paper", Adapter: AdapterShared},
		{Variant: "paper", Adapter: AdapterNone},
	}
	return c
}

// LoadConfig reads a YAML config over base: fields the file names replace
// base's; unknown fields are an error.
func LoadConfig(path string, base Config) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return base, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	c := base
	if err := dec.Decode(&c); err != nil {
		return base, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Marshal returns the config as YAML.
func (c Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

// Validate reports the first unusable field.
func (c *Config) Validate() error {
	switch {
	case c.Workspace == "":
		return fmt.Errorf("workspace: empty")
	case c.Users == 0:
		return fmt.Errorf("users: 0 (negative: every eligible user)")
	case c.TrainFrac <= 0 || c.TrainFrac >= 1:
		return fmt.Errorf("train_frac %g: want 0 < f < 1", c.TrainFrac)
	case c.K < 0:
		return fmt.Errorf("k %d: want 0 (elbow) or more", c.K)
	case c.Base.Steps <= 0 || c.Base.Batch <= 0 || c.Base.SeqLen <= 0:
		return fmt.Errorf("base: steps, batch and seq_len must be positive")
	case c.Adapters.Rank <= 0 || c.Adapters.Steps <= 0 || c.Adapters.Batch <= 0:
		return fmt.Errorf("adapters: rank, steps and batch must be positive")
	case c.Adapters.Shared && c.Adapters.SharedSteps <= 0:
		return fmt.Errorf("adapters: shared_steps must be positive when shared")
	case len(c.Agents) == 0:
		return fmt.Errorf("agents: none")
	case c.Adapters.AnchorFolds < 0 || c.Adapters.AnchorFolds == 1:
		return fmt.Errorf("adapters.anchor_folds %d: want 0 (default 5) or at least 2", c.Adapters.AnchorFolds)
	}
	if c.Adapters.Anchor != "none" && !slices.Contains(baseline.Names(), c.Adapters.Anchor) {
		return fmt.Errorf("adapters.anchor: unknown baseline %q (known: none, %s)", c.Adapters.Anchor, strings.Join(baseline.Names(), ", "))
	}
	labels := map[string]bool{}
	for _, a := range c.Agents {
		if err := a.validate(); err != nil {
			return fmt.Errorf("agents: %w", err)
		}
		if l := a.label(0); labels[l] {
			return fmt.Errorf("agents: two agents are named %q", l)
		} else {
			labels[l] = true
		}
	}
	for _, b := range c.Eval.Baselines {
		if !slices.Contains(baseline.Names(), b) {
			return fmt.Errorf("eval.baselines: unknown baseline %q (known: %s)", b, strings.Join(baseline.Names(), ", "))
		}
	}
	return nil
}
