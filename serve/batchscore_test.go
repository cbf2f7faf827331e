package serve

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersim/usersim/agent"
)

// fakeBackend scores a prompt and candidate by a hash of both; a prompt
// "panic" panics. While gate is open (not nil and not closed) calls wait.
type fakeBackend struct {
	gate    chan struct{}
	calls   atomic.Int64
	mu      sync.Mutex
	batches []int // prompts per call
}

func fakeScore(p, c string) float64 {
	h := fnv.New32a()
	h.Write([]byte(p + "\x00" + c))
	return -float64(h.Sum32()%1000) / 100
}

func (f *fakeBackend) Score(ctx context.Context, prompts []agent.Prompt, candidates []string) ([][]float64, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.batches = append(f.batches, len(prompts))
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([][]float64, len(prompts))
	for i, p := range prompts {
		if p.Text == "panic" {
			panic("boom")
		}
		out[i] = make([]float64, len(candidates))
		for j, c := range candidates {
			out[i][j] = fakeScore(p.Adapter+"|"+p.Text, c)
		}
	}
	return out, nil
}

func (f *fakeBackend) Generate(ctx context.Context, p agent.Prompt, opt agent.GenerateOptions) (string, error) {
	return "gen:" + p.Text, nil
}

func prompts(prefix string, n int) []agent.Prompt {
	ps := make([]agent.Prompt, n)
	for i := range ps {
		ps[i] = agent.Prompt{Adapter: fmt.Sprintf("persona-%d", i%2), Text: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return ps
}

func checkScores(t *testing.T, ps []agent.Prompt, cands []string, lp [][]float64) {
	t.Helper()
	if len(lp) != len(ps) {
		t.Fatalf("%d rows for %d prompts", len(lp), len(ps))
	}
	for i, p := range ps {
		for j, c := range cands {
			if lp[i][j] != fakeScore(p.Adapter+"|"+p.Text, c) {
				t.Fatalf("prompt %q candidate %q: %v is another prompt's score", p.Text, c, lp[i][j])
			}
		}
	}
}

// TestBatchBackendMerges holds the backend busy with one call while others
// arrive: those with the same candidates run as one call, the others alone,
// and every caller gets its own prompts' scores.
func TestBatchBackendMerges(t *testing.T) {
	f := &fakeBackend{gate: make(chan struct{})}
	b := NewBatchBackend(f, 10, 1)
	defer b.Close()
	scale, labels := []string{" 1", " 2", " 3"}, []string{"A", "B", "0"}
	type call struct {
		ps    []agent.Prompt
		cands []string
	}
	calls := []call{
		{prompts("first", 2), scale},
		{prompts("b", 3), scale}, {prompts("c", 3), scale}, {prompts("d", 1), scale},
		{prompts("e", 2), labels},
		{prompts("big", 12), scale}, // over max: runs alone
	}
	var wg sync.WaitGroup
	run := func(c call) {
		defer wg.Done()
		lp, err := b.Score(context.Background(), c.ps, c.cands)
		if err != nil {
			t.Error(err)
			return
		}
		checkScores(t, c.ps, c.cands, lp)
	}
	wg.Add(1)
	go run(calls[0])
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	for _, c := range calls[1:] {
		wg.Add(1)
		go run(c)
	}
	waitQueued(t, b, int64(len(calls)-1))
	close(f.gate)
	wg.Wait()
	if n := f.calls.Load(); n != 4 {
		t.Errorf("%d backend calls (batches %v), want 4: the first, b+c+d merged, e, big", n, f.batches)
	}
	if !strings.Contains(fmt.Sprint(f.batches), "7") {
		t.Errorf("batches %v: b, c and d (7 prompts) were not merged", f.batches)
	}
}

func TestBatchBackendErrors(t *testing.T) {
	f := &fakeBackend{}
	b := NewBatchBackend(f, 0, 1)
	if _, err := b.Score(context.Background(), []agent.Prompt{{Text: "panic"}}, []string{"x"}); err == nil || !strings.Contains(err.Error(), "panic") {
		t.Errorf("a panicking backend: %v", err)
	}
	// The loop survives the panic.
	ps := prompts("ok", 3)
	lp, err := b.Score(context.Background(), ps, []string{"x", "y"})
	if err != nil {
		t.Fatal(err)
	}
	checkScores(t, ps, []string{"x", "y"}, lp)
	if lp, err := b.Score(context.Background(), nil, []string{"x"}); lp != nil || err != nil {
		t.Errorf("no prompts: %v, %v", lp, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Score(ctx, ps, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled call: %v", err)
	}
	if g, err := b.Generate(context.Background(), agent.Prompt{Text: "t"}, agent.GenerateOptions{MaxTokens: 1}); g != "gen:t" || err != nil {
		t.Errorf("Generate: %q, %v", g, err)
	}
	b.Close()
	if _, err := b.Score(context.Background(), ps, []string{"x"}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestBatchBackendCancelOne: a caller that leaves does not cancel the merged
// call of the others.
func TestBatchBackendCancelOne(t *testing.T) {
	f := &fakeBackend{gate: make(chan struct{})}
	b := NewBatchBackend(f, 0, 1)
	defer b.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := b.Score(context.Background(), prompts("first", 1), []string{"x"}); err != nil {
			t.Error(err)
		}
	}()
	for f.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, err := b.Score(ctx, prompts("leaver", 2), []string{"x"}); errc <- err }()
	go func() {
		defer wg.Done()
		ps := prompts("stayer", 2)
		lp, err := b.Score(context.Background(), ps, []string{"x"})
		if err == nil {
			checkScores(t, ps, []string{"x"}, lp)
		}
		errc <- err
	}()
	waitQueued(t, b, 2)
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(f.gate)
	wg.Wait()
	close(errc)
	var nils, canceled int
	for err := range errc {
		switch {
		case err == nil:
			nils++
		case errors.Is(err, context.Canceled):
			canceled++
		}
	}
	if nils != 1 || canceled != 1 {
		t.Errorf("%d answered, %d canceled; want 1 and 1", nils, canceled)
	}
}

// waitQueued waits until n calls wait for the loop (then a little longer:
// the count moves just before a caller blocks).
func waitQueued(t *testing.T, b *BatchBackend, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.waiting.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", b.waiting.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
}
