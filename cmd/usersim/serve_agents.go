package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/usersim/usersim/agent"
	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/persona"
	"github.com/usersim/usersim/pipeline"
	"github.com/usersim/usersim/serve"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train/raft"
)

// Workspace artefacts `usersim serve --workspace` reads.
const (
	splitFile      = "split/split.bin"
	adaptersDir    = "adapters"
	personaAdapter = "persona-%d" // adapter name (and directory) of persona k
	baseModelDir   = "models/base"
)

// agentWorkspace is what `usersim serve --workspace` loads: the agent service
// and the persona adapters to serve by name.
type agentWorkspace struct {
	svc      *serve.PoolService
	adapters map[string]*lora.Adapter
	users    int
	backend  *serve.BatchBackend // close after the server
	family   string              // the prompt family served ("paper")
}

// workspaceOptions say how the workspace's agents are built.
type workspaceOptions struct {
	src        dataSource
	srcChanged bool // --dataset or --data-dir given
	variant    string
	noMemory   bool
	topK       int
}

// missing wraps a missing artefact's error with what makes it.
func missing(ws, what, path, how string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("workspace %s is incomplete: no %s (%s; %s): %w", ws, what, path, how, err)
	}
	return fmt.Errorf("workspace %s: %s (%s): %w", ws, what, path, err)
}

// loadAgentWorkspace loads ws's dataset, split, memories, personas and
// persona adapters for model m and builds the agents.
func loadAgentWorkspace(ctx context.Context, ws string, m *slm.Model, tok *tokenizer.Tokenizer, o workspaceOptions) (*agentWorkspace, error) {
	if st, err := os.Stat(ws); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--workspace %s: not a directory", ws)
	}
	man, err := memory.ReadManifest(ws)
	if err != nil {
		return nil, missing(ws, "memories", filepath.Join(ws, memory.Dir, memory.ManifestFile), "run `usersim distill`", err)
	}
	// The dataset: the flags', or the one the workspace was distilled from.
	src := o.src
	if !o.srcChanged && man.Dataset.Name != "" && (man.Dataset.Name == "synthetic" || dataset.Known(man.Dataset.Name)) {
		src.Name = man.Dataset.Name
	}
	d, cfg, err := workspaceDataset(ctx, ws, src, o.srcChanged)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: dataset: %w", ws, err)
	}
	fam := agentFamily(cfg, o)
	if fp := split.FingerprintOf(d); fp != man.Dataset {
		return nil, fmt.Errorf("workspace %s was distilled from dataset %s (%d ratings, sha256 %.12s), not the loaded %s (%d ratings, sha256 %.12s): give its --dataset and --data-dir",
			ws, man.Dataset.Name, man.Dataset.Ratings, man.Dataset.SHA256, fp.Name, fp.Ratings, fp.SHA256)
	}
	sp := filepath.Join(ws, filepath.FromSlash(splitFile))
	s, err := split.Load(sp, d)
	if err != nil {
		return nil, missing(ws, "split", sp, "run `usersim distill`", err)
	}
	if split := memory.SplitInfoOf(s); split.SHA256 != man.Split.SHA256 {
		return nil, fmt.Errorf("workspace %s: the memories were distilled from another split than %s: run `usersim distill` again", ws, sp)
	}
	ps, ms, err := memory.Load(ws)
	if err != nil {
		return nil, missing(ws, "memories", filepath.Join(ws, memory.Dir), "run `usersim distill`", err)
	}
	as, err := persona.LoadAssignments(ws)
	if err != nil {
		return nil, missing(ws, "persona assignments", filepath.Join(ws, persona.Dir, "assignments.json"), "run `usersim personas`", err)
	}
	sum, err := persona.LoadSummary(ws)
	if err != nil {
		return nil, missing(ws, "persona summary", filepath.Join(ws, persona.Dir, "summary.json"), "run `usersim personas`", err)
	}
	if as.K < 1 || sum.K != as.K {
		return nil, fmt.Errorf("workspace %s: persona assignments have K %d, the summary K %d", ws, as.K, sum.K)
	}
	set, err := lora.NewSet(m.Config.LoRABase())
	if err != nil {
		return nil, err
	}
	adapters := map[string]*lora.Adapter{}
	famDir := familyAdaptersDir(ws, fam)
	for k := range as.K {
		name := fmt.Sprintf(personaAdapter, k)
		dir := filepath.Join(famDir, name)
		a, err := lora.Load(dir, m.Config.LoRABase())
		if err != nil {
			return nil, missing(ws, fmt.Sprintf("adapter of persona %d", k), dir, "train the persona adapters first (`usersim run`)", err)
		}
		if err := set.Add(name, a); err != nil {
			return nil, err
		}
		adapters[name] = a
	}
	in := raft.Inputs{Dataset: d, Split: s, Profiles: ps, Interactions: ms, Personas: as.Personas}
	ropt := raft.Options{Variant: raft.Variant(fam.variant), NoMemory: fam.msOnly, TopK: o.topK}
	if in.Anchor, err = agentAnchor(ctx, cfg, fam, d, s); err != nil {
		return nil, fmt.Errorf("workspace %s: %w", ws, err)
	}
	local, err := agent.NewLocal(m, tok, set)
	if err != nil {
		return nil, err
	}
	// Concurrent requests' prompts are scored together, whatever their
	// personas.
	backend := serve.NewBatchBackend(local, 0, 0)
	pool, err := agent.NewPool(in, ropt, backend, agent.Config{Adapter: agent.PersonaAdapters(personaAdapter)})
	if err != nil {
		backend.Close()
		return nil, fmt.Errorf("workspace %s: agents: %w", ws, err)
	}
	svc, err := serve.NewPoolService(pool, d, sum, as.Personas, func(k int) string {
		if k < 0 || k >= as.K {
			return ""
		}
		return fmt.Sprintf(personaAdapter, k)
	})
	if err != nil {
		backend.Close()
		return nil, err
	}
	return &agentWorkspace{svc: svc, adapters: adapters, users: len(ps), backend: backend, family: fam.dir()}, nil
}

// promptFamily is the prompt the served agents are built with, as the
// adapters were trained on it.
type promptFamily struct {
	variant string // raft's variant: paper or default
	msOnly  bool   // no retrieved memory
}

// dir is the family's directory under adapters/ ("paper", "default-ms").
func (f promptFamily) dir() string {
	if f.msOnly {
		return f.variant + "-ms"
	}
	return f.variant
}

// familyAdaptersDir is where ws keeps the adapters of family f: `usersim
// run` keeps each family's apart (adapters/paper/persona-0); older
// workspaces have one family (adapters/persona-0).
func familyAdaptersDir(ws string, f promptFamily) string {
	dir := filepath.Join(ws, adaptersDir, f.dir())
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return filepath.Join(ws, adaptersDir)
}

// agentFamily picks the prompt family: the flags' when given; else that of
// the experiment's main persona agent (the first of config.yaml's agents
// with persona adapters); else the paper's prompt.
func agentFamily(cfg *pipeline.Config, o workspaceOptions) promptFamily {
	if o.variant != "" || o.noMemory {
		f := promptFamily{variant: o.variant, msOnly: o.noMemory}
		if f.variant == "" {
			f.variant = string(raft.VariantPaper)
		}
		return f
	}
	if cfg != nil {
		for _, a := range cfg.Agents {
			if a.Adapter == pipeline.AdapterPersona && a.K == 0 {
				return promptFamily{variant: a.Variant, msOnly: a.MsOnly}
			}
		}
	}
	return promptFamily{variant: string(raft.VariantPaper)}
}

// agentAnchor fits the collaborative anchor of the default variant's
// prompts as `usersim run` does: the configured baseline, out of fold over
// the training rows (nil for the paper's prompt or anchor "none").
func agentAnchor(ctx context.Context, cfg *pipeline.Config, f promptFamily, d *dataset.Dataset, s *split.Split) (raft.Estimator, error) {
	if f.variant != string(raft.VariantDefault) {
		return nil, nil
	}
	c := pipeline.DefaultConfig()
	if cfg != nil {
		c = *cfg
	}
	return pipeline.FitAnchor(ctx, c, d, s)
}

// workspaceDataset loads the dataset of ws: the flags' when given; else the
// one that `usersim run` recorded in the workspace's config.yaml (a
// synthetic world of any size is regenerated from its settings); else src,
// named after the memories' manifest. It returns the workspace's config
// too (nil when it has none).
func workspaceDataset(ctx context.Context, ws string, src dataSource, fromFlags bool) (*dataset.Dataset, *pipeline.Config, error) {
	cfgPath := filepath.Join(ws, pipeline.ConfigFile)
	var cfg *pipeline.Config
	if _, err := os.Stat(cfgPath); err == nil {
		c, err := pipeline.LoadConfig(cfgPath, pipeline.DefaultConfig())
		switch {
		case err == nil:
			cfg = &c
		case !fromFlags:
			return nil, nil, err
		default:
			// The flags name the dataset; the agents' prompt then
			// comes from the flags and defaults.
			slog.Warn("workspace config not read", "err", err)
		}
	}
	if cfg != nil && !fromFlags {
		d, err := pipeline.LoadDataset(ctx, *cfg)
		return d, cfg, err
	}
	d, err := src.load(ctx)
	return d, cfg, err
}
