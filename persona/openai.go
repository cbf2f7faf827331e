package persona

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/usersim/usersim/internal/vec"
	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
)

// EmbeddingsClient computes embeddings of texts with a named model, one
// vector per input, in input order.
type EmbeddingsClient interface {
	Embed(ctx context.Context, model string, inputs []string) ([][]float32, error)
}

// OpenAI embeds profile descriptions through an OpenAI-compatible
// /v1/embeddings endpoint, in batches, each vector scaled to unit length.
// Fit only checks that the client answers; the model needs no training.
type OpenAI struct {
	Client    EmbeddingsClient
	Model     string
	BatchSize int // inputs per request; default 64

	dim int
}

// Name is "openai:" and the model.
func (o *OpenAI) Name() string { return EmbedOpenAI + ":" + o.Model }

// Fit embeds the first profile to learn the dimension.
func (o *OpenAI) Fit(ctx context.Context, profiles []memory.Profile) error {
	if o.Client == nil || o.Model == "" {
		return errors.New("persona: openai embedder: client and model are required")
	}
	if len(profiles) == 0 {
		return errors.New("persona: openai embedder: no profiles to fit")
	}
	o.dim = 0
	v, err := o.Embed(ctx, profiles[:1])
	if err != nil {
		return err
	}
	o.dim = len(v[0])
	return nil
}

// Embed returns one unit vector per profile's description.
func (o *OpenAI) Embed(ctx context.Context, profiles []memory.Profile) ([][]float32, error) {
	if o.Client == nil || o.Model == "" {
		return nil, errors.New("persona: openai embedder: client and model are required")
	}
	bs := o.BatchSize
	if bs <= 0 {
		bs = 64
	}
	out := make([][]float32, 0, len(profiles))
	for lo := 0; lo < len(profiles); lo += bs {
		batch := profiles[lo:min(len(profiles), lo+bs)]
		inputs := make([]string, len(batch))
		for i, p := range batch {
			if strings.TrimSpace(p.Description) == "" {
				return nil, fmt.Errorf("persona: openai embedder: user %s has an empty description", p.User)
			}
			inputs[i] = p.Description
		}
		vecs, err := o.Client.Embed(ctx, o.Model, inputs)
		if err != nil {
			return nil, fmt.Errorf("persona: openai embedder: users %s..%s: %w", batch[0].User, batch[len(batch)-1].User, err)
		}
		if len(vecs) != len(batch) {
			return nil, fmt.Errorf("persona: openai embedder: %d vectors for %d inputs", len(vecs), len(batch))
		}
		for i, v := range vecs {
			want := o.dim
			if want == 0 && len(out) > 0 {
				want = len(out[0])
			}
			if len(v) == 0 || (want > 0 && len(v) != want) {
				return nil, fmt.Errorf("persona: openai embedder: user %s: vector of %d dimensions, want %d", batch[i].User, len(v), want)
			}
			v = clone(v)
			vec.Normalize(v)
			out = append(out, v)
		}
	}
	return out, nil
}

// LLMClient adapts an llm.Client to EmbeddingsClient.
type LLMClient struct {
	Client     *llm.Client
	Dimensions int // shortens the vectors where the model supports it; 0: the model's own
}

// Embed calls the client's /embeddings endpoint.
func (c LLMClient) Embed(ctx context.Context, model string, inputs []string) ([][]float32, error) {
	resp, err := c.Client.Embeddings(ctx, llm.EmbeddingRequest{Model: model, Input: inputs, Dimensions: c.Dimensions})
	if err != nil {
		return nil, err
	}
	if len(resp.Data) != len(inputs) {
		return nil, fmt.Errorf("embeddings: %d vectors for %d inputs", len(resp.Data), len(inputs))
	}
	out := make([][]float32, len(inputs))
	for k, e := range resp.Data { // the client returns Data in input order
		out[k] = e.Embedding
	}
	return out, nil
}
