package llmdistill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
)

// Config configures the LLM distiller. Client and Model are required; the
// other zero fields take their defaults.
type Config struct {
	// Client sends the requests. Give it a Cache to make runs resumable
	// (required by Round) and a Usage accounting to count tokens and cost.
	Client *llm.Client
	// Model is the model name the server knows.
	Model string
	// Temperature is sent with every request (default 0); a negative one
	// is not sent (models that accept only their default, e.g. OpenAI's
	// reasoning models).
	Temperature float64
	// MaxCompletionTokens sends the bound as max_completion_tokens (OpenAI's
	// newer models) instead of max_tokens (vLLM, Ollama, llama.cpp).
	MaxCompletionTokens bool
	// Seed, when set, is sent with every request.
	Seed *int64
	// MaxTokens bounds one answer; default 4096. An answer cut off at the
	// bound is asked for again with twice the bound, up to MaxTokensLimit
	// (default 4×MaxTokens); this counts as a repair.
	MaxTokens, MaxTokensLimit int
	// BatchSize is the number of ratings per request; default 10 (the
	// paper's "at most 10").
	BatchSize int
	// MaxWords is the word cap of a profile (default 2000, as the paper);
	// a user whose profile exceeds it fails with ErrProfileTooLong.
	// Negative: no cap.
	MaxWords int
	// MaxRepairs bounds the further requests after an invalid or truncated
	// answer to one batch; default 2, negative: none.
	MaxRepairs int
	// Concurrency is the number of users distilled at once; default 4.
	// (The client's MaxConcurrency bounds the requests in flight too.)
	Concurrency int
	// ResponseFormat is how the answer's shape is asked for: "json_schema"
	// (default: the schema in the response_format, strict), "json_object"
	// or "none" (prompt only; every answer is still validated).
	ResponseFormat string
	// PromptDir holds templates that replace the embedded ones (see
	// WriteDefaultPrompts); empty means the embedded ones.
	PromptDir string
	// SkipFailed leaves out users whose distillation fails (profile over the
	// cap, no valid answer after the repairs), as the paper drops profiles
	// over 2,000 words, logging each; by default Distill returns the other
	// users' memories together with a *FailedUsersError.
	SkipFailed bool
	// Population is the population of the trait cut-offs (default
	// memory.PopulationProfiled: the users distilled).
	Population memory.Population
	// Progress, when set, is called as batches complete (including batches
	// answered from the cache) with the batches done and the total.
	Progress func(done, total int)
	// Logger receives per-user warnings; nil means slog.Default().
	Logger *slog.Logger
}

// Distiller is the paper's LLM distiller with hierarchical self-reflection.
// It implements memory.Distiller.
type Distiller struct {
	cfg Config
	p   *prompts
}

var _ memory.Distiller = (*Distiller)(nil)

// New checks cfg, fills its defaults and loads the prompt templates.
func New(cfg Config) (*Distiller, error) {
	if cfg.Client == nil {
		return nil, errors.New("llmdistill: no client")
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("llmdistill: no model")
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 4096
	}
	if cfg.MaxTokensLimit < cfg.MaxTokens {
		cfg.MaxTokensLimit = 4 * cfg.MaxTokens
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10
	}
	if cfg.MaxWords == 0 {
		cfg.MaxWords = 2000
	}
	if cfg.MaxRepairs == 0 {
		cfg.MaxRepairs = 2
	} else if cfg.MaxRepairs < 0 {
		cfg.MaxRepairs = 0
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	switch cfg.ResponseFormat {
	case "":
		cfg.ResponseFormat = "json_schema"
	case "json_schema", "json_object", "none":
	default:
		return nil, fmt.Errorf("llmdistill: response format %q: want json_schema, json_object or none", cfg.ResponseFormat)
	}
	if cfg.Population == "" {
		cfg.Population = memory.PopulationProfiled
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p, err := loadPrompts(cfg.PromptDir)
	if err != nil {
		return nil, fmt.Errorf("llmdistill: %w", err)
	}
	return &Distiller{cfg: cfg, p: p}, nil
}

// Name is what profiles record as their distiller: "llm:MODEL".
func (d *Distiller) Name() string { return "llm:" + d.cfg.Model }

// Options are the settings that shape the output, for a workspace manifest
// (a change means the memories must be redone). The prompts enter as a hash.
func (d *Distiller) Options() any {
	return struct {
		Model          string            `json:"model"`
		Temperature    float64           `json:"temperature"`
		MaxCompletion  bool              `json:"max_completion_tokens,omitempty"`
		Seed           *int64            `json:"seed,omitempty"`
		MaxTokens      int               `json:"max_tokens"`
		BatchSize      int               `json:"batch_size"`
		MaxWords       int               `json:"max_words"`
		MaxRepairs     int               `json:"max_repairs"`
		ResponseFormat string            `json:"response_format"`
		Prompts        string            `json:"prompts"`
		Population     memory.Population `json:"population"`
		SkipFailed     bool              `json:"skip_failed,omitempty"`
	}{d.cfg.Model, d.cfg.Temperature, d.cfg.MaxCompletionTokens, d.cfg.Seed, d.cfg.MaxTokens, d.cfg.BatchSize, d.cfg.MaxWords,
		d.cfg.MaxRepairs, d.cfg.ResponseFormat, d.p.hash, d.cfg.Population, d.cfg.SkipFailed}
}

// Errors a UserError wraps.
var (
	// ErrProfileTooLong: a revised profile exceeds Config.MaxWords.
	ErrProfileTooLong = errors.New("profile over the word cap")
	// ErrInvalidAnswer: no valid answer to a batch after the repairs.
	ErrInvalidAnswer = errors.New("no valid answer")
	// ErrNoHistory: the user has no training ratings.
	ErrNoHistory = errors.New("no training ratings")
)

// UserError is the failure of one user's distillation.
type UserError struct {
	User  string // source user ID
	Batch int    // 0-based batch index; -1 when not tied to a batch
	Err   error
}

func (e *UserError) Error() string {
	if e.Batch < 0 {
		return fmt.Sprintf("user %s: %v", e.User, e.Err)
	}
	return fmt.Sprintf("user %s, batch %d: %v", e.User, e.Batch+1, e.Err)
}

func (e *UserError) Unwrap() error { return e.Err }

// FailedUsersError lists the users whose distillation failed; the memories
// returned with it are those of the other users.
type FailedUsersError struct {
	Users []*UserError
}

func (e *FailedUsersError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "llm distiller: %d user(s) failed", len(e.Users))
	for i, u := range e.Users {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Users)-5)
			break
		}
		b.WriteString("; ")
		b.WriteString(u.Error())
	}
	return b.String()
}

func (e *FailedUsersError) Unwrap() []error {
	out := make([]error, len(e.Users))
	for i, u := range e.Users {
		out[i] = u
	}
	return out
}

// job is one distillation's shared, read-only state.
type job struct {
	ds    *dataset.Dataset
	st    *memory.Stats
	cut   memory.Cutoffs
	users []int32
	total int // batches over all users
}

func (d *Distiller) prepare(ds *dataset.Dataset, sp *split.Split, users []int32) (*job, error) {
	if users == nil {
		users = sp.Users
	}
	// Only the training rows reach the statistics and thus the prompts.
	st, err := memory.NewStats(ds, sp.Train, memory.StatsOptions{Population: d.cfg.Population})
	if err != nil {
		return nil, fmt.Errorf("llm distiller: %w", err)
	}
	pop := users
	if d.cfg.Population == memory.PopulationAll {
		pop = st.UsersWithTraining()
	}
	j := &job{ds: ds, st: st, cut: st.Cutoffs(d.cfg.Population, pop), users: users}
	for _, u := range users {
		if u < 0 || int(u) >= ds.NumUsers() {
			return nil, fmt.Errorf("llm distiller: user index %d out of range", u)
		}
		n := len(st.History(u))
		j.total += (n + d.cfg.BatchSize - 1) / d.cfg.BatchSize
	}
	return j, nil
}

// asker answers one request of a user's walk; errPending means the answer
// is not available yet (batch mode).
type asker func(ctx context.Context, customID string, req llm.ChatRequest) (*llm.ChatResponse, error)

var errPending = errors.New("answer pending")

// userResult is one user's outcome.
type userResult struct {
	p   *memory.Profile
	ms  []memory.Interaction
	err error
}

// run walks every user with ask, Concurrency at a time. An error other than
// a *UserError or errPending stops the run.
func (d *Distiller) run(ctx context.Context, j *job, ask asker) ([]userResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	res := make([]userResult, len(j.users))
	var (
		next atomic.Int64
		done atomic.Int64
		pmu  sync.Mutex
		wg   sync.WaitGroup
	)
	progress := func() {
		n := int(done.Add(1))
		if d.cfg.Progress != nil {
			pmu.Lock()
			d.cfg.Progress(n, j.total)
			pmu.Unlock()
		}
	}
	for range min(d.cfg.Concurrency, len(j.users)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(j.users) || ctx.Err() != nil {
					return
				}
				p, ms, err := d.walk(ctx, j, j.users[i], ask, progress)
				res[i] = userResult{p, ms, err}
				var ue *UserError
				if err != nil && !errors.As(err, &ue) && !errors.Is(err, errPending) {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// Distill implements memory.Distiller: it reads each user's training
// history oldest first in batches of Config.BatchSize and, per batch, asks
// the model for a reason per rating, a reflection and the revised profile.
func (d *Distiller) Distill(ctx context.Context, ds *dataset.Dataset, sp *split.Split, users []int32) ([]memory.Profile, []memory.Interaction, error) {
	j, err := d.prepare(ds, sp, users)
	if err != nil {
		return nil, nil, err
	}
	res, err := d.run(ctx, j, func(ctx context.Context, _ string, req llm.ChatRequest) (*llm.ChatResponse, error) {
		return d.cfg.Client.Chat(ctx, req)
	})
	if err != nil {
		return nil, nil, err
	}
	var (
		ps     []memory.Profile
		ms     []memory.Interaction
		failed []*UserError
	)
	for _, r := range res {
		var ue *UserError
		switch {
		case r.err == nil:
			ps = append(ps, *r.p)
			ms = append(ms, r.ms...)
		case errors.As(r.err, &ue):
			failed = append(failed, ue)
			d.cfg.Logger.Warn("llm distiller: user failed", "user", ue.User, "err", ue.Err)
		default:
			return nil, nil, r.err
		}
	}
	if len(failed) > 0 && !d.cfg.SkipFailed {
		return ps, ms, &FailedUsersError{Users: failed}
	}
	return ps, ms, nil
}

// request builds the chat request of one attempt.
func (d *Distiller) request(msgs []llm.Message, maxTokens int) llm.ChatRequest {
	req := llm.ChatRequest{Model: d.cfg.Model, Messages: msgs, Seed: d.cfg.Seed}
	if d.cfg.Temperature >= 0 {
		req.Temperature = llm.Ptr(d.cfg.Temperature)
	}
	if d.cfg.MaxCompletionTokens {
		req.MaxCompletionTokens = maxTokens
	} else {
		req.MaxTokens = maxTokens
	}
	switch d.cfg.ResponseFormat {
	case "json_schema":
		req.ResponseFormat = &llm.ResponseFormat{Type: "json_schema", JSONSchema: &llm.JSONSchema{
			Name: "profile_update", Schema: json.RawMessage(answerSchema), Strict: true}}
	case "json_object":
		req.ResponseFormat = &llm.ResponseFormat{Type: "json_object"}
	}
	return req
}

// userSpecific reports whether a server's refusal of a request may concern
// that request alone (a prompt over the context length: 400, 413, 422) rather
// than every request (401, 403, 404: key or model wrong), so that it fails
// one user rather than the run.
func userSpecific(status int) bool {
	return status == 400 || status == 413 || status == 422
}

func formatRating(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// walk distils one user, batch by batch.
func (d *Distiller) walk(ctx context.Context, j *job, u int32, ask asker, progress func()) (*memory.Profile, []memory.Interaction, error) {
	ds, st := j.ds, j.st
	uid := ds.Users[u].ID
	hist := st.History(u)
	if len(hist) == 0 {
		return nil, nil, &UserError{User: uid, Batch: -1, Err: ErrNoHistory}
	}
	bs := d.cfg.BatchSize
	nb := (len(hist) + bs - 1) / bs
	traits := st.Traits(u, j.cut)
	system, err := d.p.render(SystemTemplate, SystemData{formatRating(ds.Scale.Min), formatRating(ds.Scale.Max)})
	if err != nil {
		return nil, nil, err
	}
	prof := &memory.Profile{User: uid, Traits: traits, MeanRating: st.UserMean[u], NumRatings: len(hist), Distiller: d.Name()}
	ms := make([]memory.Interaction, 0, len(hist))
	for b := range nb {
		rows := hist[b*bs : min((b+1)*bs, len(hist))]
		data := BatchData{User: uid, First: b == 0, Profile: prof.Description, Read: b * bs, Number: b + 1, Batches: nb,
			Traits: traits, HasTraits: true, MaxWords: d.cfg.MaxWords}
		if d.cfg.MaxWords < 0 {
			data.MaxWords = 2000
		}
		ratings := make([]float64, len(rows))
		for k, r := range rows {
			it := ds.Items[ds.Ratings.Item[r]]
			genres := strings.Join(it.Genres, ", ")
			if genres == "" {
				genres = "unknown"
			}
			i := ds.Ratings.Item[r]
			ratings[k] = float64(ds.Ratings.Value[r])
			data.Items = append(data.Items, ItemLine{ID: it.ID, Title: it.DisplayTitle(), Year: it.Year, Genres: genres,
				Avg: st.ItemMean[i], NumRatings: int(st.ItemCount[i]), Rating: formatRating(ratings[k])})
		}
		prompt, err := d.p.render(BatchTemplate, data)
		if err != nil {
			return nil, nil, err
		}
		base := []llm.Message{{Role: "system", Content: system}, {Role: "user", Content: prompt}}
		msgs, maxTok := base, d.cfg.MaxTokens
		var res *batchResult
		for attempt := 0; ; attempt++ {
			req := d.request(msgs, maxTok)
			key, err := llm.ChatRequestKey(req)
			if err != nil {
				return nil, nil, err
			}
			resp, err := ask(ctx, fmt.Sprintf("u%s-b%d-a%d-%s", uid, b, attempt, key[:12]), req)
			var apiErr *llm.APIError
			if errors.As(err, &apiErr) && userSpecific(apiErr.StatusCode) {
				// e.g. this user's prompt is over the model's context length
				return nil, nil, &UserError{User: uid, Batch: b, Err: err}
			}
			if err != nil {
				return nil, nil, err
			}
			var problems []string
			truncated := false
			switch {
			case len(resp.Choices) == 0:
				problems = []string{"the server returned no choices"}
			case resp.Choices[0].Message.Refusal != "":
				problems = []string{"the model refused: " + resp.Choices[0].Message.Refusal}
			case resp.Choices[0].FinishReason == "length":
				truncated = true
				problems = []string{fmt.Sprintf("the answer was cut off at max_tokens = %d", maxTok)}
			default:
				res, problems = validate(resp.Choices[0].Message.Content, &data, ratings)
			}
			if res != nil {
				break
			}
			if attempt >= d.cfg.MaxRepairs {
				return nil, nil, &UserError{User: uid, Batch: b, Err: fmt.Errorf("%w after %d attempt(s): %s", ErrInvalidAnswer, attempt+1, strings.Join(problems, "; "))}
			}
			d.cfg.Logger.Debug("llm distiller: repairing", "user", uid, "batch", b, "attempt", attempt+1, "problems", problems)
			if truncated {
				maxTok = min(2*maxTok, d.cfg.MaxTokensLimit)
				note, err := d.p.render(TruncatedTemplate, data)
				if err != nil {
					return nil, nil, err
				}
				msgs = slices.Concat(base, []llm.Message{{Role: "user", Content: note}})
				continue
			}
			note, err := d.p.render(RepairTemplate, RepairData{BatchData: data, Errors: problems})
			if err != nil {
				return nil, nil, err
			}
			msgs = slices.Concat(base, []llm.Message{{Role: "assistant", Content: resp.Choices[0].Message.Content}, {Role: "user", Content: note}})
		}
		if n := words(res.Profile); d.cfg.MaxWords > 0 && n > d.cfg.MaxWords {
			return nil, nil, &UserError{User: uid, Batch: b, Err: fmt.Errorf("%w: the revised profile has %d words, the cap is %d", ErrProfileTooLong, n, d.cfg.MaxWords)}
		}
		for k, r := range rows {
			m := memory.Interaction{User: uid, Item: data.Items[k].ID, Rating: ratings[k], Order: b*bs + k, Reason: res.Reasons[k]}
			if ds.HasTime() {
				m.Time = ds.Ratings.Time[r]
			}
			ms = append(ms, m)
		}
		prof.Description = res.Profile
		prof.Revisions = append(prof.Revisions, memory.Revision{Batch: b, Description: res.Profile, Reflection: res.Reflection})
		progress()
	}
	return prof, ms, nil
}

// RoundStats says what one batch round did.
type RoundStats struct {
	Users    int // users in the job
	Complete int // users whose distillation is complete
	Written  int // requests written to the batch file: one per pending user
	Failed   []*UserError
	// Imported counts results stored in the cache; ResultErrors the
	// results that were errors (their users stay pending); Unmatched the
	// results that matched no pending request.
	Imported     int
	ResultErrors []string
	Unmatched    int
}

// Round runs one round of the batch workflow, for jobs too big for live
// requests. Reflection is sequential per user (batch k's prompt holds the
// profile batch k−1 produced), so a batch file cannot hold a user's whole
// history: instead each round walks every user as far as the cache
// allows, without sending anything, and writes each unfinished user's next
// request to w — normally batch k of every user in round k, while a repair
// takes a round of its own. Run the file with `vllm run-batch` or the
// OpenAI Batch API and pass the output file's results (llm.ReadBatchResults)
// to the next Round, which stores those that answer a pending request in
// the cache (a result is matched by custom_id, which embeds the request's
// hash), walks on, and writes the next round. When Written is 0 every user
// is complete (or failed) and Distill runs from the cache alone.
//
// results and w may each be nil (import only; count only). Round needs the
// client's Cache.
func (d *Distiller) Round(ctx context.Context, ds *dataset.Dataset, sp *split.Split, users []int32, results map[string]llm.BatchResult, w io.Writer) (RoundStats, error) {
	c := d.cfg.Client
	if c.Cache == nil {
		return RoundStats{}, errors.New("llm distiller: batch rounds need a cache (--llm-cache)")
	}
	j, err := d.prepare(ds, sp, users)
	if err != nil {
		return RoundStats{}, err
	}
	var (
		mu    sync.Mutex
		st    = RoundStats{Users: len(j.users)}
		used  = map[string]bool{}
		bw    *llm.BatchWriter
		toAdd []llm.BatchRequest
	)
	if w != nil {
		bw = llm.NewBatchWriter(w)
	}
	ask := func(ctx context.Context, cid string, req llm.ChatRequest) (*llm.ChatResponse, error) {
		if resp, ok, err := c.CachedChat(ctx, req); err != nil || ok {
			return resp, err
		}
		mu.Lock()
		defer mu.Unlock()
		if r, ok := results[cid]; ok {
			used[cid] = true
			body, err := r.Body()
			var resp llm.ChatResponse
			if err == nil {
				err = json.Unmarshal(body, &resp)
			}
			if err == nil {
				key, kerr := llm.ChatRequestKey(req)
				if kerr != nil {
					return nil, kerr
				}
				if err := c.Cache.Put(ctx, key, body); err != nil {
					return nil, fmt.Errorf("llm distiller: import %s: %w", cid, err)
				}
				if c.Usage != nil {
					c.Usage.Add(req.Model, resp.Usage, false)
				}
				st.Imported++
				return &resp, nil
			}
			st.ResultErrors = append(st.ResultErrors, fmt.Sprintf("%s: %v", cid, err))
		}
		if bw != nil {
			q, err := llm.NewBatchRequest(cid, llm.PathChat, req)
			if err != nil {
				return nil, err
			}
			toAdd = append(toAdd, q)
		}
		return nil, errPending
	}
	res, err := d.run(ctx, j, ask)
	if err != nil {
		return st, err
	}
	for _, r := range res {
		var ue *UserError
		switch {
		case r.err == nil:
			st.Complete++
		case errors.As(r.err, &ue):
			st.Failed = append(st.Failed, ue)
		}
	}
	// Write in the users' order, whatever order the workers finished in.
	order := make(map[string]int, len(j.users))
	for i, u := range j.users {
		order["u"+ds.Users[u].ID+"-"] = i
	}
	slices.SortStableFunc(toAdd, func(a, b llm.BatchRequest) int { return userOrder(order, a.CustomID) - userOrder(order, b.CustomID) })
	if bw != nil {
		for _, q := range toAdd {
			if err := bw.Add(q); err != nil {
				return st, err
			}
		}
		if err := bw.Flush(); err != nil {
			return st, err
		}
		st.Written = bw.Len()
	}
	for cid := range results {
		if !used[cid] {
			st.Unmatched++
		}
	}
	return st, nil
}

// userOrder finds the position of the user a custom_id belongs to.
func userOrder(order map[string]int, cid string) int {
	// custom_id is "u<ID>-b<k>-a<n>-<hash>"; user IDs may hold dashes, so
	// cut the last three parts off.
	s := cid
	for range 3 {
		i := strings.LastIndexByte(s, '-')
		if i < 0 {
			return len(order)
		}
		s = s[:i]
	}
	if p, ok := order[s+"-"]; ok {
		return p
	}
	return len(order)
}
