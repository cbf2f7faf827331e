package generate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/sample"
)

// chain is a fake model over a vocabulary of n tokens whose greedy
// continuation of token i is next[i]. It counts the tokens it was fed.
type chain struct {
	next  []int
	fed   []int
	calls int
}

func (c *chain) NewCache() *slm.Cache { return new(slm.Cache) }

func (c *chain) Forward(ctx context.Context, batch []slm.Sequence) ([][][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.calls++
	var out [][][]float32
	for _, sq := range batch {
		toks := sq.Tokens
		c.fed = append(c.fed, toks...)
		l := make([]float32, len(c.next))
		l[c.next[toks[len(toks)-1]]] = 10
		out = append(out, [][]float32{l})
	}
	return out, nil
}

// words decodes token i as the i-th word, holding nothing back.
type words []string

func (w words) Push(id int) string { return w[id] }
func (w words) Flush() string      { return "" }

const eos = 0

func newChain() (*chain, words) {
	// 1 -> 2 -> 3 -> 4 -> 5 -> 0 (EOS)
	return &chain{next: []int{1, 2, 3, 4, 5, 0}}, words{"</s>", "Once", " upon", " a", " ti", "me"}
}

func isEOS(id int) bool { return id == eos }

func TestLoop(t *testing.T) {
	tests := []struct {
		name    string
		prompt  []int
		maxCtx  int
		opt     Options
		text    string
		tokens  []int
		reason  string
		stopStr string
		steps   int
	}{
		{"until eos", []int{1}, 0, Options{}, " upon a time", []int{2, 3, 4, 5}, StopEOS, "", 4},
		{"max tokens", []int{1}, 0, Options{MaxTokens: 2}, " upon a", []int{2, 3}, StopLength, "", 1},
		{"stop string across tokens", []int{1}, 0, Options{Stop: []string{"a ti"}}, " upon ", []int{2, 3, 4}, StopString, "a ti", 2},
		{"stop string never completed", []int{1}, 0, Options{Stop: []string{"time!"}}, " upon a time", []int{2, 3, 4, 5}, StopEOS, "", 4},
		{"context full", []int{1, 1}, 4, Options{}, " upon a", []int{2, 3}, StopContext, "", 1},
		{"ignore eos", []int{4}, 0, Options{IgnoreEOS: true, MaxTokens: 3}, "me</s>Once", []int{5, 0, 1}, StopLength, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, dec := newChain()
			var got strings.Builder
			st, err := run(context.Background(), m, isEOS, dec, tt.prompt, tt.maxCtx, tt.opt, func(s string) error {
				got.WriteString(s)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.text || !slices.Equal(st.Tokens, tt.tokens) || st.StopReason != tt.reason || st.StopString != tt.stopStr {
				t.Fatalf("got %q %v %q %q, want %q %v %q %q", got.String(), st.Tokens, st.StopReason, st.StopString, tt.text, tt.tokens, tt.reason, tt.stopStr)
			}
			if st.PromptTokens != len(tt.prompt) || st.DecodeSteps != tt.steps || m.calls != tt.steps+1 {
				t.Fatalf("prompt %d, steps %d, forward calls %d; want %d, %d, %d", st.PromptTokens, st.DecodeSteps, m.calls, len(tt.prompt), tt.steps, tt.steps+1)
			}
			// The model is fed the prompt, then each generated token but the last.
			want := append(slices.Clone(tt.prompt), tt.tokens[:tt.steps]...)
			if !slices.Equal(m.fed, want) {
				t.Fatalf("model fed %v, want %v", m.fed, want)
			}
		})
	}
}

func TestLoopErrors(t *testing.T) {
	m, dec := newChain()
	if _, err := run(context.Background(), m, isEOS, dec, nil, 0, Options{}, nil); err == nil || !strings.Contains(err.Error(), "empty prompt") {
		t.Fatalf("empty prompt: %v", err)
	}
	if _, err := run(context.Background(), m, isEOS, dec, []int{1, 2, 3}, 3, Options{}, nil); err == nil || !strings.Contains(err.Error(), "context") {
		t.Fatalf("prompt too long: %v", err)
	}
	stopErr := errors.New("reader went away")
	n := 0
	st, err := run(context.Background(), m, isEOS, dec, []int{1}, 0, Options{}, func(string) error {
		n++
		if n == 2 {
			return stopErr
		}
		return nil
	})
	if !errors.Is(err, stopErr) || len(st.Tokens) != 2 {
		t.Fatalf("onToken error: %v after %d tokens", err, len(st.Tokens))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := run(ctx, m, isEOS, dec, []int{1}, 0, Options{}, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestSampledDeterministic: with temperature, a seed fixes the output.
func TestSampledDeterministic(t *testing.T) {
	gen := func(seed uint64) string {
		m := &chain{next: make([]int, 50)}
		for i := range m.next {
			m.next[i] = (i*7 + 3) % 50
		}
		dec := make(words, 50)
		for i := range dec {
			dec[i] = fmt.Sprintf("<%d>", i)
		}
		var b strings.Builder
		_, err := run(context.Background(), m, func(int) bool { return false }, dec, []int{1}, 0,
			Options{MaxTokens: 40, Sample: sample.Options{Temperature: 3, Seed: seed}},
			func(s string) error { b.WriteString(s); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if gen(1) != gen(1) {
		t.Fatal("same seed, different text")
	}
	if gen(1) == gen(2) {
		t.Fatal("seeds 1 and 2 gave the same 40 sampled tokens")
	}
}

// firstTrim drops the leading space of the first piece it decodes, as
// SentencePiece decoders do at the start of a text.
type firstTrim struct {
	words
	started bool
}

func (d *firstTrim) Push(id int) string {
	s := d.words[id]
	if !d.started {
		d.started = true
		return strings.TrimPrefix(s, " ")
	}
	return s
}

// TestPromptPrimesDecoder: the continuation of a prompt keeps its leading
// space because the decoder has seen the prompt.
func TestPromptPrimesDecoder(t *testing.T) {
	m, w := newChain()
	var got strings.Builder
	_, err := run(context.Background(), m, isEOS, &firstTrim{words: w}, []int{1, 2}, 0, Options{MaxTokens: 1}, func(s string) error {
		got.WriteString(s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != " a" {
		t.Fatalf("continuation %q, want %q", got.String(), " a")
	}
}

// TestBatchLoop: sequences leave the batch as they finish; each gets its
// own tokens and text.
func TestBatchLoop(t *testing.T) {
	m, w := newChain()
	var a, b strings.Builder
	seqs := []*seq{
		newSeq(Request{Prompt: []int{1}, Options: Options{MaxTokens: 2}, OnToken: func(s string) error { a.WriteString(s); return nil }}, isEOS, w, 0),
		newSeq(Request{Prompt: []int{3, 2}, OnToken: func(s string) error { b.WriteString(s); return nil }}, isEOS, w, 0),
	}
	st, err := runBatch(context.Background(), m, seqs)
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != " upon a" || b.String() != " a time" {
		t.Fatalf("texts %q, %q", a.String(), b.String())
	}
	if !slices.Equal(st[0].Tokens, []int{2, 3}) || !slices.Equal(st[1].Tokens, []int{3, 4, 5}) || st[0].StopReason != StopLength || st[1].StopReason != StopEOS {
		t.Fatalf("stats %+v", st)
	}
	// Prefill of both, then steps with 2, 1 and 1 sequences.
	if m.calls != 4 || !slices.Equal(m.fed, []int{1, 3, 2, 2, 3, 4, 5}) {
		t.Fatalf("%d forward calls fed %v", m.calls, m.fed)
	}
}
