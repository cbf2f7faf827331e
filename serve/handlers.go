package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	randv2 "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usersim/usersim/slm/chat"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/sample"
	"github.com/usersim/usersim/slm/tokenizer"
)

// httpError is an error answered with an OpenAI-shaped body.
type httpError struct {
	status int
	typ    string
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(code, format string, args ...any) *httpError {
	return &httpError{http.StatusBadRequest, "invalid_request_error", code, fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	body := errorBody{Error: apiError{Message: msg, Type: typ}}
	if code != "" {
		body.Error.Code = &code
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

func (s *Server) fail(w http.ResponseWriter, e *httpError) {
	if e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	if e.status == http.StatusInternalServerError {
		s.opt.Logger.Error("serve: request failed", "status", e.status, "err", e.msg)
	}
	writeError(w, e.status, e.typ, e.code, e.msg)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v: 413 past the size limit, 400 when it is
// not JSON of the expected shape.
func decode(r *http.Request, v any) *httpError {
	// The body is read as JSON whatever its Content-Type says, as
	// OpenAI-compatible servers do (curl -d sends form encoding).
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil {
		// Nothing but white space may follow the object.
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &httpError{http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", fmt.Sprintf("request body over %d bytes", tooBig.Limit)}
		}
		return badRequest("invalid_json", "invalid request body: %v", err)
	}
	return nil
}

// newJob checks the sampling parameters and builds a job for prompt.
func (s *Server) newJob(p samplingParams, prompt []int) (*job, *httpError) {
	var adapter *lora.Adapter
	if p.Model == "" {
		return nil, badRequest("missing_model", "model is required (one of %s)", strings.Join(s.Models(), ", "))
	}
	if p.Model != s.opt.Name {
		a, ok := s.opt.Adapters[p.Model]
		if !ok {
			return nil, &httpError{http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("the model %q does not exist", p.Model)}
		}
		adapter = a
	}
	if p.N != nil && *p.N != 1 {
		return nil, badRequest("invalid_n", "n = %d: this server generates one choice per request", *p.N)
	}
	so := sample.Options{Temperature: 1}
	if p.Temperature != nil {
		if t := *p.Temperature; math.IsNaN(t) || t < 0 || t > 2 {
			return nil, badRequest("invalid_temperature", "temperature %v is outside [0, 2]", t)
		}
		so.Temperature = float32(*p.Temperature)
	}
	if p.TopP != nil {
		if tp := *p.TopP; math.IsNaN(tp) || tp <= 0 || tp > 1 {
			return nil, badRequest("invalid_top_p", "top_p %v is outside (0, 1]", tp)
		}
		so.TopP = float32(*p.TopP)
	}
	if p.Seed != nil {
		so.Seed = uint64(*p.Seed)
	} else {
		so.Seed = randv2.Uint64()
	}
	maxTokens := s.opt.MaxTokens
	for _, mt := range []*int{p.MaxTokens, p.MaxCompletionTokens} {
		if mt == nil {
			continue
		}
		if *mt < 1 {
			return nil, badRequest("invalid_max_tokens", "max_tokens %d must be at least 1", *mt)
		}
		maxTokens = min(*mt, s.opt.MaxTokens)
	}
	if len(p.Stop) > 4 {
		return nil, badRequest("invalid_stop", "%d stop strings; at most 4", len(p.Stop))
	}
	if len(prompt) == 0 {
		return nil, badRequest("empty_prompt", "the prompt encodes to no tokens")
	}
	if c := s.opt.MaxContext; c > 0 {
		if len(prompt) >= c {
			return nil, badRequest("context_length_exceeded", "the prompt has %d tokens; the model's context is %d", len(prompt), c)
		}
		maxTokens = min(maxTokens, c-len(prompt))
	}
	return &job{
		adapter: adapter, prompt: prompt, maxTokens: maxTokens, sample: so, stops: p.Stop,
		events: make(chan event, maxTokens+2),
	}, nil
}

// submit queues j, or answers 429 when the queue is full.
func (s *Server) submit(ctx context.Context, j *job) *httpError {
	j.ctx = ctx
	j.enqueued = time.Now()
	select {
	case s.sched.queue <- j:
		s.metrics.promptTokens.Add(int64(len(j.prompt)))
		s.metrics.queued.Store(int64(len(s.sched.queue)))
		return nil
	default:
		s.metrics.rejected.Add(1)
		return &httpError{http.StatusTooManyRequests, "rate_limit_error", "queue_full", "the server's queue is full; retry later"}
	}
}

// next waits for j's next event. A nil event and a nil error mean the
// client has gone.
func (s *Server) next(ctx context.Context, j *job) (*event, *httpError) {
	select {
	case ev := <-j.events:
		if ev.err != nil {
			return nil, s.jobError(ctx, ev.err)
		}
		return &ev, nil
	case <-ctx.Done():
		return nil, s.jobError(ctx, ctx.Err())
	}
}

func (s *Server) jobError(ctx context.Context, err error) *httpError {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &httpError{http.StatusGatewayTimeout, "timeout", "timeout", fmt.Sprintf("generation did not finish within %v", s.opt.Timeout)}
	case errors.Is(err, context.Canceled):
		return nil // the client left
	case errors.Is(err, errShutdown):
		return &httpError{http.StatusServiceUnavailable, "server_error", "shutting_down", err.Error()}
	}
	return &httpError{http.StatusInternalServerError, "server_error", "generation_failed", err.Error()}
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// messageText reads a message's content: a string, or an array of parts of
// which the "text" ones are joined.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content: want a string or an array of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part of type %q: only text is supported", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// chatPrompt renders messages with the chat template and encodes them.
func (s *Server) chatPrompt(in []chatMessage) ([]int, *httpError) {
	if len(in) == 0 {
		return nil, badRequest("invalid_messages", "messages is empty")
	}
	msgs := make([]chat.Message, len(in))
	for i, m := range in {
		text, err := messageText(m.Content)
		if err != nil {
			return nil, badRequest("invalid_messages", "messages[%d].%v", i, err)
		}
		role := m.Role
		if role == "developer" {
			role = "system"
		}
		switch role {
		case "system", "user", "assistant":
		default:
			return nil, badRequest("invalid_messages", "messages[%d].role %q: want system, developer, user or assistant", i, m.Role)
		}
		msgs[i] = chat.Message{Role: role, Content: text}
	}
	if s.tmpl == nil {
		// No chat format: a plain transcript the model continues.
		var b strings.Builder
		for _, m := range msgs {
			fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
		}
		b.WriteString("assistant:")
		return s.encode(b.String(), tokenizer.EncodeOptions{AddBOS: s.tok.AddBOSDefault()})
	}
	text, err := chat.Render(*s.tmpl, msgs, true)
	if err != nil {
		return nil, badRequest("invalid_messages", "chat template: %v", err)
	}
	ids, herr := s.encode(text, tokenizer.EncodeOptions{ParseSpecial: true})
	if herr != nil {
		return nil, herr
	}
	if s.tok.AddBOSDefault() && s.tok.BOS() >= 0 && (len(ids) == 0 || ids[0] != s.tok.BOS()) {
		ids = append([]int{s.tok.BOS()}, ids...)
	}
	return ids, nil
}

func (s *Server) encode(text string, o tokenizer.EncodeOptions) ([]int, *httpError) {
	ids, err := s.tok.Encode(text, o)
	if err != nil {
		return nil, badRequest("invalid_prompt", "tokenize: %v", err)
	}
	return ids, nil
}

func (s *Server) tokenLogprob(ti *tokenInfo) tokenLogprob {
	tl := tokenLogprob{Token: s.tok.TokenBytes(ti.id), Logprob: finiteLogprob(ti.logprob), Bytes: byteInts(s.tok.TokenBytes(ti.id)), TopLogprobs: []topLogprob{}}
	for _, t := range ti.top {
		b := s.tok.TokenBytes(t.id)
		tl.TopLogprobs = append(tl.TopLogprobs, topLogprob{Token: b, Logprob: finiteLogprob(t.logprob), Bytes: byteInts(b)})
	}
	return tl
}

func byteInts(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if e := decode(r, &req); e != nil {
		s.fail(w, e)
		return
	}
	topN := 0
	if req.TopLogprobs != nil {
		if *req.TopLogprobs < 0 || *req.TopLogprobs > 20 {
			s.fail(w, badRequest("invalid_top_logprobs", "top_logprobs %d is outside [0, 20]", *req.TopLogprobs))
			return
		}
		if !req.Logprobs && *req.TopLogprobs > 0 {
			s.fail(w, badRequest("invalid_top_logprobs", "top_logprobs needs logprobs: true"))
			return
		}
		topN = *req.TopLogprobs
	}
	if req.Model != "" && req.Model != s.opt.Name {
		if _, ok := s.opt.Adapters[req.Model]; !ok {
			s.fail(w, &httpError{http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("the model %q does not exist", req.Model)})
			return
		}
	}
	prompt, e := s.chatPrompt(req.Messages)
	if e != nil {
		s.fail(w, e)
		return
	}
	j, e := s.newJob(req.samplingParams, prompt)
	if e != nil {
		s.fail(w, e)
		return
	}
	j.logprobs, j.topN = req.Logprobs, topN
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()
	if e := s.submit(ctx, j); e != nil {
		s.fail(w, e)
		return
	}
	id, created := newID("chatcmpl-"), time.Now().Unix()
	if req.Stream {
		s.streamChat(ctx, w, j, req, id, created)
		return
	}
	var text strings.Builder
	var lps []tokenLogprob
	for {
		ev, e := s.next(ctx, j)
		if ev == nil {
			if e != nil {
				s.fail(w, e)
			}
			return
		}
		text.WriteString(ev.text)
		if ev.tok != nil && req.Logprobs {
			lps = append(lps, s.tokenLogprob(ev.tok))
		}
		if ev.done {
			choice := chatChoice{Message: assistantMessage{Role: "assistant", Content: text.String()}, FinishReason: ev.finish}
			if req.Logprobs {
				choice.Logprobs = &chatLogprobs{Content: lps, Refusal: []tokenLogprob{}}
				if lps == nil {
					choice.Logprobs.Content = []tokenLogprob{}
				}
			}
			writeJSON(w, chatCompletion{
				ID: id, Object: "chat.completion", Created: created, Model: req.Model,
				Choices: []chatChoice{choice},
				Usage:   &usage{PromptTokens: len(j.prompt), CompletionTokens: ev.ntok, TotalTokens: len(j.prompt) + ev.ntok},
			})
			return
		}
	}
}

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (e *sse) data(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return e.rc.Flush()
}

func (e *sse) done() {
	fmt.Fprint(e.w, "data: [DONE]\n\n")
	e.rc.Flush()
}

// fail ends a stream with an error event (the status line has gone out).
func (e *sse) fail(he *httpError) {
	if he == nil {
		return // the client left
	}
	code := he.code
	e.data(errorBody{Error: apiError{Message: he.msg, Type: he.typ, Code: &code}})
}

func (s *Server) streamChat(ctx context.Context, w http.ResponseWriter, j *job, req chatRequest, id string, created int64) {
	out := startSSE(w)
	chunk := func(c chunkChoice, u *usage) chatChunk {
		ch := chatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.Model, Choices: []chunkChoice{c}, Usage: u}
		if u != nil {
			ch.Choices = []chunkChoice{}
		}
		return ch
	}
	empty := ""
	if out.data(chunk(chunkChoice{Delta: chunkDelta{Role: "assistant", Content: &empty}}, nil)) != nil {
		return
	}
	for {
		ev, e := s.next(ctx, j)
		if ev == nil {
			out.fail(e)
			return
		}
		if ev.text != "" || (ev.tok != nil && req.Logprobs) {
			text := ev.text
			c := chunkChoice{Delta: chunkDelta{Content: &text}}
			if ev.tok != nil && req.Logprobs {
				c.Logprobs = &chatLogprobs{Content: []tokenLogprob{s.tokenLogprob(ev.tok)}, Refusal: []tokenLogprob{}}
			}
			if out.data(chunk(c, nil)) != nil {
				return
			}
		}
		if ev.done {
			finish := ev.finish
			if out.data(chunk(chunkChoice{FinishReason: &finish}, nil)) != nil {
				return
			}
			if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
				u := &usage{PromptTokens: len(j.prompt), CompletionTokens: ev.ntok, TotalTokens: len(j.prompt) + ev.ntok}
				if out.data(chunk(chunkChoice{}, u)) != nil {
					return
				}
			}
			out.done()
			return
		}
	}
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if e := decode(r, &req); e != nil {
		s.fail(w, e)
		return
	}
	if req.Prompt == nil {
		s.fail(w, badRequest("missing_prompt", "prompt is required"))
		return
	}
	if req.Echo {
		s.fail(w, badRequest("invalid_echo", "echo is not supported"))
		return
	}
	topN := -1
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > 20 {
			s.fail(w, badRequest("invalid_logprobs", "logprobs %d is outside [0, 20]", *req.Logprobs))
			return
		}
		topN = *req.Logprobs
	}
	if req.Model != "" && req.Model != s.opt.Name {
		if _, ok := s.opt.Adapters[req.Model]; !ok {
			s.fail(w, &httpError{http.StatusNotFound, "invalid_request_error", "model_not_found", fmt.Sprintf("the model %q does not exist", req.Model)})
			return
		}
	}
	promptText, prompt := req.Prompt.text, req.Prompt.tokens
	if prompt != nil {
		for i, id := range prompt {
			if id < 0 || id >= s.tok.VocabSize() {
				s.fail(w, badRequest("invalid_prompt", "prompt[%d]: token id %d outside the vocabulary of %d", i, id, s.tok.VocabSize()))
				return
			}
		}
		text, err := s.tok.Decode(prompt)
		if err != nil {
			s.fail(w, badRequest("invalid_prompt", "decode prompt: %v", err))
			return
		}
		promptText = text
	} else {
		var e *httpError
		if prompt, e = s.encode(promptText, tokenizer.EncodeOptions{AddBOS: s.tok.AddBOSDefault()}); e != nil {
			s.fail(w, e)
			return
		}
	}
	j, e := s.newJob(req.samplingParams, prompt)
	if e != nil {
		s.fail(w, e)
		return
	}
	j.logprobs, j.topN = topN >= 0, max(topN, 0)
	ctx, cancel := context.WithTimeout(r.Context(), s.opt.Timeout)
	defer cancel()
	if e := s.submit(ctx, j); e != nil {
		s.fail(w, e)
		return
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	offset := len(promptText)
	// appendLP adds one token to the legacy logprobs object.
	appendLP := func(lp *legacyLogprobs, ti *tokenInfo) {
		b := s.tok.TokenBytes(ti.id)
		lp.Tokens = append(lp.Tokens, b)
		lp.TokenLogprobs = append(lp.TokenLogprobs, finiteLogprob(ti.logprob))
		lp.TextOffset = append(lp.TextOffset, offset)
		offset += len(b)
		if topN > 0 {
			m := make(map[string]float64, len(ti.top))
			for _, t := range ti.top {
				m[s.tok.TokenBytes(t.id)] = finiteLogprob(t.logprob)
			}
			lp.TopLogprobs = append(lp.TopLogprobs, m)
		}
	}
	newLP := func() *legacyLogprobs {
		return &legacyLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TextOffset: []int{}}
	}
	if req.Stream {
		out := startSSE(w)
		chunk := func(c completionChoice, u *usage) completion {
			ch := completion{ID: id, Object: "text_completion", Created: created, Model: req.Model, Choices: []completionChoice{c}, Usage: u}
			if u != nil {
				ch.Choices = []completionChoice{}
			}
			return ch
		}
		for {
			ev, e := s.next(ctx, j)
			if ev == nil {
				out.fail(e)
				return
			}
			if ev.text != "" || (ev.tok != nil && j.logprobs) {
				c := completionChoice{Text: ev.text}
				if ev.tok != nil && j.logprobs {
					c.Logprobs = newLP()
					appendLP(c.Logprobs, ev.tok)
				}
				if out.data(chunk(c, nil)) != nil {
					return
				}
			}
			if ev.done {
				finish := ev.finish
				if out.data(chunk(completionChoice{FinishReason: &finish}, nil)) != nil {
					return
				}
				if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
					u := &usage{PromptTokens: len(j.prompt), CompletionTokens: ev.ntok, TotalTokens: len(j.prompt) + ev.ntok}
					if out.data(chunk(completionChoice{}, u)) != nil {
						return
					}
				}
				out.done()
				return
			}
		}
	}
	var text strings.Builder
	var lp *legacyLogprobs
	if j.logprobs {
		lp = newLP()
	}
	for {
		ev, e := s.next(ctx, j)
		if ev == nil {
			if e != nil {
				s.fail(w, e)
			}
			return
		}
		text.WriteString(ev.text)
		if ev.tok != nil && lp != nil {
			appendLP(lp, ev.tok)
		}
		if ev.done {
			finish := ev.finish
			writeJSON(w, completion{
				ID: id, Object: "text_completion", Created: created, Model: req.Model,
				Choices: []completionChoice{{Text: text.String(), Logprobs: lp, FinishReason: &finish}},
				Usage:   &usage{PromptTokens: len(j.prompt), CompletionTokens: ev.ntok, TotalTokens: len(j.prompt) + ev.ntok},
			})
			return
		}
	}
}

func (s *Server) modelObject(name string) modelObject {
	mo := modelObject{ID: name, Object: "model", Created: s.created, OwnedBy: "usersim"}
	if name != s.opt.Name {
		mo.Parent = s.opt.Name
	}
	return mo
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	list := modelList{Object: "list", Data: []modelObject{}}
	for _, n := range s.Models() {
		list.Data = append(list.Data, s.modelObject(n))
	}
	writeJSON(w, list)
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("id")
	if _, ok := s.opt.Adapters[name]; !ok && name != s.opt.Name {
		s.fail(w, &httpError{http.StatusNotFound, "invalid_request_error", "model_not_found", "the model " + strconv.Quote(name) + " does not exist"})
		return
	}
	writeJSON(w, s.modelObject(name))
}
