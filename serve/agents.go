package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
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

// AgentCatalog is implemented by an AgentService that can list what it
// serves; HandleAgents then also mounts GET /v1/agents and GET /v1/items,
// so that clients (a load test, a simulator) learn whom and what to ask
// about. The slices are shared: callers must not modify them.
type AgentCatalog interface {
	// Users lists the users with an agent and their personas, in a stable
	// order.
	Users() []UserInfo
	// Items lists the items requests may name, in a stable order.
	Items() []ItemInfo
}

// UserInfo is one user of GET /v1/agents.
type UserInfo struct {
	ID string `json:"id"`
	// Persona is the user's persona; -1 when the user has none.
	Persona int `json:"persona"`
}

// ItemInfo is one item of GET /v1/items.
type ItemInfo struct {
	ID    string `json:"id"`
	Title string `json:"title,omitempty"`
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

// Page sizes of the catalog listings (GET /v1/agents, GET /v1/items): the
// default limit and the largest one a request may ask for.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
)

// maxIDBytes bounds one user or item ID in a request.
const maxIDBytes = 256

// HandleAgents mounts the agent endpoints of svc behind the server's
// authentication, body limit, metrics and request timeout:
//
//	POST /v1/agents/{user}/rate    {"items": [...], "explain": false}
//	POST /v1/agents/{user}/choose  {"items": [...]}
//	GET  /v1/personas
//
// When svc is also an AgentCatalog, the catalog is listed a page at a time
// (?offset=0&limit=1000, at most MaxListLimit):
//
//	GET  /v1/agents[?persona=k]    the users with an agent, with personas
//	GET  /v1/items                 the items requests may name
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
	paths := map[string]string{
		"/v1/agents/{user}/rate": http.MethodPost, "/v1/agents/{user}/choose": http.MethodPost, "/v1/personas": http.MethodGet,
	}
	if cat, ok := svc.(AgentCatalog); ok {
		s.Handle("GET /v1/agents", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { listUsers(s, w, r, cat) }))
		s.Handle("GET /v1/items", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { listItems(s, w, r, cat) }))
		paths["/v1/agents"], paths["/v1/items"] = http.MethodGet, http.MethodGet
	}
	// Other methods on these paths: 405 rather than the catch-all 404
	// (patterns with a method, so the metrics name the endpoint).
	for path, allow := range paths {
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

// listResponse is a page of a catalog listing.
type listResponse[T any] struct {
	Object  string `json:"object"` // "list"
	Data    []T    `json:"data"`
	Total   int    `json:"total"` // entries over all pages
	Offset  int    `json:"offset"`
	HasMore bool   `json:"has_more"`
}

// queryInt reads the query parameter name as an integer in [lo, hi], def
// when absent.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, *httpError) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("invalid_"+name, "%s=%.40q: want an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

// page answers entries[offset:offset+limit] of the request's page.
func page[T any](s *Server, w http.ResponseWriter, r *http.Request, entries []T) {
	offset, e := queryInt(r, "offset", 0, 0, math.MaxInt32)
	if e == nil {
		var limit int
		if limit, e = queryInt(r, "limit", DefaultListLimit, 1, MaxListLimit); e == nil {
			lo := min(offset, len(entries))
			hi := min(lo+limit, len(entries))
			writeJSON(w, listResponse[T]{Object: "list", Data: append([]T{}, entries[lo:hi]...), Total: len(entries), Offset: offset, HasMore: hi < len(entries)})
			return
		}
	}
	s.fail(w, e)
}

func listUsers(s *Server, w http.ResponseWriter, r *http.Request, cat AgentCatalog) {
	users := cat.Users()
	if r.URL.Query().Has("persona") {
		k, e := queryInt(r, "persona", 0, -1, math.MaxInt32)
		if e != nil {
			s.fail(w, e)
			return
		}
		var sel []UserInfo
		for _, u := range users {
			if u.Persona == k {
				sel = append(sel, u)
			}
		}
		users = sel
	}
	page(s, w, r, users)
}

func listItems(s *Server, w http.ResponseWriter, r *http.Request, cat AgentCatalog) {
	page(s, w, r, cat.Items())
}
