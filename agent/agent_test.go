package agent

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/tokenizer"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestRateDistribution checks the rating distribution against the engine's
// own ScoreDistribution over the whole prompt, its sum, expected value and
// argmax, and the mass, on whole- and half-star scales.
func TestRateDistribution(t *testing.T) {
	ctx := context.Background()
	for _, sc := range []dataset.Scale{dataset.FiveStars, dataset.HalfStarsFive} {
		t.Run(sc.String(), func(t *testing.T) {
			w := newWorld(t, sc)
			tm := newTinyModel(t, w)
			p, l := newLocalPool(t, w, tm, Config{})
			for _, user := range []string{"u1", "u3"} {
				a, err := p.Agent(user)
				if err != nil {
					t.Fatal(err)
				}
				r, err := a.Rate(ctx, "m4")
				if err != nil {
					t.Fatal(err)
				}
				if !r.Valid || len(r.Dist) != len(sc.Values()) {
					t.Fatalf("%s: rating %+v", user, r)
				}
				var sum, exp float64
				best := 0
				for j, q := range r.Dist {
					sum += q
					exp += q * r.Values[j]
					if q > r.Dist[best] {
						best = j
					}
				}
				if !near(sum, 1, 1e-9) || !near(exp, r.Expected, 1e-9) || r.Argmax != r.Values[best] {
					t.Errorf("%s: sum %v, Σv·p %v vs expected %v, argmax %v vs %v", user, sum, exp, r.Expected, r.Argmax, r.Values[best])
				}
				if !(r.Mass > 0 && r.Mass <= 1) {
					t.Errorf("%s: mass %v", user, r.Mass)
				}
				// The engine's Score over the full prompt; a value that is a
				// prefix of another (" 1" of " 1.5") is that value followed by
				// anything but a continuing token: P(c) − Σ_t P(c t).
				pr, err := a.RatingPrompt("m4")
				if err != nil {
					t.Fatal(err)
				}
				full, err := l.encode(pr.Text)
				if err != nil {
					t.Fatal(err)
				}
				cands, err := l.encodeCandidates(p.answers)
				if err != nil {
					t.Fatal(err)
				}
				ends := l.endings(p.answers)
				if (sc == dataset.FiveStars) != (ends == nil) {
					t.Fatalf("endings %v on %v", ends, sc)
				}
				ad, _ := l.adapter(a.Adapter)
				want := make([]float64, len(cands))
				for j, c := range cands {
					alts := [][]int{c}
					if ends != nil {
						for _, id := range ends[j] {
							alts = append(alts, append(slices.Clone(c), id))
						}
					}
					lp, err := tm.m.Score(ctx, tm.m.NewAdapterCache(ad), full, alts)
					if err != nil {
						t.Fatal(err)
					}
					q := math.Exp(lp[0])
					for _, x := range lp[1:] {
						q -= math.Exp(x)
					}
					want[j] = math.Log(q)
					wantEnds := sc != dataset.FiveStars && !strings.Contains(p.answers[j], ".") && r.Values[j] != sc.Max // " 5" has no " 5.5"
					if hasEnds := ends != nil && len(ends[j]) > 0; hasEnds != wantEnds {
						t.Errorf("%q on %v: has continuers %v", p.answers[j], sc, hasEnds)
					}
				}
				want = slm.Normalize(want)
				for j := range want {
					if !near(want[j], r.Dist[j], 1e-5) {
						t.Fatalf("%s: dist[%d] = %v, engine %v", user, j, r.Dist[j], want[j])
					}
				}
			}
		})
	}
}

// TestSharedPrefix checks that a prompt continued from the user's shared
// prefix (forked) scores exactly as the whole prompt run from scratch, and
// that the fork is really taken.
func TestSharedPrefix(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.HalfStarsFive)
	tm := newTinyModel(t, w)
	p, l := newLocalPool(t, w, tm, Config{})
	a, err := p.Agent("u1")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := a.RatingPrompt("m6")
	if err != nil {
		t.Fatal(err)
	}
	if pr.Prefix == 0 || pr.Adapter != "p0" {
		t.Fatalf("prompt has prefix %d, adapter %q", pr.Prefix, pr.Adapter)
	}
	c, rest, err := l.start(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	full, _ := l.encode(pr.Text)
	if c.Len() == 0 || c.Len()+len(rest) != len(full) {
		t.Fatalf("fork holds %d positions, rest %d, full %d: the prefix was not used", c.Len(), len(rest), len(full))
	}
	noPrefix := pr
	noPrefix.Prefix = 0
	got, err := l.Score(ctx, []Prompt{pr, pr}, p.answers) // twice: the second reuses the kept prefix
	if err != nil {
		t.Fatal(err)
	}
	want, err := l.Score(ctx, []Prompt{noPrefix}, p.answers)
	if err != nil {
		t.Fatal(err)
	}
	for j := range want[0] {
		for k := range got {
			if !near(got[k][j], want[0][j], 1e-4) {
				t.Fatalf("candidate %q: forked %v, full %v", p.answers[j], got[k][j], want[0][j])
			}
		}
	}
}

// TestBatchMixedAdapters checks that one Score call over prompts of
// different adapters (and the bare base), with multi-token candidates,
// equals the engine's Score run one prompt at a time.
func TestBatchMixedAdapters(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.HalfStarsFive)
	tm := newTinyModel(t, w)
	p, l := newLocalPool(t, w, tm, Config{})
	l.MaxBatch = 4 // two chunks
	var prompts []Prompt
	for _, u := range []string{"u1", "u2", "u3"} {
		a, err := p.Agent(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range []string{"m4", "m6"} {
			pr, err := a.RatingPrompt(it)
			if err != nil {
				t.Fatal(err)
			}
			prompts = append(prompts, pr)
		}
	}
	cands := []string{" 3.5", " 4", " 0.5"}
	got, err := l.Score(ctx, prompts, cands)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := l.encodeCandidates(cands)
	if len(ids[0]) < 2 {
		t.Fatalf("%q is one token; the test wants a multi-token candidate", cands[0])
	}
	adapters := map[string]bool{}
	for i, pr := range prompts {
		adapters[pr.Adapter] = true
		ad, err := l.adapter(pr.Adapter)
		if err != nil {
			t.Fatal(err)
		}
		full, _ := l.encode(pr.Text)
		want, err := tm.m.Score(ctx, tm.m.NewAdapterCache(ad), full, ids)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if !near(got[i][j], want[j], 1e-4) {
				t.Errorf("prompt %d (%q) candidate %q: batch %v, alone %v", i, pr.Adapter, cands[j], got[i][j], want[j])
			}
		}
	}
	if len(adapters) != 3 {
		t.Fatalf("adapters %v: want p0, p1 and the base", adapters)
	}
	// The adapters matter: the same prompt scores differently with another.
	pr := prompts[0]
	pr.Adapter = "p1"
	other, err := l.Score(ctx, []Prompt{pr}, cands)
	if err != nil {
		t.Fatal(err)
	}
	if near(other[0][1], got[0][1], 1e-6) {
		t.Errorf("adapters p0 and p1 give the same score %v", other[0][1])
	}
}

func TestParseRating(t *testing.T) {
	five, half := dataset.FiveStars, dataset.HalfStarsFive
	for _, c := range []struct {
		text string
		sc   dataset.Scale
		want float64
		ok   bool
	}{
		{"4", five, 4, true},
		{" 4\n", five, 4, true},
		{"\t5  \n\n", five, 5, true},
		{"4.0", five, 4, true},
		{"1", five, 1, true},
		{"3.5", half, 3.5, true},
		{"0.5", half, 0.5, true},
		{"3.5", five, 0, false},
		{"0", five, 0, false},
		{"6", five, 0, false},
		{"45", five, 0, false},
		{"4 stars", five, 0, false},
		{"4/5", five, 0, false},
		{"four", five, 0, false},
		{"", five, 0, false},
		{"   ", five, 0, false},
		{"4.", five, 0, false},
		{".5", half, 0, false},
		{"-4", five, 0, false},
		{"+4", five, 0, false},
		{"4 5", five, 0, false},
		{"RATING: 4", five, 0, false},
		{"4\nI liked it", five, 0, false},
		{"1e0", five, 0, false},
		{"Inf", five, 0, false},
		{"3.25", half, 0, false},
	} {
		v, ok := ParseRating(c.text, c.sc)
		if ok != c.ok || (ok && v != c.want) {
			t.Errorf("ParseRating(%q, %v) = %v, %v; want %v, %v", c.text, c.sc, v, ok, c.want, c.ok)
		}
	}
}

// fake is a Backend with canned answers: Score gives every prompt the
// logprobs lp (or what scoreFn says), Generate returns gen.
type fake struct {
	lp      []float64
	scoreFn func(p Prompt, cands []string) []float64
	gen     string
	prompts []Prompt
	opts    []GenerateOptions
}

func (f *fake) Score(_ context.Context, ps []Prompt, cands []string) ([][]float64, error) {
	out := make([][]float64, len(ps))
	for i, p := range ps {
		f.prompts = append(f.prompts, p)
		if f.scoreFn != nil {
			out[i] = f.scoreFn(p, cands)
		} else {
			out[i] = append([]float64(nil), f.lp[:len(cands)]...)
		}
	}
	return out, nil
}

func (f *fake) Generate(_ context.Context, p Prompt, o GenerateOptions) (string, error) {
	f.prompts = append(f.prompts, p)
	f.opts = append(f.opts, o)
	return f.gen, nil
}

func TestRateGenerate(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	for _, c := range []struct {
		gen   string
		valid bool
		want  float64
	}{
		{" 4\n", true, 4}, {"2", true, 2}, {"4 stars", false, 0}, {"I think 4", false, 0}, {"", false, 0},
	} {
		f := &fake{gen: c.gen}
		p, err := NewPool(w.inputs(), raftOptions(), f, Config{})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := p.Agent("u2")
		r, err := a.RateGenerate(ctx, "m4")
		if err != nil {
			t.Fatal(err)
		}
		if r.Valid != c.valid || r.Raw != c.gen || (c.valid && (r.Expected != c.want || r.Argmax != c.want || r.Dist[int(c.want)-1] != 1)) ||
			(!c.valid && !math.IsNaN(r.Expected)) {
			t.Errorf("generated %q: %+v", c.gen, r)
		}
		if !strings.HasSuffix(f.prompts[0].Text, "RATING:") || f.opts[0].MaxTokens != DefaultGenerateTokens {
			t.Errorf("generated from %q with %+v", f.prompts[0].Text, f.opts[0])
		}
	}
}

func TestExplain(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	f := &fake{lp: []float64{-5, -4, -3, -0.1, -2}, gen: " it is a gripping crime story.\n"}
	p, err := NewPool(w.inputs(), raftOptions(), f, Config{Adapter: PersonaAdapters("persona-%d")})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u1")
	e, err := a.Explain(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	if e.Rating.Argmax != 4 || e.Reason != "it is a gripping crime story." {
		t.Errorf("explanation %+v", e)
	}
	last := f.prompts[len(f.prompts)-1]
	if !strings.HasSuffix(last.Text, "RATING: 4 because") || last.Adapter != "persona-0" {
		t.Errorf("explained from %q (adapter %q)", last.Text[max(0, len(last.Text)-40):], last.Adapter)
	}
}

func TestRememberChangesRetrieval(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	f := &fake{lp: []float64{-1, -1, -1, -1, -1}}
	p, err := NewPool(w.inputs(), raftOptions(), f, Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u1")
	before, err := a.Retrieve("m6")
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || before[0].Item == "m6" {
		t.Fatalf("retrieved %+v before remembering", before)
	}
	// After watching m6, its own memory is the closest one.
	if err := a.Remember(memoryOf("m6", 1, "it bored me to tears")); err != nil {
		t.Fatal(err)
	}
	after, err := a.Retrieve("m6")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0].Item != "m6" || !near(after[0].Score, 1, 1e-6) || after[0].Order != 3 || len(a.Memories()) != 4 {
		t.Fatalf("retrieved %+v after remembering (memories %d)", after, len(a.Memories()))
	}
	if _, err := a.Rate(ctx, "m6"); err != nil {
		t.Fatal(err)
	}
	text := f.prompts[len(f.prompts)-1].Text
	if !strings.Contains(text, "as 1 because it bored me to tears") {
		t.Errorf("the prompt does not quote the new memory:\n%s", text)
	}
	// The pool returns the same agent, memory included; other users are
	// unaffected.
	again, _ := p.Agent("u1")
	if len(again.Memories()) != 4 {
		t.Error("Pool.Agent returned a fresh agent")
	}
	for _, bad := range []struct {
		item string
		r    float64
	}{{"nope", 3}, {"m4", 7}} {
		if err := a.Remember(memoryOf(bad.item, bad.r, "x")); err == nil {
			t.Errorf("Remember(%s, %v) accepted", bad.item, bad.r)
		}
	}
}

func TestChoose(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModel(t, w)
	p, _ := newLocalPool(t, w, tm, Config{})
	a, _ := p.Agent("u2")
	slate := []string{"m4", "m6", "m1"}
	c, err := a.Choose(ctx, slate)
	if err != nil {
		t.Fatal(err)
	}
	sum := c.Exit
	best, bi := c.Exit, -1
	for i, q := range c.Probs {
		sum += q
		if q > best {
			best, bi = q, i
		}
	}
	if len(c.Probs) != 3 || !near(sum, 1, 1e-9) || c.Exit <= 0 || c.Chosen != bi || !(c.Mass > 0 && c.Mass <= 1) {
		t.Errorf("choice %+v (sum %v)", c, sum)
	}
	pr, _ := a.ChoosePrompt(slate)
	for _, s := range []string{"A. MOVIE: Fargo", "B. MOVIE: Casino", "C. MOVIE: The Matrix", "0. None of these", "CHOICE:", "I am hard to please."} {
		if !strings.Contains(pr.Text, s) {
			t.Errorf("slate prompt lacks %q:\n%s", s, pr.Text)
		}
	}
	if _, err := a.Choose(ctx, nil); err == nil {
		t.Error("empty slate accepted")
	}
	if _, err := a.Choose(ctx, make([]string, MaxSlate+1)); err == nil {
		t.Error("oversized slate accepted")
	}
	// A fake that puts all label mass on exit.
	f := &fake{scoreFn: func(_ Prompt, cands []string) []float64 {
		out := make([]float64, len(cands))
		for j, c := range cands {
			out[j] = math.Inf(-1)
			if strings.TrimSpace(c) == ExitLabel {
				out[j] = -0.2
			}
		}
		return out
	}}
	p2, _ := NewPool(w.inputs(), raftOptions(), f, Config{})
	a2, _ := p2.Agent("u2")
	c2, err := a2.Choose(ctx, slate)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Chosen != -1 || c2.Exit != 1 || !near(c2.Mass, math.Exp(-0.2), 1e-12) {
		t.Errorf("exit choice %+v", c2)
	}
}

func TestTokenizerSanity(t *testing.T) {
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModel(t, w)
	ids, err := tm.tok.Encode(" 4", tokenizer.EncodeOptions{Continuation: true})
	if err != nil || len(ids) != 1 {
		t.Fatalf("\" 4\" encodes to %v, %v", ids, err)
	}
}
