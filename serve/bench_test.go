package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkThroughput measures generated tokens per second on stories260K
// with 1 and 8 concurrent clients (each op is one 32-token completion);
// with 8 the scheduler batches the clients' sequences into one Forward per
// step.
func BenchmarkThroughput(b *testing.B) {
	m, tok := stories(b)
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
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
		})
	}
}
