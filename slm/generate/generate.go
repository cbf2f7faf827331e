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
	if tok == nil {
		return Stats{}, errors.New("generate: no tokenizer")
	}
	maxContext := opt.MaxContext
	if sm, ok := m.(*slm.Model); ok && maxContext == 0 {
		maxContext = sm.Config.MaxContext
	}
	return run(ctx, m, tok.IsEOS, tok.NewStreamDecoder(), prompt, maxContext, opt, onToken)
}

func run(ctx context.Context, m Model, isEOS func(int) bool, dec decoder, prompt []int, maxContext int, opt Options, onToken func(string) error) (Stats, error) {
	st := Stats{PromptTokens: len(prompt)}
	if len(prompt) == 0 {
		return st, errors.New("generate: empty prompt: start from the BOS token")
	}
	start0 := 0
	if opt.Prefix != nil {
		start0 = opt.Prefix.Len()
	}
	if maxContext > 0 && start0+len(prompt) >= maxContext {
		return st, fmt.Errorf("generate: the prompt has %d tokens after a prefix of %d, the model's context %d", len(prompt), start0, maxContext)
	}
	if onToken == nil {
		onToken = func(string) error { return nil }
	}
	var cache *slm.Cache
	if opt.Prefix != nil {
		cache = opt.Prefix.Fork()
	} else {
		cache = m.NewCache()
	}
	start := time.Now()
	logits, err := last(m.Forward(ctx, []slm.Sequence{{Cache: cache, Tokens: prompt, Logits: slm.LogitsLast}}))
	st.Prefill = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("generate: prefill: %w", err)
	}
	// Prime the decoder with the prompt, so that the first generated piece
	// is decoded in context (SentencePiece decoders drop the space of the
	// first piece of a text only).
	for _, id := range prompt {
		dec.Push(id)
	}
	sampler := sample.NewSampler(opt.Sample)
	stop := sample.NewStopMatcher(opt.Stop...)
	history := append(make([]int, 0, len(prompt)+opt.MaxTokens), prompt...)
	pos := start0 + len(prompt)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		id := sampler.Sample(logits, history)
		if id < 0 {
			return st, errors.New("generate: the model returned no logits")
		}
		if !opt.IgnoreEOS && isEOS(id) {
			st.StopReason = StopEOS
			break
		}
		history = append(history, id)
		st.Tokens = append(st.Tokens, id)
		emit, stopped := stop.Push(dec.Push(id))
		if emit != "" {
			if err := onToken(emit); err != nil {
				return st, err
			}
		}
		if stopped {
			st.StopReason = StopString
			st.StopString, _ = stop.Stopped()
			return st, nil
		}
		if opt.MaxTokens > 0 && len(st.Tokens) >= opt.MaxTokens {
			st.StopReason = StopLength
			break
		}
		if maxContext > 0 && pos+1 >= maxContext {
			st.StopReason = StopContext
			break
		}
		start := time.Now()
		logits, err = last(m.Forward(ctx, []slm.Sequence{{Cache: cache, Tokens: []int{id}, Logits: slm.LogitsLast}}))
		st.Decode += time.Since(start)
		st.DecodeSteps++
		pos++
		if err != nil {
			return st, fmt.Errorf("generate: step %d: %w", len(st.Tokens), err)
		}
	}
	// The end: release what the decoder and the stop matcher held back.
	emit, stopped := stop.Push(dec.Flush())
	if !stopped {
		emit += stop.Flush()
	} else {
		st.StopReason = StopString
		st.StopString, _ = stop.Stopped()
	}
	if emit != "" {
		if err := onToken(emit); err != nil {
			return st, err
		}
	}
	return st, nil
}

// last picks the one logits row of a single-sequence Forward.
func last(out [][][]float32, err error) ([]float32, error) {
	if err != nil {
		return nil, err
	}
	if len(out) != 1 || len(out[0]) != 1 {
		return nil, fmt.Errorf("forward returned %d sequences, want 1 row of logits", len(out))
	}
	return out[0][0], nil
}
