package train

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// regression is a toy objective: each example has 1–3 "tokens", each a pair
// (x, y); the loss of a token is ½(w·x + b − y)².
type regression struct {
	x     [][][]float32 // example, token, feature
	y     [][]float32
	w, b  *Param
	calls int
	hook  func(b Batch) error // called before each LossAndGrad
}

func newRegression(n, d int, seed uint64, truth func([]float32) float32) *regression {
	rng := rand.New(rand.NewPCG(seed, 1))
	r := &regression{
		w: &Param{Name: "w", W: make([]float32, d), G: make([]float32, d)},
		b: &Param{Name: "b", W: make([]float32, 1), G: make([]float32, 1), NoDecay: true},
	}
	for range n {
		k := 1 + rng.IntN(3)
		var xs [][]float32
		var ys []float32
		for range k {
			x := make([]float32, d)
			for j := range x {
				x[j] = float32(rng.NormFloat64())
			}
			xs = append(xs, x)
			ys = append(ys, truth(x))
		}
		r.x, r.y = append(r.x, xs), append(r.y, ys)
	}
	return r
}

func linear(ws []float32, b float32) func([]float32) float32 {
	return func(x []float32) float32 {
		s := b
		for i, w := range ws {
			s += w * x[i]
		}
		return s
	}
}

func (r *regression) Params() []*Param { return []*Param{r.w, r.b} }
func (r *regression) Len() int         { return len(r.x) }

func (r *regression) loss(idx []int, grad bool) Loss {
	var l Loss
	for _, i := range idx {
		for t, x := range r.x[i] {
			p := r.b.W[0]
			for j, w := range r.w.W {
				p += w * x[j]
			}
			e := p - r.y[i][t]
			l.Sum += 0.5 * float64(e) * float64(e)
			l.Tokens++
			if grad {
				for j := range r.w.G {
					r.w.G[j] += e * x[j]
				}
				r.b.G[0] += e
			}
		}
	}
	return l
}

func (r *regression) LossAndGrad(ctx context.Context, b Batch) (Loss, error) {
	r.calls++
	if r.hook != nil {
		if err := r.hook(b); err != nil {
			return Loss{}, err
		}
	}
	return r.loss(b.Indices, true), nil
}

// evalSet is a held-out set of another regression problem sharing the
// trained parameters.
type evalSet struct {
	r    *regression
	with *regression
}

func (e evalSet) Len() int { return e.r.Len() }
func (e evalSet) Loss(ctx context.Context, b Batch) (Loss, error) {
	e.r.w.W, e.r.b.W = e.with.w.W, e.with.b.W
	return e.r.loss(b.Indices, false), nil
}

func testConfig(steps int) Config {
	c := DefaultConfig(steps, 8, 0.05)
	c.Warmup = 3
	c.NoProgress = true
	return c
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestAdamWMatchesTorch(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "adamw_torch.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Beta1, Beta2, Eps, Wd1, Wd2 float64
		W1, W2                      []float32
		Steps                       []struct {
			LR             float64
			G1, G2, W1, W2 []float32
		}
		Clip struct {
			MaxNorm        float64 `json:"max_norm"`
			G1, G2, C1, C2 []float32
			Norm           float64
		}
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if ref.Wd2 != 0 {
		t.Fatal("fixture: the second group must have no decay")
	}
	p1 := &Param{Name: "p1", W: append([]float32(nil), ref.W1...), G: make([]float32, len(ref.W1))}
	p2 := &Param{Name: "p2", W: append([]float32(nil), ref.W2...), G: make([]float32, len(ref.W2)), NoDecay: true}
	params := []*Param{p1, p2}
	opt := newAdamW(params)
	for s, st := range ref.Steps {
		copy(p1.G, st.G1)
		copy(p2.G, st.G2)
		opt.step(params, st.LR, ref.Beta1, ref.Beta2, ref.Eps, ref.Wd1)
		for _, c := range []struct {
			got, want []float32
		}{{p1.W, st.W1}, {p2.W, st.W2}} {
			for i := range c.got {
				if d := math.Abs(float64(c.got[i] - c.want[i])); d > 2e-7*(1+math.Abs(float64(c.want[i]))) {
					t.Errorf("step %d: w[%d] = %.9g, torch %.9g", s+1, i, c.got[i], c.want[i])
				}
			}
		}
	}

	c1 := &Param{Name: "c1", W: make([]float32, 4), G: append([]float32(nil), ref.Clip.G1...)}
	c2 := &Param{Name: "c2", W: make([]float32, 2), G: append([]float32(nil), ref.Clip.G2...)}
	norm, err := scaleAndClip([]*Param{c1, c2}, 1, ref.Clip.MaxNorm)
	if err != nil || math.Abs(norm-ref.Clip.Norm) > 1e-6 {
		t.Errorf("norm %g (%v), torch %g", norm, err, ref.Clip.Norm)
	}
	for i, g := range append(c1.G, c2.G...) {
		want := append(ref.Clip.C1, ref.Clip.C2...)[i]
		if math.Abs(float64(g-want)) > 1e-6 {
			t.Errorf("clipped g[%d] = %g, torch %g", i, g, want)
		}
	}
	// Under the limit nothing changes.
	c1.G = []float32{0.1, 0, 0, 0}
	c1.W = c1.W[:4]
	if _, err := scaleAndClip([]*Param{c1}, 1, 1); err != nil || c1.G[0] != 0.1 {
		t.Errorf("clipped under the limit: %v", c1.G)
	}
	c1.G[0] = float32(math.NaN())
	if _, err := scaleAndClip([]*Param{c1}, 1, 1); err == nil {
		t.Error("NaN gradient accepted")
	}
}

func TestSchedule(t *testing.T) {
	c := Config{Steps: 110, Warmup: 10, LR: 1e-3, MinLR: 1e-4}
	tests := []struct {
		schedule string
		step     int
		want     float64
	}{
		{"cosine", 1, 1e-4},
		{"cosine", 5, 5e-4},
		{"cosine", 10, 1e-3},
		{"cosine", 60, 5.5e-4},
		{"cosine", 35, 1e-4 + 9e-4*0.5*(1+math.Cos(math.Pi/4))},
		{"cosine", 110, 1e-4},
		{"", 110, 1e-4},
		{"linear", 60, 5.5e-4},
		{"linear", 85, 3.25e-4},
		{"linear", 110, 1e-4},
		{"constant", 100, 1e-3},
		{"constant", 3, 3e-4},
	}
	for _, tt := range tests {
		c.Schedule = tt.schedule
		if got := c.LRAt(tt.step); math.Abs(got-tt.want) > 1e-15 {
			t.Errorf("%s step %d: lr %g, want %g", tt.schedule, tt.step, got, tt.want)
		}
	}
	c.Warmup = 0
	c.Schedule = "cosine"
	if got := c.LRAt(1); got >= 1e-3 || got < 0.99e-3 {
		t.Errorf("no warm-up: first lr %g", got)
	}
}

func TestConverges(t *testing.T) {
	r := newRegression(64, 4, 1, linear([]float32{1, -2, 0.5, 3}, 0.7))
	cfg := testConfig(400)
	cfg.WeightDecay = 0
	cfg.MinLR = 0
	res, err := Train(context.Background(), r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first, last := res.Train[0].Loss, res.Train[len(res.Train)-1].Loss
	if !(last < 1e-5) || first < 1 {
		t.Errorf("loss %g → %g, want near zero", first, last)
	}
	if math.Abs(float64(r.w.W[1]+2)) > 1e-2 || math.Abs(float64(r.b.W[0]-0.7)) > 1e-2 {
		t.Errorf("weights %v %v", r.w.W, r.b.W)
	}
	if res.Steps != 400 || res.Stopped != "steps" || len(res.Train) != 400 {
		t.Errorf("result %d steps, %q", res.Steps, res.Stopped)
	}
}

// TestAccumulation: k micro-batches per step give the same run as one batch.
func TestAccumulation(t *testing.T) {
	truth := linear([]float32{1, 2, 3}, -1)
	var ref []float32
	for _, micro := range []int{0, 3, 1} {
		r := newRegression(40, 3, 2, truth)
		cfg := testConfig(10)
		cfg.MicroBatch = micro
		res, err := Train(context.Background(), r, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := 10
		if micro > 0 {
			want = 10 * ((8 + micro - 1) / micro)
		}
		if r.calls != want {
			t.Errorf("micro-batch %d: %d calls, want %d", micro, r.calls, want)
		}
		w := append(append([]float32(nil), r.w.W...), r.b.W...)
		if ref == nil {
			ref = w
			continue
		}
		for i := range w {
			if math.Abs(float64(w[i]-ref[i])) > 1e-5 {
				t.Errorf("micro-batch %d: w[%d] = %g, one batch %g", micro, i, w[i], ref[i])
			}
		}
		_ = res
	}
}

func TestDeterminism(t *testing.T) {
	truth := linear([]float32{1, -1}, 0)
	run := func(seed uint64) []float32 {
		r := newRegression(30, 2, 3, truth)
		var seeds []uint64
		r.hook = func(b Batch) error { seeds = append(seeds, b.Seed); return nil }
		cfg := testConfig(15)
		cfg.Seed = seed
		cfg.MicroBatch = 3
		if _, err := Train(context.Background(), r, cfg); err != nil {
			t.Fatal(err)
		}
		out := append(r.w.W, r.b.W...)
		for _, s := range seeds {
			out = append(out, math.Float32frombits(uint32(s)))
		}
		return out
	}
	a, b, c := run(1), run(1), run(2)
	if !bitsEqual(a, b) {
		t.Error("same seed, different weights")
	}
	if bitsEqual(a, c) {
		t.Error("different seeds, same weights and batch seeds")
	}
}

// TestResume: 20 steps straight equal 10 steps, an interruption and 10
// resumed steps, bit for bit, whether the interruption is a cancelled
// context (checkpoint on the way out) or a crash after a periodic
// checkpoint.
func TestResume(t *testing.T) {
	truth := linear([]float32{0.5, -1, 2}, 0.3)
	evalTruth := linear([]float32{0.4, -1, 2}, 0.3)
	setup := func(dir string) (*regression, Config) {
		r := newRegression(25, 3, 4, truth) // 25 examples, batch 8: epochs cross steps
		cfg := testConfig(20)
		cfg.MicroBatch = 3
		cfg.CheckpointDir = dir
		cfg.Resume = true
		cfg.Eval = evalSet{r: newRegression(10, 3, 5, evalTruth), with: r}
		cfg.EvalEvery = 4
		cfg.RestoreBest = true
		cfg.OutDir = dir
		return r, cfg
	}
	straight, cfg := setup(t.TempDir())
	want, err := Train(context.Background(), straight, cfg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("cancel", func(t *testing.T) {
		dir := t.TempDir()
		r, cfg := setup(dir)
		ctx, cancel := context.WithCancel(context.Background())
		r.hook = func(b Batch) error {
			if b.Step == 11 && b.Indices != nil {
				cancel()
				return ctx.Err()
			}
			return nil
		}
		res, err := Train(ctx, r, cfg)
		if !errors.Is(err, context.Canceled) || res.Steps != 10 || res.Stopped != "cancelled" {
			t.Fatalf("interrupted run: %v, %d steps", err, res.Steps)
		}
		r2, cfg2 := setup(dir) // fresh parameters: everything comes from the checkpoint
		got, err := Train(context.Background(), r2, cfg2)
		if err != nil {
			t.Fatal(err)
		}
		compareRuns(t, straight, r2, want, got)
	})
	t.Run("crash", func(t *testing.T) {
		dir := t.TempDir()
		r, cfg := setup(dir)
		cfg.CheckpointEvery = 5
		r.hook = func(b Batch) error {
			if b.Step == 13 {
				return errors.New("killed")
			}
			return nil
		}
		if _, err := Train(context.Background(), r, cfg); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("crashed run: %v", err)
		}
		r2, cfg2 := setup(dir)
		cfg2.CheckpointEvery = 5
		got, err := Train(context.Background(), r2, cfg2)
		if err != nil {
			t.Fatal(err)
		}
		compareRuns(t, straight, r2, want, got)
	})
}

func compareRuns(t *testing.T, a, b *regression, ra, rb *Result) {
	t.Helper()
	if !bitsEqual(a.w.W, b.w.W) || !bitsEqual(a.b.W, b.b.W) {
		t.Errorf("resumed weights %v %v, straight %v %v", b.w.W, b.b.W, a.w.W, a.b.W)
	}
	if len(ra.Train) != len(rb.Train) || len(ra.Eval) != len(rb.Eval) || ra.BestStep != rb.BestStep || ra.BestLoss != rb.BestLoss {
		t.Fatalf("histories differ: %d/%d records, %d/%d evals, best %d/%d", len(ra.Train), len(rb.Train), len(ra.Eval), len(rb.Eval), ra.BestStep, rb.BestStep)
	}
	for i := range ra.Train {
		if ra.Train[i].Loss != rb.Train[i].Loss || ra.Train[i].LR != rb.Train[i].LR {
			t.Errorf("step %d: loss %g/%g", i+1, ra.Train[i].Loss, rb.Train[i].Loss)
		}
	}
}

// TestEarlyStopping: the held-out problem gets worse as training fits the
// training one, so training stops after Patience evaluations and the
// weights of the best evaluation come back.
func TestEarlyStopping(t *testing.T) {
	truth := linear([]float32{2, 2}, 0)
	setup := func(steps int) (*regression, Config) {
		r := newRegression(32, 2, 6, truth)
		cfg := testConfig(steps)
		cfg.Warmup = 0
		cfg.Schedule = "constant"
		cfg.Eval = evalSet{r: newRegression(16, 2, 7, linear([]float32{0.3, 0.3}, 0)), with: r}
		cfg.EvalEvery = 2
		cfg.EvalBatch = 5
		return r, cfg
	}
	r, cfg := setup(100)
	cfg.Patience = 3
	cfg.RestoreBest = true
	res, err := Train(context.Background(), r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopped != "early stop" || res.Steps >= 100 {
		t.Fatalf("stopped %q after %d steps", res.Stopped, res.Steps)
	}
	if res.Steps != res.BestStep+2*3 {
		t.Errorf("stopped at %d, best %d, patience 3 × every 2", res.Steps, res.BestStep)
	}
	// The restored weights are those of a run of BestStep steps.
	ref, rcfg := setup(100)
	rcfg.Steps = res.BestStep
	rcfg.Eval = nil
	rcfg.EvalEvery = 0
	// Same schedule as the long run: constant LR, so only Steps differs.
	if _, err := Train(context.Background(), ref, rcfg); err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(r.w.W, ref.w.W) || !bitsEqual(r.b.W, ref.b.W) {
		t.Errorf("restored %v, run of %d steps %v", r.w.W, res.BestStep, ref.w.W)
	}
	var evLoss Loss
	evLoss, err = Evaluate(context.Background(), cfg.Eval, 3)
	if err != nil || math.Abs(evLoss.Mean()-res.BestLoss) > 1e-12 {
		t.Errorf("held-out loss after restore %g, best %g", evLoss.Mean(), res.BestLoss)
	}

	// Interrupted after the best evaluation and resumed: the same stop and
	// the same restored weights (the best copy and the count of bad
	// evaluations come from the checkpoint).
	dir := t.TempDir()
	r2, cfg2 := setup(100)
	cfg2.Patience, cfg2.RestoreBest, cfg2.CheckpointDir, cfg2.Resume = 3, true, dir, true
	ctx, cancel := context.WithCancel(context.Background())
	r2.hook = func(b Batch) error {
		if b.Step == res.BestStep+3 {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	if _, err := Train(ctx, r2, cfg2); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted: %v", err)
	}
	r3, _ := setup(100)
	cfg2.Eval = evalSet{r: cfg2.Eval.(evalSet).r, with: r3}
	res3, err := Train(context.Background(), r3, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if res3.Steps != res.Steps || res3.BestStep != res.BestStep || !bitsEqual(r3.w.W, r.w.W) || !bitsEqual(r3.b.W, r.b.W) {
		t.Errorf("resumed early stop: %d steps best %d weights %v; straight %d, %d, %v", res3.Steps, res3.BestStep, r3.w.W, res.Steps, res.BestStep, r.w.W)
	}
}

func TestCurves(t *testing.T) {
	dir := t.TempDir()
	r := newRegression(40, 2, 8, linear([]float32{1, 1}, 1))
	cfg := testConfig(60)
	cfg.OutDir = dir
	cfg.Eval = evalSet{r: newRegression(8, 2, 9, linear([]float32{1, 1}, 1)), with: r}
	cfg.EvalEvery = 10
	if _, err := Train(context.Background(), r, cfg); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, CurveCSV))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 61 || rows[0][2] != "loss" || rows[10][6] == "" || rows[9][6] != "" {
		t.Errorf("csv: %v, %d rows", err, len(rows))
	}
	var res Result
	data, _ := os.ReadFile(filepath.Join(dir, CurveJSON))
	if err := json.Unmarshal(data, &res); err != nil || len(res.Train) != 60 || len(res.Eval) != 6 {
		t.Errorf("json: %v, %d records", err, len(res.Train))
	}
	svg, _ := os.ReadFile(filepath.Join(dir, CurveSVG))
	checkSVG(t, svg, 3)
	// Log scale for a curve that spans decades, linear otherwise.
	var buf bytes.Buffer
	WriteSVG(&buf, &Result{Train: []Record{{Step: 1, Loss: 5}, {Step: 2, Loss: 0.001}}})
	if !strings.Contains(buf.String(), "log scale") {
		t.Error("no log scale for a curve spanning 3 decades")
	}
	buf.Reset()
	WriteSVG(&buf, &Result{Train: []Record{{Step: 1, Loss: 5}, {Step: 2, Loss: 3}}})
	if strings.Contains(buf.String(), "log scale") {
		t.Error("log scale for a flat curve")
	}
	checkSVG(t, buf.Bytes(), 1)
	buf.Reset()
	WriteSVG(&buf, &Result{})
	checkSVG(t, buf.Bytes(), 0)
}

func checkSVG(t *testing.T, svg []byte, lines int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(svg))
	n := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg: %v", err)
		}
		if s, ok := tok.(xml.StartElement); ok && s.Name.Local == "polyline" {
			n++
		}
	}
	if n != lines {
		t.Errorf("svg has %d polylines, want %d", n, lines)
	}
}

func TestErrors(t *testing.T) {
	r := newRegression(4, 2, 1, linear([]float32{1, 1}, 0))
	bad := []func(*Config){
		func(c *Config) { c.Steps = 0 },
		func(c *Config) { c.MicroBatch = 9 },
		func(c *Config) { c.LR = 0 },
		func(c *Config) { c.MinLR = 1 },
		func(c *Config) { c.Schedule = "step" },
		func(c *Config) { c.Beta2 = 1 },
		func(c *Config) { c.Eps = 0 },
		func(c *Config) { c.Patience = 2 },
		func(c *Config) { c.Resume = true },
	}
	for i, f := range bad {
		cfg := testConfig(5)
		f(&cfg)
		if _, err := Train(context.Background(), r, cfg); err == nil {
			t.Errorf("case %d: no error", i)
		}
	}
	// A batch without loss tokens.
	empty := &regression{w: r.w, b: r.b, x: make([][][]float32, 3), y: make([][]float32, 3)}
	if _, err := Train(context.Background(), empty, testConfig(2)); err == nil || !strings.Contains(err.Error(), "no loss tokens") {
		t.Errorf("empty batch: %v", err)
	}
	// A checkpoint from another run.
	dir := t.TempDir()
	cfg := testConfig(2)
	cfg.CheckpointDir = dir
	if _, err := Train(context.Background(), r, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Resume = true
	cfg.Seed = 99
	if _, err := Train(context.Background(), r, cfg); err == nil || !strings.Contains(err.Error(), "seed") {
		t.Errorf("resume with another seed: %v", err)
	}
	cfg.Seed = 0
	other := newRegression(4, 3, 1, linear([]float32{1, 1, 1}, 0))
	if _, err := Train(context.Background(), other, cfg); err == nil || !strings.Contains(err.Error(), "tensor w/w") {
		t.Errorf("resume with other shapes: %v", err)
	}
}
