package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// loop runs op b.N times and reports GFLOPS (flops per op / wall time) and
// cpu-GFLOPS (per CPU-second of the whole process, all threads: less
// sensitive to other jobs on a shared machine).
func loop(b *testing.B, flops float64, op func()) {
	runtime.GC() // no collection of the setup's garbage inside the loop
	c0 := cpuTime()
	for b.Loop() {
		op()
	}
	n := float64(b.N)
	b.ReportMetric(flops*n/b.Elapsed().Seconds()/1e9, "GFLOPS")
	if cpu := cpuTime() - c0; cpu > 0 {
		b.ReportMetric(flops*n/cpu.Seconds()/1e9, "cpu-GFLOPS")
	}
}

// benchShapes are the float32 matmul shapes that matter: the classic cube,
// a SmolLM2-135M MLP projection over a 128-token prefill (both ways), and
// the vocabulary projection of one decoded token (matrix-vector).
var benchShapes = []struct {
	name    string
	m, n, k int
}{
	{"1024x1024x1024", 1024, 1024, 1024},
	{"128x1536x576", 128, 1536, 576},
	{"128x576x1536", 128, 576, 1536},
	{"1x49152x576", 1, 49152, 576},
}

// extraMatMulNT holds other implementations of MatMulNT to compare in
// BenchmarkMatMulNT (OpenBLAS, with the openblas build tag).
var extraMatMulNT []extraImpl

type extraImpl struct {
	name       string
	setThreads func(int)
	matmul     func(c, a, b []float32, m, n, k int)
}

// BenchmarkMatMulNT measures MatMulNT for every shape, implementation and
// thread count; GFLOPS is 2mnk per second. The reference runs only on one
// thread, and on the cube only without -short (it takes seconds). Names
// are key=value so that benchstat can tabulate them, e.g.
//
//	benchstat -col /impl -row /shape,/threads file
func BenchmarkMatMulNT(b *testing.B) {
	for _, s := range benchShapes {
		r := rand.New(rand.NewPCG(1, 1))
		a := randSlice(r, s.m*s.k)
		w := randSlice(r, s.n*s.k)
		c := make([]float32, s.m*s.n)
		var impls []extraImpl
		for _, im := range append([]Impl{Reference}, fastImpls()...) {
			impls = append(impls, extraImpl{im.String(), nil, nil})
		}
		impls = append(impls, extraMatMulNT...)
		for _, im := range impls {
			for _, th := range []int{1, 2} {
				if im.name == "reference" && th == 2 {
					continue // the reference is single-threaded
				}
				b.Run(fmt.Sprintf("shape=%s/impl=%s/threads=%d", s.name, im.name, th), func(b *testing.B) {
					if im.name == "reference" && s.m*s.n*s.k > 1<<27 && testing.Short() {
						b.Skip("reference on the cube is slow; run without -short")
					}
					prevT := Threads()
					SetThreads(th)
					defer SetThreads(prevT)
					op := func() { MatMulNT(c, a, w, s.m, s.n, s.k) }
					if im.matmul != nil {
						im.setThreads(th)
						op = func() { im.matmul(c, a, w, s.m, s.n, s.k) }
					} else {
						i, _ := ParseImpl(im.name)
						defer SetImpl(SetImpl(i))
					}
					loop(b, 2*float64(s.m)*float64(s.n)*float64(s.k), op)
				})
			}
		}
	}
}

// BenchmarkMatMulNTQuant measures the quantized matmuls for decode (m=1:
// memory bound, reported as GB/s of weights read) and prefill (m=128).
func BenchmarkMatMulNTQuant(b *testing.B) {
	types := []struct {
		q      quantType
		matmul func(c, a []float32, b []byte, m, n, k int)
	}{
		{qQ8_0, MatMulNTQ8_0},
		{qQ4_0, MatMulNTQ4_0},
		{qQ4K, MatMulNTQ4K},
		{qQ6K, MatMulNTQ6K},
	}
	shapes := []struct {
		name    string
		m, n, k int
	}{
		{"1x49152x768", 1, 49152, 768}, // k a multiple of 256 for the K types
		{"1x1536x512", 1, 1536, 512},
		{"128x1536x512", 128, 1536, 512},
	}
	for _, tp := range types {
		for _, s := range shapes {
			r := rand.New(rand.NewPCG(1, 1))
			a := randSlice(r, s.m*s.k)
			w := randQuant(r, tp.q, s.n, s.k)
			c := make([]float32, s.m*s.n)
			for _, im := range append([]Impl{Reference}, fastImpls()...) {
				for _, th := range []int{1, 2} {
					if im == Reference && (th == 2 || s.m > 1) {
						continue
					}
					name := fmt.Sprintf("%s/%s/%v/threads=%d", tp.q.name[len("MatMulNT"):], s.name, im, th)
					b.Run(name, func(b *testing.B) {
						defer SetImpl(SetImpl(im))
						prevT := Threads()
						SetThreads(th)
						defer SetThreads(prevT)
						loop(b, 2*float64(s.m)*float64(s.n)*float64(s.k), func() { tp.matmul(c, a, w, s.m, s.n, s.k) })
						b.ReportMetric(float64(len(w))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
					})
				}
			}
		}
	}
}

// BenchmarkMatMulLayouts compares the three transposition layouts (and
// a small-m batch) on the fast path.
func BenchmarkMatMulLayouts(b *testing.B) {
	shapes := []struct {
		name    string
		m, n, k int
	}{
		{"1024x1024x1024", 1024, 1024, 1024},
		{"8x1536x576", 8, 1536, 576},
		{"4x1536x576", 4, 1536, 576},
		{"16x1536x576", 16, 1536, 576},
		{"1x1536x576", 1, 1536, 576},
	}
	for _, s := range shapes {
		r := rand.New(rand.NewPCG(1, 1))
		a := randSlice(r, s.m*s.k)
		w := randSlice(r, s.n*s.k)
		c := make([]float32, s.m*s.n)
		for _, v := range variants[:3] {
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", s.name, v.name, th), func(b *testing.B) {
					prevT := Threads()
					SetThreads(th)
					defer SetThreads(prevT)
					loop(b, 2*float64(s.m)*float64(s.n)*float64(s.k), func() { v.fast(c, a, w, s.m, s.n, s.k) })
				})
			}
		}
	}
}

// BenchmarkParallelOverhead measures starting and joining the goroutines
// of one kernel call with no work in them (what parallelFor does), against
// handing the work to a persistent worker over a channel (the alternative
// design, kept here only to measure it).
func BenchmarkParallelOverhead(b *testing.B) {
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("impl=goroutines/threads=%d", th), func(b *testing.B) {
			for b.Loop() {
				parallelFor(64, 1, th, func(lo, hi int) {})
			}
		})
	}
	b.Run("impl=pool/threads=2", func(b *testing.B) {
		work := make(chan func())
		done := make(chan struct{})
		go func() {
			for f := range work {
				f()
				done <- struct{}{}
			}
		}()
		defer close(work)
		f := func() {}
		for b.Loop() {
			work <- f
			f()
			<-done
		}
	})
}

// BenchmarkVector measures the vector kernels on decode-sized rows:
// softmax over SmolLM2's vocabulary, SwiGLU over its MLP width, RMSNorm
// over its hidden size.
func BenchmarkVector(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	logits := randSlice(r, 49152)
	work := make([]float32, len(logits))
	gate, up, act := randSlice(r, 1536), randSlice(r, 1536), make([]float32, 1536)
	x, w, out := randSlice(r, 576), randSlice(r, 576), make([]float32, 576)
	for _, im := range append([]Impl{Reference}, fastImpls()...) {
		b.Run(fmt.Sprintf("Softmax49152/%v", im), func(b *testing.B) {
			defer SetImpl(SetImpl(im))
			for b.Loop() {
				copy(work, logits)
				Softmax(work)
			}
		})
		b.Run(fmt.Sprintf("SiLUMul1536/%v", im), func(b *testing.B) {
			defer SetImpl(SetImpl(im))
			for b.Loop() {
				SiLUMul(act, gate, up)
			}
		})
		b.Run(fmt.Sprintf("RMSNorm576/%v", im), func(b *testing.B) {
			defer SetImpl(SetImpl(im))
			for b.Loop() {
				RMSNorm(out, x, w, 1e-5)
			}
		})
	}
}
