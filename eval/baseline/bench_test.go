package baseline

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/sharedtest"
)

var (
	ml1mOnce sync.Once
	ml1m     *dataset.Dataset
	ml1mErr  error
)

// loadML1M loads ../shared/data/ml-1m once, or skips when it is absent.
func loadML1M(b *testing.B) *dataset.Dataset {
	b.Helper()
	dir := sharedtest.Path(b, "data", "ml-1m")
	ml1mOnce.Do(func() { ml1m, ml1mErr = dataset.LoadML1M(dir) })
	if ml1mErr != nil {
		b.Fatal(ml1mErr)
	}
	return ml1m
}

// benchEpochs fits p (already set to a fixed number of epochs) b.N times and
// reports training epochs per second and ratings per second, excluding the
// setup measured by a zero-epoch fit.
func benchEpochs(b *testing.B, d *dataset.Dataset, p Predictor, epochs int, setEpochs func(int)) {
	rows := allRows(d)
	ctx := context.Background()
	setEpochs(0)
	t0 := time.Now()
	if err := p.Fit(ctx, d, rows); err != nil {
		b.Fatal(err)
	}
	setup := time.Since(t0)
	setEpochs(epochs)
	b.ResetTimer()
	for range b.N {
		if err := p.Fit(ctx, d, rows); err != nil {
			b.Fatal(err)
		}
	}
	el := b.Elapsed() - time.Duration(b.N)*setup
	if el <= 0 {
		el = b.Elapsed()
	}
	eps := float64(epochs*b.N) / el.Seconds()
	b.ReportMetric(eps, "epochs/s")
	b.ReportMetric(eps*float64(len(rows))/1e6, "Mratings/s")
}

func benchWorld() *dataset.Dataset {
	// 6,000 users × 3,700 items at 4.5% density: about ml-1m's shape.
	return newWorld(21, 6000, 3700, 5, 0.045, 0.4, 0.4, 0.8).d
}

var (
	worldOnce sync.Once
	bigWorld  *dataset.Dataset
)

func genWorld() *dataset.Dataset {
	worldOnce.Do(func() { bigWorld = benchWorld() })
	return bigWorld
}

func BenchmarkSVDEpochML1M(b *testing.B) {
	m := NewSVD(1)
	benchEpochs(b, loadML1M(b), m, 2, func(e int) { m.Epochs = e })
}

func BenchmarkSVDppEpochML1M(b *testing.B) {
	m := NewSVDpp(1)
	benchEpochs(b, loadML1M(b), m, 2, func(e int) { m.Epochs = e })
}

func BenchmarkSVDEpochWorld(b *testing.B) {
	m := NewSVD(1)
	benchEpochs(b, genWorld(), m, 2, func(e int) { m.Epochs = e })
}

func BenchmarkSVDppEpochWorld(b *testing.B) {
	m := NewSVDpp(1)
	benchEpochs(b, genWorld(), m, 2, func(e int) { m.Epochs = e })
}

func BenchmarkKNNFitML1M(b *testing.B) {
	d := loadML1M(b)
	m := NewKNNBaseline()
	rows := allRows(d)
	b.ResetTimer()
	for range b.N {
		if err := m.Fit(context.Background(), d, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSVDEpochRef64 is the float64 reference loop on the same data as
// BenchmarkSVDEpochML1M, for the float32 speed-up.
func BenchmarkSVDEpochRef64(b *testing.B) {
	d := loadML1M(b)
	rows := allRows(d)
	m := NewSVD(1)
	m.Epochs = 0
	t0 := time.Now()
	refSVD64(d, rows, rows[:1], m)
	setup := time.Since(t0)
	m.Epochs = 2
	b.ResetTimer()
	for range b.N {
		refSVD64(d, rows, rows[:1], m)
	}
	el := b.Elapsed() - time.Duration(b.N)*setup
	b.ReportMetric(float64(m.Epochs*b.N)/el.Seconds(), "epochs/s")
}
