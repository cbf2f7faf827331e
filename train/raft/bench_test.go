package raft

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/slm/tokenizer"
)

var (
	synthOnce sync.Once
	synthIn   Inputs
	synthErr  error
)

// synthInputs builds the default synthetic world, a random 80/20 split and
// the stats distiller's memories of every user (the whole training pool).
func synthInputs(b *testing.B) Inputs {
	synthOnce.Do(func() {
		w, err := synth.Generate(synth.DefaultConfig())
		if err != nil {
			synthErr = err
			return
		}
		s, err := split.Random(w.Dataset, 0.2, 1)
		if err != nil {
			synthErr = err
			return
		}
		ps, ms, err := memory.DistillStats(context.Background(), w.Dataset, s, memory.StatsOptions{})
		if err != nil {
			synthErr = err
			return
		}
		st, err := memory.NewStats(w.Dataset, s.Train, memory.StatsOptions{})
		if err != nil {
			synthErr = err
			return
		}
		synthIn = Inputs{Dataset: w.Dataset, Split: s, Stats: st, Profiles: ps, Interactions: ms}
	})
	if synthErr != nil {
		b.Fatal(synthErr)
	}
	return synthIn
}

// BenchmarkBuild builds every RAFT example of the default synthetic world.
func BenchmarkBuild(b *testing.B) {
	in := synthInputs(b)
	bl, err := NewBuilder(in, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		exs, err := bl.Build(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += len(exs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "examples/s")
	b.ReportMetric(float64(n)/float64(b.N), "examples")
}

// BenchmarkCorpus writes the whole pretraining corpus of the default
// synthetic world (and two smaller variants); MB/s is corpus bytes per
// second.
func BenchmarkCorpus(b *testing.B) {
	in := synthInputs(b)
	bl, err := NewBuilder(in, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opt  CorpusOptions
	}{
		{"all", CorpusOptions{Seed: 1}},
		{"prompts-only", CorpusOptions{Seed: 1, PromptsOnly: true}},
		{"20-prompts-per-user", CorpusOptions{Seed: 1, PromptsPerUser: 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cs, err := bl.WriteCorpus(context.Background(), io.Discard, bc.opt)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(cs.Bytes)
			b.ResetTimer()
			for b.Loop() {
				if _, err := bl.WriteCorpus(context.Background(), io.Discard, bc.opt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cs.Bytes), "corpus-bytes")
			b.ReportMetric(float64(cs.PromptDocs+cs.ProfileDocs), "docs")
			b.ReportMetric(float64(cs.Users), "users")
			b.ReportMetric(cs.MeanDocBytes, "mean-doc-bytes")
			b.ReportMetric(float64(cs.MaxDocBytes), "max-doc-bytes")
		})
	}
}

// BenchmarkCorpusTokens trains the compact base's tokenizer
// (tokenizer.DefaultTrainOptions) on the corpus once per iteration and
// reports the corpus size in tokens. Slow: run with -benchtime 1x.
func BenchmarkCorpusTokens(b *testing.B) {
	in := synthInputs(b)
	var buf bytes.Buffer
	cs, err := WriteCorpus(context.Background(), &buf, in, CorpusOptions{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var tokens int
	for b.Loop() {
		tr, err := tokenizer.Train(context.Background(), bytes.NewReader(buf.Bytes()), tokenizer.DefaultTrainOptions())
		if err != nil {
			b.Fatal(err)
		}
		ids, err := tr.Tokenizer().Encode(buf.String(), tokenizer.EncodeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		tokens = len(ids)
	}
	b.ReportMetric(float64(cs.Bytes), "corpus-bytes")
	b.ReportMetric(float64(tokens), "tokens")
	b.ReportMetric(float64(cs.Bytes)/float64(tokens), "bytes/token")
	b.ReportMetric(float64(cs.EstTokens), "est-tokens")
}
