package persona

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/usersim/usersim/memory"
)

// An Embedder turns profiles into vectors. Fit learns what it needs from
// the training population (a vocabulary, standardisation constants); Embed
// then maps any profile, including one of a user Fit never saw, into the same
// space. Embed before Fit is an error.
type Embedder interface {
	Name() string
	Fit(ctx context.Context, profiles []memory.Profile) error
	Embed(ctx context.Context, profiles []memory.Profile) ([][]float32, error)
}

// Embedder names accepted by NewEmbedder.
const (
	EmbedTFIDF     = "tfidf"
	EmbedLSA       = "lsa"
	EmbedBehaviour = "behaviour"
	EmbedOpenAI    = "openai"
)

// DefaultEmbedder is the embedder used when none is named: the one that
// separated rating behaviour most in the measurements of the package
// documentation.
const DefaultEmbedder = EmbedBehaviour

// NewEmbedder returns the built-in embedder called name ("tfidf", "lsa",
// "behaviour"; "behavior" is accepted). "openai" needs a client: build an
// OpenAI value instead.
func NewEmbedder(name string, seed int64) (Embedder, error) {
	switch strings.ToLower(name) {
	case EmbedTFIDF:
		return &TFIDF{}, nil
	case EmbedLSA:
		return &TFIDF{Components: DefaultLSAComponents, Seed: seed}, nil
	case EmbedBehaviour, "behavior":
		return &Behaviour{}, nil
	case EmbedOpenAI:
		return nil, errors.New("persona: the openai embedder needs a client and a model (use persona.OpenAI)")
	}
	return nil, fmt.Errorf("persona: unknown embedder %q (want tfidf, lsa, behaviour or openai)", name)
}
