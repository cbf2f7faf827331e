package agent

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/usersim/usersim/llm"
)

// DefaultTopLogprobs is the number of most likely first tokens a Remote
// backend asks for when Remote.TopLogprobs is 0 (OpenAI's legacy completions
// allow at most 5; vLLM up to its --max-logprobs, 20 by default).
const DefaultTopLogprobs = 20

// Remote is the Backend of an OpenAI-compatible server (vLLM with
// --enable-lora, llama.cpp's server, OpenAI): a Prompt's Adapter is sent as
// the model name (BaseModel for ""), and the distribution over candidates is
// read from the text completion's logprobs.
//
// When every candidate is one character ("1".."5", item letters), one request
// per prompt asks for the top logprobs of the first generated token, and each
// candidate gets the probability of the tokens that are that character with
// optional surrounding whitespace ("4", " 4", "▁4"); candidates not among the
// top tokens get -Inf, so the scale's mass falls below one. Longer candidates
// ("3.5", "10") are scored exactly with one echo request per candidate (the
// prompt followed by the candidate, max_tokens 1, echo): the sum of the
// logprobs of the tokens that cover the candidate. A candidate that is a
// prefix of another (" 1" of " 1.5") is scored as ending there, as Local
// does: the generated token's top logprobs give the probability of a token
// that would continue it (one starting with "."), which is taken out.
type Remote struct {
	Client *llm.Client
	// BaseModel is the model name of prompts without an adapter.
	BaseModel string
	// TopLogprobs is how many first tokens to ask for (0:
	// DefaultTopLogprobs).
	TopLogprobs int
	// Chat sends Prompt.Messages to /chat/completions, letting the server
	// apply the model's chat template, and reads the first answer token's
	// top_logprobs. Only one-character candidates can be scored this way
	// (chat has no echo). An explanation's started answer is sent as a
	// final assistant message with vLLM's continue_final_message.
	Chat bool
}

// Score implements Backend.
func (r *Remote) Score(ctx context.Context, prompts []Prompt, candidates []string) ([][]float64, error) {
	if r.Client == nil {
		return nil, errors.New("agent: remote backend has no client")
	}
	single := true
	for _, c := range candidates {
		if utf8.RuneCountInString(strings.TrimSpace(c)) != 1 {
			single = false
		}
	}
	if r.Chat && !single {
		return nil, errors.New("agent: remote chat backend scores one-character candidates only (use completions for half-star scales)")
	}
	out := make([][]float64, len(prompts))
	errs := make([]error, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			if r.Chat {
				out[i], errs[i] = r.scoreChat(ctx, p, candidates)
			} else if single {
				out[i], errs[i] = r.scoreTop(ctx, p, candidates)
			} else {
				out[i], errs[i] = r.scoreEcho(ctx, p, candidates)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (r *Remote) model(p Prompt) string {
	if p.Adapter != "" {
		return p.Adapter
	}
	return r.BaseModel
}

func (r *Remote) scoreTop(ctx context.Context, p Prompt, candidates []string) ([]float64, error) {
	k := cmpOr(r.TopLogprobs, DefaultTopLogprobs)
	zero := 0.0
	resp, err := r.Client.Completions(ctx, llm.CompletionRequest{
		Model: r.model(p), Prompt: p.Text, MaxTokens: 1, Temperature: &zero, Logprobs: &k,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: remote score (model %q): %w", r.model(p), err)
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Logprobs == nil {
		return nil, fmt.Errorf("agent: remote score (model %q): the response has no logprobs", r.model(p))
	}
	lp := resp.Choices[0].Logprobs
	top := map[string]float64{}
	if len(lp.TopLogprobs) > 0 && lp.TopLogprobs[0] != nil {
		top = lp.TopLogprobs[0]
	} else if len(lp.Tokens) > 0 && len(lp.TokenLogprobs) > 0 {
		top = map[string]float64{lp.Tokens[0]: lp.TokenLogprobs[0]} // logprobs=0 servers
	}
	return matchTop(top, candidates), nil
}

func (r *Remote) chatRequest(p Prompt, maxTokens int) (llm.ChatRequest, error) {
	if len(p.Messages) == 0 {
		return llm.ChatRequest{}, errors.New("agent: remote chat: the prompt has no messages")
	}
	zero := 0.0
	req := llm.ChatRequest{Model: r.model(p), MaxTokens: maxTokens, Temperature: &zero}
	for _, m := range p.Messages {
		req.Messages = append(req.Messages, llm.Message{Role: m.Role, Content: m.Content})
	}
	if p.Assistant != "" {
		req.Messages = append(req.Messages, llm.Message{Role: "assistant", Content: p.Assistant})
		req.Extra = map[string]any{"continue_final_message": true, "add_generation_prompt": false}
	}
	return req, nil
}

func (r *Remote) scoreChat(ctx context.Context, p Prompt, candidates []string) ([]float64, error) {
	req, err := r.chatRequest(p, 1)
	if err != nil {
		return nil, err
	}
	req.Logprobs, req.TopLogprobs = true, cmpOr(r.TopLogprobs, DefaultTopLogprobs)
	resp, err := r.Client.Chat(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("agent: remote chat score (model %q): %w", req.Model, err)
	}
	if len(resp.Choices) == 0 || resp.Choices[0].Logprobs == nil || len(resp.Choices[0].Logprobs.Content) == 0 {
		return nil, fmt.Errorf("agent: remote chat score (model %q): the response has no logprobs", req.Model)
	}
	first := resp.Choices[0].Logprobs.Content[0]
	top := map[string]float64{first.Token: first.Logprob}
	for _, t := range first.TopLogprobs {
		top[t.Token] = t.Logprob
	}
	return matchTop(top, candidates), nil
}

// matchTop gives each candidate the summed probability of the top tokens
// that are the candidate up to surrounding whitespace (SentencePiece's ▁
// counts as a space); -Inf when none is.
func matchTop(top map[string]float64, candidates []string) []float64 {
	out := make([]float64, len(candidates))
	for j, c := range candidates {
		c = strings.TrimSpace(c)
		var lps []float64
		for tok, v := range top {
			if normToken(tok) == c {
				lps = append(lps, v)
			}
		}
		out[j] = logSumExp(lps)
	}
	return out
}

func normToken(t string) string {
	t = strings.ReplaceAll(t, "▁", " ")
	t = strings.ReplaceAll(t, "Ġ", " ")
	t = strings.ReplaceAll(t, "Ċ", "\n")
	return strings.TrimSpace(t)
}

func (r *Remote) scoreEcho(ctx context.Context, p Prompt, candidates []string) ([]float64, error) {
	out := make([]float64, len(candidates))
	zero := 0.0
	next := continuers(candidates)
	for j, c := range candidates {
		k := 0
		if next[j] != "" {
			k = cmpOr(r.TopLogprobs, DefaultTopLogprobs)
		}
		resp, err := r.Client.Completions(ctx, llm.CompletionRequest{
			Model: r.model(p), Prompt: p.Text + c, MaxTokens: 1, Temperature: &zero, Logprobs: &k, Echo: true,
		})
		if err != nil {
			return nil, fmt.Errorf("agent: remote score %q (model %q): %w", c, r.model(p), err)
		}
		if len(resp.Choices) == 0 || resp.Choices[0].Logprobs == nil {
			return nil, fmt.Errorf("agent: remote score %q (model %q): the response has no logprobs", c, r.model(p))
		}
		lp := resp.Choices[0].Logprobs
		v, err := echoScore(lp, p.Text, c)
		if err != nil {
			return nil, fmt.Errorf("agent: remote score %q (model %q): %w", c, r.model(p), err)
		}
		if next[j] != "" {
			// The generated token's top logprobs: the answer must end here.
			if len(lp.TopLogprobs) == 0 || lp.TopLogprobs[len(lp.TopLogprobs)-1] == nil {
				return nil, fmt.Errorf("agent: remote score %q (model %q): no top logprobs after the candidate", c, r.model(p))
			}
			var cont float64
			for tok, x := range lp.TopLogprobs[len(lp.TopLogprobs)-1] {
				if tok != "" && strings.ContainsRune(next[j], rune(tok[0])) {
					cont += math.Exp(x)
				}
			}
			v += math.Log1p(-min(cont, 1))
		}
		out[j] = v
	}
	return out, nil
}

// continuers returns, for each candidate that is a proper prefix of a longer
// one (" 1" of " 1.5"), the characters that would continue it into one
// ("."); "" for the others.
func continuers(candidates []string) []string {
	next := make([]string, len(candidates))
	for j, c := range candidates {
		for k, o := range candidates {
			if k != j && len(o) > len(c) && strings.HasPrefix(o, c) && !strings.Contains(next[j], o[len(c):len(c)+1]) {
				next[j] += o[len(c) : len(c)+1]
			}
		}
	}
	return next
}

// echoScore sums the logprobs of the echoed tokens that cover cand at the
// end of prompt+cand. The echoed text is the tokens' concatenation; tokens
// past it (the one generated) are ignored, as is a token straddling the
// prompt's end (its logprob is counted: it predicts the candidate's start).
func echoScore(lp *llm.CompletionLogprobs, prompt, cand string) (float64, error) {
	if len(lp.Tokens) != len(lp.TokenLogprobs) {
		return 0, errors.New("tokens and token_logprobs differ in length")
	}
	full := prompt + cand
	pos := 0
	var sum float64
	covered := false
	for t, tok := range lp.Tokens {
		end := pos + len(tok)
		if end > len(prompt) && pos < len(full) {
			v := lp.TokenLogprobs[t]
			if math.IsNaN(v) {
				return 0, fmt.Errorf("token %d has no logprob", t)
			}
			sum += v
			covered = true
		}
		pos = end
		if pos >= len(full) {
			break
		}
	}
	if !covered || pos < len(full) {
		return 0, fmt.Errorf("the echoed tokens do not cover the candidate (%d of %d bytes)", pos, len(full))
	}
	return sum, nil
}

// Generate implements Backend with temperature 0.
func (r *Remote) Generate(ctx context.Context, p Prompt, opt GenerateOptions) (string, error) {
	if r.Client == nil {
		return "", errors.New("agent: remote backend has no client")
	}
	if opt.MaxTokens <= 0 {
		return "", errors.New("agent: generate: MaxTokens must be positive")
	}
	if r.Chat {
		req, err := r.chatRequest(p, opt.MaxTokens)
		if err != nil {
			return "", err
		}
		req.Stop = opt.Stop
		resp, err := r.Client.Chat(ctx, req)
		if err != nil {
			return "", fmt.Errorf("agent: remote chat generate (model %q): %w", req.Model, err)
		}
		return resp.Content(), nil
	}
	zero := 0.0
	resp, err := r.Client.Completions(ctx, llm.CompletionRequest{
		Model: r.model(p), Prompt: p.Text, MaxTokens: opt.MaxTokens, Temperature: &zero, Stop: opt.Stop,
	})
	if err != nil {
		return "", fmt.Errorf("agent: remote generate (model %q): %w", r.model(p), err)
	}
	if len(resp.Choices) == 0 {
		return "", fmt.Errorf("agent: remote generate (model %q): no choices", r.model(p))
	}
	return resp.Choices[0].Text, nil
}
