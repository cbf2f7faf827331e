package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Numbers as single tokens. A small model reads "3.24" spelled as four
// tokens poorly; a corpus may instead write each value as one bucket token,
// "<3.2>", which TrainOptions.Buckets registers as a forced token.

// maxBuckets bounds the tokens of one BucketRange.
const maxBuckets = 100_000

// maxStepDecimals is the most decimals a bucket step may have.
const maxStepDecimals = 6

// BucketNumber returns the bucket token of x: x rounded to the nearest
// multiple of step (halves away from zero, in float64 arithmetic), written
// with as many decimals as step has, in angle brackets.
// BucketNumber(3.24, 0.1) is "<3.2>", BucketNumber(3.26, 0.1) is "<3.3>",
// BucketNumber(4, 0.5) is "<4.0>", BucketNumber(-1.2, 1) is "<-1>".
// It returns "" when x is not finite or step is not a positive number with
// at most six decimals.
func BucketNumber(x, step float64) string {
	d, ok := stepDecimals(step)
	if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
		return ""
	}
	return bucketToken(math.Round(x/step), step, d)
}

// stepDecimals returns the number of decimals of step.
func stepDecimals(step float64) (int, bool) {
	if !(step > 0) || math.IsInf(step, 0) {
		return 0, false
	}
	p := 1.0
	for d := 0; d <= maxStepDecimals; d++ {
		v := step * p
		if math.Abs(v-math.Round(v)) <= 1e-9*math.Max(1, v) && math.Round(v) >= 1 {
			return d, true
		}
		p *= 10
	}
	return 0, false
}

func bucketToken(k, step float64, decimals int) string {
	s := strconv.FormatFloat(k*step, 'f', decimals, 64)
	if strings.HasPrefix(s, "-") && strings.Trim(s, "-0.") == "" {
		s = s[1:] // no "-0.0"
	}
	return "<" + s + ">"
}

// BucketRange is a set of bucket tokens: the multiples of Step from the one
// nearest Min to the one nearest Max, as BucketNumber writes them.
type BucketRange struct {
	Min, Max, Step float64
}

func (r BucketRange) bounds() (lo, hi float64, decimals int, err error) {
	d, ok := stepDecimals(r.Step)
	if !ok {
		return 0, 0, 0, fmt.Errorf("bucket step %v is not a positive number with at most %d decimals", r.Step, maxStepDecimals)
	}
	if math.IsNaN(r.Min) || math.IsNaN(r.Max) || math.IsInf(r.Min, 0) || math.IsInf(r.Max, 0) {
		return 0, 0, 0, errors.New("bucket range bounds must be finite")
	}
	if r.Min > r.Max {
		return 0, 0, 0, fmt.Errorf("bucket range min %v is above max %v", r.Min, r.Max)
	}
	lo, hi = math.Round(r.Min/r.Step), math.Round(r.Max/r.Step)
	if hi-lo+1 > maxBuckets {
		return 0, 0, 0, fmt.Errorf("bucket range %v..%v step %v has more than %d tokens", r.Min, r.Max, r.Step, maxBuckets)
	}
	return lo, hi, d, nil
}

// Tokens returns the tokens of the range in increasing order of value.
func (r BucketRange) Tokens() ([]string, error) {
	lo, hi, d, err := r.bounds()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, int(hi-lo)+1)
	for k := lo; k <= hi; k++ {
		out = append(out, bucketToken(k, r.Step, d))
	}
	return out, nil
}

// Token returns the bucket token of x, clamped to the range: for x inside
// it, the same as BucketNumber(x, r.Step). It returns "" when x is NaN or
// the range is invalid.
func (r BucketRange) Token(x float64) string {
	lo, hi, d, err := r.bounds()
	if err != nil || math.IsNaN(x) {
		return ""
	}
	k := math.Round(x / r.Step)
	k = math.Min(math.Max(k, lo), hi)
	return bucketToken(k, r.Step, d)
}
