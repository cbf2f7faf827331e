package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/slm/chat"
	"github.com/usersim/usersim/train/raft"
)

// Defaults of Config.
const (
	DefaultGenerateTokens = 8
	DefaultExplainTokens  = 48
)

// Config configures a Pool of agents.
type Config struct {
	// Template applies a chat template (the base model's) to every prompt;
	// nil sends the plain prompt (system text, blank line, user text), as
	// the compact base and raft's plain-text training see it.
	Template *chat.Template
	// AnswerPrefix is written between the prompt and every answer. Empty
	// means the default: " " for plain prompts (raft's Example.Completion
	// is " 4"), nothing after a chat template's assistant header. Set it
	// to NoAnswerPrefix for none with plain prompts.
	AnswerPrefix string
	// Adapter names the adapter an agent runs with, from its user and
	// persona (-1 when the user has none); nil or "" means the bare base
	// (zero-shot prompting). See PersonaAdapters.
	Adapter func(user string, persona int) string
	// ChooseTemplate is the path of a Go text/template file replacing the
	// built-in slate prompt (choose.tmpl); it sees ChooseData.
	ChooseTemplate string
	// GenerateTokens bounds RateGenerate's answer (0:
	// DefaultGenerateTokens); ExplainTokens an explanation (0:
	// DefaultExplainTokens).
	GenerateTokens int
	ExplainTokens  int
}

// NoAnswerPrefix as Config.AnswerPrefix writes nothing before the answers.
const NoAnswerPrefix = "\x00"

// PersonaAdapters returns a Config.Adapter that names persona p's adapter
// fmt.Sprintf(format, p) ("persona-%d") and runs users without a persona on
// the bare base.
func PersonaAdapters(format string) func(user string, persona int) string {
	return func(_ string, p int) string {
		if p < 0 {
			return ""
		}
		return fmt.Sprintf(format, p)
	}
}

// Pool holds what the agents of one experiment share: the prompt builder
// (templates, statistics, profiles, memories), the backend and the
// configuration. It is safe for concurrent use.
type Pool struct {
	b       *raft.Builder
	in      raft.Inputs
	opt     raft.Options
	ret     *memory.Retriever
	backend Backend
	cfg     Config
	values  []float64
	answers []string // the scale's values as answer text, AnswerPrefix included
	prefix  string
	chooseT chooseTemplate
	mems    map[string][]memory.Interaction
	mu      sync.Mutex
	agents  map[string]*Agent
}

// NewPool prepares the agents of in's profiled users. opt are the prompt
// options the adapters were trained with (variant, templates, Ms only, top-k).
func NewPool(in raft.Inputs, opt raft.Options, backend Backend, cfg Config) (*Pool, error) {
	if in.Dataset == nil || in.Split == nil {
		return nil, errors.New("agent: pool needs a dataset and a split")
	}
	if backend == nil {
		return nil, errors.New("agent: pool needs a backend")
	}
	if in.Stats == nil {
		st, err := memory.NewStats(in.Dataset, in.Split.Train, memory.StatsOptions{})
		if err != nil {
			return nil, fmt.Errorf("agent: training statistics: %w", err)
		}
		in.Stats = st
	}
	if in.Embedder == nil {
		in.Embedder = memory.NewFeatureEmbedder(in.Stats, memory.FeatureOptions{})
	}
	b, err := raft.NewBuilder(in, opt)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	ct, err := loadChooseTemplate(cfg.ChooseTemplate)
	if err != nil {
		return nil, err
	}
	p := &Pool{
		b: b, in: in, opt: opt, ret: memory.NewRetriever(in.Dataset, in.Embedder), backend: backend, cfg: cfg,
		chooseT: ct, mems: memory.GroupByUser(in.Interactions), agents: map[string]*Agent{},
	}
	switch {
	case cfg.AnswerPrefix == NoAnswerPrefix:
	case cfg.AnswerPrefix != "":
		p.prefix = cfg.AnswerPrefix
	case cfg.Template == nil:
		p.prefix = " "
	}
	p.values = in.Dataset.Scale.Values()
	if len(p.values) == 0 {
		return nil, fmt.Errorf("agent: dataset scale %v has no values", in.Dataset.Scale)
	}
	for _, v := range p.values {
		p.answers = append(p.answers, p.prefix+raft.FormatRating(v))
	}
	return p, nil
}

// Builder returns the prompt builder the pool renders with.
func (p *Pool) Builder() *raft.Builder { return p.b }

// Backend returns the pool's backend.
func (p *Pool) Backend() Backend { return p.backend }

// Agent returns the agent of user (source ID), creating it on first use.
// The same agent (and its remembered interactions) is returned every time.
func (p *Pool) Agent(user string) (*Agent, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.agents[user]; a != nil {
		return a, nil
	}
	// PromptData checks the user has a profile; any item will do.
	if len(p.in.Dataset.Items) == 0 {
		return nil, errors.New("agent: the dataset has no items")
	}
	if _, err := p.b.PromptData(user, p.in.Dataset.Items[0].ID); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	persona := -1
	if v, ok := p.in.Personas[user]; ok {
		persona = v
	}
	adapter := ""
	if p.cfg.Adapter != nil {
		adapter = p.cfg.Adapter(user, persona)
	}
	a := &Agent{pool: p, User: user, Persona: persona, Adapter: adapter, mems: slices.Clone(p.mems[user])}
	p.agents[user] = a
	return a, nil
}

// Agent is one user's simulated self. Its methods are safe for concurrent
// use.
type Agent struct {
	pool *Pool
	// User is the source user ID, Persona the user's persona (-1: none),
	// Adapter the adapter it runs with ("" the bare base).
	User    string
	Persona int
	Adapter string

	mu       sync.Mutex
	mems     []memory.Interaction
	recalled bool // Remember was called: retrieve among mems here
}

// Rating is an agent's answer to "how would you rate this item?".
type Rating struct {
	// Values are the scale's values, lowest first; Dist their
	// probabilities (summing to 1), renormalised over the scale.
	Values []float64 `json:"values"`
	Dist   []float64 `json:"dist"`
	// Expected is Σ v·p; Argmax the most probable value (the lower on a
	// tie). For RateGenerate both are the parsed answer (NaN if invalid).
	Expected float64 `json:"expected"`
	Argmax   float64 `json:"argmax"`
	// Mass is the probability the model gave the scale's values before
	// renormalising (1 for RateGenerate's valid answers).
	Mass float64 `json:"mass"`
	// Valid says an answer was read: some mass on the scale, or a strictly
	// parsed generated answer.
	Valid bool `json:"valid"`
	// Raw is the generated text (RateGenerate, Explain).
	Raw string `json:"raw,omitempty"`
}

// PromptData returns the template data of the agent's rating prompt for item
// (source ID): raft's query data, with the memory retrieved among the
// agent's memories once it has remembered new interactions.
func (a *Agent) PromptData(item string) (*raft.PromptData, error) {
	pd, err := a.pool.b.PromptData(a.User, item)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.mu.Lock()
	recalled := a.recalled
	a.mu.Unlock()
	if !recalled || !pd.UseMemory {
		return pd, nil
	}
	got, err := a.Retrieve(item)
	if err != nil {
		return nil, err
	}
	pd.Memories = pd.Memories[:0]
	for _, m := range got {
		md, err := a.pool.b.PromptData(a.User, m.Item)
		if err != nil {
			return nil, fmt.Errorf("agent: memory %q: %w", m.Item, err)
		}
		pd.Memories = append(pd.Memories, raft.MemoryData{Item: md.Target, Rating: raft.FormatRating(m.Rating), Reason: m.Reason, Score: m.Score})
	}
	return pd, nil
}

// Retrieve returns the agent's memories most similar to item, as the rating
// prompt quotes them (top-k of the prompt options; 1 by default).
func (a *Agent) Retrieve(item string) ([]memory.Scored, error) {
	i, ok := a.pool.in.Dataset.ItemIndex(item)
	if !ok {
		return nil, fmt.Errorf("agent: unknown item %q", item)
	}
	a.mu.Lock()
	mems := a.mems
	a.mu.Unlock()
	got, err := a.pool.ret.Retrieve(i, mems, cmpOr(a.pool.opt.TopK, 1))
	if err != nil {
		return nil, fmt.Errorf("agent: user %q: %w", a.User, err)
	}
	return got, nil
}

// Memories returns a copy of the agent's memories (Ml), oldest first.
func (a *Agent) Memories() []memory.Interaction {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.mems)
}

// Remember adds an interaction to the agent's memory (a new Ml entry after
// the last one): later prompts retrieve among the grown memory. The
// interaction's User must be the agent's (or empty), its item known and its
// rating on the scale; Order is set to the entry's position.
func (a *Agent) Remember(m memory.Interaction) error {
	if m.User != "" && m.User != a.User {
		return fmt.Errorf("agent: user %q cannot remember an interaction of %q", a.User, m.User)
	}
	if _, ok := a.pool.in.Dataset.ItemIndex(m.Item); !ok {
		return fmt.Errorf("agent: remember: unknown item %q", m.Item)
	}
	if !a.pool.in.Dataset.Scale.Valid(m.Rating) {
		return fmt.Errorf("agent: remember: rating %v is not on the scale %v", m.Rating, a.pool.in.Dataset.Scale)
	}
	m.User = a.User
	a.mu.Lock()
	defer a.mu.Unlock()
	m.Order = len(a.mems)
	a.mems = append(slices.Clip(a.mems), m)
	a.recalled = true
	return nil
}

// prompt renders pd as the backend's prompt for this agent.
func (a *Agent) prompt(pd *raft.PromptData) (Prompt, error) {
	msgs, plain, err := a.pool.b.Render(pd)
	if err != nil {
		return Prompt{}, fmt.Errorf("agent: render: %w", err)
	}
	return a.pool.render(a.Adapter, msgs, plain)
}

// render applies the chat template (if any) to msgs and marks the system
// text as the shared prefix.
func (p *Pool) render(adapter string, msgs []raft.Message, plain string) (Prompt, error) {
	sys := ""
	if len(msgs) > 0 && msgs[0].Role == "system" {
		sys = msgs[0].Content
	}
	cm := make([]chat.Message, len(msgs))
	for i, m := range msgs {
		cm[i] = chat.Message{Role: m.Role, Content: m.Content}
	}
	if p.cfg.Template == nil {
		pr := Prompt{Adapter: adapter, Text: plain, Messages: cm}
		if sys != "" && strings.HasPrefix(plain, sys) {
			pr.Prefix = len(sys)
		}
		return pr, nil
	}
	text, err := chat.Render(*p.cfg.Template, cm, true)
	if err != nil {
		return Prompt{}, fmt.Errorf("agent: chat template: %w", err)
	}
	pr := Prompt{Adapter: adapter, Text: text, Messages: cm}
	if sys != "" {
		if head, err := chat.Render(*p.cfg.Template, cm[:1], false); err == nil && strings.HasPrefix(text, head) {
			pr.Prefix = len(head)
		}
	}
	return pr, nil
}

// RatingPrompt returns the prompt the agent rates item with.
func (a *Agent) RatingPrompt(item string) (Prompt, error) {
	pd, err := a.PromptData(item)
	if err != nil {
		return Prompt{}, err
	}
	return a.prompt(pd)
}

// Rate reads the agent's rating of item (source ID) from the model's
// probabilities of the scale's values at the answer position.
func (a *Agent) Rate(ctx context.Context, item string) (Rating, error) {
	rs, err := a.RateMany(ctx, []string{item})
	if err != nil {
		return Rating{}, err
	}
	return rs[0], nil
}

// RateMany rates several items in one backend call.
func (a *Agent) RateMany(ctx context.Context, items []string) ([]Rating, error) {
	ps := make([]Prompt, len(items))
	for i, it := range items {
		p, err := a.RatingPrompt(it)
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return a.pool.scorePrompts(ctx, ps)
}

func (p *Pool) scorePrompts(ctx context.Context, ps []Prompt) ([]Rating, error) {
	lps, err := p.backend.Score(ctx, ps, p.answers)
	if err != nil {
		return nil, err
	}
	if len(lps) != len(ps) {
		return nil, fmt.Errorf("agent: backend scored %d of %d prompts", len(lps), len(ps))
	}
	out := make([]Rating, len(ps))
	for i, lp := range lps {
		if len(lp) != len(p.values) {
			return nil, fmt.Errorf("agent: backend scored %d of %d candidates", len(lp), len(p.values))
		}
		out[i] = RatingFromLogprobs(p.values, lp)
	}
	return out, nil
}

// RatingFromLogprobs builds a Rating from the log-probabilities of the
// scale's values (-Inf for a value with no probability).
func RatingFromLogprobs(values, lp []float64) Rating {
	r := Rating{Values: slices.Clone(values), Dist: make([]float64, len(values)), Expected: math.NaN(), Argmax: math.NaN()}
	lse := logSumExp(lp)
	if math.IsInf(lse, -1) || math.IsNaN(lse) {
		return r
	}
	r.Mass = math.Exp(lse)
	r.Valid = true
	r.Expected = 0
	best := -1
	for j, v := range lp {
		pj := math.Exp(v - lse)
		r.Dist[j] = pj
		r.Expected += values[j] * pj
		if best < 0 || pj > r.Dist[best] {
			best = j
		}
	}
	r.Argmax = values[best]
	return r
}

// RateGenerate lets the model answer freely (greedy, at most
// Config.GenerateTokens tokens) and parses the answer strictly with
// ParseRating: an invalid answer gives Valid false and NaN ratings, an
// unrelated response for URR.
func (a *Agent) RateGenerate(ctx context.Context, item string) (Rating, error) {
	pr, err := a.RatingPrompt(item)
	if err != nil {
		return Rating{}, err
	}
	text, err := a.pool.backend.Generate(ctx, pr, GenerateOptions{MaxTokens: cmpOr(a.pool.cfg.GenerateTokens, DefaultGenerateTokens)})
	if err != nil {
		return Rating{}, err
	}
	return a.pool.parsed(text), nil
}

func (p *Pool) parsed(text string) Rating {
	r := Rating{Values: slices.Clone(p.values), Dist: make([]float64, len(p.values)), Expected: math.NaN(), Argmax: math.NaN(), Raw: text}
	v, ok := ParseRating(text, p.in.Dataset.Scale)
	if !ok {
		return r
	}
	for j, x := range p.values {
		if x == v {
			r.Dist[j] = 1
		}
	}
	r.Expected, r.Argmax, r.Mass, r.Valid = v, v, 1, true
	return r
}

// Explanation is a rating with the agent's reason for it.
type Explanation struct {
	Rating Rating `json:"rating"`
	// Reason continues "... {rating} because": the agent's own words.
	Reason string `json:"reason"`
}

// Explain rates item (the distribution's argmax) and generates the reason:
// the prompt continued with the rating and " because", up to the end of the
// line or Config.ExplainTokens tokens.
func (a *Agent) Explain(ctx context.Context, item string) (Explanation, error) {
	pr, err := a.RatingPrompt(item)
	if err != nil {
		return Explanation{}, err
	}
	rs, err := a.pool.scorePrompts(ctx, []Prompt{pr})
	if err != nil {
		return Explanation{}, err
	}
	r := rs[0]
	if !r.Valid {
		return Explanation{Rating: r}, errors.New("agent: explain: the model gave the scale no probability")
	}
	pr.Assistant = raft.FormatRating(r.Argmax) + " because"
	pr.Text += a.pool.prefix + pr.Assistant
	text, err := a.pool.backend.Generate(ctx, pr, GenerateOptions{MaxTokens: cmpOr(a.pool.cfg.ExplainTokens, DefaultExplainTokens), Stop: []string{"\n"}})
	if err != nil {
		return Explanation{}, err
	}
	r.Raw = text
	return Explanation{Rating: r, Reason: strings.TrimSpace(text)}, nil
}
