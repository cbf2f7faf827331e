// Package vec holds small float32 vector helpers shared by the embedding
// code of several packages.
package vec

import "math"

// Normalize scales v in place to unit Euclidean length; a zero vector stays
// zero. The sum of squares is accumulated in float64.
func Normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}
