package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func softmax(l []float64, t float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range l {
		mx = max(mx, v/t)
	}
	p := make([]float64, len(l))
	var s float64
	for i, v := range l {
		p[i] = math.Exp(v/t - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

func logitsOf(p []float64) []float32 {
	l := make([]float32, len(p))
	for i, v := range p {
		l[i] = float32(math.Log(v))
	}
	return l
}

// chiSquare draws n samples and returns Pearson's statistic against want;
// tokens with want 0 must never be drawn.
func chiSquare(t *testing.T, s *Sampler, logits []float32, want []float64, n int) float64 {
	t.Helper()
	counts := make([]int, len(logits))
	for range n {
		id := s.Sample(logits, nil)
		if id < 0 || id >= len(logits) {
			t.Fatalf("Sample returned %d, out of range", id)
		}
		counts[id]++
	}
	var chi float64
	for i, w := range want {
		if w == 0 {
			if counts[i] != 0 {
				t.Fatalf("token %d has probability 0 but was drawn %d times", i, counts[i])
			}
			continue
		}
		e := w * float64(n)
		chi += (float64(counts[i]) - e) * (float64(counts[i]) - e) / e
	}
	return chi
}

// Critical values of the chi-square distribution at p = 0.001.
var chiCrit = map[int]float64{1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}

func TestDistributions(t *testing.T) {
	base := []float64{0.5, 0.3, 0.15, 0.05}
	tests := []struct {
		name string
		opt  Options
		want []float64
	}{
		{"temperature 1", Options{Temperature: 1}, base},
		{"temperature 0.5", Options{Temperature: 0.5}, softmax([]float64{math.Log(.5), math.Log(.3), math.Log(.15), math.Log(.05)}, 0.5)},
		{"temperature 2", Options{Temperature: 2}, softmax([]float64{math.Log(.5), math.Log(.3), math.Log(.15), math.Log(.05)}, 2)},
		// cumulative 0.5 < 0.7 keeps token 1; 0.8 ≥ 0.7 drops the rest.
		{"top-p 0.7", Options{Temperature: 1, TopP: 0.7}, []float64{0.5 / 0.8, 0.3 / 0.8, 0, 0}},
		{"top-p 0.85", Options{Temperature: 1, TopP: 0.85}, []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
		{"top-k 2", Options{Temperature: 1, TopK: 2}, []float64{0.5 / 0.8, 0.3 / 0.8, 0, 0}},
		{"top-k 3 top-p 0.9", Options{Temperature: 1, TopK: 3, TopP: 0.9}, []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
		{"top-k 3 top-p 0.8", Options{Temperature: 1, TopK: 3, TopP: 0.8}, []float64{0.5 / 0.8, 0.3 / 0.8, 0, 0}},
		// 0.2 × 0.5 = 0.1 drops token 3 only.
		{"min-p 0.2", Options{Temperature: 1, MinP: 0.2}, []float64{0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.Seed = 42
			chi := chiSquare(t, NewSampler(tt.opt), logitsOf(base), tt.want, 40000)
			df := -1
			for _, w := range tt.want {
				if w > 0 {
					df++
				}
			}
			if chi > chiCrit[df] {
				t.Errorf("chi-square %.2f > %.2f (df %d): samples do not follow %v", chi, chiCrit[df], df, tt.want)
			}
		})
	}
}

// TestChiSquareDetects makes sure the check above can fail: samples at
// temperature 1 do not pass for the temperature-2 distribution.
func TestChiSquareDetects(t *testing.T) {
	base := []float64{0.5, 0.3, 0.15, 0.05}
	wrong := softmax([]float64{math.Log(.5), math.Log(.3), math.Log(.15), math.Log(.05)}, 2)
	if chi := chiSquare(t, NewSampler(Options{Temperature: 1, Seed: 1}), logitsOf(base), wrong, 40000); chi < chiCrit[3] {
		t.Fatalf("chi-square %.2f did not reject a wrong distribution", chi)
	}
}

// kept returns the tokens Sample may return: the set its filters keep.
func kept(s *Sampler, logits []float32) map[int]bool {
	x := s.penalize(logits, nil)
	mx := float32(math.Inf(-1))
	for i := range x {
		x[i] /= s.opt.Temperature
		mx = max(mx, x[i])
	}
	c, w, total := s.candidates(x, mx)
	out := make(map[int]bool)
	if c == nil {
		for i := range x {
			out[i] = true
		}
		return out
	}
	for _, cd := range c[:s.filter(w, total)] {
		out[cd.id] = true
	}
	return out
}

// refKept computes the kept set by the definitions: sort the whole
// vocabulary, cut at top-k, renormalise, keep while the mass before a token
// is below top-p, then drop tokens under min-p times the best.
func refKept(logits []float32, o Options) map[int]bool {
	n := len(logits)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if logits[a] > logits[b] {
			return -1
		} else if logits[a] < logits[b] {
			return 1
		}
		return 0
	})
	if o.TopK > 0 && o.TopK < n {
		idx = idx[:o.TopK]
	}
	l := make([]float64, len(idx))
	for i, id := range idx {
		l[i] = float64(logits[id])
	}
	p := softmax(l, float64(o.Temperature))
	keep := len(idx)
	if o.TopP > 0 && o.TopP < 1 {
		var cum float64
		for i := range idx {
			if cum >= float64(o.TopP) {
				keep = i
				break
			}
			cum += p[i]
		}
	}
	out := make(map[int]bool)
	for i := range keep {
		if o.MinP > 0 && p[i] < float64(o.MinP)*p[0] {
			break
		}
		out[idx[i]] = true
	}
	return out
}

// TestKeptLargeVocab checks the set of tokens the filters keep against a
// full sort, on vocabularies large enough for the bucketed selection.
func TestKeptLargeVocab(t *testing.T) {
	const v = 4096
	r := rand.New(rand.NewPCG(7, 7))
	peaked := make([]float32, v)
	for i := range peaked {
		peaked[i] = float32(r.NormFloat64() * 3)
	}
	wide := make([]float32, v)
	for i := range wide {
		wide[i] = float32(r.NormFloat64() * 0.5)
	}
	flat := make([]float32, v) // all equal: the nucleus of 0.5 is 2048 tokens
	tests := []struct {
		name   string
		logits []float32
		opt    Options
		size   int // expected size of the kept set, when known
	}{
		{"peaked top-p", peaked, Options{Temperature: 1, TopP: 0.9}, 0},
		{"peaked top-p hot", peaked, Options{Temperature: 3, TopP: 0.95}, 0},
		{"wide top-p", wide, Options{Temperature: 1, TopP: 0.9}, 0},
		{"flat top-p", flat, Options{Temperature: 1, TopP: 0.5}, 2048},
		{"peaked min-p", peaked, Options{Temperature: 1, MinP: 0.05}, 0},
		{"wide min-p top-p", wide, Options{Temperature: 0.7, MinP: 0.1, TopP: 0.8}, 0},
		{"top-k top-p", wide, Options{Temperature: 1, TopK: 300, TopP: 0.5}, 0},
		{"top-k only", wide, Options{Temperature: 1, TopK: 300}, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kept(NewSampler(tt.opt), tt.logits)
			want := refKept(tt.logits, tt.opt)
			if len(got) != len(want) {
				t.Fatalf("kept %d tokens, want %d", len(got), len(want))
			}
			for id := range want {
				if !got[id] {
					t.Fatalf("token %d missing from the kept set", id)
				}
			}
			if tt.size > 0 && len(want) != tt.size {
				t.Fatalf("reference keeps %d tokens, want %d", len(want), tt.size)
			}
			if len(want) < 2 || len(want) == v {
				t.Fatalf("degenerate case: %d tokens kept", len(want))
			}
			s := NewSampler(tt.opt)
			for range 2000 {
				if id := s.Sample(tt.logits, nil); !want[id] {
					t.Fatalf("drew token %d outside the kept set", id)
				}
			}
		})
	}
}

func TestGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		l := make([]float32, 1+r.IntN(300))
		for i := range l {
			l[i] = float32(r.NormFloat64())
		}
		want := Argmax(l)
		if got := NewSampler(Options{}).Sample(l, nil); got != want {
			t.Fatalf("trial %d: greedy = %d, want argmax %d", trial, got, want)
		}
		if got := NewSampler(Options{Temperature: 1.3, TopK: 1, Seed: uint64(trial)}).Sample(l, nil); got != want {
			t.Fatalf("trial %d: top-k 1 = %d, want argmax %d", trial, got, want)
		}
		if got := NewSampler(Options{Temperature: 0.7, TopP: 1e-6, Seed: uint64(trial)}).Sample(l, nil); got != want {
			t.Fatalf("trial %d: top-p 1e-6 = %d, want argmax %d", trial, got, want)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(-1))
	tests := []struct {
		name   string
		opt    Options
		logits []float32
		want   int
	}{
		{"empty", Options{}, nil, -1},
		{"empty sampled", Options{Temperature: 1}, []float32{}, -1},
		{"nan never wins", Options{}, []float32{nan, 1, nan, 2, nan}, 3},
		{"nan sampled", Options{Temperature: 1, TopK: 1}, []float32{nan, 1, 3, nan}, 2},
		{"all -inf but one", Options{Temperature: 1}, []float32{inf, inf, 0, inf}, 2},
		{"tie takes first", Options{}, []float32{1, 5, 5, 2}, 1},
		{"tiny temperature", Options{Temperature: 1e-38, TopP: 0.9}, []float32{1, 5, 3, 2}, 1},
		{"infinite logit", Options{Temperature: 1}, []float32{1, float32(math.Inf(1)), 3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(20) {
				tt.opt.Seed = seed
				if got := NewSampler(tt.opt).Sample(tt.logits, nil); got != tt.want {
					t.Fatalf("seed %d: got %d, want %d", seed, got, tt.want)
				}
			}
		})
	}
}

func TestRepeatPenalty(t *testing.T) {
	tests := []struct {
		name    string
		opt     Options
		logits  []float32
		history []int
		want    int
	}{
		// 2/2 = 1 < 1.5: token 0 loses to token 2.
		{"positive divided", Options{RepeatPenalty: 2}, []float32{2, -1, 1.5}, []int{0, 1}, 2},
		// Only the last token (1) is penalised.
		{"last n", Options{RepeatPenalty: 2, RepeatLastN: 1}, []float32{2, -1, 1.5}, []int{0, 1}, 0},
		// -0.5 × 3 = -1.5 < -1: a negative logit gets more negative.
		{"negative multiplied", Options{RepeatPenalty: 3}, []float32{-0.5, -1, -3}, []int{0, 0, 0}, 1},
		// Repeats count once: 4/2 = 2 > 1.9 (dividing twice would give 1).
		{"once per token", Options{RepeatPenalty: 2}, []float32{4, 1.9}, []int{0, 0, 0}, 0},
		{"disabled at 1", Options{RepeatPenalty: 1}, []float32{2, -1, 1.5}, []int{0, 1}, 0},
		{"ids out of range ignored", Options{RepeatPenalty: 2}, []float32{2, 1.5}, []int{-3, 7, 2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.logits)
			if got := NewSampler(tt.opt).Sample(tt.logits, tt.history); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
			if !slices.Equal(in, tt.logits) {
				t.Fatalf("Sample modified its input: %v → %v", in, tt.logits)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	l := make([]float32, 2000)
	for i := range l {
		l[i] = float32(r.NormFloat64())
	}
	run := func(seed uint64) []int {
		s := NewSampler(Options{Temperature: 0.9, TopK: 50, TopP: 0.95, RepeatPenalty: 1.1, Seed: seed})
		var out []int
		for range 200 {
			out = append(out, s.Sample(l, out))
		}
		return out
	}
	a, b, c := run(11), run(11), run(12)
	if !slices.Equal(a, b) {
		t.Fatal("two samplers with the same seed chose different tokens")
	}
	if slices.Equal(a, c) {
		t.Fatal("seeds 11 and 12 chose the same 200 tokens")
	}
}

func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 5))
	l := make([]float32, 49152)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 2)
	}
	for _, bc := range []struct {
		name string
		opt  Options
	}{
		{"greedy", Options{}},
		{"temperature", Options{Temperature: 0.8}},
		{"topk40", Options{Temperature: 0.8, TopK: 40}},
		{"topp0.9", Options{Temperature: 0.8, TopP: 0.9}},
		{"topk40_topp0.9_rep1.1", Options{Temperature: 0.8, TopK: 40, TopP: 0.9, RepeatPenalty: 1.1, RepeatLastN: 64}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewSampler(bc.opt)
			hist := make([]int, 64)
			for i := range hist {
				hist[i] = i * 7
			}
			for b.Loop() {
				s.Sample(l, hist)
			}
		})
	}
}
