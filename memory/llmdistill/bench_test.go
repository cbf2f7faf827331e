package llmdistill

import (
	"context"
	"testing"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
)

// BenchmarkDistill distils the paper protocol's 200 users of the default
// synthetic world (about 1,700 batches): "live" against the local fake
// server without a cache (the client's own cost: encoding, HTTP over
// loopback, decoding, validation), "cached" from a warm DirCache (a
// resumed or repeated run).
func BenchmarkDistill(b *testing.B) {
	w, err := synth.Generate(synth.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	ds := w.Dataset
	sp, err := split.Paper(ds, split.DefaultPaperOptions())
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"live", "cached"} {
		b.Run(mode, func(b *testing.B) {
			dir := ""
			if mode == "cached" {
				dir = b.TempDir()
			}
			f := &fakeLLM{}
			cfg := setup(b, f, dir)
			cfg.Concurrency = 4
			d, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if mode == "cached" { // warm the cache
				if _, _, err := d.Distill(context.Background(), ds, sp, nil); err != nil {
					b.Fatal(err)
				}
			}
			warm := f.count()
			b.ResetTimer()
			for range b.N {
				if _, _, err := d.Distill(context.Background(), ds, sp, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(f.count()-warm)/float64(b.N), "requests/op")
		})
	}
}
