// Package generate runs the token-by-token generation loop: prefill the
// prompt, sample, stream the decoded text, stop at an end-of-sequence
// token, a stop string, the token limit or the end of the context.
package generate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/sample"
	"github.com/usersim/usersim/slm/tokenizer"
)

// Options configures Generate.
type Options struct {
	// MaxTokens bounds the number of generated tokens; 0 means until an
	// end token, a stop string or the end of the model's context.
	MaxTokens int
	// Sample chooses the tokens (temperature 0 is greedy).
	Sample sample.Options
	// Stop ends generation when one of these strings appears in the text;
	// the stop string and what follows are not emitted.
	Stop []string
	// IgnoreEOS keeps generating past end-of-sequence tokens.
	IgnoreEOS bool
	// Prefix, when set, holds the keys and values of text that comes
	// before the prompt (a persona shared by many prompts, computed once
	// with a LogitsNone Forward). Generation continues a fork of it, so the
	// prefix can be reused; the prompt holds only the tokens after it, and
	// the repetition penalty sees only the prompt and the generated tokens.
	Prefix *slm.Cache
	// MaxContext is the number of positions the model can hold; 0 takes
	// the model's own (Config.MaxContext of an *slm.Model), else unbounded.
	MaxContext int
}

// Reasons generation ended (Stats.StopReason).
const (
	StopEOS     = "eos"     // the model produced an end-of-sequence token
	StopString  = "stop"    // a stop string appeared
	StopLength  = "length"  // MaxTokens were generated
	StopContext = "context" // the model's context is full
)

// Stats reports what Generate did and how fast.
type Stats struct {
	PromptTokens int           // tokens of the prompt (prefill)
	Prefill      time.Duration // time of the prefill forward pass
	Tokens       []int         // generated token ids (an end token not included)
	DecodeSteps  int           // single-token forward passes after the prefill
	Decode       time.Duration // time of those passes
	StopReason   string
	StopString   string // the stop string found, with StopReason "stop"
}

// PrefillTokensPerSecond is the prompt processing speed.
func (s Stats) PrefillTokensPerSecond() float64 {
	return perSecond(s.PromptTokens, s.Prefill)
}

// DecodeTokensPerSecond is the generation speed (one token per step).
func (s Stats) DecodeTokensPerSecond() float64 { return perSecond(s.DecodeSteps, s.Decode) }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Model is what the loop needs of a model; *slm.Model implements it.
type Model interface {
	NewCache() *slm.Cache
	Forward(ctx context.Context, batch []slm.Sequence) ([][][]float32, error)
}

// decoder turns ids into text incrementally (tokenizer.StreamDecoder).
type decoder interface {
	Push(id int) string
	Flush() string
}

// Generate continues prompt (token ids, at least one: start from the
// tokenizer's BOS for an unconditioned sample) and calls onToken with each
// piece of text as soon as it is safe to show (complete UTF-8, not part of
// a possible stop string). An error from onToken stops generation and is
// returned.
func Generate(ctx context.Context, m Model, tok *tokenizer.Tokenizer, prompt []int, opt Options, onToken func(text string) error) (Stats, error) {
	st, err := GenerateBatch(ctx, m, tok, []Request{{Prompt: prompt, Options: opt, OnToken: onToken}})
	if len(st) == 0 {
		return Stats{PromptTokens: len(prompt)}, err
	}
	return st[0], err
}

// Request is one generation of a batch.
type Request struct {
	Prompt  []int
	Options Options
	OnToken func(text string) error // may be nil
}

// GenerateBatch runs several generations together: one Forward prefills
// all prompts, and each later Forward advances every unfinished sequence
// by one token, which is faster than running them one after another. The
// Stats of request i are at index i; the prefill and decode times are
// those of the shared batches. An error (from the model, the context or an
// OnToken) stops the whole batch and is returned with the Stats so far.
func GenerateBatch(ctx context.Context, m Model, tok *tokenizer.Tokenizer, reqs []Request) ([]Stats, error) {
	if tok == nil {
		return nil, errors.New("generate: no tokenizer")
	}
	modelContext := 0
	if sm, ok := m.(*slm.Model); ok {
		modelContext = sm.Config.MaxContext
	}
	seqs := make([]*seq, len(reqs))
	for i, r := range reqs {
		seqs[i] = newSeq(r, tok.IsEOS, tok.NewStreamDecoder(), modelContext)
	}
	return runBatch(ctx, m, seqs)
}

// seq is the state of one generation.
type seq struct {
	opt        Options
	onToken    func(string) error
	isEOS      func(int) bool
	dec        decoder
	prompt     []int
	maxContext int

	cache   *slm.Cache
	sampler *sample.Sampler
	stop    *sample.StopMatcher
	history []int
	pos     int // positions in the cache after the pending token
	st      Stats
	done    bool
}

func newSeq(r Request, isEOS func(int) bool, dec decoder, modelContext int) *seq {
	s := &seq{opt: r.Options, onToken: r.OnToken, isEOS: isEOS, dec: dec, prompt: r.Prompt, maxContext: r.Options.MaxContext}
	if s.maxContext == 0 {
		s.maxContext = modelContext
	}
	if s.onToken == nil {
		s.onToken = func(string) error { return nil }
	}
	s.st.PromptTokens = len(r.Prompt)
	return s
}

// start checks the prompt and sets up the cache, sampler and decoder.
func (s *seq) start(m Model) error {
	if len(s.prompt) == 0 {
		return errors.New("generate: empty prompt: start from the BOS token")
	}
	start0 := 0
	if s.opt.Prefix != nil {
		start0 = s.opt.Prefix.Len()
		s.cache = s.opt.Prefix.Fork()
	} else {
		s.cache = m.NewCache()
	}
	if s.maxContext > 0 && start0+len(s.prompt) >= s.maxContext {
		return fmt.Errorf("generate: the prompt has %d tokens after a prefix of %d, the model's context %d", len(s.prompt), start0, s.maxContext)
	}
	// Prime the decoder with the prompt, so that the first generated piece
	// is decoded in context (SentencePiece decoders drop the space of the
	// first piece of a text only).
	for _, id := range s.prompt {
		s.dec.Push(id)
	}
	s.sampler = sample.NewSampler(s.opt.Sample)
	s.stop = sample.NewStopMatcher(s.opt.Stop...)
	s.history = append(make([]int, 0, len(s.prompt)+s.opt.MaxTokens), s.prompt...)
	s.pos = start0 + len(s.prompt)
	return nil
}

// step samples the next token from logits and emits its text. It returns
// the token to feed the model next, or done.
func (s *seq) step(logits []float32) (next int, done bool, err error) {
	id := s.sampler.Sample(logits, s.history)
	if id < 0 {
		return 0, true, errors.New("generate: the model returned no logits")
	}
	if !s.opt.IgnoreEOS && s.isEOS(id) {
		s.st.StopReason = StopEOS
		return 0, true, s.finish()
	}
	s.history = append(s.history, id)
	s.st.Tokens = append(s.st.Tokens, id)
	emit, stopped := s.stop.Push(s.dec.Push(id))
	if emit != "" {
		if err := s.onToken(emit); err != nil {
			return 0, true, err
		}
	}
	switch {
	case stopped:
		s.st.StopReason = StopString
		s.st.StopString, _ = s.stop.Stopped()
		return 0, true, nil
	case s.opt.MaxTokens > 0 && len(s.st.Tokens) >= s.opt.MaxTokens:
		s.st.StopReason = StopLength
		return 0, true, s.finish()
	case s.maxContext > 0 && s.pos+1 >= s.maxContext:
		s.st.StopReason = StopContext
		return 0, true, s.finish()
	}
	s.pos++
	return id, false, nil
}

// finish releases what the decoder and the stop matcher held back.
func (s *seq) finish() error {
	emit, stopped := s.stop.Push(s.dec.Flush())
	if !stopped {
		emit += s.stop.Flush()
	} else {
		s.st.StopReason = StopString
		s.st.StopString, _ = s.stop.Stopped()
	}
	if emit != "" {
		return s.onToken(emit)
	}
	return nil
}

func runBatch(ctx context.Context, m Model, seqs []*seq) ([]Stats, error) {
	stats := func() []Stats {
		out := make([]Stats, len(seqs))
		for i, s := range seqs {
			out[i] = s.st
		}
		return out
	}
	batch := make([]slm.Sequence, 0, len(seqs))
	active := make([]*seq, 0, len(seqs))
	for i, s := range seqs {
		if err := s.start(m); err != nil {
			return stats(), fmt.Errorf("request %d: %w", i, err)
		}
		batch = append(batch, slm.Sequence{Cache: s.cache, Tokens: s.prompt, Logits: slm.LogitsLast})
		active = append(active, s)
	}
	prefill := true
	for len(active) > 0 {
		if err := ctx.Err(); err != nil {
			return stats(), err
		}
		t0 := time.Now()
		out, err := m.Forward(ctx, batch)
		d := time.Since(t0)
		if err == nil && len(out) != len(batch) {
			err = fmt.Errorf("forward returned %d sequences for %d", len(out), len(batch))
		}
		if err != nil {
			if prefill {
				return stats(), fmt.Errorf("generate: prefill: %w", err)
			}
			return stats(), fmt.Errorf("generate: decode: %w", err)
		}
		for _, s := range active {
			if prefill {
				s.st.Prefill = d
			} else {
				s.st.Decode += d
				s.st.DecodeSteps++
			}
		}
		prefill = false
		nextBatch, nextActive := batch[:0], active[:0]
		for i, s := range active {
			if len(out[i]) != 1 {
				return stats(), fmt.Errorf("generate: forward returned %d rows of logits, want 1", len(out[i]))
			}
			id, done, err := s.step(out[i][0])
			if err != nil {
				return stats(), err
			}
			if done {
				s.done = true
				continue
			}
			nextBatch = append(nextBatch, slm.Sequence{Cache: s.cache, Tokens: []int{id}, Logits: slm.LogitsLast})
			nextActive = append(nextActive, s)
		}
		batch, active = nextBatch, nextActive
	}
	return stats(), nil
}

// run generates one sequence (the tests' entry point, with any decoder).
func run(ctx context.Context, m Model, isEOS func(int) bool, dec decoder, prompt []int, maxContext int, opt Options, onToken func(string) error) (Stats, error) {
	if opt.MaxContext == 0 {
		opt.MaxContext = maxContext
	}
	s := newSeq(Request{Prompt: prompt, Options: opt, OnToken: onToken}, isEOS, dec, 0)
	st, err := runBatch(ctx, m, []*seq{s})
	return st[0], err
}
