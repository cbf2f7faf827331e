package slm

import (
	"context"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
)

// BenchmarkLoRATrain measures a LoRA training step's forward and backward
// (LossAndGrad) on the SmolLM2-135M-shaped random model with r = 16 on all
// seven projections, 2 threads: two sequences of 256 tokens, the last 64 of
// each the answer. tok/s counts every token run forward and backward;
// GFLOPS counts the step's useful multiply-adds (below). MatMul1024 is the
// 1024³ MatMulNT in the same run, the kernel peak the step is measured
// against:
//
//	go test -run '^$' -bench 'LoRATrain|MatMul1024' -benchtime 3x -count 3 ./slm/
func BenchmarkLoRATrain(b *testing.B) {
	prev := kernels.Threads()
	kernels.SetThreads(2)
	defer kernels.SetThreads(prev)
	cfg := smolConfig(30)
	m := randomModel(b, cfg, 42)
	lc := lora.NewConfig("bench", 16, 32, lora.AllLinear)
	a, err := lora.New(lc, cfg.LoRABase(), 1)
	if err != nil {
		b.Fatal(err)
	}
	const seqs, T, answer = 2, 256, 64
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]TrainSeq, seqs)
	for i := range batch {
		mask := make([]bool, T)
		for j := T - answer; j < T; j++ {
			mask[j] = true
		}
		batch[i] = TrainSeq{Tokens: randomTokens(rng, T, cfg.Vocab), Mask: mask, Adapter: a}
	}
	flops := loraTrainFlops(&cfg, a, seqs, T, answer)
	runtime.GC()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.LossAndGrad(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(seqs*T*b.N)/s, "tok/s")
	b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOPS")
}

// loraTrainFlops counts the floating-point operations (2 per multiply-add)
// of one LossAndGrad: every base projection twice (forward y = x·Wᵀ and
// backward dx = dy·W; no weight gradient), each adapter's x·Aᵀ, its
// up-projection, and in the backward dy·B, dB, dA and dx; attention
// forward (scores and weighted sum over the causal half) and backward (four
// products of that size, with the score recomputation); the output layer
// on the answer rows, forward and backward.
func loraTrainFlops(c *Config, a *lora.Adapter, seqs, T, answer int) float64 {
	n := float64(seqs * T)
	var f float64
	base := c.LoRABase()
	for _, mod := range base.Modules() {
		out, in := base.Dims(mod)
		f += 2 * 2 * n * float64(out*in) * float64(c.Layers)
	}
	for _, p := range a.Pairs() {
		f += 2 * n * float64(p.R) * float64(p.In+p.Out)     // forward
		f += 2 * n * float64(p.R) * float64(2*p.Out+2*p.In) // backward
	}
	// Causal attention: T²/2 query-key pairs per head and sequence.
	pairs := float64(seqs) * float64(T) * float64(T) / 2 * float64(c.Heads) * float64(c.Layers)
	f += pairs * 2 * 2 * float64(c.HeadDim) // forward: QKᵀ, P·V
	f += pairs * 5 * 2 * float64(c.HeadDim) // backward: QKᵀ, dO·Vᵀ, dV, dK, dQ
	f += 2 * 2 * float64(seqs*answer) * float64(c.Vocab*c.Hidden)
	return f
}

// BenchmarkMatMul1024 is the 1024³ float32 MatMulNT on 2 threads, the
// kernel peak for BenchmarkLoRATrain's GFLOPS.
func BenchmarkMatMul1024(b *testing.B) {
	prev := kernels.Threads()
	kernels.SetThreads(2)
	defer kernels.SetThreads(prev)
	const k = 1024
	rng := rand.New(rand.NewPCG(3, 4))
	x, w := f32(randVec(rng, k*k, 1)), f32(randVec(rng, k*k, 1))
	c := make([]float32, k*k)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		kernels.MatMulNT(c, x, w, k, k, k)
	}
	b.ReportMetric(2*k*k*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
