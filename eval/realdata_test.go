package eval_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
)

// sharedDir returns ../shared/data/<name> relative to the module root, or
// skips the test when it is absent.
func sharedDir(t testing.TB, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "shared", "data", name)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("skipping: %s not found (needs ../shared/data/%s beside the repository)", dir, name)
	}
	return dir
}

// randomFolds splits all rows into k seeded random folds.
func randomFolds(d *dataset.Dataset, k int, seed uint64) []*split.Split {
	n := d.Ratings.Len()
	perm := rand.New(rand.NewPCG(seed, 1)).Perm(n)
	fold := make([]int, n)
	for p, row := range perm {
		fold[row] = p % k
	}
	out := make([]*split.Split, k)
	for f := range k {
		s := &split.Split{Protocol: "kfold", Seed: int64(seed)}
		for row := range n {
			if fold[row] == f {
				s.Test = append(s.Test, int32(row))
			} else {
				s.Train = append(s.Train, int32(row))
			}
		}
		out[f] = s
	}
	return out
}

func TestML100KCrossValidation(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping 5-fold CV on ml-100k in -short mode")
	}
	d, err := dataset.LoadML100K(sharedDir(t, "ml-100k"))
	if err != nil {
		t.Fatal(err)
	}
	var ps []eval.Predictor
	for _, n := range []string{"global-mean", "bias", "svd", "svdpp", "item-knn"} {
		p, err := baseline.New(n, 1)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	cv, err := eval.CrossValidate(context.Background(), d, randomFolds(d, 5, 1), ps, eval.Options{Bootstrap: -1, Progress: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	cv.WriteTable(os.Stderr)
}
