package serve

import (
	"fmt"
	"io"
	"math"
	"os"
	rtmetrics "runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// metrics are the server's counters, written in Prometheus' text exposition
// format (version 0.0.4) by hand.
type metrics struct {
	mu       sync.Mutex
	requests map[[2]string]int64 // endpoint, status
	latency  map[string]*histogram

	tokens       atomic.Int64 // generated tokens
	promptTokens atomic.Int64
	cancelled    atomic.Int64 // jobs dropped because their request ended
	rejected     atomic.Int64 // requests refused because the queue was full
	running      atomic.Int64
	queued       atomic.Int64

	batchSize *histogram
	queueWait *histogram
}

var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *metrics {
	return &metrics{
		requests:  map[[2]string]int64{},
		latency:   map[string]*histogram{},
		batchSize: newHistogram([]float64{1, 2, 4, 8, 16, 32, 64, 128}),
		queueWait: newHistogram(latencyBuckets),
	}
}

func (m *metrics) request(endpoint string, status int, seconds float64) {
	m.mu.Lock()
	m.requests[[2]string{endpoint, strconv.Itoa(status)}]++
	h := m.latency[endpoint]
	if h == nil {
		h = newHistogram(latencyBuckets)
		m.latency[endpoint] = h
	}
	m.mu.Unlock()
	h.observe(seconds)
}

// histogram is a Prometheus histogram: cumulative bucket counts, sum, count.
type histogram struct {
	mu     sync.Mutex
	bounds []float64
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      int64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]int64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // first bound ≥ v: le is inclusive
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	h.mu.Unlock()
}

func (h *histogram) write(w io.Writer, name, labels string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum int64
	for i, b := range h.bounds {
		cum += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, formatFloat(b), cum)
	}
	cum += h.counts[len(h.bounds)]
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, cum)
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %s\n", name, labels, formatFloat(h.sum))
	fmt.Fprintf(w, "%s_count%s %d\n", name, labels, h.n)
}

func formatFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// write renders every metric.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	keys := make([][2]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a][0] != keys[b][0] {
			return keys[a][0] < keys[b][0]
		}
		return keys[a][1] < keys[b][1]
	})
	fmt.Fprintln(w, "# HELP usersim_serve_requests_total HTTP requests by endpoint and status code.")
	fmt.Fprintln(w, "# TYPE usersim_serve_requests_total counter")
	for _, k := range keys {
		fmt.Fprintf(w, "usersim_serve_requests_total{endpoint=\"%s\",status=\"%s\"} %d\n", escapeLabel(k[0]), k[1], m.requests[k])
	}
	eps := make([]string, 0, len(m.latency))
	for e := range m.latency {
		eps = append(eps, e)
	}
	sort.Strings(eps)
	lat := make([]*histogram, len(eps))
	for i, e := range eps {
		lat[i] = m.latency[e]
	}
	m.mu.Unlock()

	fmt.Fprintln(w, "# HELP usersim_serve_request_duration_seconds Time from a request's arrival to its last byte.")
	fmt.Fprintln(w, "# TYPE usersim_serve_request_duration_seconds histogram")
	for i, e := range eps {
		lat[i].write(w, "usersim_serve_request_duration_seconds", "endpoint=\""+escapeLabel(e)+"\"")
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter("usersim_serve_generated_tokens_total", "Tokens generated.", m.tokens.Load())
	counter("usersim_serve_prompt_tokens_total", "Prompt tokens prefilled.", m.promptTokens.Load())
	counter("usersim_serve_cancelled_total", "Generations dropped because the client left or the request timed out.", m.cancelled.Load())
	counter("usersim_serve_rejected_total", "Requests refused with 429 because the queue was full.", m.rejected.Load())
	gauge("usersim_serve_running", "Sequences in the running batch.", m.running.Load())
	gauge("usersim_serve_queued", "Requests waiting for a batch slot.", m.queued.Load())
	mem := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"}, {Name: "/sched/goroutines:goroutines"}, {Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(mem)
	ok := true
	for _, m := range mem {
		ok = ok && m.Value.Kind() == rtmetrics.KindUint64
	}
	if ok {
		objects, total, unused := mem[0].Value.Uint64(), mem[1].Value.Uint64(), mem[2].Value.Uint64()
		gauge("usersim_serve_heap_object_bytes", "Bytes of live and not yet swept heap objects (Go runtime).", int64(objects))
		gauge("usersim_serve_memory_bytes", "All memory the Go runtime has mapped (Go runtime).", int64(total))
		// The names and meanings of the Prometheus Go client's collector.
		gauge("go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans (Go runtime).", int64(objects+unused))
		gauge("go_goroutines", "Goroutines that currently exist.", int64(mem[3].Value.Uint64()))
		// What the heap keeps after a collection: the steadiest sign of
		// whether memory stays bounded.
		gauge("usersim_serve_heap_live_bytes", "Heap bytes of live objects as of the last garbage collection (Go runtime).", int64(mem[4].Value.Uint64()))
	}
	// Linux only: the kernel's view of the whole process, cgo and mapped
	// model files included.
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		if v, ok := procStatusBytes(st, "VmRSS"); ok {
			gauge("process_resident_memory_bytes", "Resident memory size in bytes (VmRSS).", v)
		}
		if v, ok := procStatusBytes(st, "VmHWM"); ok {
			gauge("usersim_serve_resident_memory_peak_bytes", "Peak resident memory size in bytes since the process started (VmHWM).", v)
		}
	}
	fmt.Fprintln(w, "# HELP usersim_serve_batch_size Sequences per forward pass.")
	fmt.Fprintln(w, "# TYPE usersim_serve_batch_size histogram")
	m.batchSize.write(w, "usersim_serve_batch_size", "")
	fmt.Fprintln(w, "# HELP usersim_serve_queue_wait_seconds Time requests waited for a batch slot.")
	fmt.Fprintln(w, "# TYPE usersim_serve_queue_wait_seconds histogram")
	m.queueWait.write(w, "usersim_serve_queue_wait_seconds", "")
}

// procStatusBytes reads field (VmRSS, VmHWM) of a /proc/<pid>/status file,
// given in kB, as bytes.
func procStatusBytes(status []byte, field string) (int64, bool) {
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return n << 10, true
	}
	return 0, false
}
