package split

import (
	"math/rand/v2"

	"github.com/usersim/usersim/internal/pcg"
)

// rng draws from a PCG generator (a fully specified algorithm) with
// arithmetic written here, so that a split depends only on its seed and not
// on how a Go release implements math/rand's derived methods.
type rng struct{ src *rand.PCG }

// Streams keep the random choices of a split independent of each other.
const (
	streamSample   uint64 = 1       // which users the paper protocol samples
	streamRows     uint64 = 2       // row order of random and k-fold splits
	streamUserBase uint64 = 1 << 32 // + user: a user's order when there are no timestamps
)

func newRNG(seed int64, stream uint64) *rng {
	return &rng{src: pcg.New(seed, stream)}
}

// intn returns a uniform integer in [0, n); n must be positive (see
// pcg.Intn).
func (r *rng) intn(n int) int { return pcg.Intn(r.src, n) }

// shuffle permutes s in place (Fisher–Yates).
func shuffle[T any](r *rng, s []T) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}
