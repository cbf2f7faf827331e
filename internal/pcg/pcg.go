// Package pcg draws reproducible random numbers from math/rand/v2's PCG
// generator (a fully specified algorithm) with arithmetic written here, so
// that what a seed produces never depends on how a Go release implements
// math/rand's derived methods.
package pcg

import (
	"math/bits"
	"math/rand/v2"
)

// New returns the generator of one stream of a seed: streams of the same
// seed are independent of each other.
func New(seed int64, stream uint64) *rand.PCG {
	return rand.NewPCG(uint64(seed), stream*0x9e3779b97f4a7c15+0x632be59bd9b4e019)
}

// Intn returns a uniform integer in [0, n) drawn from src by Lemire's
// multiply-and-reject method (unbiased); n must be positive.
func Intn(src *rand.PCG, n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(src.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), un)
		}
	}
	return int(hi)
}
