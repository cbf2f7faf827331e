package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Gauges of the server's /metrics that the memory sampler reads.
const (
	metricRSS        = "process_resident_memory_bytes"
	metricPeakRSS    = "usersim_serve_resident_memory_peak_bytes"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricHeapLive   = "usersim_serve_heap_live_bytes"
	metricGoroutines = "go_goroutines"
)

// MemSample is the server's memory at one moment of a run; a gauge the
// server does not export reads 0.
type MemSample struct {
	At         time.Duration `json:"at_ns"` // since the run started
	RSS        int64         `json:"rss_bytes"`
	PeakRSS    int64         `json:"peak_rss_bytes"`
	HeapInuse  int64         `json:"heap_inuse_bytes"`
	HeapLive   int64         `json:"heap_live_bytes"` // after the last GC
	Goroutines int64         `json:"goroutines"`
}

// MemoryStats summarises the samples of a run: the largest values in its
// first and last Window, which show whether memory stays bounded under a
// steady load.
type MemoryStats struct {
	Samples []MemSample   `json:"samples"`
	Window  time.Duration `json:"window_ns"`
	// Before is the sample taken before the first request.
	Before MemSample `json:"before"`
	// First and Last hold the largest RSS, heap and goroutine counts seen
	// in the first and the last Window of the run; Max over all of it.
	First MemSample `json:"first"`
	Last  MemSample `json:"last"`
	Max   MemSample `json:"max"`
	// Errors counts samples that could not be read.
	Errors int `json:"errors"`
}

// String renders the stats as a few lines ("" without samples).
func (m MemoryStats) String() string {
	if len(m.Samples) == 0 {
		return ""
	}
	mib := func(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	var b strings.Builder
	fmt.Fprintf(&b, "server memory (%d samples, /metrics):\n", len(m.Samples))
	line := func(label string, s MemSample) {
		fmt.Fprintf(&b, "  %-15s rss %s  heap in use %s  live heap %s  goroutines %d\n", label, mib(s.RSS), mib(s.HeapInuse), mib(s.HeapLive), s.Goroutines)
	}
	w := m.Window.Round(100 * time.Millisecond)
	line("before load", m.Before)
	line(fmt.Sprintf("first %v max", w), m.First)
	line(fmt.Sprintf("last %v max", w), m.Last)
	line("whole run max", m.Max)
	fmt.Fprintf(&b, "  peak rss since the server started %s\n", mib(m.Max.PeakRSS))
	if m.Errors > 0 {
		fmt.Fprintf(&b, "  %d samples could not be read\n", m.Errors)
	}
	return b.String()
}

// ReadMetrics reads the unlabelled samples of a Prometheus text exposition
// at url (the server's /metrics) into a map by metric name.
func ReadMetrics(ctx context.Context, c *http.Client, url, apiKey string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, 4<<20))
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(strings.TrimSpace(v), " ") // a timestamp may follow
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		out[name] = f
	}
	return out, sc.Err()
}

// memSampler reads the server's memory gauges every interval until stopped.
type memSampler struct {
	mu      sync.Mutex
	samples []MemSample
	errors  int
	stop    context.CancelFunc
	done    chan struct{}
}

// sampleMemory takes a first sample now and then one every interval until
// the returned sampler is stopped. t0 is the run's start.
func sampleMemory(ctx context.Context, c *http.Client, base, apiKey string, every time.Duration, t0 time.Time) *memSampler {
	ctx, cancel := context.WithCancel(ctx)
	m := &memSampler{stop: cancel, done: make(chan struct{})}
	url := strings.TrimSuffix(base, "/") + "/metrics"
	take := func() {
		at := time.Since(t0)
		v, err := ReadMetrics(ctx, c, url, apiKey)
		m.mu.Lock()
		defer m.mu.Unlock()
		if err != nil {
			if ctx.Err() == nil {
				m.errors++
			}
			return
		}
		m.samples = append(m.samples, MemSample{At: at, RSS: int64(v[metricRSS]), PeakRSS: int64(v[metricPeakRSS]),
			HeapInuse: int64(v[metricHeapInuse]), HeapLive: int64(v[metricHeapLive]), Goroutines: int64(v[metricGoroutines])})
	}
	take()
	go func() {
		defer close(m.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				take()
			}
		}
	}()
	return m
}

// finish stops sampling, takes a last sample at elapsed and summarises
// the samples with the given window.
func (m *memSampler) finish(ctx context.Context, c *http.Client, base, apiKey string, elapsed, window time.Duration) MemoryStats {
	m.stop()
	<-m.done
	if v, err := ReadMetrics(ctx, c, strings.TrimSuffix(base, "/")+"/metrics", apiKey); err == nil {
		m.samples = append(m.samples, MemSample{At: elapsed, RSS: int64(v[metricRSS]), PeakRSS: int64(v[metricPeakRSS]),
			HeapInuse: int64(v[metricHeapInuse]), HeapLive: int64(v[metricHeapLive]), Goroutines: int64(v[metricGoroutines])})
	} else {
		m.errors++
	}
	return summarizeMemory(m.samples, m.errors, elapsed, window)
}

func summarizeMemory(samples []MemSample, errors int, elapsed, window time.Duration) MemoryStats {
	st := MemoryStats{Samples: samples, Window: window, Errors: errors}
	if len(samples) == 0 {
		return st
	}
	st.Before = samples[0]
	grow := func(dst *MemSample, s MemSample) {
		dst.RSS = max(dst.RSS, s.RSS)
		dst.PeakRSS = max(dst.PeakRSS, s.PeakRSS)
		dst.HeapInuse = max(dst.HeapInuse, s.HeapInuse)
		dst.HeapLive = max(dst.HeapLive, s.HeapLive)
		dst.Goroutines = max(dst.Goroutines, s.Goroutines)
	}
	for _, s := range samples {
		grow(&st.Max, s)
		if s.At <= window {
			grow(&st.First, s)
		}
		if s.At >= elapsed-window {
			grow(&st.Last, s)
		}
	}
	st.First.At, st.Last.At, st.Max.At = 0, max(elapsed-window, 0), 0
	return st
}

// commonDefaults fills the options both load modes share: the memory
// sampling period (1s) and window (10s, at most a quarter of the run), and
// an HTTP client keeping conns idle connections.
func commonDefaults(every, window, run time.Duration, c *http.Client, conns int) (time.Duration, time.Duration, *http.Client) {
	if every == 0 {
		every = time.Second
	}
	if window <= 0 {
		window = 10 * time.Second
	}
	window = min(window, run/4)
	if c == nil {
		c = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns}}
	}
	return every, window, c
}
