package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/generate"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
)

// DefaultMaxBatch is the number of prompts a Local backend runs in one
// forward pass when Local.MaxBatch is 0.
const DefaultMaxBatch = 32

// DefaultMaxPrefixes is the number of shared prefixes a Local backend keeps
// computed when Local.MaxPrefixes is 0.
const DefaultMaxPrefixes = 512

// Local is the Backend of an slm model in this process: the frozen base,
// its tokenizer and a set of LoRA adapters addressed by name. It is safe for
// concurrent use.
type Local struct {
	Model     *slm.Model
	Tokenizer *tokenizer.Tokenizer
	// Adapters holds the persona adapters; nil means none (every Prompt
	// must then have Adapter "").
	Adapters *lora.Set
	// MaxBatch bounds the prompts of one forward pass (0: DefaultMaxBatch).
	MaxBatch int
	// MaxPrefixes bounds the shared prefixes kept (0: DefaultMaxPrefixes);
	// when full, the cache is emptied and refilled.
	MaxPrefixes int

	mu       sync.Mutex
	prefixes map[prefixKey]*prefixEntry
}

type prefixKey struct{ adapter, text string }

type prefixEntry struct {
	once   sync.Once
	tokens []int
	cache  *slm.Cache
	err    error
}

// NewLocal returns a Local backend over m and tok with the adapters of set
// (nil: none).
func NewLocal(m *slm.Model, tok *tokenizer.Tokenizer, set *lora.Set) (*Local, error) {
	if m == nil || tok == nil {
		return nil, errors.New("agent: local backend needs a model and a tokenizer")
	}
	if tok.VocabSize() > m.Config.Vocab {
		return nil, fmt.Errorf("agent: tokenizer has %d ids, model %d", tok.VocabSize(), m.Config.Vocab)
	}
	return &Local{Model: m, Tokenizer: tok, Adapters: set}, nil
}

func (l *Local) adapter(name string) (*lora.Adapter, error) {
	if name == "" {
		return nil, nil
	}
	if l.Adapters == nil {
		return nil, fmt.Errorf("agent: adapter %q: the backend has no adapters", name)
	}
	a, ok := l.Adapters.Get(name)
	if !ok {
		return nil, fmt.Errorf("agent: unknown adapter %q", name)
	}
	return a, nil
}

// encode tokenizes a prompt text: special tokens written by a chat template
// are matched, and BOS is added when the tokenizer expects it and the text
// does not start with it already.
func (l *Local) encode(text string) ([]int, error) {
	bos := l.Tokenizer.BOS()
	add := l.Tokenizer.AddBOSDefault() && bos >= 0 && !strings.HasPrefix(text, l.Tokenizer.TokenText(bos))
	ids, err := l.Tokenizer.Encode(text, tokenizer.EncodeOptions{AddBOS: add, ParseSpecial: true})
	if err != nil {
		return nil, fmt.Errorf("agent: encode prompt: %w", err)
	}
	return ids, nil
}

func (l *Local) encodeCandidates(cands []string) ([][]int, error) {
	out := make([][]int, len(cands))
	for j, c := range cands {
		ids, err := l.Tokenizer.Encode(c, tokenizer.EncodeOptions{Continuation: true})
		if err != nil {
			return nil, fmt.Errorf("agent: encode candidate %q: %w", c, err)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("agent: candidate %q encodes to no tokens", c)
		}
		out[j] = ids
	}
	return out, nil
}

// start returns a fresh cache for p that already holds p's shared prefix
// when it has one (forked from the kept prefix), and the tokens to run after
// it. The prefix is used only when its tokens are exactly the first tokens
// of the whole prompt, so forking never changes the result.
func (l *Local) start(ctx context.Context, p Prompt) (*slm.Cache, []int, error) {
	a, err := l.adapter(p.Adapter)
	if err != nil {
		return nil, nil, err
	}
	full, err := l.encode(p.Text)
	if err != nil {
		return nil, nil, err
	}
	if p.Prefix < 0 || p.Prefix > len(p.Text) {
		return nil, nil, fmt.Errorf("agent: prompt prefix %d outside its text of %d bytes", p.Prefix, len(p.Text))
	}
	if p.Prefix > 0 {
		e, err := l.prefix(ctx, a, p.Adapter, p.Text[:p.Prefix])
		if err != nil {
			return nil, nil, err
		}
		if len(e.tokens) < len(full) && equalInts(e.tokens, full[:len(e.tokens)]) {
			return e.cache.Fork(), full[len(e.tokens):], nil
		}
	}
	return l.Model.NewAdapterCache(a), full, nil
}

func (l *Local) prefix(ctx context.Context, a *lora.Adapter, name, text string) (*prefixEntry, error) {
	k := prefixKey{name, text}
	l.mu.Lock()
	if l.prefixes == nil || len(l.prefixes) >= cmpOr(l.MaxPrefixes, DefaultMaxPrefixes) {
		l.prefixes = make(map[prefixKey]*prefixEntry)
	}
	e := l.prefixes[k]
	if e == nil {
		e = &prefixEntry{}
		l.prefixes[k] = e
	}
	l.mu.Unlock()
	e.once.Do(func() {
		e.tokens, e.err = l.encode(text)
		if e.err != nil {
			return
		}
		e.cache = l.Model.NewAdapterCache(a)
		_, e.err = l.Model.Forward(ctx, []slm.Sequence{{Cache: e.cache, Tokens: e.tokens, Logits: slm.LogitsNone}})
	})
	if e.err != nil {
		l.mu.Lock()
		if l.prefixes[k] == e {
			delete(l.prefixes, k) // a cancelled context must not poison the entry
		}
		l.mu.Unlock()
		return nil, fmt.Errorf("agent: shared prefix: %w", e.err)
	}
	return e, nil
}

// Score implements Backend. Prompts of any adapters run together, MaxBatch
// at a time: one forward pass over the prompts reads every candidate's first
// token, and a second one continues forks of the prompts with the remaining
// tokens of the multi-token candidates.
//
// A candidate that is a proper prefix of another (" 1" of " 1.5" on a
// half-star scale) is scored as that answer ending there: its probability is
// multiplied by the probability that the next token does not continue it
// into a longer candidate (a token starting with "."), so that the scale's
// values are disjoint events and their probabilities add up.
func (l *Local) Score(ctx context.Context, prompts []Prompt, candidates []string) ([][]float64, error) {
	cands, err := l.encodeCandidates(candidates)
	if err != nil {
		return nil, err
	}
	ends := l.endings(candidates)
	out := make([][]float64, len(prompts))
	nb := cmpOr(l.MaxBatch, DefaultMaxBatch)
	for lo := 0; lo < len(prompts); lo += nb {
		hi := min(lo+nb, len(prompts))
		if err := l.scoreChunk(ctx, prompts[lo:hi], cands, ends, out[lo:hi]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// endings returns, for each candidate that is a proper prefix of a longer
// one (" 1" of " 1.5"), the token ids whose text would continue it into a
// longer candidate (those starting with "."); nil for the others. Scoring
// such a candidate as "this answer and then not the longer one" keeps the
// distribution from counting " 1.5" inside " 1".
func (l *Local) endings(candidates []string) [][]int {
	next := continuers(candidates)
	found := false
	for _, n := range next {
		found = found || n != ""
	}
	if !found {
		return nil
	}
	out := make([][]int, len(candidates))
	for id := range l.Tokenizer.VocabSize() {
		t := l.Tokenizer.TokenBytes(id)
		if t == "" || l.Tokenizer.IsSpecial(id) {
			continue
		}
		for j, n := range next {
			if n != "" && strings.ContainsRune(n, rune(t[0])) {
				out[j] = append(out[j], id)
			}
		}
	}
	for j, n := range next {
		if n != "" && out[j] == nil {
			out[j] = []int{} // nothing continues it: no correction, but marked
		}
	}
	return out
}

func (l *Local) scoreChunk(ctx context.Context, prompts []Prompt, cands [][]int, ends [][]int, out [][]float64) error {
	seqs := make([]slm.Sequence, len(prompts))
	for i, p := range prompts {
		c, toks, err := l.start(ctx, p)
		if err != nil {
			return err
		}
		seqs[i] = slm.Sequence{Cache: c, Tokens: toks, Logits: slm.LogitsLast}
	}
	logits, err := l.Model.Forward(ctx, seqs)
	if err != nil {
		return fmt.Errorf("agent: score: %w", err)
	}
	type cont struct{ i, j int }
	var more []slm.Sequence
	var who []cont
	for i := range prompts {
		ls := logSoftmax(logits[i][0])
		out[i] = make([]float64, len(cands))
		for j, c := range cands {
			if c[0] >= len(ls) {
				return fmt.Errorf("agent: candidate token %d outside the model's vocabulary", c[0])
			}
			out[i][j] = ls[c[0]]
			run := c[:len(c)-1]
			if ends != nil && ends[j] != nil {
				run = c // the last row gives the distribution after c
			}
			if len(run) > 0 {
				more = append(more, slm.Sequence{Cache: seqs[i].Cache.Fork(), Tokens: run, Logits: slm.LogitsAll})
				who = append(who, cont{i, j})
			}
		}
	}
	if len(more) == 0 {
		return nil
	}
	logits, err = l.Model.Forward(ctx, more)
	if err != nil {
		return fmt.Errorf("agent: score continuations: %w", err)
	}
	for k, w := range who {
		c := cands[w.j]
		for t, row := range logits[k] {
			ls := logSoftmax(row)
			if t+1 < len(c) {
				out[w.i][w.j] += ls[c[t+1]]
				continue
			}
			// After the whole candidate: the answer ends here.
			var cont float64
			for _, id := range ends[w.j] {
				cont += math.Exp(ls[id])
			}
			out[w.i][w.j] += math.Log1p(-min(cont, 1))
		}
	}
	return nil
}

// adapterModel lets package generate run with an adapter: its caches are
// the adapter's.
type adapterModel struct {
	*slm.Model
	a *lora.Adapter
}

func (m adapterModel) NewCache() *slm.Cache { return m.Model.NewAdapterCache(m.a) }

// Generate implements Backend with greedy decoding.
func (l *Local) Generate(ctx context.Context, p Prompt, opt GenerateOptions) (string, error) {
	if opt.MaxTokens <= 0 {
		return "", errors.New("agent: generate: MaxTokens must be positive")
	}
	a, err := l.adapter(p.Adapter)
	if err != nil {
		return "", err
	}
	cache, toks, err := l.start(ctx, p)
	if err != nil {
		return "", err
	}
	gopt := generate.Options{MaxTokens: opt.MaxTokens, Stop: opt.Stop, MaxContext: l.Model.Config.MaxContext}
	if cache.Len() > 0 {
		gopt.Prefix = cache
	}
	var sb strings.Builder
	_, err = generate.Generate(ctx, adapterModel{l.Model, a}, l.Tokenizer, toks, gopt, func(s string) error {
		sb.WriteString(s)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("agent: generate: %w", err)
	}
	return sb.String(), nil
}

// logSoftmax returns the log-probabilities of a logits row, in float64.
func logSoftmax(row []float32) []float64 {
	m := math.Inf(-1)
	for _, x := range row {
		m = max(m, float64(x))
	}
	var s float64
	for _, x := range row {
		s += math.Exp(float64(x) - m)
	}
	lse := m + math.Log(s)
	out := make([]float64, len(row))
	for i, x := range row {
		out[i] = float64(x) - lse
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
