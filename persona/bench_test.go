package persona

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/memory"
)

var ml1m struct {
	once     sync.Once
	profiles []memory.Profile
	err      error
}

// ml1mProfiles distils every ml-1m user (random 90/10 split) with the stats
// distiller, or skips when ../shared/data/ml-1m is absent.
func ml1mProfiles(b *testing.B) []memory.Profile {
	dir := sharedtest.Path(b, "data", "ml-1m")
	ml1m.once.Do(func() {
		d, err := dataset.LoadML1M(dir)
		if err != nil {
			ml1m.err = err
			return
		}
		s, err := split.Random(d, 0.1, 1)
		if err != nil {
			ml1m.err = err
			return
		}
		ml1m.profiles, _, ml1m.err = memory.DistillStats(context.Background(), d, s, memory.StatsOptions{})
	})
	if ml1m.err != nil {
		b.Fatal(ml1m.err)
	}
	return ml1m.profiles
}

func randomVectors(n, d int) [][]float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([][]float32, n)
	for i := range x {
		x[i] = make([]float32, d)
		for j := range x[i] {
			x[i][j] = float32(rng.NormFloat64())
		}
	}
	return x
}

// BenchmarkKMeans clusters 6,040 vectors (ml-1m's user count): random
// 64-dimensional ones, and ml-1m's stats profiles embedded by each
// embedder; K = 4 and 10, 10 restarts, one worker against all of them;
// tf-idf by the sparse path and the dense one.
func BenchmarkKMeans(b *testing.B) {
	type data struct {
		name string
		x    func(b *testing.B) [][]float32
	}
	embedded := func(e Embedder) func(b *testing.B) [][]float32 {
		return func(b *testing.B) [][]float32 {
			ps := ml1mProfiles(b)
			if err := e.Fit(context.Background(), ps); err != nil {
				b.Fatal(err)
			}
			x, err := e.Embed(context.Background(), ps)
			if err != nil {
				b.Fatal(err)
			}
			return x
		}
	}
	for _, dt := range []data{
		{"random64", func(*testing.B) [][]float32 { return randomVectors(6040, 64) }},
		{"behaviour", embedded(&Behaviour{})},
		{"lsa32", embedded(&TFIDF{Components: 32, Seed: 1})},
		{"tfidf", embedded(&TFIDF{})},
	} {
		var x [][]float32
		paths := []string{"auto"}
		if dt.name == "tfidf" {
			paths = []string{"sparse", "dense"}
		}
		for _, path := range paths {
			for _, k := range []int{4, 10} {
				for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
					b.Run(fmt.Sprintf("data=%s/path=%s/k=%d/workers=%d", dt.name, path, k, w), func(b *testing.B) {
						if x == nil {
							x = dt.x(b)
						}
						for b.Loop() {
							if _, err := KMeans(context.Background(), x, KMeansOptions{K: k, Seed: 1, Workers: w, Dense: path == "dense"}); err != nil {
								b.Fatal(err)
							}
						}
						b.ReportMetric(float64(len(x[0])), "dims")
					})
				}
			}
		}
	}
}

// BenchmarkSilhouettes scores nine labellings (a K = 2..10 table) of 6,040
// random 64-dimensional vectors exactly in one pass, and on a 2,000-row
// sample.
func BenchmarkSilhouettes(b *testing.B) {
	x := randomVectors(6040, 64)
	var labs [][]int
	for k := 2; k <= 10; k++ {
		c, err := KMeans(context.Background(), x, KMeansOptions{K: k, NInit: 1, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		labs = append(labs, c.Labels)
	}
	for _, m := range []int{6040, 2000} {
		var sample []int
		if m < len(x) {
			sample = sampleRows(len(x), m, 1)
		}
		b.Run(fmt.Sprintf("rows=%d", m), func(b *testing.B) {
			for b.Loop() {
				if _, err := Silhouettes(context.Background(), x, labs, sample, runtime.GOMAXPROCS(0)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEmbed fits and embeds ml-1m's 6,040 stats profiles.
func BenchmarkEmbed(b *testing.B) {
	for _, e := range []Embedder{&Behaviour{}, &TFIDF{}, &TFIDF{Components: 32, Seed: 1}} {
		b.Run("embedder="+e.Name(), func(b *testing.B) {
			ps := ml1mProfiles(b)
			for b.Loop() {
				if err := e.Fit(context.Background(), ps); err != nil {
					b.Fatal(err)
				}
				if _, err := e.Embed(context.Background(), ps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
