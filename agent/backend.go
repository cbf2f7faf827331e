package agent

import (
	"context"
	"math"

	"github.com/usersim/usersim/slm/chat"
)

// Prompt is one prompt for a Backend: the full text after which the answer
// begins.
type Prompt struct {
	// Adapter names the LoRA adapter (persona) to run with; "" runs the
	// base model alone (zero-shot). A Remote backend sends it as the model
	// name.
	Adapter string
	// Text is the prompt, chat template applied when there is one.
	Text string
	// Prefix is the length in bytes of the start of Text that many prompts
	// share (the system text with the user's persona and profile); 0 when
	// none. A Local backend computes it once and forks it.
	Prefix int
	// Messages are the conversation Text renders (system and user turns,
	// no template applied), for backends that apply the template
	// themselves (Remote with Chat).
	Messages []chat.Message
	// Assistant is the start of the answer already written after Text (an
	// explanation continues "4 because"); Text includes it.
	Assistant string
}

// GenerateOptions configure Backend.Generate. Decoding is greedy.
type GenerateOptions struct {
	// MaxTokens bounds the generated tokens (required, positive).
	MaxTokens int
	// Stop ends the text at the first of these strings (not included).
	Stop []string
}

// Backend runs the language model behind agents.
type Backend interface {
	// Score returns, for each prompt, the natural-log probability of each
	// candidate continuation (the same candidates for every prompt):
	// lp[i][j] = log P(candidates[j] | prompts[i]). A candidate the
	// backend cannot see (absent from a remote server's top logprobs) is
	// -Inf.
	Score(ctx context.Context, prompts []Prompt, candidates []string) ([][]float64, error)
	// Generate continues the prompt greedily and returns the text.
	Generate(ctx context.Context, p Prompt, opt GenerateOptions) (string, error)
}

// logSumExp returns log Σ exp(xs), -Inf for none or all -Inf.
func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	if math.IsInf(m, -1) {
		return m
	}
	var s float64
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}
