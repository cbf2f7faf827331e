package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestVectorKernels(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(2, 3))
		for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 63, 100, 1000} {
			a, b := randSlice(r, n), randSlice(r, n+3) // b longer: only len(a) is used
			abs := refDot(absSlice(a), absSlice(b[:n]))
			checkClose(t, "Dot", []float32{Dot(a, b)}, []float32{refDot(a, b[:n])}, []float32{abs}, n)

			y0 := randSlice(r, n+3)
			want := append([]float32(nil), y0...)
			refAxpy(0.75, a, want[:n])
			got := append([]float32(nil), y0...)
			Axpy(0.75, a, got)
			for i := range got {
				if math.Abs(float64(got[i]-want[i])) > 1e-6*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("Axpy n=%d: [%d] = %g, want %g", n, i, got[i], want[i])
				}
			}

			x := append([]float32(nil), a...)
			Scale(-1.5, x)
			for i := range x {
				if x[i] != -1.5*a[i] {
					t.Fatalf("Scale n=%d: [%d] = %g, want %g", n, i, x[i], -1.5*a[i])
				}
			}

			if n == 0 {
				continue
			}
			w := randSlice(r, n)
			wantN := make([]float32, n)
			refRMSNorm(wantN, a, w, 1e-5)
			gotN := make([]float32, n)
			RMSNorm(gotN, a, w, 1e-5)
			for i := range gotN {
				if math.Abs(float64(gotN[i]-wantN[i])) > 1e-5*(1+math.Abs(float64(wantN[i]))) {
					t.Fatalf("RMSNorm n=%d: [%d] = %g, want %g", n, i, gotN[i], wantN[i])
				}
			}

			s := append([]float32(nil), a...)
			ws := append([]float32(nil), a...)
			refSoftmax(ws)
			Softmax(s)
			var sum float64
			for i := range s {
				sum += float64(s[i])
				if math.Abs(float64(s[i]-ws[i])) > 1e-6 {
					t.Fatalf("Softmax n=%d: [%d] = %g, want %g", n, i, s[i], ws[i])
				}
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Fatalf("Softmax n=%d sums to %g", n, sum)
			}
		}
	})
}

func TestKnownValues(t *testing.T) {
	for _, im := range append([]Impl{Reference}, fastImpls()...) {
		prev := SetImpl(im)
		x := []float32{0, float32(math.Log(3))}
		Softmax(x)
		if math.Abs(float64(x[0])-0.25) > 1e-7 || math.Abs(float64(x[1])-0.75) > 1e-7 {
			t.Errorf("%v: softmax(0, ln 3) = %v, want [0.25 0.75]", im, x)
		}
		big := []float32{1000, 1000, -math.MaxFloat32}
		Softmax(big)
		if big[0] != 0.5 || big[1] != 0.5 || big[2] != 0 {
			t.Errorf("%v: softmax(1000, 1000, -max) = %v, want [0.5 0.5 0]", im, big)
		}
		out := make([]float32, 4)
		RMSNorm(out, []float32{3, -3, 3, -3}, []float32{1, 2, 0.5, 1}, 0)
		if want := []float32{1, -2, 0.5, -1}; !equal(out, want) {
			t.Errorf("%v: RMSNorm = %v, want %v", im, out, want)
		}
		act := make([]float32, 3)
		SiLUMul(act, []float32{0, 1, -1}, []float32{5, 2, 2})
		want := []float32{0, float32(2 / (1 + math.Exp(-1))), float32(-2 / (1 + math.Exp(1)))}
		for i := range act {
			if math.Abs(float64(act[i]-want[i])) > 1e-6 {
				t.Errorf("%v: SiLUMul = %v, want %v", im, act, want)
			}
		}
		if got := Dot([]float32{1, 2, 3, 4, 5, 6, 7, 8, 9}, []float32{9, 8, 7, 6, 5, 4, 3, 2, 1}); got != 165 {
			t.Errorf("%v: Dot = %g, want 165", im, got)
		}
		c := make([]float32, 4)
		MatMulNN(c, []float32{1, 2, 3, 4}, []float32{5, 6, 7, 8}, 2, 2, 2)
		if want := []float32{19, 22, 43, 50}; !equal(c, want) {
			t.Errorf("%v: MatMulNN = %v, want %v", im, c, want)
		}
		SetImpl(prev)
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestShapePanics(t *testing.T) {
	for _, f := range []func(){
		func() { MatMulNT(make([]float32, 3), make([]float32, 4), make([]float32, 4), 2, 2, 2) },
		func() { MatMulNN(make([]float32, 4), make([]float32, 3), make([]float32, 4), 2, 2, 2) },
		func() { MatMulTN(make([]float32, 4), make([]float32, 4), make([]float32, 3), 2, 2, 2) },
		func() { MatMulNT(nil, nil, nil, -1, 2, 2) },
		func() { MatMulNTQ8_0(make([]float32, 1), make([]float32, 33), make([]byte, 34), 1, 1, 33) },
		func() { MatMulNTQ8_0(make([]float32, 1), make([]float32, 32), make([]byte, 33), 1, 1, 32) },
		func() { Dot(make([]float32, 3), make([]float32, 2)) },
		func() { F16ToF32(make([]float32, 1), make([]uint16, 2)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("bad shapes did not panic")
				}
			}()
			f()
		}()
	}
}

func TestImplSelection(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want Impl
		ok   bool
	}{
		{"reference", Reference, true},
		{"generic", Generic, true},
		{"avx2", AVX2, true},
		{"", Best(), false},
		{"AVX2", Best(), false},
	} {
		if got, ok := ParseImpl(tc.s); got != tc.want || ok != tc.ok {
			t.Errorf("ParseImpl(%q) = %v, %v; want %v, %v", tc.s, got, ok, tc.want, tc.ok)
		}
	}
	prev := SetImpl(AVX2)
	defer SetImpl(prev)
	if got := CurrentImpl(); got != Best() {
		t.Errorf("SetImpl(AVX2) gave %v on a CPU whose best is %v", got, Best())
	}
	SetImpl(Reference)
	if got := CurrentImpl(); got != Reference {
		t.Errorf("SetImpl(Reference) gave %v", got)
	}
	prevT := Threads()
	defer SetThreads(prevT)
	SetThreads(0)
	if Threads() < 1 {
		t.Errorf("SetThreads(0) left Threads() = %d", Threads())
	}
}

func TestExpAccuracy(t *testing.T) {
	if !haveAVX2 {
		t.Skip("no AVX2")
	}
	// Inputs across the whole range, including both clamps and exact
	// multiples of ln 2 where the reduction is delicate.
	var x []float32
	for v := -100.0; v <= 88.3; v += 0.0137 {
		x = append(x, float32(v))
	}
	for i := -120; i <= 127; i++ {
		x = append(x, float32(float64(i)*math.Ln2))
	}
	x = append(x, 0, -0.0, 1e-30, -1e-30, -87.3, -87.4, 88.37)
	for len(x)%8 != 0 {
		x = append(x, 0)
	}
	got := make([]float32, len(x))
	expSumAVX2(&got[0], &x[0], len(x), 0)
	worst := 0.0
	for i, v := range x {
		want := math.Exp(float64(v))
		if want < 1.1754944e-38 { // below the smallest normal float32: 0
			if got[i] != 0 && math.Abs(float64(got[i])) > 1.2e-38 {
				t.Errorf("exp(%g) = %g, want ~0", v, got[i])
			}
			continue
		}
		rel := math.Abs(float64(got[i])-want) / want
		worst = max(worst, rel)
		if rel > 3e-7 {
			t.Errorf("exp(%g) = %g, want %g (rel. error %.2g)", v, got[i], want, rel)
		}
	}
	t.Logf("worst relative error %.3g", worst)
}

func TestActivationsMatchReference(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(4, 4))
		for _, n := range []int{1, 8, 9, 100, 1027} {
			gate, up := randSlice(r, n), randSlice(r, n)
			for i := range gate {
				switch i % 7 {
				case 0:
					gate[i] *= 40 // large magnitudes: exp saturates
				case 1:
					gate[i] = -gate[i] * 100
				}
			}
			want := make([]float32, n)
			refSiLUMul(want, gate, up)
			got := make([]float32, n)
			SiLUMul(got, gate, up)
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-6*math.Abs(float64(want[i]))+1e-30 {
					t.Fatalf("SiLUMul n=%d: [%d] silu(%g)·%g = %g, want %g", n, i, gate[i], up[i], got[i], want[i])
				}
			}
			// Softmax over a wide range: most entries underflow to 0.
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.Float64()*300 - 200)
			}
			ws := append([]float32(nil), x...)
			refSoftmax(ws)
			Softmax(x)
			for i := range x {
				if d := math.Abs(float64(x[i] - ws[i])); d > 1e-6*float64(ws[i])+1e-37 {
					t.Fatalf("Softmax n=%d: [%d] = %g, want %g", n, i, x[i], ws[i])
				}
			}
		}
		nan := []float32{1, float32(math.NaN()), 2, 3, 4, 5, 6, 7, 8}
		Softmax(nan)
		for _, v := range nan {
			if v == v {
				t.Fatalf("Softmax of a row with NaN = %v, want all NaN", nan)
			}
		}
	})
}
