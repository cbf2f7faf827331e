// Package serve is usersim's HTTP API: OpenAI-compatible chat and text
// completions over one base model and a set of named LoRA adapters (the
// request's "model" names the adapter, or the base model for none), with
// the models list, a health check and Prometheus metrics.
//
// Requests are batched continuously: one scheduler goroutine advances every
// running generation by one token per forward pass, sequences of different
// adapters together on the shared base, and new requests join at the next
// step boundary with their prefill in the same pass. A bounded queue
// holds requests waiting for a slot; when it is full the server answers
// 429 with Retry-After. A client that disconnects, or a request that runs
// past its timeout, frees its slot at the next step.
//
// Safety: request bodies are size-limited (413), generations are capped in
// tokens and time, an optional API key is checked in constant time (401),
// errors use OpenAI's {"error": {...}} shape, and nothing in a request
// reaches the file system: adapter names are only looked up among the
// adapters loaded at start (404 otherwise).
//
// Handle adds further endpoints behind the same authentication, body limit
// and metrics. HandleAgents mounts the agent API with it: POST
// /v1/agents/{user}/rate (rating distributions), POST
// /v1/agents/{user}/choose (a slate's choice or exit) and GET /v1/personas,
// over an AgentService; PoolService implements that over an agent.Pool, and
// BatchBackend merges the scoring of concurrent agent requests, whatever
// their personas, into shared calls of the model.
//
// # Measured
//
// BenchmarkThroughput (32-token greedy completions over loopback HTTP,
// MaxBatch 8, 2 shared cores, medians of 3): on stories260K 12,800 tok/s
// with one client and 17,800 with eight (1.4×: per-sequence attention and
// HTTP dominate so small a model); on a random 6-layer model of
// SmolLM2-135M's width 165 and 609 tok/s (3.7×: the weights' matrix
// products, shared by the batch, dominate).
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/chat"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
)

// Model is what the server needs of a model; *slm.Model implements it.
type Model interface {
	Forward(ctx context.Context, batch []slm.Sequence) ([][][]float32, error)
	NewAdapterCache(a *lora.Adapter) *slm.Cache
}

// Options configure a Server. Zero fields take the defaults documented on
// each.
type Options struct {
	// Name is the base model's name: the "model" that selects no adapter.
	Name string
	// Adapters are the servable adapters by name (nil: none).
	Adapters map[string]*lora.Adapter
	// Template renders chat messages into a prompt; nil picks the built-in
	// format of Arch (chat.ForArch), or a plain "role: content" transcript
	// when the architecture has none.
	Template *chat.Template
	// Arch is the model's architecture, for the default template.
	Arch string
	// MaxContext is the model's context length (0: unbounded).
	MaxContext int
	// MaxBatch is the most sequences in one forward pass (default 8).
	MaxBatch int
	// MaxPrefillTokens bounds the prompt tokens that join the batch in one
	// step (default 2048); a longer prompt still joins, alone.
	MaxPrefillTokens int
	// QueueSize is the most requests waiting for a slot (default 8×MaxBatch).
	QueueSize int
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Timeout bounds one request, queueing included (default 60s).
	Timeout time.Duration
	// MaxTokens caps a generation's tokens, and is the default when a
	// request gives none (default 512).
	MaxTokens int
	// APIKey, when not empty, is the bearer token every request except
	// /healthz must carry.
	APIKey string
	// Logger receives request errors (default slog.Default()).
	Logger *slog.Logger
}

// Server is the HTTP API. Build it with New; Close stops its scheduler.
type Server struct {
	opt      Options
	tok      *tokenizer.Tokenizer
	tmpl     *chat.Template
	mux      *http.ServeMux
	handler  http.Handler
	metrics  *metrics
	sched    *scheduler
	keyHash  [32]byte
	created  int64
	stopOnce sync.Once
	cancel   context.CancelFunc
}

// New returns a server over m and tok and starts its scheduler.
func New(m Model, tok *tokenizer.Tokenizer, o Options) (*Server, error) {
	if m == nil || tok == nil {
		return nil, errors.New("serve: a model and a tokenizer are required")
	}
	if o.Name == "" {
		return nil, errors.New("serve: the base model needs a name")
	}
	adapters := make(map[string]*lora.Adapter, len(o.Adapters))
	for name, a := range o.Adapters {
		adapters[name] = a
		if name == "" || name == o.Name {
			return nil, fmt.Errorf("serve: adapter name %q: empty or the base model's name", name)
		}
		if a == nil {
			return nil, fmt.Errorf("serve: adapter %q is nil", name)
		}
	}
	o.Adapters = adapters // a copy: the caller's map may change
	if o.MaxBatch <= 0 {
		o.MaxBatch = 8
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 8 * o.MaxBatch
	}
	if o.MaxPrefillTokens <= 0 {
		o.MaxPrefillTokens = 2048
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 512
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{opt: o, tok: tok, metrics: newMetrics(), created: time.Now().Unix()}
	if o.Template != nil {
		s.tmpl = o.Template
	} else if t, err := chat.ForArch(o.Arch, tokText(tok, tok.BOS()), tokText(tok, tok.EOS())); err == nil {
		s.tmpl = &t
	}
	if o.APIKey != "" {
		s.keyHash = sha256.Sum256([]byte(o.APIKey))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.sched = &scheduler{
		model: m, tok: tok, maxBatch: o.MaxBatch, prefillBudget: o.MaxPrefillTokens,
		queue:   make(chan *job, o.QueueSize),
		metrics: s.metrics,
		quit:    make(chan struct{}), done: make(chan struct{}),
		ctx: ctx,
	}
	go s.sched.run()

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	s.mux.HandleFunc("GET /v1/models", s.handleModels)
	s.mux.HandleFunc("GET /v1/models/{id}", s.handleModel)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics.write(w)
	})
	s.mux.HandleFunc("/", s.handleNoRoute)
	s.handler = s.middleware(s.mux)
	return s, nil
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Handle registers h for pattern (a ServeMux pattern such as
// "POST /v1/agents/{user}/rate") behind the same authentication, body
// limit and metrics as the built-in endpoints.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Close stops the scheduler: queued and running generations end with an
// error. Call it after http.Server.Shutdown has drained the requests.
func (s *Server) Close() error {
	s.stopOnce.Do(func() {
		close(s.sched.quit)
		s.cancel()
		<-s.sched.done
	})
	return nil
}

// Models returns the names a request's "model" may take: the base model's
// first, then the adapters' in order.
func (s *Server) Models() []string {
	names := make([]string, 0, len(s.opt.Adapters)+1)
	for n := range s.opt.Adapters {
		names = append(names, n)
	}
	sort.Strings(names)
	return append([]string{s.opt.Name}, names...)
}

// statusWriter records the status code and keeps Flush reachable.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware counts and times every request, checks the API key and limits
// the body.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		endpoint := "other"
		if _, pattern := s.mux.Handler(r); pattern != "" && pattern != "/" {
			_, endpoint, _ = strings.Cut(pattern, " ")
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(t0)
			s.metrics.request(endpoint, status, d.Seconds())
			s.opt.Logger.Debug("serve: request", "method", r.Method, "path", r.URL.Path, "status", status, "duration", d)
		}()
		if s.opt.APIKey != "" && endpoint != "/healthz" && !s.authorized(r) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="usersim"`)
			writeError(sw, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "missing or invalid API key")
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, s.opt.MaxBodyBytes)
		next.ServeHTTP(sw, r)
	})
}

// authorized compares the bearer token with the key in constant time (of
// their hashes, so the key's length does not leak either).
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") { // schemes are case-insensitive (RFC 9110)
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(h[:], s.keyHash[:]) == 1
}

// tokText is the vocabulary text of a special token, "" for none.
func tokText(tok *tokenizer.Tokenizer, id int) string {
	if id < 0 {
		return ""
	}
	return tok.TokenText(id)
}

// methods are the built-in routes' methods, for 405 answers.
var methods = map[string]string{
	"/v1/chat/completions": http.MethodPost,
	"/v1/completions":      http.MethodPost,
	"/v1/models":           http.MethodGet,
	"/healthz":             http.MethodGet,
	"/metrics":             http.MethodGet,
}

// handleNoRoute answers requests no pattern matched: 405 for a known path
// with another method, else 404, in OpenAI's error shape.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	if m, ok := methods[r.URL.Path]; ok {
		w.Header().Set("Allow", m)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, m))
		return
	}
	writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
}
