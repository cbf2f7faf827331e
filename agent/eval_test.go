package agent

import (
	"context"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/train"
	"github.com/usersim/usersim/train/raft"
)

// TestEvaluate runs eval.Evaluate over agent predictors on a local model:
// every test row answered, the expected value inside the scale, argmax on
// it, and the URR of generation counted from strictly parsed answers.
func TestEvaluate(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModel(t, w)
	p, _ := newLocalPool(t, w, tm, Config{})
	preds := []eval.Predictor{
		&Predictor{Pool: p, Mode: Expected},
		&Predictor{Pool: p, Mode: Argmax, Batch: 3},
		&Predictor{Pool: p, Mode: Generated},
	}
	res, err := eval.Evaluate(ctx, w.d, w.s, preds, eval.Options{Bootstrap: -1, Reference: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Predictors) != 3 {
		t.Fatalf("%d results", len(res.Predictors))
	}
	for _, r := range res.Predictors[:2] {
		if r.N != len(w.s.Test) || r.Valid != r.N || math.IsNaN(float64(r.RMSE)) || r.RMSE > 4 {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	if g := res.Predictors[2]; g.Name != "agent-generated" || g.N != len(w.s.Test) || float64(g.URR) != 1-float64(g.Valid)/float64(g.N) {
		t.Errorf("generated: %+v", g)
	}
	// Expected and argmax agree with Rate.
	a, _ := p.Agent("u1")
	r, err := a.Rate(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := w.d.UserIndex("u1")
	i, _ := w.d.ItemIndex("m4")
	if got := preds[0].Predict(u, i); !near(got, r.Expected, 1e-12) {
		t.Errorf("Predict expected %v, Rate %v", got, r.Expected)
	}
	if got := preds[1].Predict(u, i); got != r.Argmax {
		t.Errorf("Predict argmax %v, Rate %v", got, r.Argmax)
	}
	// raft's Queries over the test rows give the same answers.
	for k, mode := range []Mode{Expected, Argmax} {
		got, rs, err := p.PredictRows(ctx, w.s.Test, mode)
		if err != nil {
			t.Fatal(err)
		}
		for n, row := range w.s.Test {
			want := preds[k].Predict(w.d.Ratings.User[row], w.d.Ratings.Item[row])
			if !near(got[n], want, 1e-9) || !rs[n].Valid {
				t.Errorf("%v row %d: PredictRows %v, Predict %v", mode, row, got[n], want)
			}
		}
	}
	if err := preds[0].Fit(ctx, newWorld(t, dataset.FiveStars).d, nil); err == nil {
		t.Error("Fit accepted another dataset")
	}
}

var numberAfter = regexp.MustCompile(`historical average rating of (\d\.\d\d)\.\nRATING:`)

// TestProbe checks that each edit reaches the rendered prompt: a fake model
// answers the target's average (rounded), so the shift is known.
func TestProbe(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	f := &fake{scoreFn: func(p Prompt, cands []string) []float64 {
		out := make([]float64, len(cands))
		want := 3.0
		if m := numberAfter.FindStringSubmatch(p.Text); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			want = math.Round(v)
		}
		for j, c := range cands {
			v, _ := strconv.ParseFloat(strings.TrimSpace(c), 64)
			out[j] = -10
			if v == want {
				out[j] = 0
			}
		}
		return out
	}}
	p, err := NewPool(w.inputs(), raftOptions(), f, Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Probe(ctx, "u1", "m1", Edit{Field: ItemAverage, Value: 1.2})
	if err != nil {
		t.Fatal(err)
	}
	// m1's training average is 4.5: round(4.5) = 5 → round(1.2) = 1.
	if !(res.Before.Argmax == 5 && res.After.Argmax == 1 && res.Shift < -3.9) {
		t.Errorf("probe %+v", res)
	}
	// The other edits change the text where they should.
	for _, c := range []struct {
		e    Edit
		want string
	}{
		{Edit{Field: UserMean, Value: 2}, "2.0 stars on average"},
		{Edit{Field: MemoryRating, Value: 1}, "as 1 because"},
	} {
		f.prompts = nil
		if _, err := p.Probe(ctx, "u1", "m6", c.e); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f.prompts[0].Text, c.want) || !strings.Contains(f.prompts[1].Text, c.want) {
			t.Errorf("%v: edited prompt lacks %q:\n%s", c.e.Field, c.want, f.prompts[1].Text)
		}
	}
	// Relative edits, many pairs at once: -2 on m1's 4.5 gives 2.5, which
	// the fake rounds to 3 (math.Round rounds halves away from zero).
	res2, skipped, err := p.ProbeMany(ctx, []Pair{{"u1", "m1"}, {"u2", "m1"}, {"u1", "m4"}}, Edit{Field: ItemAverage, Value: -2, Relative: true})
	if err != nil {
		t.Fatal(err)
	}
	// m4 has no training ratings, so no average to move.
	if len(res2) != 2 || len(skipped) != 1 || skipped[0] != 2 {
		t.Fatalf("ProbeMany: %d results, skipped %v", len(res2), skipped)
	}
	for _, r := range res2 {
		if r.Before.Argmax != 5 || r.After.Argmax != 3 || !near(r.Shift, -2, 1e-3) {
			t.Errorf("relative probe %+v", r)
		}
	}
	// Ms-only prompts have no memory to edit.
	p2, _ := NewPool(w.inputs(), raft.Options{NoMemory: true}, f, Config{})
	if _, err := p2.Probe(ctx, "u1", "m6", Edit{Field: MemoryRating, Value: 1}); err == nil {
		t.Error("memory probe on an Ms-only prompt accepted")
	}
}

// TestAdapterIsRead trains an adapter quickly on ~20 examples whose answer
// is always 5 and checks that an agent running with it prefers 5 while the
// base does not: the agent really reads its persona adapter.
func TestAdapterIsRead(t *testing.T) {
	if testing.Short() {
		t.Skip("trains an adapter")
	}
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModel(t, w)
	for i := range tm.m.Embed.W { // a confident answer must be reachable
		tm.m.Embed.W[i] *= 5
	}
	a5, err := lora.New(lora.NewConfig("tiny", 8, 16, lora.AllLinear), tm.m.Config.LoRABase(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := tm.set.Add("five", a5); err != nil {
		t.Fatal(err)
	}
	p, l := newLocalPool(t, w, tm, Config{Adapter: func(string, int) string { return "five" }})
	var ex []slm.TrainSeq
	for _, u := range []string{"u1", "u2", "u3"} {
		ag, _ := p.Agent(u)
		for _, it := range []string{"m1", "m2", "m3", "m4", "m5", "m6", "m1"} {
			pr, err := ag.RatingPrompt(it)
			if err != nil {
				t.Fatal(err)
			}
			toks, _ := l.encode(pr.Text)
			ans, _ := l.encodeCandidates([]string{" 5"})
			seq := append(toks, ans[0]...)
			mask := make([]bool, len(seq))
			mask[len(seq)-1] = true
			ex = append(ex, slm.TrainSeq{Tokens: seq, Mask: mask})
		}
	}
	tc := train.DefaultConfig(40, 7, 1e-2)
	tc.NoProgress, tc.WeightDecay = true, 0
	if _, err := train.Train(ctx, &slm.LoRAObjective{Model: tm.m, Adapter: a5, Examples: ex}, tc); err != nil {
		t.Fatal(err)
	}
	base, _ := newLocalPool(t, w, tm, Config{Adapter: func(string, int) string { return "" }})
	for _, it := range []string{"m4", "m6"} { // test items, not trained on with this user
		ag, _ := p.Agent("u1")
		r, err := ag.Rate(ctx, it)
		if err != nil {
			t.Fatal(err)
		}
		bg, _ := base.Agent("u1")
		b, err := bg.Rate(ctx, it)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: adapter p(5)=%.3f E=%.2f mass %.3f; base p(5)=%.3f E=%.2f", it, r.Dist[4], r.Expected, r.Mass, b.Dist[4], b.Expected)
		if r.Argmax != 5 || r.Dist[4] < 0.9 || b.Dist[4] > 0.5 {
			t.Errorf("%s: adapter dist %v, base dist %v", it, r.Dist, b.Dist)
		}
	}
}
