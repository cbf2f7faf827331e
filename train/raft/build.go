package raft

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/memory"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Example is one RAFT example: a rating prompt and its answer.
type Example struct {
	User    string `json:"user"`    // source user ID
	Item    string `json:"item"`    // source item ID of the target
	Persona int    `json:"persona"` // the user's persona; -1 when no assignments were given
	// Messages are the prompt as chat turns: the system text and the user
	// text. The answer is not among them (see ChatMessages).
	Messages []Message `json:"messages"`
	// Prompt is the rendered prompt without any chat template: the system
	// text, a blank line and the user text, ending in "RATING:".
	Prompt string `json:"prompt"`
	// Answer is the rating as scale text ("4", "3.5"); empty for a query
	// whose rating is unknown.
	Answer string  `json:"answer,omitempty"`
	Rating float64 `json:"rating,omitempty"`
	// Order is the target's position in the user's training history
	// (-1 for a query outside it).
	Order int `json:"order"`
}

// Completion is the text that follows Prompt in plain-text training: a
// space and the answer (" 4"), as a byte-level BPE with digits split and an
// optional leading space tokenizes it.
func (e *Example) Completion() string { return " " + e.Answer }

// ChatMessages returns Messages followed by the assistant's answer.
func (e *Example) ChatMessages() []Message {
	out := make([]Message, len(e.Messages), len(e.Messages)+1)
	copy(out, e.Messages)
	return append(out, Message{Role: "assistant", Content: e.Answer})
}

// Estimator gives a collaborative estimate of a rating, the anchor of the
// default variant. eval/baseline's predictors satisfy it.
type Estimator interface {
	Predict(user, item int32) float64
}

// Inputs are the artefacts the examples are built from.
type Inputs struct {
	Dataset *dataset.Dataset
	// Split gives the training rows; only Split.Train is read.
	Split *split.Split
	// Stats are the training split's statistics; computed from
	// Split.Train with default options when nil. They must come from
	// Split.Train: the item averages in every prompt are read from them.
	Stats *memory.Stats
	// Profiles (Ms) and Interactions (Ml) from the distiller. Every
	// profiled user's interactions must be its whole training history in
	// order (Order 0..n-1, as the distillers write them).
	Profiles     []memory.Profile
	Interactions []memory.Interaction
	// Personas maps user IDs to personas (persona.Assignments.Personas);
	// optional.
	Personas map[string]int
	// Embedder embeds items for retrieval; default the memory package's
	// FeatureEmbedder with default options.
	Embedder memory.ItemEmbedder
	// Anchor, when set, gives PromptData.Anchor. For training examples it
	// should not have seen the rating it anchors (fit it out of fold);
	// the builder cannot check that.
	Anchor Estimator
}

// Options configure the prompts and which examples are built.
type Options struct {
	// Variant picks the built-in templates; default VariantPaper.
	Variant Variant
	// TemplateDir overrides built-in templates with the *.tmpl files in it
	// (see LoadTemplates).
	TemplateDir string
	// Templates, when set, is used instead of Variant and TemplateDir.
	Templates *Templates
	// NoMemory builds Ms-only prompts: no memory section at all.
	NoMemory bool
	// NoKeyFacts leaves the key-facts line out of the default variant.
	NoKeyFacts bool
	// TopK is how many memories are retrieved; default 1, as the paper.
	TopK int
	// Users restricts the examples to these user IDs; nil means every
	// profiled user.
	Users []string
	// Personas restricts the examples to users of these personas; nil
	// means all. Needs Inputs.Personas.
	Personas []int
}

// Builder renders RAFT examples and inference queries. It is safe for
// concurrent use once built.
type Builder struct {
	d        *dataset.Dataset
	st       *memory.Stats
	ret      *memory.Retriever
	tmpl     *Templates
	opt      Options
	scale    ScaleData
	anchor   Estimator
	personas map[string]int
	users    []int32 // dense indices of the users to build, in Profiles order
	profiles map[int32]*memory.Profile
	mems     map[int32][]memory.Interaction // by Order
}

// NewBuilder checks the inputs and prepares the templates, the retriever and
// each user's memories.
func NewBuilder(in Inputs, opt Options) (*Builder, error) {
	if in.Dataset == nil {
		return nil, fmt.Errorf("raft: no dataset")
	}
	if in.Split == nil {
		return nil, fmt.Errorf("raft: no split")
	}
	d := in.Dataset
	st := in.Stats
	if st == nil {
		var err error
		if st, err = memory.NewStats(d, in.Split.Train, memory.StatsOptions{}); err != nil {
			return nil, fmt.Errorf("raft: training statistics: %w", err)
		}
	}
	if st.NumTrain != len(in.Split.Train) {
		return nil, fmt.Errorf("raft: statistics cover %d training rows, the split has %d", st.NumTrain, len(in.Split.Train))
	}
	tm := opt.Templates
	if tm == nil {
		var err error
		if tm, err = LoadTemplates(opt.Variant, opt.TemplateDir); err != nil {
			return nil, err
		}
	}
	if opt.TopK == 0 {
		opt.TopK = 1
	}
	if opt.TopK < 0 {
		return nil, fmt.Errorf("raft: TopK %d is negative", opt.TopK)
	}
	if len(opt.Personas) > 0 && in.Personas == nil {
		return nil, fmt.Errorf("raft: options select personas %v but no persona assignments were given", opt.Personas)
	}
	emb := in.Embedder
	if emb == nil {
		emb = memory.NewFeatureEmbedder(st, memory.FeatureOptions{})
	}
	b := &Builder{
		d: d, st: st, ret: memory.NewRetriever(d, emb), tmpl: tm, opt: opt,
		scale: scaleData(d.Scale), anchor: in.Anchor, personas: in.Personas,
		profiles: make(map[int32]*memory.Profile, len(in.Profiles)),
		mems:     make(map[int32][]memory.Interaction, len(in.Profiles)),
	}
	var wantUser map[string]bool
	if opt.Users != nil {
		wantUser = make(map[string]bool, len(opt.Users))
		for _, u := range opt.Users {
			wantUser[u] = true
		}
	}
	for i := range in.Profiles {
		p := &in.Profiles[i]
		u, ok := d.UserIndex(p.User)
		if !ok {
			return nil, fmt.Errorf("raft: profile %d names unknown user %q", i, p.User)
		}
		if _, dup := b.profiles[u]; dup {
			return nil, fmt.Errorf("raft: user %q has two profiles", p.User)
		}
		b.profiles[u] = p
		if wantUser != nil && !wantUser[p.User] {
			continue
		}
		if len(opt.Personas) > 0 && !slices.Contains(opt.Personas, b.persona(p.User)) {
			continue
		}
		b.users = append(b.users, u)
	}
	for u := range wantUser {
		if i, ok := d.UserIndex(u); !ok || b.profiles[i] == nil {
			return nil, fmt.Errorf("raft: selected user %q has no profile", u)
		}
	}
	for u, ms := range memory.GroupByUser(in.Interactions) {
		ui, ok := d.UserIndex(u)
		if !ok {
			return nil, fmt.Errorf("raft: interactions name unknown user %q", u)
		}
		ms = slices.Clone(ms)
		slices.SortStableFunc(ms, func(a, b memory.Interaction) int { return a.Order - b.Order })
		if err := b.checkHistory(ui, ms); err != nil {
			return nil, err
		}
		b.mems[ui] = ms
	}
	for u := range b.profiles {
		if _, ok := b.mems[u]; !ok && len(st.History(u)) > 0 {
			return nil, fmt.Errorf("raft: user %q has a profile and %d training ratings but no interactions", d.Users[u].ID, len(st.History(u)))
		}
	}
	return b, nil
}

// checkHistory verifies that ms (sorted by Order) is user u's training
// history: one memory per training rating, same item, same rating.
func (b *Builder) checkHistory(u int32, ms []memory.Interaction) error {
	h := b.st.History(u)
	id := b.d.Users[u].ID
	if len(ms) != len(h) {
		return fmt.Errorf("raft: user %q has %d interactions but %d training ratings (memories from another split?)", id, len(ms), len(h))
	}
	for k, m := range ms {
		r := h[k]
		item := b.d.Items[b.d.Ratings.Item[r]].ID
		if m.Order != k || m.Item != item || m.Rating != float64(b.d.Ratings.Value[r]) {
			return fmt.Errorf("raft: user %q interaction order %d (item %q, rating %v) does not match training rating %d (item %q, rating %v)",
				id, m.Order, m.Item, m.Rating, k, item, b.d.Ratings.Value[r])
		}
	}
	return nil
}

func (b *Builder) persona(user string) int {
	if p, ok := b.personas[user]; ok {
		return p
	}
	return -1
}

// Users returns the source IDs of the users Build covers, in Profiles order.
func (b *Builder) Users() []string {
	out := make([]string, len(b.users))
	for i, u := range b.users {
		out[i] = b.d.Users[u].ID
	}
	return out
}

// Templates returns the templates the builder renders with.
func (b *Builder) Templates() *Templates { return b.tmpl }

// Build builds the RAFT examples of in under opt: for every training rating
// of every selected user, oldest first, the prompt with the top-1 memory
// retrieved among the user's earlier training interactions only (none for
// the first one) and the rating as the answer. Users come in Profiles order.
func Build(ctx context.Context, in Inputs, opt Options) ([]Example, error) {
	b, err := NewBuilder(in, opt)
	if err != nil {
		return nil, err
	}
	return b.Build(ctx)
}

// Build builds the examples of every selected user (see the function Build).
// Users are built in parallel over the available cores; the result does not
// depend on their number.
func (b *Builder) Build(ctx context.Context) ([]Example, error) {
	per := make([][]Example, len(b.users))
	errs := make([]error, len(b.users))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(b.users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(b.users) {
					return
				}
				if errs[j] = ctx.Err(); errs[j] != nil {
					return
				}
				per[j], errs[j] = b.appendUser(nil, b.users[j])
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := 0
	for j := range per {
		if errs[j] != nil {
			return nil, errs[j]
		}
		n += len(per[j])
	}
	out := make([]Example, 0, n)
	for _, exs := range per {
		out = append(out, exs...)
	}
	return out, nil
}

// UserExamples builds the examples of one user (by source ID), whether or not
// the options selected it.
func (b *Builder) UserExamples(user string) ([]Example, error) {
	u, ok := b.d.UserIndex(user)
	if !ok || b.profiles[u] == nil {
		return nil, fmt.Errorf("raft: user %q has no profile", user)
	}
	return b.appendUser(nil, u)
}

func (b *Builder) appendUser(out []Example, u int32) ([]Example, error) {
	h := b.st.History(u)
	for k, r := range h {
		ex, err := b.example(u, b.d.Ratings.Item[r], k, memory.Before(k))
		if err != nil {
			return nil, err
		}
		v := float64(b.d.Ratings.Value[r])
		ex.Rating, ex.Answer = v, FormatRating(v)
		out = append(out, ex)
	}
	return out, nil
}

// BuildQuery renders the prompt for user rating item (source IDs) at
// inference: the memory is retrieved among all the user's training
// interactions. The Answer is empty and Order is -1.
func (b *Builder) BuildQuery(user, item string) (Example, error) {
	u, ok := b.d.UserIndex(user)
	if !ok || b.profiles[u] == nil {
		return Example{}, fmt.Errorf("raft: query: user %q has no profile", user)
	}
	i, ok := b.d.ItemIndex(item)
	if !ok {
		return Example{}, fmt.Errorf("raft: query: unknown item %q", item)
	}
	return b.example(u, i, -1)
}

// Queries renders the prompts of the given rating rows (a split's test rows)
// as BuildQuery does, with each row's rating as the answer, for evaluation.
func (b *Builder) Queries(ctx context.Context, rows []int32) ([]Example, error) {
	out := make([]Example, 0, len(rows))
	n := b.d.Ratings.Len()
	for _, r := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if r < 0 || int(r) >= n {
			return nil, fmt.Errorf("raft: query row %d out of range [0, %d)", r, n)
		}
		u := b.d.Ratings.User[r]
		if b.profiles[u] == nil {
			return nil, fmt.Errorf("raft: query row %d: user %q has no profile", r, b.d.Users[u].ID)
		}
		ex, err := b.example(u, b.d.Ratings.Item[r], -1)
		if err != nil {
			return nil, fmt.Errorf("raft: query row %d: %w", r, err)
		}
		v := float64(b.d.Ratings.Value[r])
		ex.Rating, ex.Answer = v, FormatRating(v)
		out = append(out, ex)
	}
	return out, nil
}

// Data assembles the template data for user u rating item i, retrieving
// memories under opts.
func (b *Builder) data(u, i int32, opts ...memory.RetrieveOption) (*PromptData, error) {
	p := b.profiles[u]
	pd := &PromptData{
		Traits:    p.Traits,
		Profile:   p.Description,
		UserMean:  p.MeanRating,
		UseMemory: !b.opt.NoMemory,
		Target:    itemData(b.d, b.st, i),
		Scale:     b.scale,
		KeyFacts:  b.tmpl.variant == VariantDefault && !b.opt.NoKeyFacts,
	}
	if b.anchor != nil {
		pd.Anchor, pd.HasAnchor = b.anchor.Predict(u, i), true
	}
	if !b.opt.NoMemory {
		got, err := b.ret.Retrieve(i, b.mems[u], b.opt.TopK, opts...)
		if err != nil {
			return nil, fmt.Errorf("raft: user %q: %w", b.d.Users[u].ID, err)
		}
		for _, m := range got {
			mi, _ := b.d.ItemIndex(m.Item) // Retrieve checked it
			pd.Memories = append(pd.Memories, MemoryData{
				Item: itemData(b.d, b.st, mi), Rating: FormatRating(m.Rating), Reason: m.Reason, Score: m.Score,
			})
		}
	}
	return pd, nil
}

// PromptData returns the template data of user rating item (source IDs) as
// BuildQuery renders it, for counterfactual probes: edit a field and render
// it with Render.
func (b *Builder) PromptData(user, item string) (*PromptData, error) {
	u, ok := b.d.UserIndex(user)
	if !ok || b.profiles[u] == nil {
		return nil, fmt.Errorf("raft: user %q has no profile", user)
	}
	i, ok := b.d.ItemIndex(item)
	if !ok {
		return nil, fmt.Errorf("raft: unknown item %q", item)
	}
	return b.data(u, i)
}

// Render renders pd into the chat messages and the plain prompt.
func (b *Builder) Render(pd *PromptData) (msgs []Message, prompt string, err error) {
	sys, usr, err := b.tmpl.Render(pd)
	if err != nil {
		return nil, "", err
	}
	return []Message{{Role: "system", Content: sys}, {Role: "user", Content: usr}}, JoinPrompt(sys, usr), nil
}

// JoinPrompt joins a system and a user text into the plain prompt.
func JoinPrompt(system, user string) string {
	if system == "" {
		return user
	}
	return system + "\n\n" + user
}

func (b *Builder) example(u, i int32, order int, opts ...memory.RetrieveOption) (Example, error) {
	pd, err := b.data(u, i, opts...)
	if err != nil {
		return Example{}, err
	}
	msgs, prompt, err := b.Render(pd)
	if err != nil {
		return Example{}, err
	}
	id := b.d.Users[u].ID
	return Example{User: id, Item: b.d.Items[i].ID, Persona: b.persona(id), Messages: msgs, Prompt: prompt, Order: order}, nil
}

// ByPersona groups examples by persona (-1 for users without one), keeping
// their order: the training sets of the persona adapters.
func ByPersona(exs []Example) map[int][]Example {
	out := map[int][]Example{}
	for _, e := range exs {
		out[e.Persona] = append(out[e.Persona], e)
	}
	return out
}
