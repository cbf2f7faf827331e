package split

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/synth"
)

var (
	bigOnce sync.Once
	bigData *dataset.Dataset
)

// bigDataset generates a synthetic world of 20,000 users and 4,000 movies
// (about 2.8 million ratings with timestamps) once per test binary.
func bigDataset(b *testing.B) *dataset.Dataset {
	b.Helper()
	bigOnce.Do(func() {
		cfg := synth.DefaultConfig()
		cfg.NumUsers, cfg.NumItems = 20_000, 4_000
		w, err := synth.Generate(cfg)
		if err != nil {
			b.Fatal(err)
		}
		bigData = w.Dataset
	})
	return bigData
}

func BenchmarkPaper(b *testing.B) {
	d := bigDataset(b)
	for b.Loop() {
		if _, err := Paper(d, PaperOptions{Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(d.Ratings.Len()), "rows")
}

func BenchmarkRandom(b *testing.B) {
	d := bigDataset(b)
	for b.Loop() {
		if _, err := Random(d, 0.1, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFingerprint(b *testing.B) {
	d := bigDataset(b)
	b.SetBytes(int64(d.Ratings.Len()) * 20)
	for b.Loop() {
		FingerprintOf(d)
	}
}

func BenchmarkSave(b *testing.B) {
	d := bigDataset(b)
	s, err := Random(d, 0.1, 1)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "s.bin")
	for b.Loop() {
		if err := Save(path, s, d); err != nil {
			b.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(st.Size()), "file-bytes")
	b.ReportMetric(float64(d.Ratings.Len()), "rows")
}

func BenchmarkLoad(b *testing.B) {
	d := bigDataset(b)
	s, err := Random(d, 0.1, 1)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "s.bin")
	if err := Save(path, s, d); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Load(path, d); err != nil {
			b.Fatal(err)
		}
	}
}
