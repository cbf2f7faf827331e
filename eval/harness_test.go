package eval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
)

// smallWorld is a random low-rank world on the 1–5 star scale, with or
// without timestamps.
func smallWorld(seed uint64, withTime bool) *dataset.Dataset {
	rng := rand.New(rand.NewPCG(seed, 3))
	const nu, ni, rank = 120, 80, 2
	d := &dataset.Dataset{Name: "small-world", Scale: dataset.FiveStars}
	p := make([]float64, nu*rank)
	q := make([]float64, ni*rank)
	for k := range p {
		p[k] = 0.7 * rng.NormFloat64()
	}
	for k := range q {
		q[k] = 0.7 * rng.NormFloat64()
	}
	bu := make([]float64, nu)
	bi := make([]float64, ni)
	for u := range bu {
		bu[u] = 0.5 * rng.NormFloat64()
	}
	for i := range bi {
		bi[i] = 0.5 * rng.NormFloat64()
	}
	for u := range nu {
		d.AddUser(dataset.User{ID: strconv.Itoa(u)})
	}
	for i := range ni {
		d.AddItem(dataset.Item{ID: strconv.Itoa(i)})
	}
	for u := range nu {
		for i := range ni {
			if rng.Float64() > 0.3 {
				continue
			}
			v := 3.5 + bu[u] + bi[i] + 0.3*rng.NormFloat64()
			for f := range rank {
				v += p[u*rank+f] * q[i*rank+f]
			}
			d.Append(int32(u), int32(i), float32(dataset.FiveStars.Snap(v)), int64(u*1000+i), withTime)
		}
	}
	return d
}

// perUserSplit holds out the last 40% of every user's rows.
func perUserSplit(d *dataset.Dataset, temporal bool) *split.Split {
	s := &split.Split{Protocol: "paper", Seed: 1, Temporal: temporal}
	idx := d.UserRows()
	for u := range int32(idx.Groups()) {
		rows := idx.Of(u)
		s.Users = append(s.Users, u)
		cut := len(rows) * 6 / 10
		s.Train = append(s.Train, rows[:cut]...)
		s.Test = append(s.Test, rows[cut:]...)
	}
	return s
}

// halfInvalid answers a constant 5 (like an over-enthusiastic LLM) and
// gives an invalid answer for every other item.
type halfInvalid struct{}

func (halfInvalid) Name() string { return "llm-ish" }
func (halfInvalid) Fit(context.Context, *dataset.Dataset, []int32) error {
	return nil
}
func (halfInvalid) Predict(u, i int32) float64 {
	if i%2 == 0 {
		return eval.Invalid
	}
	return 5
}

func TestEvaluate(t *testing.T) {
	d := smallWorld(1, false)
	s := perUserSplit(d, false)
	ps := []eval.Predictor{baseline.NewGlobalMean(), baseline.NewBias(), baseline.NewSVD(1), halfInvalid{}}
	var progress bytes.Buffer
	res, err := eval.Evaluate(context.Background(), d, s, ps, eval.Options{Seed: 1, Bootstrap: 200, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Predictors) != 4 {
		t.Fatalf("%d predictor results", len(res.Predictors))
	}
	gm, bias, llm := res.Predictors[0], res.Predictors[1], res.Predictors[3]
	if !(bias.RMSE < gm.RMSE) {
		t.Errorf("bias RMSE %v not below global mean %v", bias.RMSE, gm.RMSE)
	}
	for _, p := range res.Predictors[:3] {
		if p.URR != 0 || p.Valid != p.N || p.N != len(s.Test) {
			t.Errorf("%s: URR %v valid %d of %d", p.Name, p.URR, p.Valid, p.N)
		}
		if !(p.CI.RMSE.Lo <= p.RMSE && p.RMSE <= p.CI.RMSE.Hi) {
			t.Errorf("%s: CI [%v, %v] misses RMSE %v", p.Name, p.CI.RMSE.Lo, p.CI.RMSE.Hi, p.RMSE)
		}
	}
	// The invalid-answer predictor: URR = share of test rows on even items;
	// RMSE only over the valid (odd-item) rows; histogram all at 5.
	var even int
	for _, row := range s.Test {
		if d.Ratings.Item[row]%2 == 0 {
			even++
		}
	}
	if want := float64(even) / float64(len(s.Test)); math.Abs(float64(llm.URR)-want) > 1e-12 {
		t.Errorf("URR %v, want %v", llm.URR, want)
	}
	if llm.Valid != len(s.Test)-even || llm.Histogram.Pred[4] != llm.Valid || llm.Histogram.PredMean != 5 {
		t.Errorf("invalid answers leaked into valid counts: %+v", llm.Histogram)
	}
	if res.Split.Description == "" || !strings.Contains(res.Split.Description, "random per-user split because the dataset has no timestamps") {
		t.Errorf("description %q", res.Split.Description)
	}
	if res.Split.Train != len(s.Train) || res.Split.Test != len(s.Test) || res.Split.TestUsers != 120 {
		t.Errorf("split info %+v", res.Split)
	}
	if bias.VsReference != nil || res.Predictors[2].VsReference == nil || res.Predictors[2].VsReference.Reference != "bias" {
		t.Errorf("comparison with bias: bias %+v, svd %+v", bias.VsReference, res.Predictors[2].VsReference)
	}
	if c := gm.VsReference; c == nil || !(c.DeltaRMSE > 0) || math.Abs(float64(c.DeltaRMSE-(gm.RMSE-bias.RMSE))) > 1e-12 || !(c.RMSECI.Lo <= c.DeltaRMSE && c.DeltaRMSE <= c.RMSECI.Hi) {
		t.Errorf("global mean vs bias: %+v", c)
	}
	if !strings.Contains(progress.String(), "svd: fitted") {
		t.Errorf("progress %q", progress.String())
	}

	// JSON round trip keeps the numbers (and marshals NaN-free).
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := eval.ReadResults(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if back.Predictors[2].RMSE != res.Predictors[2].RMSE || back.Split.Protocol != "paper" {
		t.Error("JSON round trip lost values")
	}

	var md bytes.Buffer
	if err := res.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| svd |", "Compared with bias", "random per-user split because the dataset has no timestamps", "| rating | truth |", "| 5 |", "bootstrap over users"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md.String())
		}
	}
	var tbl bytes.Buffer
	if err := res.WriteTable(&tbl); err != nil || !strings.Contains(tbl.String(), "llm-ish") {
		t.Errorf("table: %v\n%s", err, tbl.String())
	}
}

func TestEvaluateTemporalDescription(t *testing.T) {
	d := smallWorld(2, true)
	s := perUserSplit(d, true)
	res, err := eval.Evaluate(context.Background(), d, s, []eval.Predictor{baseline.NewGlobalMean()}, eval.Options{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Split.Description, "temporal") || strings.Contains(res.Split.Description, "no timestamps") {
		t.Errorf("description %q", res.Split.Description)
	}
	if res.Predictors[0].CI.Resamples != 0 || !math.IsNaN(float64(res.Predictors[0].CI.RMSE.Lo)) {
		t.Error("bootstrap ran although disabled")
	}
}

func TestEvaluateErrors(t *testing.T) {
	d := smallWorld(3, false)
	ctx := context.Background()
	ps := []eval.Predictor{baseline.NewGlobalMean()}
	bad := &split.Split{Train: []int32{0}, Test: []int32{int32(d.Ratings.Len())}}
	if _, err := eval.Evaluate(ctx, d, bad, ps, eval.Options{}); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Errorf("out-of-range test row: %v", err)
	}
	if _, err := eval.Evaluate(ctx, d, &split.Split{Train: []int32{0}}, ps, eval.Options{}); err == nil {
		t.Error("empty test set accepted")
	}
	if _, err := eval.Evaluate(ctx, d, perUserSplit(d, false), append(ps, baseline.NewGlobalMean()), eval.Options{}); err == nil {
		t.Error("two predictors with one name accepted")
	}
	if _, err := eval.Evaluate(ctx, d, perUserSplit(d, false), ps, eval.Options{Reference: "nope"}); err == nil {
		t.Error("unknown reference accepted")
	}
	if _, err := eval.Evaluate(ctx, d, perUserSplit(d, false), ps, eval.Options{Level: 1.5}); err == nil {
		t.Error("confidence level 1.5 accepted")
	}
	if _, err := eval.Evaluate(ctx, d, &split.Split{Test: []int32{0}}, ps, eval.Options{}); err == nil {
		t.Error("fit on no training rows did not fail")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := eval.Evaluate(cctx, d, perUserSplit(d, false), ps, eval.Options{}); err == nil {
		t.Error("cancelled context did not stop Evaluate")
	}
}

func TestWriteFiles(t *testing.T) {
	d := smallWorld(4, false)
	res, err := eval.Evaluate(context.Background(), d, perUserSplit(d, false), []eval.Predictor{baseline.NewBias()}, eval.Options{Bootstrap: 50})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "results")
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteFiles(dir); err != nil { // overwrite
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 { // results.json, report.md, rmse.svg, hist.svg
		t.Errorf("dir holds %d entries (temp files left?): %v", len(ents), ents)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	for _, k := range []string{"dataset", "split", "predictors", "scale"} {
		if _, ok := m[k]; !ok {
			t.Errorf("results.json lacks %q", k)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err != nil {
		t.Error(err)
	}
}

func TestCrossValidate(t *testing.T) {
	d := smallWorld(5, false)
	folds, err := split.KFold(d, 3, 7)
	if err != nil {
		t.Fatal(err)
	}
	ps := []eval.Predictor{baseline.NewGlobalMean(), baseline.NewBias()}
	cv, err := eval.CrossValidate(context.Background(), d, folds, ps, eval.Options{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(cv.Folds) != 3 || len(cv.Summary) != 2 {
		t.Fatalf("%d folds, %d summaries", len(cv.Folds), len(cv.Summary))
	}
	// Mean and population std of the per-fold RMSEs, by hand.
	var v []float64
	for _, f := range cv.Folds {
		v = append(v, float64(f.Predictors[1].RMSE))
	}
	m := (v[0] + v[1] + v[2]) / 3
	sd := math.Sqrt(((v[0]-m)*(v[0]-m) + (v[1]-m)*(v[1]-m) + (v[2]-m)*(v[2]-m)) / 3)
	if s := cv.Summary[1]; math.Abs(float64(s.RMSE.Mean)-m) > 1e-12 || math.Abs(float64(s.RMSE.Std)-sd) > 1e-12 || s.Name != "bias" {
		t.Errorf("summary %+v, want mean %v std %v", s, m, sd)
	}
	if s := cv.Summary[0]; s.DeltaRMSE == nil || s.Reference != "bias" || math.Abs(float64(s.DeltaRMSE.Mean)-(float64(s.RMSE.Mean)-m)) > 1e-12 {
		t.Errorf("global mean vs bias across folds: %+v", s)
	}
	if cv.Summary[1].DeltaRMSE != nil {
		t.Error("the reference has a delta")
	}
	// Each fold trains on its own rows: fold results differ.
	if v[0] == v[1] && v[1] == v[2] {
		t.Error("identical RMSE on every fold")
	}
	var md, tbl bytes.Buffer
	if err := cv.WriteMarkdown(&md); err != nil || !strings.Contains(md.String(), "| bias |") {
		t.Errorf("markdown: %v\n%s", err, md.String())
	}
	if err := cv.WriteTable(&tbl); err != nil || !strings.Contains(tbl.String(), "±") {
		t.Errorf("table: %v\n%s", err, tbl.String())
	}
	if err := cv.WriteFiles(t.TempDir()); err != nil {
		t.Error(err)
	}
	if _, err := eval.CrossValidate(context.Background(), d, nil, ps, eval.Options{}); err == nil {
		t.Error("no folds accepted")
	}
}

// batchOnly answers only through PredictBatch (Predict returns 1, which
// would be scored differently).
type batchOnly struct{ calls int }

func (*batchOnly) Name() string                                         { return "batch" }
func (*batchOnly) Fit(context.Context, *dataset.Dataset, []int32) error { return nil }
func (*batchOnly) Predict(u, i int32) float64                           { return 1 }
func (b *batchOnly) PredictBatch(ctx context.Context, users, items []int32, out []float64) error {
	b.calls++
	for k := range out {
		out[k] = 4
	}
	return nil
}

func TestEvaluateUsesBatchPredictor(t *testing.T) {
	d := smallWorld(6, false)
	b := &batchOnly{}
	res, err := eval.Evaluate(context.Background(), d, perUserSplit(d, false), []eval.Predictor{b}, eval.Options{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if b.calls != 1 || res.Predictors[0].Histogram.PredMean != 4 {
		t.Errorf("PredictBatch calls %d, prediction mean %v; want 1 call, mean 4", b.calls, res.Predictors[0].Histogram.PredMean)
	}
}
