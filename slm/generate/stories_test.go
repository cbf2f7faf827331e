package generate

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/sample"
	"github.com/usersim/usersim/slm/tokenizer"
)

func tokenizerOpts(tok *tokenizer.Tokenizer) tokenizer.EncodeOptions {
	return tokenizer.EncodeOptions{AddBOS: tok.AddBOSDefault()}
}

// TestStoriesGreedy: greedy generation from BOS on stories260K gives the
// reference ids and text (../shared/golden/stories260K).
func TestStoriesGreedy(t *testing.T) {
	model := sharedtest.Path(t, "models", "stories260K", "stories260K.gguf")
	golden := sharedtest.Path(t, "golden", "stories260K", "generate_greedy_200.json")
	b, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		IDs  []int  `json:"ids"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	m, tok, err := slm.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	pieces := 0
	st, err := Generate(context.Background(), m, tok, []int{tok.BOS()}, Options{MaxTokens: len(g.IDs)}, func(s string) error {
		pieces++
		text.WriteString(s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Tokens, g.IDs) {
		for i := range min(len(st.Tokens), len(g.IDs)) {
			if st.Tokens[i] != g.IDs[i] {
				t.Fatalf("ids differ first at step %d: %d, want %d", i, st.Tokens[i], g.IDs[i])
			}
		}
		t.Fatalf("%d ids, want %d", len(st.Tokens), len(g.IDs))
	}
	if text.String() != g.Text {
		t.Fatalf("text\n%q\nwant\n%q", text.String(), g.Text)
	}
	if pieces < len(g.IDs)/2 {
		t.Fatalf("text came in %d pieces: not streamed", pieces)
	}
	if st.StopReason != StopLength || st.DecodeSteps != len(g.IDs)-1 || st.PromptTokens != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStoriesPrefix: generating after a cached prefix gives the tokens of
// generating from the whole prompt, and leaves the prefix reusable.
func TestStoriesPrefix(t *testing.T) {
	model := sharedtest.Path(t, "models", "stories260K", "stories260K.gguf")
	m, tok, err := slm.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tok.Encode("Once upon a time, there was a little", tokenizerOpts(tok))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Generate(context.Background(), m, tok, ids, Options{MaxTokens: 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	split := 5
	prefix := m.NewCache()
	if _, err := m.Forward(context.Background(), []slm.Sequence{{Cache: prefix, Tokens: ids[:split], Logits: slm.LogitsNone}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice: the prefix is not consumed
		var text strings.Builder
		st, err := Generate(context.Background(), m, tok, ids[split:], Options{MaxTokens: 20, Prefix: prefix}, func(s string) error {
			text.WriteString(s)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Tokens, whole.Tokens) {
			t.Fatalf("after a prefix: %v, want %v", st.Tokens, whole.Tokens)
		}
		if !strings.HasPrefix(text.String(), " girl") {
			t.Fatalf("text %q", text.String())
		}
		if prefix.Len() != split {
			t.Fatalf("prefix grew to %d positions", prefix.Len())
		}
	}
}

// TestStoriesBatch: a batch of generations (different prompts, lengths,
// sampling and stops) gives what each gives alone.
func TestStoriesBatch(t *testing.T) {
	model := sharedtest.Path(t, "models", "stories260K", "stories260K.gguf")
	m, tok, err := slm.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []Request
	for i, p := range []string{"", "Once upon a time", "Tom had a big dog. One day", "The sun"} {
		ids := []int{tok.BOS()}
		if p != "" {
			if ids, err = tok.Encode(p, tokenizerOpts(tok)); err != nil {
				t.Fatal(err)
			}
		}
		opt := Options{MaxTokens: 10 + 7*i}
		switch i {
		case 2:
			opt.Sample = sample.Options{Temperature: 0.9, TopK: 20, Seed: 5}
		case 3:
			opt.Stop = []string{"."}
		}
		reqs = append(reqs, Request{Prompt: ids, Options: opt})
	}
	texts := make([]strings.Builder, len(reqs))
	for i := range reqs {
		reqs[i].OnToken = func(s string) error { texts[i].WriteString(s); return nil }
	}
	batch, err := GenerateBatch(context.Background(), m, tok, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		var alone strings.Builder
		st, err := Generate(context.Background(), m, tok, r.Prompt, r.Options, func(s string) error { alone.WriteString(s); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(st.Tokens, batch[i].Tokens) || alone.String() != texts[i].String() || st.StopReason != batch[i].StopReason {
			t.Fatalf("request %d: batch %v %q (%s), alone %v %q (%s)", i, batch[i].Tokens, texts[i].String(), batch[i].StopReason, st.Tokens, alone.String(), st.StopReason)
		}
	}
	if batch[3].StopReason != StopString {
		t.Fatalf("request 3 should stop at \".\": %+v", batch[3])
	}
}
