package slm

import (
	"context"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/usersim/usersim/slm/kernels"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/train"
)

// BenchmarkLoRATrain measures a LoRA training step's forward and backward
// (LossAndGrad) on the SmolLM2-135M-shaped random model with r = 16 on all
// seven projections, 2 threads: two sequences of 256 tokens, the last 64 of
// each the answer. tok/s counts every token run forward and backward;
// GFLOPS counts the step's useful multiply-adds (below). MatMul1024 is the
// 1024³ MatMulNT in the same run, the kernel peak the step is measured
// against. Sub-benchmarks: all activations kept (full) and per-layer
// recomputation (recompute); peak-MB is the largest heap during one step
// (run apart, before the timed ones) above the heap before it (the model's
// 540 MB and the adapter excluded):
//
//	go test -run '^$' -bench 'LoRATrain$|MatMul1024' -benchtime 3x -count 3 ./slm/
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
	for _, mode := range []string{"full", "recompute"} {
		b.Run(mode, func(b *testing.B) {
			o := TrainOptions{Recompute: mode == "recompute"}
			var err error
			peak := peakHeap(func() { _, _, err = m.LossAndGradWith(context.Background(), batch, o) })
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.ResetTimer()
			c0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, _, err := m.LossAndGradWith(context.Background(), batch, o); err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(seqs*T*b.N)/s, "tok/s")
			b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOPS")
			if cpu := (cpuTime() - c0).Seconds(); cpu > 0 {
				b.ReportMetric(flops*float64(b.N)/cpu/1e9, "cpu-GFLOPS")
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
		})
	}
}

// BenchmarkLoRATrainStep is BenchmarkLoRATrain's workload as whole
// optimizer steps of package train (forward, backward, gradient clipping
// and AdamW on the adapter's 4.9M parameters), one step per b.N:
//
//	go test -run '^$' -bench 'LoRATrainStep' -benchtime 3x ./slm/
func BenchmarkLoRATrainStep(b *testing.B) {
	prev := kernels.Threads()
	kernels.SetThreads(2)
	defer kernels.SetThreads(prev)
	cfg := smolConfig(30)
	m := randomModel(b, cfg, 42)
	a, err := lora.New(lora.NewConfig("bench", 16, 32, lora.AllLinear), cfg.LoRABase(), 1)
	if err != nil {
		b.Fatal(err)
	}
	const seqs, T, answer = 2, 256, 64
	rng := rand.New(rand.NewPCG(1, 2))
	ex := make([]TrainSeq, seqs)
	for i := range ex {
		mask := make([]bool, T)
		for j := T - answer; j < T; j++ {
			mask[j] = true
		}
		ex[i] = TrainSeq{Tokens: randomTokens(rng, T, cfg.Vocab), Mask: mask}
	}
	obj := &LoRAObjective{Model: m, Adapter: a, Examples: ex}
	tc := train.DefaultConfig(b.N, seqs, 1e-4)
	tc.NoProgress = true
	flops := loraTrainFlops(&cfg, a, seqs, T, answer)
	runtime.GC()
	b.ResetTimer()
	c0 := cpuTime()
	if _, err := train.Train(context.Background(), obj, tc); err != nil {
		b.Fatal(err)
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(seqs*T*b.N)/s, "tok/s")
	b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOPS")
	if cpu := (cpuTime() - c0).Seconds(); cpu > 0 {
		b.ReportMetric(flops*float64(b.N)/cpu/1e9, "cpu-GFLOPS")
	}
	b.ReportMetric(float64(a.NumParams()), "params")
}

// peakHeap runs f and returns the largest heap seen while it ran, above
// the live heap before it (sampled every 2 ms). The collector runs at
// GOGC=5 meanwhile, so that the heap stays within a few percent of the
// live data plus the model.
func peakHeap(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	done := make(chan struct{})
	res := make(chan uint64)
	go func() {
		var mx uint64
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				res <- mx
				return
			case <-tick.C:
				mx = max(mx, read())
			}
		}
	}()
	f()
	close(done)
	mx := <-res
	if mx < base {
		return 0
	}
	return mx - base
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
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		kernels.MatMulNT(c, x, w, k, k, k)
	}
	b.ReportMetric(2*k*k*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
	if cpu := (cpuTime() - c0).Seconds(); cpu > 0 {
		b.ReportMetric(2*k*k*k*float64(b.N)/cpu/1e9, "cpu-GFLOPS")
	}
}

// BenchmarkLoRATrain05B is BenchmarkLoRATrain on a Qwen2-0.5B-shaped
// random model (24 layers, hidden 896, 14 heads, 2 kv heads, MLP 4864,
// vocab 151936, tied; 494M parameters, 2 GB of float32 weights), for its
// peak memory with and without recomputation. It takes about a minute:
//
//	go test -run '^$' -bench 'LoRATrain05B' -benchtime 1x ./slm/
func BenchmarkLoRATrain05B(b *testing.B) {
	prev := kernels.Threads()
	kernels.SetThreads(2)
	defer kernels.SetThreads(prev)
	cfg := Config{Arch: "qwen2", Hidden: 896, Layers: 24, Heads: 14, KVHeads: 2, HeadDim: 64, FFN: 4864,
		Vocab: 151936, NormEps: 1e-6, RopeTheta: 1e6, RopeDim: 64, RopeStyle: RopeNeoX, QKVBias: true,
		TiedEmbeddings: true, BOS: -1, MaxContext: 32768}
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
	for _, mode := range []string{"full", "recompute"} {
		b.Run(mode, func(b *testing.B) {
			o := TrainOptions{Recompute: mode == "recompute"}
			var peak uint64
			for i := 0; i < b.N; i++ {
				var err error
				peak = max(peak, peakHeap(func() { _, _, err = m.LossAndGradWith(context.Background(), batch, o) }))
				if err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(seqs*T*b.N)/s, "tok/s")
			b.ReportMetric(flops*float64(b.N)/s/1e9, "GFLOPS")
			b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
		})
	}
}
