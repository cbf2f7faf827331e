package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/persona"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train"
	"github.com/usersim/usersim/train/raft"
)

// Stage names, in order.
const (
	StageSplit    = "split"
	StageMemory   = "memory"
	StagePersonas = "personas"
	StageBase     = "base"
	StageAdapters = "adapters"
	StageEval     = "eval"
)

// Stages lists the stages in the order they run.
var Stages = []string{StageSplit, StageMemory, StagePersonas, StageBase, StageAdapters, StageEval}

// Workspace paths relative to the workspace root.
const (
	ConfigFile  = "config.yaml"
	SplitFile   = "split/split.bin"
	CorpusFile  = "models/corpus.txt"
	InitDir     = "models/init"
	BaseDir     = "models/base"
	AdaptersDir = "adapters"
	ResultsDir  = "results"
	// SharedAdapter is the name of the adapter trained on every user.
	SharedAdapter = "shared"
)

// PersonaAdapter is the adapter name of persona p.
func PersonaAdapter(p int) string { return fmt.Sprintf("persona-%d", p) }

// StageReport says what one stage did.
type StageReport struct {
	Stage   string        `json:"stage"`
	Skipped bool          `json:"skipped"` // up to date: nothing recomputed
	Took    time.Duration `json:"took_ns"`
}

// Report is what Run did.
type Report struct {
	Workspace string        `json:"workspace"`
	Stages    []StageReport `json:"stages"`
	Results   *eval.Results `json:"-"`
	Took      time.Duration `json:"took_ns"`
}

// Options are the run-time knobs that are not part of the experiment.
type Options struct {
	// Progress receives one line per stage and the training progress
	// (nil: io.Discard).
	Progress io.Writer
	// Logger logs details (nil: slog.Default()).
	Logger *slog.Logger
}

// runner carries what the stages pass on.
type runner struct {
	cfg   Config
	ws    string
	out   io.Writer
	log   *slog.Logger
	world *synth.World
	d     *dataset.Dataset
	s     *split.Split
	ps    []memory.Profile
	ms    []memory.Interaction
	pers  map[string]int
	k     int
	// persByK holds the persona assignments by number of personas: the
	// experiment's K and the K sweep's others.
	persByK map[int]map[string]int
	keys    map[string]string
	rep     *Report
	// anchor is the default variant's out-of-fold collaborative estimate
	// (fitted on first use).
	anchor raft.Estimator
}

// Run runs every stage of cfg over its workspace, skipping those already
// done with the same inputs.
func Run(ctx context.Context, cfg Config, opt Options) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline config: %w", err)
	}
	r := &runner{cfg: cfg, ws: cfg.Workspace, out: opt.Progress, log: opt.Logger, keys: map[string]string{},
		rep: &Report{Workspace: cfg.Workspace}}
	if r.out == nil {
		r.out = io.Discard
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	start := time.Now()
	if err := os.MkdirAll(r.ws, 0o755); err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	y, err := cfg.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(r.ws, ConfigFile), y); err != nil {
		return nil, err
	}
	if err := r.loadData(ctx); err != nil {
		return nil, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) (bool, error)
	}{
		{StageSplit, r.split}, {StageMemory, r.memory}, {StagePersonas, r.personas},
		{StageBase, r.base}, {StageAdapters, r.adapters}, {StageEval, r.eval},
	}
	for i, st := range steps {
		if err := ctx.Err(); err != nil {
			return r.rep, err
		}
		fmt.Fprintf(r.out, "[%d/%d] %s\n", i+1, len(steps), st.name)
		t0 := time.Now()
		skipped, err := st.fn(ctx)
		if err != nil {
			return r.rep, fmt.Errorf("stage %s: %w", st.name, err)
		}
		sr := StageReport{Stage: st.name, Skipped: skipped, Took: time.Since(t0)}
		r.rep.Stages = append(r.rep.Stages, sr)
		state := "done"
		if skipped {
			state = "up to date, skipped"
		}
		fmt.Fprintf(r.out, "      %s: %s (%s)\n", st.name, state, sr.Took.Round(time.Millisecond))
	}
	r.rep.Took = time.Since(start)
	// run.json: what this run did, stage by stage (cached or not).
	data, err := json.MarshalIndent(r.rep, "", "  ")
	if err != nil {
		return r.rep, err
	}
	if err := writeFileAtomic(filepath.Join(r.ws, ResultsDir, "run.json"), data); err != nil {
		return r.rep, err
	}
	return r.rep, nil
}

// LoadDataset returns the dataset a run with cfg works on: the synthetic
// world it generates (or loads from DataDir), or the MovieLens release it
// reads. Other commands use it to reopen a workspace's data.
func LoadDataset(ctx context.Context, cfg Config) (*dataset.Dataset, error) {
	r := &runner{cfg: cfg}
	if err := r.loadData(ctx); err != nil {
		return nil, err
	}
	return r.d, nil
}

// loadData loads or generates the dataset (cheap and deterministic, so it
// is not cached).
func (r *runner) loadData(ctx context.Context) error {
	c := r.cfg
	switch {
	case c.Dataset == "synthetic" && c.DataDir != "":
		w, err := synth.Load(c.DataDir)
		if err != nil {
			return err
		}
		r.world, r.d = w, w.Dataset
	case c.Dataset == "synthetic":
		sc := synth.DefaultConfig()
		if c.SynthUsers > 0 {
			sc.NumUsers = c.SynthUsers
		}
		if c.SynthItems > 0 {
			sc.NumItems = c.SynthItems
		}
		w, err := synth.Generate(sc)
		if err != nil {
			return fmt.Errorf("synthetic world: %w", err)
		}
		r.world, r.d = w, w.Dataset
	case !dataset.Known(c.Dataset):
		return fmt.Errorf("dataset %q: want synthetic or one of %s", c.Dataset, strings.Join(dataset.Names, ", "))
	default:
		dir := c.DataDir
		if dir == "" {
			var err error
			if dir, err = dataset.Fetch(ctx, c.Dataset, dataset.FetchOptions{}); err != nil {
				return err
			}
		}
		d, err := dataset.Load(ctx, c.Dataset, dir)
		if err != nil {
			return err
		}
		r.d = d
	}
	return nil
}

func (r *runner) split(ctx context.Context) (bool, error) {
	c := r.cfg
	po := split.PaperOptions{MinRatings: c.MinRatings, MaxRatings: c.MaxRatings, NumUsers: c.Users,
		TrainFrac: c.TrainFrac, Seed: c.Seed, AllowFewer: true}
	key, err := hashKey(StageSplit, split.FingerprintOf(r.d), po)
	if err != nil {
		return false, err
	}
	r.keys[StageSplit] = key
	path := filepath.Join(r.ws, SplitFile)
	if ok, err := stageDone(r.ws, StageSplit, key); err != nil {
		return false, err
	} else if ok {
		if r.s, err = split.Load(path, r.d); err == nil {
			return true, nil
		}
		r.log.Warn("cached split unreadable; redoing it", "err", err)
	}
	if err := clearStage(r.ws, StageSplit); err != nil {
		return false, err
	}
	s, err := split.Paper(r.d, po)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := split.Save(path, s, r.d); err != nil {
		return false, err
	}
	r.s = s
	return false, markDone(r.ws, StageSplit, key, map[string]int{"users": len(s.Users), "train": len(s.Train), "test": len(s.Test)})
}

// memory distils every user with training rows (the pretraining corpus
// needs the whole training pool) with the stats distiller.
func (r *runner) memory(ctx context.Context) (bool, error) {
	sopt := memory.StatsOptions{Shrink: 2, MinItemRatings: 10, MinGenreRatings: 3, BatchSize: 10,
		Population: memory.PopulationProfiled}
	optJSON, err := json.Marshal(struct {
		memory.StatsOptions
		Version int `json:"version"`
	}{sopt, memory.StatsVersion})
	if err != nil {
		return false, err
	}
	users := usersWithRows(r.d, r.s.Train)
	want := memory.Manifest{Dataset: split.FingerprintOf(r.d), Split: memory.SplitInfoOf(r.s),
		Distiller: memory.StatsDistillerName, Options: optJSON, Users: len(users), AllUsers: true}
	ok, why, err := memory.UpToDate(r.ws, want)
	if err != nil {
		return false, err
	}
	if ok {
		if r.ps, r.ms, err = memory.Load(r.ws); err != nil {
			return false, err
		}
	} else {
		fmt.Fprintf(r.out, "      distilling %d users (%s)\n", len(users), why)
		if r.ps, r.ms, err = (memory.StatsDistiller{Options: sopt}).Distill(ctx, r.d, r.s, users); err != nil {
			return false, err
		}
		if err := memory.Save(r.ws, want, r.ps, r.ms); err != nil {
			return false, err
		}
	}
	m, err := memory.ReadManifest(r.ws)
	if err != nil {
		return false, err
	}
	r.keys[StageMemory], err = hashKey(r.keys[StageSplit], m.ProfilesSHA256, m.InteractionsSHA256)
	return ok, err
}

func (r *runner) personas(ctx context.Context) (bool, error) {
	c := r.cfg
	opt := persona.Options{K: c.K, KMin: c.KMin, KMax: c.KMax, Seed: c.Seed}
	if c.K > 0 {
		opt.KMin, opt.KMax = 0, 0
	}
	emb, err := persona.NewEmbedder(c.Embedder, c.Seed)
	if err != nil {
		return false, err
	}
	key, err := persona.InputKey(r.ps, emb.Name(), opt, "pipeline")
	if err != nil {
		return false, err
	}
	ok, _, err := persona.UpToDate(r.ws, key)
	if err != nil {
		return false, err
	}
	if !ok {
		in := persona.Input{Profiles: r.ps}
		if r.world != nil {
			in.Truth = truthOf(r.world)
		}
		res, err := persona.Build(ctx, in, emb, opt)
		if err != nil {
			return false, err
		}
		if err := persona.Save(r.ws, key, res, nil); err != nil {
			return false, err
		}
	}
	a, err := persona.LoadAssignments(r.ws)
	if err != nil {
		return false, err
	}
	r.pers, r.k = a.Personas, a.K
	r.persByK = map[int]map[string]int{r.k: r.pers}
	fmt.Fprintf(r.out, "      %d users in %d personas (%s)\n", len(r.pers), r.k, a.Embedder)
	// The K sweep: the same embeddings clustered into other numbers of
	// personas, each cached on its own.
	for _, k := range extraKs(r.cfg.Agents) {
		if k == r.k {
			continue
		}
		pk, err := r.personasAt(ctx, key, emb, opt, k)
		if err != nil {
			return false, err
		}
		r.persByK[k] = pk
	}
	// The K sweep's clusterings follow from key and their K, which the
	// adapters' names carry: adding a K to the sweep changes no key.
	r.keys[StagePersonas], err = hashKey(r.keys[StageMemory], key)
	return ok, err
}

// personasAt clusters the profiles into k personas (cached under
// personas/kK.json) for the agents of the K sweep.
func (r *runner) personasAt(ctx context.Context, mainKey string, emb persona.Embedder, opt persona.Options, k int) (map[string]int, error) {
	stage := fmt.Sprintf("personas-k%d", k)
	key, err := hashKey(mainKey, k)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(r.ws, persona.Dir, fmt.Sprintf("k%d.json", k))
	if ok, err := stageDone(r.ws, stage, key); err != nil {
		return nil, err
	} else if ok {
		var a persona.Assignments
		if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &a) == nil && a.K == k {
			return a.Personas, nil
		}
	}
	if err := clearStage(r.ws, stage); err != nil {
		return nil, err
	}
	opt.K, opt.KMin, opt.KMax = k, 0, 0
	res, err := persona.Build(ctx, persona.Input{Profiles: r.ps}, emb, opt)
	if err != nil {
		return nil, fmt.Errorf("personas at K = %d: %w", k, err)
	}
	a := persona.Assignments{Embedder: res.Embedder, K: k, Seed: r.cfg.Seed, Personas: map[string]int{}}
	for i, u := range res.Users {
		a.Personas[u] = res.Clustering.Labels[i]
	}
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, data); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "      K sweep: %d users in %d personas\n", len(a.Personas), k)
	return a.Personas, markDone(r.ws, stage, key, nil)
}

// truthOf maps the world's user IDs to their true personas.
func truthOf(w *synth.World) map[string]int {
	truth := w.Truth.PersonaOf()
	m := make(map[string]int, len(truth))
	for u, p := range truth {
		m[w.Dataset.Users[u].ID] = p
	}
	return m
}

func (r *runner) inputs() raft.Inputs {
	return raft.Inputs{Dataset: r.d, Split: r.s, Profiles: r.ps, Interactions: r.ms, Personas: r.pers}
}

// inputsFor returns the inputs of a prompt family: the default variant's
// carry the collaborative anchor.
func (r *runner) inputsFor(ctx context.Context, f family) (raft.Inputs, error) {
	in := r.inputs()
	if f.Variant != string(raft.VariantDefault) || r.cfg.Adapters.Anchor == "none" {
		return in, nil
	}
	if r.anchor == nil {
		t0 := time.Now()
		a, err := FitAnchor(ctx, r.cfg, r.d, r.s)
		if err != nil {
			return in, err
		}
		r.log.Debug("anchor fitted", "baseline", r.cfg.Adapters.Anchor, "took", time.Since(t0))
		r.anchor = a
	}
	in.Anchor = r.anchor
	return in, nil
}

// FitAnchor fits the collaborative anchor that the default variant's
// prompts carry under cfg: the Adapters.Anchor baseline out of fold over
// the split's training rows (a training pair's estimate never saw its
// rating; any other pair's comes from all rows). It is nil for anchor
// "none". `usersim serve` fits it the same way, so served prompts are the
// evaluated ones.
func FitAnchor(ctx context.Context, cfg Config, d *dataset.Dataset, s *split.Split) (raft.Estimator, error) {
	a := cfg.Adapters
	if a.Anchor == "none" {
		return nil, nil
	}
	if _, err := baseline.New(a.Anchor, cfg.Seed); err != nil {
		return nil, fmt.Errorf("anchor: %w", err)
	}
	oof := baseline.NewOutOfFold(func() baseline.Predictor {
		p, _ := baseline.New(a.Anchor, cfg.Seed) // the name is checked above
		return p
	}, a.AnchorFolds, cfg.Seed)
	if err := oof.Fit(ctx, d, s.Train); err != nil {
		return nil, fmt.Errorf("anchor %s: %w", a.Anchor, err)
	}
	return oof, nil
}

// optionsFor returns the prompt options of a family.
func optionsFor(f family) raft.Options {
	return raft.Options{Variant: raft.Variant(f.Variant), NoMemory: f.MsOnly}
}

// base writes the RAFT corpus, trains the tokenizer, initialises the
// compact base and pretrains it; the pretraining resumes from its
// checkpoint after a kill.
func (r *runner) base(ctx context.Context) (bool, error) {
	b := r.cfg.Base
	fams := families(r.cfg.Agents, false)
	key, err := hashKey(r.keys[StagePersonas], b, fams, r.anchorKey(), r.cfg.Seed)
	if err != nil {
		return false, err
	}
	r.keys[StageBase] = key
	if ok, err := stageDone(r.ws, StageBase, key); err != nil || ok {
		return ok, err
	}
	if err := clearStage(r.ws, StageBase); err != nil {
		return false, err
	}
	corpus := filepath.Join(r.ws, CorpusFile)
	if err := os.MkdirAll(filepath.Dir(corpus), 0o755); err != nil {
		return false, err
	}
	// One corpus over every prompt family of the experiment: the profile
	// documents once, and each family's rating prompts (PromptsPerUser
	// shared among the families).
	var text strings.Builder
	for n, f := range fams {
		in, err := r.inputsFor(ctx, f)
		if err != nil {
			return false, err
		}
		per := max(1, (b.PromptsPerUser+len(fams)-1)/len(fams))
		if b.PromptsPerUser <= 0 {
			per = 0
		}
		cst, err := raft.WriteCorpus(ctx, &text, in, raft.CorpusOptions{
			Options: optionsFor(f), Seed: uint64(r.cfg.Seed) + uint64(n), PromptsPerUser: per, PromptsOnly: n > 0})
		if err != nil {
			return false, fmt.Errorf("corpus of the %s prompts: %w", f.name(), err)
		}
		fmt.Fprintf(r.out, "      corpus, %s prompts: %d profile and %d prompt documents, %d bytes\n", f.name(), cst.ProfileDocs, cst.PromptDocs, cst.Bytes)
	}
	if err := writeFileAtomic(corpus, []byte(text.String())); err != nil {
		return false, err
	}
	initDir := filepath.Join(r.ws, InitDir)
	tokOpt := slm.CompactTokenizerOptions()
	if b.Vocab > 0 {
		tokOpt.VocabSize = b.Vocab
	}
	// One token per tenth of a star for the numbers the default variant
	// writes with "bucket" (the anchor, the key facts).
	tokOpt.Buckets = append(tokOpt.Buckets, raft.NumberBuckets)
	ires, err := slm.InitCompact(ctx, strings.NewReader(text.String()), initDir, slm.InitOptions{
		Model: slm.CompactOptions{Preset: b.Preset, Hidden: b.Hidden, Layers: b.Layers, Heads: b.Heads,
			KVHeads: b.KVHeads, Context: b.Context},
		Tokenizer: tokOpt, Seed: uint64(r.cfg.Seed), Overwrite: true, CharsPerTokenSample: 1 << 20,
	})
	if err != nil {
		return false, fmt.Errorf("init compact base: %w", err)
	}
	fmt.Fprintf(r.out, "      base: %d parameters, vocab %d, %.2f chars/token\n", ires.Params, ires.Vocab, ires.CharsPerToken)
	m, tok, err := slm.Load(initDir)
	if err != nil {
		return false, err
	}
	docs := slm.SplitDocuments(text.String())
	work := filepath.Join(r.ws, "models", "pretrain")
	ckpt, err := checkpointDir(work, key)
	if err != nil {
		return false, err
	}
	pres, err := slm.Pretrain(ctx, m, tok, docs, slm.PretrainOptions{
		SeqLen: b.SeqLen, Steps: b.Steps, Batch: b.Batch, MicroBatch: b.MicroBatch, LR: b.LR,
		Seed: uint64(r.cfg.Seed), CheckpointDir: ckpt, CheckpointEvery: 50,
		Resume: true, OutDir: work, Progress: r.out, Logger: r.log,
	})
	if err != nil {
		return false, fmt.Errorf("pretrain: %w", err)
	}
	fmt.Fprintf(r.out, "      pretrained %d steps: loss %.3f → %.3f, %.0f tok/s\n", pres.Steps, pres.FirstLoss, pres.LastLoss, pres.TokensPerSec)
	if err := m.WritePretrained(filepath.Join(r.ws, BaseDir), initDir); err != nil {
		return false, err
	}
	return false, markDone(r.ws, StageBase, key, map[string]any{"steps": pres.Steps, "first_loss": pres.FirstLoss,
		"last_loss": pres.LastLoss, "tokens_per_sec": pres.TokensPerSec, "params": ires.Params})
}

// anchorKey is what the anchor depends on, for the stage keys.
func (r *runner) anchorKey() any {
	a := r.cfg.Adapters
	return struct {
		Anchor string
		Folds  int
	}{a.Anchor, a.AnchorFolds}
}

// adapters trains, for every prompt family an agent trains adapters for,
// the shared adapter (when the family needs it) and one adapter per persona
// (started from the shared one with Adapters.Shared), each saved in PEFT
// format under adapters/FAMILY/NAME. Each adapter has its own manifest, so
// a killed run keeps the finished ones.
func (r *runner) adapters(ctx context.Context) (bool, error) {
	a := r.cfg.Adapters
	key, err := hashKey(r.keys[StageBase], a, families(r.cfg.Agents, true), r.cfg.Agents)
	if err != nil {
		return false, err
	}
	r.keys[StageAdapters] = key
	if ok, err := stageDone(r.ws, StageAdapters, key); err != nil || ok {
		return ok, err
	}
	if err := clearStage(r.ws, StageAdapters); err != nil {
		return false, err
	}
	m, tok, err := slm.Load(filepath.Join(r.ws, BaseDir))
	if err != nil {
		return false, err
	}
	for _, f := range families(r.cfg.Agents, true) {
		if err := r.familyAdapters(ctx, m, tok, f); err != nil {
			return false, err
		}
	}
	return false, markDone(r.ws, StageAdapters, key, nil)
}

// adapterInfo is what an adapter's manifest records.
type adapterInfo struct {
	Examples int     `json:"examples"`
	Steps    int     `json:"steps"`
	Loss     float64 `json:"loss"`
	Seconds  float64 `json:"seconds"`
	Params   int64   `json:"params"`
}

func (r *runner) familyAdapters(ctx context.Context, m *slm.Model, tok *tokenizer.Tokenizer, f family) error {
	a := r.cfg.Adapters
	// Training examples: the split's (evaluated) users' training ratings.
	users := make([]string, len(r.s.Users))
	for i, u := range r.s.Users {
		users[i] = r.d.Users[u].ID
	}
	in, err := r.inputsFor(ctx, f)
	if err != nil {
		return err
	}
	opt := optionsFor(f)
	opt.Users = users
	exs, err := raft.Build(ctx, in, opt)
	if err != nil {
		return fmt.Errorf("RAFT examples (%s): %w", f.name(), err)
	}
	seqs, userOf, err := encodeExamples(tok, m.Config.MaxContext, exs)
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "      %s prompts: %d RAFT examples of %d users\n", f.name(), len(seqs), len(users))
	base := m.Config.LoRABase()
	lcfg := lora.NewConfig("usersim-compact", a.Rank, a.Alpha, lora.AllLinear)
	trainOne := func(name string, init *lora.Adapter, data []slm.TrainSeq, steps int) (*lora.Adapter, error) {
		// An adapter depends on the base (and everything before it), the
		// adapter settings, its prompt family and its name (which holds
		// its persona and K, or its user), not on the other agents: adding
		// an agent to the experiment retrains nothing that exists.
		akey, err := hashKey(r.keys[StageBase], a, f, name)
		if err != nil {
			return nil, err
		}
		rel := AdapterDir(f.name(), name)
		dir := filepath.Join(r.ws, filepath.FromSlash(rel))
		stage := "adapter-" + f.name() + "-" + strings.ReplaceAll(name, "/", "-")
		if ok, err := stageDone(r.ws, stage, akey); err != nil {
			return nil, err
		} else if ok {
			if ad, err := lora.Load(dir, base); err == nil {
				fmt.Fprintf(r.out, "      adapter %s: up to date\n", rel)
				return ad, nil
			}
		}
		if err := clearStage(r.ws, stage); err != nil {
			return nil, err
		}
		var ad *lora.Adapter
		if init != nil {
			ad = init.Clone()
		} else if ad, err = lora.New(lcfg, base, uint64(r.cfg.Seed)); err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("adapter %s: no training examples", rel)
		}
		tc := train.DefaultConfig(steps, min(a.Batch, len(data)), a.LR)
		tc.MicroBatch = min(a.MicroBatch, tc.BatchSize)
		tc.WeightDecay = 0
		tc.Seed = uint64(r.cfg.Seed)
		work := filepath.Join(r.ws, "models", "adapters", f.name(), name)
		ckpt, err := checkpointDir(work, akey)
		if err != nil {
			return nil, err
		}
		tc.CheckpointDir, tc.CheckpointEvery, tc.Resume, tc.OutDir = ckpt, 25, true, work
		tc.Progress, tc.Logger = r.out, r.log
		t0 := time.Now()
		res, err := train.Train(ctx, &slm.LoRAObjective{Model: m, Adapter: ad, Examples: data}, tc)
		if err != nil {
			return nil, fmt.Errorf("train adapter %s: %w", rel, err)
		}
		if res.Stopped == "cancelled" {
			return nil, ctx.Err()
		}
		last := 0.0
		if n := len(res.Train); n > 0 {
			last = res.Train[n-1].Loss
		}
		took := time.Since(t0)
		fmt.Fprintf(r.out, "      adapter %s: %d examples, %d steps, loss %.3f (%s)\n", rel, len(data), res.Steps, last, took.Round(time.Millisecond))
		if err := ad.Save(dir); err != nil {
			return nil, err
		}
		return ad, markDone(r.ws, stage, akey, adapterInfo{Examples: len(data), Steps: res.Steps, Loss: last,
			Seconds: took.Seconds(), Params: int64(ad.NumParams())})
	}
	var start *lora.Adapter
	if needsShared(r.cfg.Agents, f, a.Shared) {
		if start, err = trainOne(SharedAdapter, nil, seqs, a.SharedSteps); err != nil {
			return err
		}
	}
	if !a.Shared {
		start = nil
	}
	if n := perUserCount(r.cfg.Agents, f); n > 0 {
		steps := a.UserSteps
		if steps == 0 {
			steps = a.Steps
		}
		for _, u := range r.userSample(n) {
			id := r.d.Users[u].ID
			var data []slm.TrainSeq
			for i, s := range seqs {
				if userOf[i] == id {
					data = append(data, s)
				}
			}
			if _, err := trainOne(userAdapterName(u), start, data, steps); err != nil {
				return err
			}
		}
	}
	for _, k := range personaKs(r.cfg.Agents, f, r.k) {
		pers := r.persByK[k]
		for p := range k {
			var data []slm.TrainSeq
			for i, s := range seqs {
				if q, ok := pers[userOf[i]]; ok && q == p {
					data = append(data, s)
				}
			}
			name := personaAdapterName(k, r.k, p)
			if len(data) == 0 {
				r.log.Warn("persona has no evaluated users; its adapter is not trained", "k", k, "persona", p)
				fmt.Fprintf(r.out, "      %s: no training examples among the split's users; no adapter\n", name)
				continue
			}
			if _, err := trainOne(name, start, data, a.Steps); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkpointDir returns the checkpoint directory of a training under work
// for the stage key: a killed run resumes from it only when nothing that
// the key covers changed (a checkpoint of other settings — more steps,
// another learning rate — would otherwise be continued under the new
// schedule). Checkpoints of other keys under work are removed.
func checkpointDir(work, key string) (string, error) {
	name := "checkpoints-" + key[:16]
	old, err := filepath.Glob(filepath.Join(work, "checkpoints*"))
	if err != nil {
		return "", err
	}
	for _, o := range old {
		if filepath.Base(o) != name {
			if err := os.RemoveAll(o); err != nil {
				return "", fmt.Errorf("remove stale checkpoints: %w", err)
			}
		}
	}
	return filepath.Join(work, name), nil
}

// userSample returns the first n users of a seeded sample of the split's
// users (the per-user agents' users).
func (r *runner) userSample(n int) []int32 {
	return seededPrefix(r.s.Users, n, r.cfg.Seed, 0x75736572)
}

// encodeExamples tokenises RAFT examples as the local agent does: the
// prompt (BOS when the tokenizer wants one), then " "+answer as a
// continuation, then EOS; the loss is on the answer tokens and EOS. It returns each
// sequence's user ID beside it.
func encodeExamples(tok *tokenizer.Tokenizer, maxLen int, exs []raft.Example) ([]slm.TrainSeq, []string, error) {
	bos := tok.BOS()
	seqs := make([]slm.TrainSeq, 0, len(exs))
	users := make([]string, 0, len(exs))
	long := 0
	for _, e := range exs {
		add := tok.AddBOSDefault() && bos >= 0 && !strings.HasPrefix(e.Prompt, tok.TokenText(bos))
		p, err := tok.Encode(e.Prompt, tokenizer.EncodeOptions{AddBOS: add, ParseSpecial: true})
		if err != nil {
			return nil, nil, fmt.Errorf("encode prompt of %s/%s: %w", e.User, e.Item, err)
		}
		ans, err := tok.Encode(" "+e.Answer, tokenizer.EncodeOptions{Continuation: true})
		if err != nil || len(ans) == 0 {
			return nil, nil, fmt.Errorf("encode answer %q of %s/%s: %v", e.Answer, e.User, e.Item, err)
		}
		seq := append(p, ans...)
		// The answer ends with EOS, so that the agent learns to stop after
		// it: free generation (the URR) then reads just the rating.
		if eos := tok.EOSIDs(); len(eos) > 0 {
			seq = append(seq, eos[0])
		}
		if maxLen > 0 && len(seq) > maxLen {
			long++
			continue
		}
		mask := make([]bool, len(seq))
		for i := len(p); i < len(seq); i++ {
			mask[i] = true
		}
		seqs = append(seqs, slm.TrainSeq{Tokens: seq, Mask: mask})
		users = append(users, e.User)
	}
	if long > 0 {
		slog.Warn("RAFT examples longer than the model's context left out", "count", long, "context", maxLen)
	}
	if len(seqs) == 0 {
		return nil, nil, errors.New("no RAFT example fits the model's context")
	}
	return seqs, users, nil
}

// restrictSplit keeps the test rows of users only (the training rows stay).
func restrictSplit(d *dataset.Dataset, s *split.Split, users []int32) *split.Split {
	keep := make(map[int32]bool, len(users))
	for _, u := range users {
		keep[u] = true
	}
	c := *s
	c.Users = slices.Clone(users)
	c.Test = nil
	for _, row := range s.Test {
		if keep[d.Ratings.User[row]] {
			c.Test = append(c.Test, row)
		}
	}
	return &c
}

// usersWithRows returns the users with at least one of rows, ascending.
func usersWithRows(d *dataset.Dataset, rows []int32) []int32 {
	has := make([]bool, d.NumUsers())
	for _, r := range rows {
		has[d.Ratings.User[r]] = true
	}
	var out []int32
	for u, h := range has {
		if h {
			out = append(out, int32(u))
		}
	}
	return out
}
