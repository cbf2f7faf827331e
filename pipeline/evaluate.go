package pipeline

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/usersim/usersim/agent"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
	"github.com/usersim/usersim/internal/pcg"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
)

// scoredAgent is one agent configuration being evaluated.
type scoredAgent struct {
	spec  AgentSpec
	label string
	pool  *agent.Pool
	pred  *agent.Predictor
	// adapters are the set names it runs with (none for zero-shot).
	adapters []string
}

// setName is the name of a family's adapter in the evaluation's LoRA set.
func setName(f family, adapter string) string { return f.name() + "/" + adapter }

// eval scores every agent configuration and the baselines on the same test
// rows, adds the diagnostics (argmax, free generation, counterfactual
// probes) and writes results/.
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
	for _, f := range families(r.cfg.Agents, true) {
		names := []string{SharedAdapter}
		for _, u := range r.userSample(perUserCount(r.cfg.Agents, f)) {
			names = append(names, userAdapterName(u))
		}
		for _, k := range personaKs(r.cfg.Agents, f, r.k) {
			for p := range k {
				names = append(names, personaAdapterName(k, r.k, p))
			}
		}
		for _, n := range names {
			dir := filepath.Join(r.ws, filepath.FromSlash(AdapterDir(f.name(), n)))
			if _, err := os.Stat(dir); err != nil {
				continue // not trained: a persona without evaluated users, or no shared adapter
			}
			if _, err := set.LoadDir(setName(f, n), dir); err != nil {
				return false, err
			}
		}
	}
	local, err := agent.NewLocal(m, tok, set)
	if err != nil {
		return false, err
	}
	var agents, perUser []*scoredAgent
	for _, sp := range r.cfg.Agents {
		sa, err := r.newScoredAgent(ctx, sp, set, local)
		if err != nil {
			return false, err
		}
		if sp.Adapter == AdapterUser {
			perUser = append(perUser, sa)
		} else {
			agents = append(agents, sa)
		}
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
	for _, a := range agents {
		ps = append(ps, a.pred)
	}
	// Per-persona metrics (the experiment's K) for the report's chart of
	// per-persona RMSE against persona size.
	groups := map[int32]string{}
	for u, p := range r.pers {
		if ui, ok := r.d.UserIndex(u); ok {
			groups[ui] = PersonaAdapter(p)
		}
	}
	eo := eval.Options{Seed: r.cfg.Seed, Bootstrap: e.Bootstrap, Progress: r.out, Groups: groups}
	if !slices.Contains(e.Baselines, "bias") {
		eo.Reference = "none"
	}
	res, err := eval.Evaluate(ctx, r.d, s, ps, eo)
	if err != nil {
		return false, err
	}
	for _, a := range agents {
		if err := a.pred.Err(); err != nil {
			return false, fmt.Errorf("%s predictions: %w", a.label, err)
		}
	}
	for _, a := range agents {
		for i := range res.Predictors {
			if res.Predictors[i].Name == a.label {
				res.Predictors[i].Info = r.describe(a)
			}
		}
	}
	diag, err := r.diagnostics(ctx, s, res, agents)
	if err != nil {
		return false, err
	}
	res.Sections = append(res.Sections, diag...)
	for _, pu := range perUser {
		sec, err := r.perUserSection(ctx, pu, agents, set, local)
		if err != nil {
			return false, err
		}
		res.Sections = append(res.Sections, sec)
	}
	if err := res.WriteFiles(resDir); err != nil {
		return false, err
	}
	r.rep.Results = res
	return false, markDone(r.ws, StageEval, key, nil)
}

// perUserSection scores a per-user agent on its users' test rows beside
// the bias and SVD baselines and the same family's other agents (fresh
// predictors on the same adapters), as a report section.
func (r *runner) perUserSection(ctx context.Context, pu *scoredAgent, agents []*scoredAgent, set *lora.Set, local *agent.Local) (eval.Section, error) {
	users := r.userSample(pu.spec.users())
	s := restrictSplit(r.d, r.s, users)
	var ps []eval.Predictor
	for _, name := range []string{"bias", "svd"} {
		p, err := baseline.New(name, r.cfg.Seed)
		if err != nil {
			return eval.Section{}, err
		}
		ps = append(ps, p)
	}
	for _, a := range agents {
		if a.spec.family() == pu.spec.family() && a.spec.Adapter != AdapterNone {
			other, err := r.newScoredAgent(ctx, a.spec, set, local)
			if err != nil {
				return eval.Section{}, err
			}
			other.pred.Keep = false
			ps = append(ps, other.pred)
		}
	}
	pu.pred.Keep = false
	ps = append(ps, pu.pred)
	res, err := eval.Evaluate(ctx, r.d, s, ps, eval.Options{Seed: r.cfg.Seed, Bootstrap: r.cfg.Eval.Bootstrap})
	if err != nil {
		return eval.Section{}, fmt.Errorf("per-user agent %s: %w", pu.label, err)
	}
	info := r.describe(pu)
	var b strings.Builder
	from := ""
	if r.cfg.Adapters.Shared {
		from = ", started from the shared LoRA (whose training time is included)"
	}
	fmt.Fprintf(&b, "%s: one LoRA per user for %d sampled users (%d adapters, %d trainable parameters each%s, %.0f s of training in all), "+
		"scored on those users' %d test rows only, beside the same prompt family's agents and two baselines on the same rows.\n\n",
		pu.label, len(users), len(pu.adapters), info.TrainableParams/int64(max(1, len(pu.adapters))), from, info.TrainSeconds, len(s.Test))
	b.WriteString("| model | RMSE | MAE |\n|---|---|---|\n")
	for _, p := range res.Predictors {
		fmt.Fprintf(&b, "| %s | %.4f [%.4f, %.4f] | %.4f |\n", p.Name, float64(p.RMSE), float64(p.CI.RMSE.Lo), float64(p.CI.RMSE.Hi), float64(p.MAE))
	}
	return eval.Section{Title: "Per-user LoRA on a subset of users", Markdown: b.String()}, nil
}

// describe says what an agent configuration is, how many parameters it
// trained and for how long (a persona agent's time includes the shared
// adapter it started from).
func (r *runner) describe(a *scoredAgent) eval.PredictorInfo {
	f := a.spec.family()
	info := eval.PredictorInfo{Kind: eval.KindAgent}
	prompt := map[string]string{"default": "usersim's prompt (anchor: out-of-fold " + r.cfg.Adapters.Anchor + ", key facts)", "paper": "the paper's prompt"}[f.Variant]
	if r.cfg.Adapters.Anchor == "none" && f.Variant == "default" {
		prompt = "usersim's prompt (no anchor, key facts)"
	}
	if f.MsOnly {
		prompt += ", profile only (no memory)"
	} else {
		prompt += ", profile and top-1 memory"
	}
	names := slices.Clone(a.adapters)
	switch a.spec.Adapter {
	case AdapterNone:
		info.Description = "zero-shot base, " + prompt
	case AdapterShared:
		info.Description = "one LoRA for all users, " + prompt
	case AdapterUser:
		info.Description = fmt.Sprintf("%d per-user LoRAs, %s", len(a.adapters), prompt)
		if r.cfg.Adapters.Shared {
			names = append(names, setName(f, SharedAdapter))
		}
	case AdapterPersona:
		info.Description = fmt.Sprintf("%d persona LoRAs, %s", len(a.adapters), prompt)
		if r.cfg.Adapters.Shared {
			info.Description += "; started from the shared LoRA"
			names = append(names, setName(f, SharedAdapter))
		}
	}
	for _, n := range slices.Compact(names) {
		fam, ad, _ := strings.Cut(n, "/")
		var ai adapterInfo
		if readStageInfo(r.ws, "adapter-"+fam+"-"+strings.ReplaceAll(ad, "/", "-"), &ai) {
			info.TrainSeconds += ai.Seconds
			if slices.Contains(a.adapters, n) {
				info.TrainableParams += ai.Params
			}
		}
	}
	return info
}

// newScoredAgent builds the pool and predictor of one agent configuration.
func (r *runner) newScoredAgent(ctx context.Context, sp AgentSpec, set *lora.Set, local *agent.Local) (*scoredAgent, error) {
	f := sp.family()
	in, err := r.inputsFor(ctx, f)
	if err != nil {
		return nil, err
	}
	sa := &scoredAgent{spec: sp, label: sp.label(r.k)}
	var pick func(user string, p int) string
	switch sp.Adapter {
	case AdapterNone:
		pick = func(string, int) string { return "" }
	case AdapterShared:
		name := setName(f, SharedAdapter)
		if _, ok := set.Get(name); !ok {
			return nil, fmt.Errorf("agent %s: no shared adapter for the %s prompts", sa.label, f.name())
		}
		sa.adapters = []string{name}
		pick = func(string, int) string { return name }
	case AdapterUser:
		fallback := ""
		if n := setName(f, SharedAdapter); hasAdapter(set, n) {
			fallback = n
		}
		own := map[string]string{}
		for _, u := range r.userSample(sp.users()) {
			if n := setName(f, userAdapterName(u)); hasAdapter(set, n) {
				own[r.d.Users[u].ID] = n
				sa.adapters = append(sa.adapters, n)
			}
		}
		pick = func(user string, _ int) string {
			if n, ok := own[user]; ok {
				return n
			}
			return fallback
		}
	case AdapterPersona:
		k := sp.personas(r.k)
		pers := r.persByK[k]
		have := map[int]string{}
		for p := range k {
			if n := setName(f, personaAdapterName(k, r.k, p)); hasAdapter(set, n) {
				have[p] = n
				sa.adapters = append(sa.adapters, n)
			}
		}
		fallback := ""
		if n := setName(f, SharedAdapter); hasAdapter(set, n) {
			fallback = n
		}
		pick = func(user string, _ int) string {
			if p, ok := pers[user]; ok {
				if n, ok := have[p]; ok {
					return n
				}
			}
			return fallback
		}
	}
	pool, err := agent.NewPool(in, optionsFor(f), local, agent.Config{Adapter: pick})
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", sa.label, err)
	}
	sa.pool = pool
	sa.pred = &agent.Predictor{Pool: pool, Mode: agent.Expected, Label: sa.label, Keep: true}
	return sa, nil
}

func hasAdapter(set *lora.Set, name string) bool {
	_, ok := set.Get(name)
	return ok
}

// seededPrefix returns the first n of rows after a seeded shuffle (all of
// them when n ≥ len(rows), none when n ≤ 0): the first n of a longer sample are the shorter
// sample, whatever n.
func seededPrefix(rows []int32, n int, seed int64, stream uint64) []int32 {
	out := slices.Clone(rows)
	n = max(0, min(n, len(out)))
	src := pcg.New(seed, stream)
	for i := range n {
		j := i + pcg.Intn(src, len(out)-i)
		out[i], out[j] = out[j], out[i]
	}
	return out[:n]
}

// sampleRows returns n of rows chosen with a seeded shuffle, in their
// original order.
func sampleRows(rows []int32, n int, seed int64, stream uint64) []int32 {
	out := seededPrefix(rows, n, seed, stream)
	pos := make(map[int32]int, len(rows))
	for i, r := range rows {
		pos[r] = i
	}
	slices.SortFunc(out, func(a, b int32) int { return pos[a] - pos[b] })
	return out
}

// probeEdits are the counterfactual edits of the report: each moves one
// number of the prompt and measures how far the expected rating moves.
var probeEdits = []struct {
	label string
	edit  agent.Edit
}{
	{"user mean +1", agent.Edit{Field: agent.UserMean, Value: 1, Relative: true}},
	{"user mean −1", agent.Edit{Field: agent.UserMean, Value: -1, Relative: true}},
	{"item average +1", agent.Edit{Field: agent.ItemAverage, Value: 1, Relative: true}},
	{"item average −1", agent.Edit{Field: agent.ItemAverage, Value: -1, Relative: true}},
	{"memory → 5", agent.Edit{Field: agent.MemoryRating, Value: 5}},
	{"memory → 1", agent.Edit{Field: agent.MemoryRating, Value: 1}},
	{"anchor +1", agent.Edit{Field: agent.Anchor, Value: 1, Relative: true}},
	{"anchor −1", agent.Edit{Field: agent.Anchor, Value: -1, Relative: true}},
}

// diagnostics measures, for every agent: the argmax reading beside the
// expected value, the spread and mass of its distributions, the URR of free
// generation on a sample of test prompts (which replaces the table's URR,
// since the expected reading is always valid), and the counterfactual
// probes.
func (r *runner) diagnostics(ctx context.Context, s *split.Split, res *eval.Results, agents []*scoredAgent) ([]eval.Section, error) {
	e := r.cfg.Eval
	rat := &r.d.Ratings
	truth := make([]float64, len(s.Test))
	for k, row := range s.Test {
		truth[k] = float64(rat.Value[row])
	}
	gen := sampleRows(s.Test, e.GenerateRows, r.cfg.Seed, 0x67656e)
	var read strings.Builder
	fmt.Fprintf(&read, "Each agent's rating is read from its distribution over the scale's values at the answer position. "+
		"The table's RMSE uses the expected value; here it is beside the argmax (the most probable value), the spread of "+
		"the expected ratings (an agent that predicts a near-constant has a small one), and the probability mass the "+
		"model put on the scale's values before renormalising. ")
	if len(gen) > 0 {
		fmt.Fprintf(&read, "The URR (unparseable or out-of-range answers) is measured as the paper does: free greedy "+
			"generation on %d sampled test prompts, parsed strictly; it replaces the table's URR column for the agents "+
			"(the expected-value reading is always valid).", len(gen))
	}
	read.WriteString("\n\n| agent | RMSE (expected) | RMSE (argmax) | MAE (argmax) | std of predictions | mean mass on the scale | generated: URR | generated: RMSE of valid |\n|---|---|---|---|---|---|---|---|\n")
	for _, a := range agents {
		kept := a.pred.Kept()
		if len(kept) != len(truth) {
			return nil, fmt.Errorf("agent %s: %d ratings kept for %d test rows", a.label, len(kept), len(truth))
		}
		exp := make([]float64, len(kept))
		arg := make([]float64, len(kept))
		mass := 0.0
		for k, rt := range kept {
			exp[k], arg[k] = rt.Value(agent.Expected), rt.Value(agent.Argmax)
			mass += rt.Mass
		}
		std := float64(eval.Summarize(exp).Std)
		urr, genRMSE := "—", "—"
		if len(gen) > 0 {
			pred, _, err := a.pool.PredictRows(ctx, gen, agent.Generated)
			if err != nil {
				return nil, fmt.Errorf("agent %s: generation: %w", a.label, err)
			}
			gt := make([]float64, len(gen))
			for k, row := range gen {
				gt[k] = float64(rat.Value[row])
			}
			u := eval.URR(pred)
			urr = fmt.Sprintf("%.3f", u)
			if v := eval.RMSE(pred, gt); !math.IsNaN(v) {
				genRMSE = fmt.Sprintf("%.4f", v)
			}
			for i := range res.Predictors {
				if res.Predictors[i].Name == a.label {
					res.Predictors[i].URR = eval.Float(u)
				}
			}
		}
		fmt.Fprintf(&read, "| %s | %.4f | %.4f | %.4f | %.3f | %.3f | %s | %s |\n", a.label,
			eval.RMSE(exp, truth), eval.RMSE(arg, truth), eval.MAE(arg, truth), std, mass/float64(len(kept)), urr, genRMSE)
	}
	out := []eval.Section{{Title: "Agent readings and free generation", Markdown: read.String()}}

	rows := sampleRows(s.Test, e.ProbeRows, r.cfg.Seed, 0x70726f)
	if len(rows) == 0 {
		return out, nil
	}
	pairs := make([]agent.Pair, len(rows))
	for k, row := range rows {
		pairs[k] = agent.Pair{User: r.d.Users[rat.User[row]].ID, Item: r.d.Items[rat.Item[row]].ID}
	}
	var pr strings.Builder
	fmt.Fprintf(&pr, "Counterfactual probes on %d sampled test prompts: one number of the prompt is edited and the prompt "+
		"re-rendered; each cell is the mean change of the expected rating (in stars). An agent that reads a number moves "+
		"with it; one that ignores it stays near 0. \"—\": the prompt has no such number (the paper's prompt has no anchor, "+
		"an Ms-only prompt no memory).\n\n| agent |", len(rows))
	for _, pe := range probeEdits {
		fmt.Fprintf(&pr, " %s |", pe.label)
	}
	pr.WriteString("\n|---|")
	for range probeEdits {
		pr.WriteString("---|")
	}
	pr.WriteString("\n")
	for _, a := range agents {
		fmt.Fprintf(&pr, "| %s |", a.label)
		for _, pe := range probeEdits {
			got, _, err := a.pool.ProbeMany(ctx, pairs, pe.edit)
			if err != nil {
				return nil, fmt.Errorf("agent %s: probe %s: %w", a.label, pe.label, err)
			}
			sum := 0.0
			for _, g := range got {
				sum += g.Shift
			}
			fmt.Fprintf(&pr, " %s |", fmtShift(sum/float64(max(1, len(got))), len(got)))
		}
		pr.WriteString("\n")
	}
	return append(out, eval.Section{Title: "Counterfactual probes", Markdown: pr.String()}), nil
}

// fmtShift writes a mean probe shift, or "—" when nothing was probed.
func fmtShift(v float64, n int) string {
	if n == 0 || math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%+.3f", v)
}
