package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/persona"
	"github.com/usersim/usersim/train/raft"
)

// MainAgent is what serving a workspace's main agent (the first of its
// config's agents) takes: its prompt options, the anchor its prompts carry,
// and its adapters.
type MainAgent struct {
	Spec AgentSpec
	// Label is the agent's name in the workspace's report.
	Label string
	// Options render its prompts as they were trained.
	Options raft.Options
	// Anchor is the collaborative estimate of the default variant (nil
	// for the paper's prompt or with anchor "none"), fitted on the
	// split's training rows as in the run.
	Anchor raft.Estimator
	// Personas maps user IDs to the agent's personas; K is their number.
	Personas map[string]int
	K        int
	// Adapters maps a persona to its adapter directory (absolute) for
	// persona agents; Shared is the shared adapter's directory ("" when
	// there is none). A persona agent falls back to Shared for a persona
	// without its own adapter.
	Adapters map[int]string
	Shared   string
}

// OpenMainAgent reads the workspace's config.yaml and returns its main
// agent. d and s are the workspace's dataset and split (LoadDataset and
// split.Load).
func OpenMainAgent(ctx context.Context, ws string, d *dataset.Dataset, s *split.Split) (*MainAgent, error) {
	cfg, err := LoadConfig(filepath.Join(ws, ConfigFile), DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", ws, err)
	}
	if len(cfg.Agents) == 0 {
		return nil, fmt.Errorf("workspace %s: its config names no agent", ws)
	}
	sp := cfg.Agents[0]
	a, err := persona.LoadAssignments(ws)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", ws, err)
	}
	k, pers := a.K, a.Personas
	if sp.Adapter == AdapterPersona && sp.K > 0 && sp.K != a.K {
		var ak persona.Assignments
		path := filepath.Join(ws, persona.Dir, fmt.Sprintf("k%d.json", sp.K))
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &ak)
		}
		if err != nil {
			return nil, fmt.Errorf("workspace %s: personas at K = %d: %w", ws, sp.K, err)
		}
		k, pers = ak.K, ak.Personas
	}
	f := sp.family()
	m := &MainAgent{Spec: sp, Label: sp.label(a.K), Options: optionsFor(f), Personas: pers, K: k, Adapters: map[int]string{}}
	abs := func(rel string) string { return filepath.Join(ws, filepath.FromSlash(rel)) }
	if dir := abs(AdapterDir(f.name(), SharedAdapter)); exists(dir) {
		m.Shared = dir
	}
	switch sp.Adapter {
	case AdapterPersona:
		for p := range k {
			if dir := abs(AdapterDir(f.name(), personaAdapterName(k, a.K, p))); exists(dir) {
				m.Adapters[p] = dir
			}
		}
		if len(m.Adapters) == 0 {
			return nil, fmt.Errorf("workspace %s: agent %s has no persona adapter under %s: run `usersim run` first", ws, m.Label, abs(AdapterDir(f.name(), "")))
		}
	case AdapterShared:
		if m.Shared == "" {
			return nil, fmt.Errorf("workspace %s: agent %s has no shared adapter: run `usersim run` first", ws, m.Label)
		}
	case AdapterNone:
		m.Shared = ""
	}
	r := &runner{cfg: cfg, d: d, s: s, log: slog.Default()}
	in, err := r.inputsFor(ctx, f)
	if err != nil {
		return nil, err
	}
	m.Anchor = in.Anchor
	return m, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
