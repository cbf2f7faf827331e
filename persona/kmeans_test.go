package persona

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/vec"
)

// blobs draws n points around k well-separated centres in d dimensions and
// returns them with their true labels.
func blobs(n, k, d int, spread float64, seed uint64) ([][]float32, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	centres := make([][]float64, k)
	for c := range centres {
		centres[c] = make([]float64, d)
		for j := range centres[c] {
			centres[c][j] = 10 * rng.NormFloat64()
		}
	}
	x := make([][]float32, n)
	y := make([]int, n)
	for i := range x {
		c := rng.IntN(k)
		y[i] = c
		x[i] = make([]float32, d)
		for j := range x[i] {
			x[i][j] = float32(centres[c][j] + spread*rng.NormFloat64())
		}
	}
	return x, y
}

func TestKMeansRecoversBlobs(t *testing.T) {
	x, y := blobs(600, 5, 8, 1, 1)
	c, err := KMeans(context.Background(), x, KMeansOptions{K: 5, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if ari, _ := AdjustedRand(y, c.Labels); ari != 1 {
		t.Errorf("ARI %v, want 1", ari)
	}
	if !c.Converged {
		t.Error("not converged")
	}
	// Inertia and sizes agree with the labels and centroids.
	var in float64
	sizes := make([]int, c.K)
	for i, v := range x {
		in += float64(sqDist(v, c.Centroids[c.Labels[i]]))
		sizes[c.Labels[i]]++
		if l, _, _ := c.Assign(v); l != c.Labels[i] {
			t.Fatalf("vector %d labelled %d but nearest to %d", i, c.Labels[i], l)
		}
	}
	if math.Abs(in-c.Inertia) > 1e-6*in || !slices.Equal(sizes, c.Sizes) {
		t.Errorf("inertia %v (recomputed %v), sizes %v (recomputed %v)", c.Inertia, in, c.Sizes, sizes)
	}
	// Every centroid is its members' mean.
	for k := range c.K {
		for j := range x[0] {
			var s float64
			for i, v := range x {
				if c.Labels[i] == k {
					s += float64(v[j])
				}
			}
			if m := s / float64(sizes[k]); math.Abs(m-float64(c.Centroids[k][j])) > 1e-4 {
				t.Fatalf("centroid %d[%d] = %v, members' mean %v", k, j, c.Centroids[k][j], m)
			}
		}
	}
}

func TestKMeansDeterministic(t *testing.T) {
	x, _ := blobs(1000, 6, 16, 4, 2)
	for _, nInit := range []int{10, 3} {
		ref, err := KMeans(context.Background(), x, KMeansOptions{K: 6, NInit: nInit, Seed: 42, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{1, 2, 3, 8} {
			c, err := KMeans(context.Background(), x, KMeansOptions{K: 6, NInit: nInit, Seed: 42, Workers: workers})
			if err != nil {
				t.Fatal(err)
			}
			if c.Inertia != ref.Inertia || !slices.Equal(c.Labels, ref.Labels) || c.Restart != ref.Restart {
				t.Fatalf("n_init %d, workers %d: inertia %v restart %d, want %v restart %d", nInit, workers, c.Inertia, c.Restart, ref.Inertia, ref.Restart)
			}
			for k := range c.Centroids {
				if !slices.Equal(c.Centroids[k], ref.Centroids[k]) {
					t.Fatalf("n_init %d, workers %d: centroid %d differs", nInit, workers, k)
				}
			}
		}
	}
	// Another seed may give other labels but is deterministic too; more
	// restarts never do worse than the first restart alone.
	one, _ := KMeans(context.Background(), x, KMeansOptions{K: 6, NInit: 1, Seed: 42})
	ten, _ := KMeans(context.Background(), x, KMeansOptions{K: 6, NInit: 10, Seed: 42})
	if ten.Inertia > one.Inertia {
		t.Errorf("10 restarts: inertia %v > 1 restart %v", ten.Inertia, one.Inertia)
	}
}

func TestKMeansEmptyClustersAndDuplicates(t *testing.T) {
	// Three distinct points, repeated: K = 3 must find them exactly; K = 4
	// cannot have four non-empty clusters of distinct points, but every
	// cluster still gets a member.
	var x [][]float32
	for i := range 30 {
		x = append(x, []float32{float32(i % 3), 0})
	}
	c, err := KMeans(context.Background(), x, KMeansOptions{K: 3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Inertia != 0 {
		t.Errorf("K=3 inertia %v, want 0", c.Inertia)
	}
	c, err = KMeans(context.Background(), x, KMeansOptions{K: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for k, s := range c.Sizes {
		if s == 0 {
			t.Errorf("K=4: cluster %d empty (sizes %v)", k, c.Sizes)
		}
	}
	if c.Inertia != 0 {
		t.Errorf("K=4 inertia %v, want 0", c.Inertia)
	}
	// fixEmpty moves the farthest point of a cluster with spare members.
	labels := []int{0, 0, 0, 1}
	dist := []float32{1, 5, 2, 9}
	counts := make([]int, 3)
	fixEmpty(labels, dist, counts, 3)
	if !slices.Equal(labels, []int{0, 2, 0, 1}) {
		t.Errorf("fixEmpty: labels %v, want [0 2 0 1]", labels)
	}
}

func TestKMeansErrors(t *testing.T) {
	ok := [][]float32{{0, 1}, {1, 0}}
	for _, tc := range []struct {
		name string
		x    [][]float32
		k    int
		want string
	}{
		{"no vectors", nil, 1, "no vectors"},
		{"K too large", ok, 3, "K = 3"},
		{"K zero", ok, 0, "K = 0"},
		{"ragged", [][]float32{{0, 1}, {1}}, 1, "vector 1 has 1 dimensions"},
		{"NaN", [][]float32{{0, 1}, {float32(math.NaN()), 0}}, 1, "vector 1, dimension 0"},
		{"empty vectors", [][]float32{{}, {}}, 1, "no dimensions"},
	} {
		_, err := KMeans(context.Background(), tc.x, KMeansOptions{K: tc.k})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := KMeans(ctx, ok, KMeansOptions{K: 1}); err == nil {
		t.Error("cancelled context: no error")
	}
	c := &Clustering{K: 1, Dim: 2, Centroids: [][]float32{{0, 0}}}
	if _, _, err := c.Assign([]float32{1}); err == nil {
		t.Error("Assign of a short vector: no error")
	}
}

func TestKMeansSparseMatchesDense(t *testing.T) {
	// Sparse vectors with structure: each of 4 groups draws its non-zeros
	// mostly from its own 30 of 200 dimensions, about 10 per vector.
	rng := rand.New(rand.NewPCG(9, 9))
	x := make([][]float32, 800)
	truth := make([]int, len(x))
	for i := range x {
		g := rng.IntN(4)
		truth[i] = g
		x[i] = make([]float32, 200)
		for range 10 {
			j := g*30 + rng.IntN(30)
			if rng.IntN(5) == 0 {
				j = rng.IntN(200)
			}
			x[i][j] += float32(1 + rng.Float64())
		}
		vec.Normalize(x[i])
	}
	if newPoints(x, true).idx == nil {
		t.Fatal("sparse vectors did not take the sparse path")
	}
	sparse, err := KMeans(context.Background(), x, KMeansOptions{K: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	dense, err := KMeans(context.Background(), x, KMeansOptions{K: 4, Seed: 1, Dense: true})
	if err != nil {
		t.Fatal(err)
	}
	ari, _ := AdjustedRand(sparse.Labels, dense.Labels)
	if ari < 0.99 || math.Abs(sparse.Inertia-dense.Inertia) > 1e-4*dense.Inertia {
		t.Errorf("sparse: inertia %v; dense: %v; ARI between them %v", sparse.Inertia, dense.Inertia, ari)
	}
	if ari, _ := AdjustedRand(sparse.Labels, truth); ari < 0.9 {
		t.Errorf("sparse path: ARI %v against the groups", ari)
	}
	par, _ := KMeans(context.Background(), x, KMeansOptions{K: 4, Seed: 1, Workers: 5, NInit: 3})
	ser, _ := KMeans(context.Background(), x, KMeansOptions{K: 4, Seed: 1, Workers: 1, NInit: 3})
	if par.Inertia != ser.Inertia || !slices.Equal(par.Labels, ser.Labels) {
		t.Error("sparse path depends on the number of workers")
	}
}
