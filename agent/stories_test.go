package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/chat"
	"github.com/usersim/usersim/slm/tokenizer"
)

// TestStories runs an agent on a real pretrained model with a SentencePiece
// tokenizer (stories260K): the shared-prefix fork equals the whole prompt,
// the distribution is a distribution, and generation and explanation run.
func TestStories(t *testing.T) {
	path := sharedtest.Path(t, "models", "stories260K", "stories260K.gguf")
	ctx := context.Background()
	m, tok, err := slm.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewLocal(m, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, dataset.HalfStarsFive)
	p, err := NewPool(w.inputs(), raftOptions(), l, Config{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u2")
	r, err := a.Rate(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, q := range r.Dist {
		sum += q
	}
	if !r.Valid || !near(sum, 1, 1e-9) || !(r.Mass > 0 && r.Mass < 1) {
		t.Errorf("rating %+v", r)
	}
	pr, _ := a.RatingPrompt("m4")
	c, _, err := l.start(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() == 0 {
		t.Error("the SentencePiece prompt did not use its shared prefix")
	}
	whole := pr
	whole.Prefix = 0
	lp, err := l.Score(ctx, []Prompt{pr, whole}, p.answers)
	if err != nil {
		t.Fatal(err)
	}
	for j := range lp[0] {
		if !near(lp[0][j], lp[1][j], 1e-4) {
			t.Errorf("%q: forked %v, whole %v", p.answers[j], lp[0][j], lp[1][j])
		}
	}
	g, err := a.RateGenerate(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stories260K: E=%.2f mass %.2g, generated %q (valid %v)", r.Expected, r.Mass, g.Raw, g.Valid)
	if g.Valid { // a story model does not answer with a rating
		t.Errorf("stories260K answered %q", g.Raw)
	}
	e, err := a.Explain(ctx, "m4")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.Reason, "\n") {
		t.Errorf("explanation %q runs past the line", e.Reason)
	}
}

// TestChatTemplate renders prompts with a chat template: the system turn is
// the shared prefix and forking it changes nothing; answers follow the
// assistant header without a space.
func TestChatTemplate(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModelSpecial(t, w, []string{"<|im_start|>", "<|im_end|>"})
	tmpl, err := chat.Builtin(chat.FormatChatML, "", "<|im_end|>")
	if err != nil {
		t.Fatal(err)
	}
	p, l := newLocalPool(t, w, tm, Config{Template: &tmpl})
	a, _ := p.Agent("u1")
	pr, err := a.RatingPrompt("m4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pr.Text, "<|im_start|>system\n") || !strings.HasSuffix(pr.Text, "<|im_start|>assistant\n") || pr.Prefix == 0 ||
		!strings.HasSuffix(pr.Text[:pr.Prefix], "<|im_end|>\n") || p.answers[0] != "1" {
		t.Fatalf("prompt %q (prefix %d), answers %q", pr.Text, pr.Prefix, p.answers)
	}
	c, _, err := l.start(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() == 0 {
		t.Error("the chat prompt did not use its shared prefix")
	}
	whole := pr
	whole.Prefix = 0
	lp, err := l.Score(ctx, []Prompt{pr, whole}, p.answers)
	if err != nil {
		t.Fatal(err)
	}
	for j := range lp[0] {
		if !near(lp[0][j], lp[1][j], 1e-4) {
			t.Errorf("%q: forked %v, whole %v", p.answers[j], lp[0][j], lp[1][j])
		}
	}
	ids, _ := tm.tok.Encode("<|im_start|>", tokenizer.EncodeOptions{ParseSpecial: true})
	full, _ := l.encode(pr.Text)
	if len(ids) != 1 || full[1] != ids[0] {
		t.Errorf("<|im_start|> is not matched as a special token: %v, prompt starts %v", ids, full[:3])
	}
}
