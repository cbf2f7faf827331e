package eval_test

import (
	"context"
	"math"
	"testing"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
)

// TestSyntheticWorldNoiseFloor checks the baselines against a world whose
// noise floor is known: the learned models beat the global mean and the bias
// baseline, and nobody beats the floor by more than sampling noise.
func TestSyntheticWorldNoiseFloor(t *testing.T) {
	w, err := synth.Generate(synth.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	d := w.Dataset
	s, err := split.Random(d, 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	var ps []eval.Predictor
	for _, n := range []string{"global-mean", "bias", "svd", "svdpp", "item-knn"} {
		p, _ := baseline.New(n, 1)
		ps = append(ps, p)
	}
	ps = append(ps, baseline.NewOracle(w.Expected))
	res, err := eval.Evaluate(context.Background(), d, s, ps, eval.Options{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	nf := w.NoiseFloorOf(s.Test)
	floor := nf.RMSE
	got := map[string]float64{}
	for _, p := range res.Predictors {
		got[p.Name] = float64(p.RMSE)
		t.Logf("%-12s RMSE %.4f (noise floor %.4f)", p.Name, p.RMSE, floor)
		if float64(p.RMSE) < floor-0.03 {
			t.Errorf("%s RMSE %.4f is below the noise floor %.4f", p.Name, p.RMSE, floor)
		}
	}
	// The oracle's error is the realised noise floor on the test rows.
	if o := got["oracle"]; math.Abs(o-nf.RealisedRMSE) > 1e-9 {
		t.Errorf("oracle RMSE %.6f, realised noise floor %.6f", o, nf.RealisedRMSE)
	}
	for n, v := range got {
		if n != "oracle" && !(v > got["oracle"]) {
			t.Errorf("%s RMSE %.4f beats the oracle %.4f", n, v, got["oracle"])
		}
	}
	if !(got["bias"] < got["global-mean"]-0.05) {
		t.Errorf("bias %.4f does not beat the global mean %.4f", got["bias"], got["global-mean"])
	}
	for _, n := range []string{"svd", "svdpp", "item-knn"} {
		if !(got[n] < got["bias"]) {
			t.Errorf("%s %.4f does not beat bias %.4f", n, got[n], got["bias"])
		}
	}
}
