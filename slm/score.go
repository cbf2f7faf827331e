package slm

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Score returns, for each candidate continuation, its log-probability
// log P(candidate | prefix, prompt) under the model: the sum over the
// candidate's tokens of the log-softmax of the logits that predict them.
//
// prefix may be nil (an empty context) or a cache holding a shared prefix
// (a user's persona and profile); it is not modified: Score forks it. prompt
// holds the tokens that follow the prefix; it may be empty when the prefix's
// last logits are known (its last Forward requested them). The prompt is
// run once; candidates of more than one token are continued from forks of
// the prompt's cache, all in one batch.
func (m *Model) Score(ctx context.Context, prefix *Cache, prompt []int, candidates [][]int) ([]float64, error) {
	lp, err := m.ScoreBatch(ctx, prefix, [][]int{prompt}, candidates)
	if err != nil {
		return nil, err
	}
	return lp[0], nil
}

// ScoreBatch is Score for several prompts after the same prefix (one
// user's prompts for several items): all prompts run in one batch, then all
// multi-token candidate continuations in a second one. lp[i][j] is the
// log-probability of candidates[j] after prefix and prompts[i].
func (m *Model) ScoreBatch(ctx context.Context, prefix *Cache, prompts [][]int, candidates [][]int) ([][]float64, error) {
	if len(candidates) == 0 {
		return nil, errors.New("score: no candidates")
	}
	if len(prompts) == 0 {
		return nil, errors.New("score: no prompts")
	}
	for i, c := range candidates {
		if len(c) == 0 {
			return nil, fmt.Errorf("score: candidate %d is empty", i)
		}
		for _, t := range c {
			if t < 0 || t >= m.Config.Vocab {
				return nil, fmt.Errorf("score: candidate %d: token %d outside the vocabulary [0, %d)", i, t, m.Config.Vocab)
			}
		}
	}
	batch := make([]Sequence, len(prompts))
	for i, p := range prompts {
		c := m.NewCache()
		if prefix != nil {
			c = prefix.Fork()
		}
		batch[i] = Sequence{Cache: c, Tokens: p, Logits: LogitsLast}
	}
	out, err := m.Forward(ctx, batch)
	if err != nil {
		return nil, fmt.Errorf("score: prompts: %w", err)
	}
	lp := make([][]float64, len(prompts))
	type owner struct{ prompt, cand int }
	var cont []Sequence
	var owners []owner
	for i := range prompts {
		first := logSoftmax(out[i][0])
		lp[i] = make([]float64, len(candidates))
		for j, cand := range candidates {
			lp[i][j] = first[cand[0]]
			if len(cand) > 1 {
				cont = append(cont, Sequence{Cache: batch[i].Cache.Fork(), Tokens: cand[:len(cand)-1], Logits: LogitsAll})
				owners = append(owners, owner{i, j})
			}
		}
	}
	if len(cont) == 0 {
		return lp, nil
	}
	rest, err := m.Forward(ctx, cont)
	if err != nil {
		return nil, fmt.Errorf("score: candidates: %w", err)
	}
	for b, rows := range rest {
		o := owners[b]
		cand := candidates[o.cand]
		for k, row := range rows {
			lp[o.prompt][o.cand] += logSoftmax(row)[cand[k+1]]
		}
	}
	return lp, nil
}

// ScoreDistribution is Score normalised over the candidates: the
// probability of each candidate given that the answer is one of them (the
// agents read a rating as the distribution over "1".."5").
func (m *Model) ScoreDistribution(ctx context.Context, prefix *Cache, prompt []int, candidates [][]int) ([]float64, error) {
	lp, err := m.Score(ctx, prefix, prompt, candidates)
	if err != nil {
		return nil, err
	}
	return Normalize(lp), nil
}

// Normalize turns log-probabilities into probabilities that sum to one
// (a softmax, stable for very negative values).
func Normalize(logprobs []float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range logprobs {
		mx = math.Max(mx, v)
	}
	p := make([]float64, len(logprobs))
	var sum float64
	for i, v := range logprobs {
		p[i] = math.Exp(v - mx)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// logSoftmax returns log softmax(x) in float64.
func logSoftmax(x []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - lse
	}
	return out
}
