package serve

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/tokenizer"
)

// BenchmarkThroughput measures generated tokens per second with 1 and 8
// concurrent clients (each op is one 32-token completion); with 8 the
// scheduler batches the clients' sequences into one Forward per step.
// Models: stories260K, and a random model of SmolLM2-135M's width with 6
// layers (stories' tokenizer), where the weights' matrix products, which
// batching shares, dominate.
func BenchmarkThroughput(b *testing.B) {
	m, tok := stories(b)
	cfg := slm.Config{Arch: "llama", Hidden: 576, Layers: 6, Heads: 9, KVHeads: 3, HeadDim: 64, FFN: 1536,
		Vocab: tok.VocabSize(), NormEps: 1e-5, RopeTheta: 100000, RopeDim: 64, RopeStyle: slm.RopeNeoX,
		TiedEmbeddings: true, BOS: tok.BOS(), EOS: []int{tok.EOS()}, MaxContext: 512}
	wide, err := slm.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := wide.InitRandom(rand.New(rand.NewPCG(1, 2)), 0.02); err != nil {
		b.Fatal(err)
	}
	for _, mc := range []struct {
		name string
		m    *slm.Model
	}{{"stories260K", m}, {"wide6", wide}} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("model=%s/clients=%d", mc.name, clients), func(b *testing.B) {
				throughput(b, mc.m, tok, clients)
			})
		}
	}
}

// throughput runs b.N 32-token completions from clients concurrent
// clients and reports the generated tokens per second.
func throughput(b *testing.B, m *slm.Model, tok *tokenizer.Tokenizer, clients int) {
	ts := start(b, m, tok, Options{MaxBatch: 8})
	body := `{"model":"stories260K","prompt":"Once upon a time","max_tokens":32,"temperature":0}`
	var next, tokens atomic.Int64
	var wg sync.WaitGroup
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	b.ResetTimer()
	t0 := time.Now()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				resp, err := hc.Post(ts.url+"/v1/completions", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				var c completion
				err = json.NewDecoder(resp.Body).Decode(&c)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || c.Usage == nil {
					b.Errorf("status %d: %v", resp.StatusCode, err)
					return
				}
				tokens.Add(int64(c.Usage.CompletionTokens))
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(tokens.Load())/time.Since(t0).Seconds(), "tok/s")
}
