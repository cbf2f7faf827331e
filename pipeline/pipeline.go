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

	"github.com/usersim/usersim/agent"
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
	keys  map[string]string
	rep   *Report
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
	fmt.Fprintf(r.out, "      %d users in %d personas (%s)\n", len(r.pers), r.k, a.Embedder)
	r.keys[StagePersonas], err = hashKey(r.keys[StageMemory], key)
	return ok, err
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

func (r *runner) raftOptions() raft.Options {
	return raft.Options{Variant: raft.Variant(r.cfg.Adapters.Variant)}
}

// base writes the RAFT corpus, trains the tokenizer, initialises the
// compact base and pretrains it; the pretraining resumes from its
// checkpoint after a kill.
func (r *runner) base(ctx context.Context) (bool, error) {
	b := r.cfg.Base
	key, err := hashKey(r.keys[StagePersonas], b, r.cfg.Adapters.Variant, r.cfg.Seed)
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
	cst, err := raft.WriteCorpusFile(ctx, corpus, r.inputs(), raft.CorpusOptions{
		Options: r.raftOptions(), Seed: uint64(r.cfg.Seed), PromptsPerUser: b.PromptsPerUser})
	if err != nil {
		return false, fmt.Errorf("corpus: %w", err)
	}
	fmt.Fprintf(r.out, "      corpus %s: %+v\n", corpus, cst)
	text, err := os.ReadFile(corpus)
	if err != nil {
		return false, err
	}
	initDir := filepath.Join(r.ws, InitDir)
	tokOpt := slm.CompactTokenizerOptions()
	if b.Vocab > 0 {
		tokOpt.VocabSize = b.Vocab
	}
	ires, err := slm.InitCompact(ctx, strings.NewReader(string(text)), initDir, slm.InitOptions{
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
	docs := slm.SplitDocuments(string(text))
	work := filepath.Join(r.ws, "models", "pretrain")
	pres, err := slm.Pretrain(ctx, m, tok, docs, slm.PretrainOptions{
		SeqLen: b.SeqLen, Steps: b.Steps, Batch: b.Batch, MicroBatch: b.MicroBatch, LR: b.LR,
		Seed: uint64(r.cfg.Seed), CheckpointDir: filepath.Join(work, "checkpoints"), CheckpointEvery: 50,
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

// adapters trains the shared adapter (when enabled) and one adapter per
// persona, each saved in PEFT format under adapters/NAME. Each adapter has
// its own manifest, so a killed run keeps the finished ones.
func (r *runner) adapters(ctx context.Context) (bool, error) {
	a := r.cfg.Adapters
	key, err := hashKey(r.keys[StageBase], a)
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
	// Training examples: the split's (evaluated) users' training ratings.
	users := make([]string, len(r.s.Users))
	for i, u := range r.s.Users {
		users[i] = r.d.Users[u].ID
	}
	opt := r.raftOptions()
	opt.Users = users
	exs, err := raft.Build(ctx, r.inputs(), opt)
	if err != nil {
		return false, fmt.Errorf("RAFT examples: %w", err)
	}
	seqs, persOf, err := encodeExamples(tok, m.Config.MaxContext, exs)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(r.out, "      %d RAFT examples of %d users\n", len(seqs), len(users))
	base := m.Config.LoRABase()
	lcfg := lora.NewConfig("usersim-compact", a.Rank, a.Alpha, lora.AllLinear)
	var start *lora.Adapter
	trainOne := func(name string, init *lora.Adapter, data []slm.TrainSeq, steps int) (*lora.Adapter, error) {
		akey, err := hashKey(key, name)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(r.ws, AdaptersDir, name)
		stage := "adapter-" + name
		if ok, err := stageDone(r.ws, stage, akey); err != nil {
			return nil, err
		} else if ok {
			if ad, err := lora.Load(dir, base); err == nil {
				fmt.Fprintf(r.out, "      adapter %s: up to date\n", name)
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
			return nil, fmt.Errorf("adapter %s: no training examples", name)
		}
		tc := train.DefaultConfig(steps, min(a.Batch, len(data)), a.LR)
		tc.MicroBatch = min(a.MicroBatch, tc.BatchSize)
		tc.WeightDecay = 0
		tc.Seed = uint64(r.cfg.Seed)
		work := filepath.Join(r.ws, "models", "adapters", name)
		tc.CheckpointDir, tc.CheckpointEvery, tc.Resume, tc.OutDir = filepath.Join(work, "checkpoints"), 25, true, work
		tc.Progress, tc.Logger = r.out, r.log
		t0 := time.Now()
		res, err := train.Train(ctx, &slm.LoRAObjective{Model: m, Adapter: ad, Examples: data}, tc)
		if err != nil {
			return nil, fmt.Errorf("train adapter %s: %w", name, err)
		}
		if res.Stopped == "cancelled" {
			return nil, ctx.Err()
		}
		last := 0.0
		if n := len(res.Train); n > 0 {
			last = res.Train[n-1].Loss
		}
		fmt.Fprintf(r.out, "      adapter %s: %d examples, %d steps, loss %.3f (%s)\n", name, len(data), res.Steps, last, time.Since(t0).Round(time.Millisecond))
		if err := ad.Save(dir); err != nil {
			return nil, err
		}
		return ad, markDone(r.ws, stage, akey, map[string]any{"examples": len(data), "steps": res.Steps, "loss": last})
	}
	if a.Shared {
		if start, err = trainOne(SharedAdapter, nil, seqs, a.SharedSteps); err != nil {
			return false, err
		}
	}
	for p := range r.k {
		var data []slm.TrainSeq
		for i, s := range seqs {
			if persOf[i] == p {
				data = append(data, s)
			}
		}
		if len(data) == 0 {
			r.log.Warn("persona has no evaluated users; its adapter is not trained", "persona", p)
			fmt.Fprintf(r.out, "      persona %d: no training examples among the split's users; no adapter\n", p)
			continue
		}
		if _, err := trainOne(PersonaAdapter(p), start, data, a.Steps); err != nil {
			return false, err
		}
	}
	return false, markDone(r.ws, StageAdapters, key, nil)
}

// encodeExamples tokenises RAFT examples as the local agent does: the
// prompt (BOS when the tokenizer wants one), then " "+answer as a
// continuation; the loss is on the answer tokens only.
func encodeExamples(tok *tokenizer.Tokenizer, maxLen int, exs []raft.Example) ([]slm.TrainSeq, []int, error) {
	bos := tok.BOS()
	seqs := make([]slm.TrainSeq, 0, len(exs))
	pers := make([]int, 0, len(exs))
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
		if maxLen > 0 && len(seq) > maxLen {
			long++
			continue
		}
		mask := make([]bool, len(seq))
		for i := len(p); i < len(seq); i++ {
			mask[i] = true
		}
		seqs = append(seqs, slm.TrainSeq{Tokens: seq, Mask: mask})
		pers = append(pers, e.Persona)
	}
	if long > 0 {
		slog.Warn("RAFT examples longer than the model's context left out", "count", long, "context", maxLen)
	}
	if len(seqs) == 0 {
		return nil, nil, errors.New("no RAFT example fits the model's context")
	}
	return seqs, pers, nil
}

// eval scores the persona agents and the baselines on the same test rows
// and writes results/.
func (r *runner) eval(ctx context.Context) (bool, error) {
	e := r.cfg.Eval
	key, err := hashKey(r.keys[StageAdapters], e)
	if err != nil {
		return false, err
	}
	r.keys[StageEval] = key
	resDir := filepath.Join(r.ws, ResultsDir)
	if ok, err := stageDone(r.ws, StageEval, key); err != nil {
		return false, err
	} else if ok {
		f, err := os.Open(filepath.Join(resDir, "results.json"))
		if err == nil {
			res, rerr := eval.ReadResults(f)
			f.Close()
			if rerr == nil {
				r.rep.Results = res
				return true, nil
			}
		}
	}
	if err := clearStage(r.ws, StageEval); err != nil {
		return false, err
	}
	m, tok, err := slm.Load(filepath.Join(r.ws, BaseDir))
	if err != nil {
		return false, err
	}
	set, err := lora.NewSet(m.Config.LoRABase())
	if err != nil {
		return false, err
	}
	have := map[int]bool{}
	for p := range r.k {
		dir := filepath.Join(r.ws, AdaptersDir, PersonaAdapter(p))
		if _, err := os.Stat(dir); err != nil {
			continue // persona without evaluated users
		}
		if _, err := set.LoadDir(PersonaAdapter(p), dir); err != nil {
			return false, err
		}
		have[p] = true
	}
	if r.cfg.Adapters.Shared {
		if _, err := set.LoadDir(SharedAdapter, filepath.Join(r.ws, AdaptersDir, SharedAdapter)); err != nil {
			return false, err
		}
	}
	local, err := agent.NewLocal(m, tok, set)
	if err != nil {
		return false, err
	}
	shared := r.cfg.Adapters.Shared
	pool, err := agent.NewPool(r.inputs(), r.raftOptions(), local, agent.Config{
		Adapter: func(user string, p int) string {
			if have[p] {
				return PersonaAdapter(p)
			}
			if shared {
				return SharedAdapter
			}
			return ""
		}})
	if err != nil {
		return false, err
	}
	s := r.s
	if e.MaxTestUsers > 0 && e.MaxTestUsers < len(s.Users) {
		s = restrictSplit(r.d, s, s.Users[:e.MaxTestUsers])
	}
	var ps []eval.Predictor
	for _, name := range e.Baselines {
		p, err := baseline.New(name, r.cfg.Seed)
		if err != nil {
			return false, err
		}
		ps = append(ps, p)
	}
	if r.world != nil {
		ps = append(ps, baseline.NewOracle(r.world.Expected))
	}
	label := "agent-" + r.cfg.Adapters.Variant
	ag := &agent.Predictor{Pool: pool, Mode: agent.Expected, Label: fmt.Sprintf("%s-K%d", label, r.k)}
	agents := []*agent.Predictor{ag}
	// Ablations on the same rows: one adapter for all users, no adapter.
	extra := map[string]string{}
	if e.SharedAgent && shared {
		extra[label+"-K1"] = SharedAdapter
	}
	if e.ZeroShot {
		extra[label+"-zeroshot"] = ""
	}
	for _, name := range []string{label + "-K1", label + "-zeroshot"} {
		ad, ok := extra[name]
		if !ok {
			continue
		}
		p, err := agent.NewPool(r.inputs(), r.raftOptions(), local, agent.Config{
			Adapter: func(string, int) string { return ad }})
		if err != nil {
			return false, err
		}
		agents = append(agents, &agent.Predictor{Pool: p, Mode: agent.Expected, Label: name})
	}
	for _, a := range agents {
		ps = append(ps, a)
	}
	eo := eval.Options{Seed: r.cfg.Seed, Bootstrap: e.Bootstrap, Progress: r.out}
	if !slices.Contains(e.Baselines, "bias") {
		eo.Reference = "none"
	}
	res, err := eval.Evaluate(ctx, r.d, s, ps, eo)
	if err != nil {
		return false, err
	}
	for _, a := range agents {
		if err := a.Err(); err != nil {
			return false, fmt.Errorf("%s predictions: %w", a.Name(), err)
		}
	}
	if err := res.WriteFiles(resDir); err != nil {
		return false, err
	}
	r.rep.Results = res
	return false, markDone(r.ws, StageEval, key, nil)
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
