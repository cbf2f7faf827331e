package serve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
)

// AgentService is what the agent endpoints need: the user agents of one
// workspace. PoolService implements it over an agent.Pool.
type AgentService interface {
	// Rate answers user's rating distribution of every item (source IDs),
	// in order, with the agent's reason when explain is set.
	Rate(ctx context.Context, user string, items []string, explain bool) ([]ItemRating, error)
	// Choose answers which item of the slate user would pick, or exit.
	Choose(ctx context.Context, user string, items []string) (SlateChoice, error)
	// Personas describes the personas, ascending by ID.
	Personas() []PersonaInfo
}

// ErrNotFound is wrapped by an AgentService's errors for a user or item that
// the loaded dataset does not hold (or a user without an agent); the
// endpoints answer it 404.
var ErrNotFound = errors.New("not found")

// ItemRating is one item's answer of POST /v1/agents/{user}/rate.
type ItemRating struct {
	Item string `json:"item"`
	// Distribution maps every value of the scale ("1".."5", or "0.5".."5")
	// to its probability; the probabilities sum to 1.
	Distribution map[string]float64 `json:"distribution"`
	// Expected is Σ v·p, Argmax the most probable value.
	Expected float64 `json:"expected"`
	Argmax   float64 `json:"argmax"`
	// Mass is the probability the model put on the scale's values before
	// renormalising.
	Mass float64 `json:"mass"`
	// Valid is false when the model put no probability at all on the
	// scale (a remote backend's top logprobs can miss every value): the
	// distribution is then all zeros and Expected and Argmax are 0.
	Valid bool `json:"valid"`
	// Explanation is the agent's reason for its rating (explain requests
	// only).
	Explanation string `json:"explanation,omitempty"`
}

// SlateChoice is the answer of POST /v1/agents/{user}/choose.
type SlateChoice struct {
	// Choice is the most probable item, or "exit" when leaving is the most
	// probable answer.
	Choice string `json:"choice"`
	// Probabilities maps every offered item to the probability of choosing
	// it; with Exit they sum to 1.
	Probabilities map[string]float64 `json:"probabilities"`
	Exit          float64            `json:"exit"`
}

// ExitChoice is SlateChoice.Choice when the user leaves the slate.
const ExitChoice = "exit"

// PersonaInfo is one persona of GET /v1/personas.
type PersonaInfo struct {
	ID int `json:"id"`
	// Adapter is the model name of the persona's adapter (usable with the
	// completion endpoints too); empty when none is loaded.
	Adapter     string   `json:"adapter"`
	Size        int      `json:"size"`
	Share       float64  `json:"share"`
	MeanRating  float64  `json:"mean_rating"`
	Terms       []string `json:"terms,omitempty"`
	Description string   `json:"description"`
}

// AgentOptions configure the agent endpoints. Zero fields take the defaults
// documented on each.
type AgentOptions struct {
	// MaxRateItems is the most items one rate request may carry (default
	// 100); MaxChooseItems the largest slate (default 26).
	MaxRateItems   int
	MaxChooseItems int
	// MaxConcurrent bounds the agent requests computing at once; more wait
	// for a turn within their timeout (default GOMAXPROCS).
	MaxConcurrent int
}

// Defaults of AgentOptions.
const (
	DefaultMaxRateItems   = 100
	DefaultMaxChooseItems = 26
)

// maxIDBytes bounds one user or item ID in a request.
const maxIDBytes = 256

// HandleAgents mounts the agent endpoints of svc behind the server's
// authentication, body limit, metrics and request timeout:
//
//	POST /v1/agents/{user}/rate    {"items": [...], "explain": false}
//	POST /v1/agents/{user}/choose  {"items": [...]}
//	GET  /v1/personas
func (s *Server) HandleAgents(svc AgentService, o AgentOptions) {
	if o.MaxRateItems <= 0 {
		o.MaxRateItems = DefaultMaxRateItems
	}
	if o.MaxChooseItems <= 0 {
		o.MaxChooseItems = DefaultMaxChooseItems
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	h := &agentHandlers{s: s, svc: svc, o: o, sem: make(chan struct{}, o.MaxConcurrent)}
	s.Handle("POST /v1/agents/{user}/rate", http.HandlerFunc(h.rate))
	s.Handle("POST /v1/agents/{user}/choose", http.HandlerFunc(h.choose))
	s.Handle("GET /v1/personas", http.HandlerFunc(h.personas))
	// Other methods on these paths: 405 rather than the catch-all 404
	// (patterns with a method, so the metrics name the endpoint).
	for path, allow := range map[string]string{
		"/v1/agents/{user}/rate": http.MethodPost, "/v1/agents/{user}/choose": http.MethodPost, "/v1/personas": http.MethodGet,
	} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			// GET patterns also match HEAD.
			if m != allow && !(m == http.MethodHead && allow == http.MethodGet) {
				s.Handle(m+" "+path, methodNotAllowed(allow))
			}
		}
	}
}

func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, allow))
	})
}

type agentHandlers struct {
	s   *Server
	svc AgentService
	o   AgentOptions
	sem chan struct{}
}

type rateRequest struct {
	Items   []string `json:"items"`
	Explain bool     `json:"explain"`
}

type rateResponse struct {
	Object  string       `json:"object"` // "agent.rating"
	User    string       `json:"user"`
	Ratings []ItemRating `json:"ratings"`
}

type chooseRequest struct {
	Items []string `json:"items"`
}

type chooseResponse struct {
	Object string `json:"object"` // "agent.choice"
	User   string `json:"user"`
	SlateChoice
}

type personasResponse struct {
	Object   string        `json:"object"` // "list"
	K        int           `json:"k"`
	Sizes    []int         `json:"sizes"`
	Personas []PersonaInfo `json:"data"`
}

// checkIDs validates a request's user and items.
func checkIDs(user string, items []string, max int, unique bool) *httpError {
	if user == "" || len(user) > maxIDBytes {
		return badRequest("invalid_user", "user ID must be 1 to %d bytes", maxIDBytes)
	}
	if len(items) == 0 {
		return badRequest("invalid_items", "items: give at least one item ID")
	}
	if len(items) > max {
		return badRequest("too_many_items", "items: %d items, at most %d per request", len(items), max)
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		if it == "" || len(it) > maxIDBytes {
			return badRequest("invalid_items", "items[%d]: an item ID must be 1 to %d bytes", i, maxIDBytes)
		}
		if unique && seen[it] {
			return badRequest("invalid_items", "items[%d]: %q is offered twice", i, it)
		}
		seen[it] = true
	}
	return nil
}

// begin bounds the request by the server's timeout and waits for a turn.
func (h *agentHandlers) begin(r *http.Request) (context.Context, func(), *httpError) {
	ctx, cancel := context.WithTimeout(r.Context(), h.s.opt.Timeout)
	select {
	case h.sem <- struct{}{}:
		return ctx, func() { <-h.sem; cancel() }, nil
	case <-ctx.Done():
		cancel()
		return nil, nil, h.agentError(ctx, ctx.Err())
	}
}

// agentError maps a service error to an answer.
func (h *agentHandlers) agentError(ctx context.Context, err error) *httpError {
	switch {
	case errors.Is(err, ErrNotFound):
		return &httpError{http.StatusNotFound, "invalid_request_error", "not_found", err.Error()}
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &httpError{http.StatusGatewayTimeout, "timeout_error", "timeout", "the request ran past the server's timeout"}
	case ctx.Err() != nil:
		// The client left; nobody reads the answer.
		return &httpError{499, "invalid_request_error", "client_closed_request", "request canceled"}
	}
	return &httpError{http.StatusInternalServerError, "server_error", "agent_error", err.Error()}
}

func (h *agentHandlers) rate(w http.ResponseWriter, r *http.Request) {
	var req rateRequest
	if e := decode(r, &req); e != nil {
		h.s.fail(w, e)
		return
	}
	user := r.PathValue("user")
	if e := checkIDs(user, req.Items, h.o.MaxRateItems, false); e != nil {
		h.s.fail(w, e)
		return
	}
	ctx, done, e := h.begin(r)
	if e != nil {
		h.s.fail(w, e)
		return
	}
	defer done()
	out, err := h.svc.Rate(ctx, user, req.Items, req.Explain)
	if err != nil {
		h.s.fail(w, h.agentError(ctx, err))
		return
	}
	writeJSON(w, rateResponse{Object: "agent.rating", User: user, Ratings: out})
}

func (h *agentHandlers) choose(w http.ResponseWriter, r *http.Request) {
	var req chooseRequest
	if e := decode(r, &req); e != nil {
		h.s.fail(w, e)
		return
	}
	user := r.PathValue("user")
	if e := checkIDs(user, req.Items, h.o.MaxChooseItems, true); e != nil {
		h.s.fail(w, e)
		return
	}
	for i, it := range req.Items {
		if strings.EqualFold(it, ExitChoice) {
			// An item called "exit" would be ambiguous in the answer.
			h.s.fail(w, badRequest("invalid_items", "items[%d]: %q is reserved for leaving the slate", i, it))
			return
		}
	}
	ctx, done, e := h.begin(r)
	if e != nil {
		h.s.fail(w, e)
		return
	}
	defer done()
	c, err := h.svc.Choose(ctx, user, req.Items)
	if err != nil {
		h.s.fail(w, h.agentError(ctx, err))
		return
	}
	writeJSON(w, chooseResponse{Object: "agent.choice", User: user, SlateChoice: c})
}

func (h *agentHandlers) personas(w http.ResponseWriter, r *http.Request) {
	ps := h.svc.Personas()
	resp := personasResponse{Object: "list", K: len(ps), Sizes: make([]int, len(ps)), Personas: ps}
	if ps == nil {
		resp.Personas = []PersonaInfo{}
	}
	for i, p := range ps {
		resp.Sizes[i] = p.Size
	}
	writeJSON(w, resp)
}
