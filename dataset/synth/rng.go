package synth

import (
	"math"
	"math/rand/v2"

	"github.com/usersim/usersim/internal/pcg"
)

// rng is a small deterministic random source. It draws every value from a
// PCG generator (a fully specified algorithm) with arithmetic written here,
// so a world depends only on its seed, never on how a Go release implements
// math/rand's derived methods.
type rng struct{ src *rand.PCG }

// Stream numbers keep the parts of a world independent: changing the number
// of items does not reshuffle the users' demographics, and each user draws
// from a stream of its own.
const (
	streamItems uint64 = iota + 1
	streamTitles
	streamPersonas
	streamUsers
	streamUserBase = 1 << 32 // + user index
)

func newRNG(seed int64, stream uint64) *rng {
	return &rng{src: pcg.New(seed, stream)}
}

// float64 returns a uniform value in [0, 1).
func (r *rng) float64() float64 { return float64(r.src.Uint64()>>11) / (1 << 53) }

// open01 returns a uniform value in (0, 1].
func (r *rng) open01() float64 { return float64(r.src.Uint64()>>11+1) / (1 << 53) }

// intn returns a uniform integer in [0, n); n must be positive (see
// pcg.Intn).
func (r *rng) intn(n int) int { return pcg.Intn(r.src, n) }

// between returns a uniform integer in [lo, hi].
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo+1) }

// norm returns a standard normal value (Box–Muller, one value per call).
func (r *rng) norm() float64 {
	u1, u2 := r.open01(), r.float64()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// uniform returns a uniform value in [lo, hi).
func (r *rng) uniform(lo, hi float64) float64 { return lo + (hi-lo)*r.float64() }

// shuffle permutes n elements (Fisher–Yates).
func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

// perm returns a random permutation of 0..n-1.
func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// pick returns an index drawn with probability proportional to w[i].
func (r *rng) pick(w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	u := r.float64() * sum
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// quota deals n labels in proportion to w by largest remainders and
// shuffles them, so that small worlds still hold every label in proportion.
func (r *rng) quota(n int, w []float64) []int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	counts := make([]int, len(w))
	rem := make([]float64, len(w))
	left := n
	for i, x := range w {
		exact := float64(n) * x / sum
		counts[i] = int(exact)
		rem[i] = exact - float64(counts[i])
		left -= counts[i]
	}
	for ; left > 0; left-- {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		counts[best]++
		rem[best] = -1
	}
	out := make([]int, 0, n)
	for i, c := range counts {
		for range c {
			out = append(out, i)
		}
	}
	r.shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
