package memory

import (
	"context"
	"runtime"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/internal/sharedtest"
)

// BenchmarkDistillStatsML1M distils every user of MovieLens-1M (6,040
// users, 1M ratings) under a 90/10 random split: statistics, profiles and
// one reason per training rating.
func BenchmarkDistillStatsML1M(b *testing.B) {
	d, err := dataset.LoadML1M(sharedtest.Path(b, "data", "ml-1m"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := split.Random(d, 0.1, 1)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			if _, err := NewStats(d, s.Train, StatsOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	distill := func(b *testing.B) {
		for b.Loop() {
			ps, ms, err := DistillStats(ctx, d, s, StatsOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(ps)), "profiles")
			b.ReportMetric(float64(len(ms)), "reasons")
		}
	}
	b.Run("distill", distill)
	// The same on one core: what the worker pool buys.
	b.Run("distill-1core", func(b *testing.B) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		distill(b)
	})
}
