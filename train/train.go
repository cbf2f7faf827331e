// Package train is a generic trainer for float32 parameters: AdamW with
// decoupled weight decay, a warm-up and cosine learning-rate schedule,
// global-norm gradient clipping, gradient accumulation over micro-batches,
// evaluation on a held-out set with early stopping, and checkpoints that
// resume bit-exactly. It knows nothing of the model: an Objective maps
// example indices to a loss and adds its gradient into the parameters.
//
// Losses are sums over tokens. A step's gradient is the sum of its
// micro-batches' gradients divided by the step's total token count, so
// accumulating k micro-batches computes the mean over the whole batch's
// tokens, exactly as one large batch would (up to float rounding).
//
// A run is a pure function of its Config, the objective and the initial
// parameters: data order comes from Config.Seed, and each micro-batch gets
// its own seed for any randomness of the objective (dropout). Cancelling the
// context (for example signal.NotifyContext with os.Interrupt) writes a
// checkpoint and returns; Train with Resume continues from it and ends with
// the same weights, bit for bit, as an uninterrupted run.
package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// Batch is a set of examples, by index into the objective's training (or
// evaluation) set.
type Batch struct {
	Indices []int
	// Seed is for the objective's own randomness (dropout); it depends on
	// the run's seed, the step and the micro-batch only.
	Seed uint64
	// Step is the optimizer step (from 1) the batch belongs to; 0 in
	// evaluation.
	Step int
}

// Loss is a summed loss: Sum over Tokens terms (answer tokens).
type Loss struct {
	Sum    float64
	Tokens int
}

// Mean is Sum/Tokens (NaN without tokens).
func (l Loss) Mean() float64 {
	if l.Tokens == 0 {
		return math.NaN()
	}
	return l.Sum / float64(l.Tokens)
}

// Objective is what Train optimises.
type Objective interface {
	// Params returns the trainable tensors; the same slices every call.
	Params() []*Param
	// Len is the number of training examples.
	Len() int
	// LossAndGrad computes the summed loss of the batch's examples and adds
	// its gradient (of the sum) into each Param's G.
	LossAndGrad(ctx context.Context, b Batch) (Loss, error)
}

// Evaluator computes losses on a held-out set without gradients.
type Evaluator interface {
	// Len is the number of held-out examples.
	Len() int
	// Loss returns the summed loss of the batch's examples.
	Loss(ctx context.Context, b Batch) (Loss, error)
}

// Config is a training run.
type Config struct {
	Steps      int // optimizer steps in all
	BatchSize  int // examples per optimizer step
	MicroBatch int // examples per LossAndGrad call; 0 means BatchSize

	LR       float64 // peak learning rate
	MinLR    float64 // final learning rate of the decay
	Warmup   int     // steps of linear warm-up from 0 to LR
	Schedule string  // after warm-up: "cosine" (default), "linear" or "constant"

	Beta1, Beta2, Eps float64 // AdamW moments (torch: 0.9, 0.999, 1e-8)
	WeightDecay       float64 // decoupled, on Params without NoDecay (torch: 0.01)
	ClipNorm          float64 // global gradient norm limit; 0 disables

	Seed uint64 // data order and Batch.Seed

	// Eval, when set, is evaluated every EvalEvery steps and after the last
	// step, EvalBatch examples per call (0: all at once).
	Eval      Evaluator
	EvalEvery int
	EvalBatch int
	// Patience stops training after that many evaluations in a row without
	// an improvement of more than MinDelta; 0 never stops early.
	Patience int
	MinDelta float64
	// RestoreBest puts back the parameters of the best evaluation at the end.
	RestoreBest bool

	// CheckpointDir, when set, receives checkpoint.safetensors every
	// CheckpointEvery steps (0: only on cancellation and at the end).
	CheckpointDir   string
	CheckpointEvery int
	// Resume continues from CheckpointDir's checkpoint when there is one.
	Resume bool

	// OutDir, when set, receives the loss curve as loss.csv, loss.json and
	// loss.svg at each checkpoint and at the end.
	OutDir string

	// Progress, when it is a terminal, shows a progress bar with the loss
	// and tokens per second (nil: os.Stderr). NoProgress turns it off.
	Progress   io.Writer
	NoProgress bool
	// Logger receives a line per evaluation and checkpoint (nil: none).
	Logger *slog.Logger
}

// DefaultConfig returns torch.optim.AdamW's defaults, a cosine schedule to
// a tenth of lr with 5% warm-up, and clipping at norm 1.
func DefaultConfig(steps, batch int, lr float64) Config {
	return Config{
		Steps: steps, BatchSize: batch, LR: lr, MinLR: lr / 10, Warmup: steps / 20,
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1,
	}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("train: steps %d must be positive", c.Steps)
	case c.BatchSize <= 0:
		return fmt.Errorf("train: batch size %d must be positive", c.BatchSize)
	case c.MicroBatch < 0 || c.MicroBatch > c.BatchSize:
		return fmt.Errorf("train: micro-batch %d must be in [0, batch size %d]", c.MicroBatch, c.BatchSize)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("train: learning rate %g must be positive", c.LR)
	case !(c.MinLR >= 0 && c.MinLR <= c.LR):
		return fmt.Errorf("train: min learning rate %g must be in [0, %g]", c.MinLR, c.LR)
	case c.Warmup < 0:
		return fmt.Errorf("train: warm-up %d is negative", c.Warmup)
	case c.Schedule != "" && c.Schedule != "cosine" && c.Schedule != "linear" && c.Schedule != "constant":
		return fmt.Errorf("train: unknown schedule %q (cosine, linear, constant)", c.Schedule)
	case !(c.Beta1 >= 0 && c.Beta1 < 1) || !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("train: betas %g, %g must be in [0, 1)", c.Beta1, c.Beta2)
	case !(c.Eps > 0):
		return fmt.Errorf("train: eps %g must be positive", c.Eps)
	case !(c.WeightDecay >= 0):
		return fmt.Errorf("train: weight decay %g must be non-negative", c.WeightDecay)
	case !(c.ClipNorm >= 0):
		return fmt.Errorf("train: clip norm %g must be non-negative", c.ClipNorm)
	case c.EvalEvery < 0 || c.EvalBatch < 0 || c.Patience < 0 || c.CheckpointEvery < 0:
		return fmt.Errorf("train: negative eval-every, eval batch, patience or checkpoint-every")
	case c.Patience > 0 && (c.Eval == nil || c.EvalEvery == 0):
		return fmt.Errorf("train: patience needs an evaluator and eval-every")
	case c.Resume && c.CheckpointDir == "":
		return fmt.Errorf("train: resume needs a checkpoint directory")
	}
	return nil
}

// LRAt returns the learning rate of optimizer step step (from 1): linear
// warm-up to LR over Warmup steps (step/Warmup·LR), then the schedule from
// LR at step Warmup down to MinLR at step Steps.
func (c *Config) LRAt(step int) float64 {
	if step <= c.Warmup {
		return c.LR * float64(step) / float64(c.Warmup)
	}
	progress := float64(step-c.Warmup) / float64(max(1, c.Steps-c.Warmup))
	progress = min(progress, 1)
	switch c.Schedule {
	case "constant":
		return c.LR
	case "linear":
		return c.MinLR + (c.LR-c.MinLR)*(1-progress)
	}
	return c.MinLR + (c.LR-c.MinLR)*0.5*(1+math.Cos(math.Pi*progress))
}

// Record is one optimizer step.
type Record struct {
	Step         int     `json:"step"`
	LR           float64 `json:"lr"`
	Loss         float64 `json:"loss"`      // mean over the step's tokens
	GradNorm     float64 `json:"grad_norm"` // before clipping
	Tokens       int     `json:"tokens"`
	TokensPerSec float64 `json:"tokens_per_sec"`
}

// EvalRecord is one evaluation on the held-out set.
type EvalRecord struct {
	Step int     `json:"step"`
	Loss float64 `json:"loss"` // mean over the held-out tokens
}

// Result is what a run did.
type Result struct {
	Steps    int          `json:"steps"` // optimizer steps done, resumed ones included
	Train    []Record     `json:"train"`
	Eval     []EvalRecord `json:"eval"`
	BestStep int          `json:"best_step"` // step of the best evaluation (0: none)
	BestLoss float64      `json:"best_loss"` // its held-out loss (0: none)
	// Stopped says why the run ended: "steps", "early stop" or "cancelled".
	Stopped string `json:"stopped"`
}

// state is everything a checkpoint restores.
type state struct {
	Step     int          `json:"step"`
	RNG      []byte       `json:"rng"`    // shuffling generator at the start of the epoch
	Epoch    int          `json:"epoch"`  // epochs begun
	Cursor   int          `json:"cursor"` // next position in the epoch's order
	BestStep int          `json:"best_step"`
	BestLoss float64      `json:"best_loss"`
	BadEvals int          `json:"bad_evals"`
	Train    []Record     `json:"train"`
	Eval     []EvalRecord `json:"eval"`
	// Fingerprint of the settings a resumed run must share.
	Seed      uint64 `json:"seed"`
	BatchSize int    `json:"batch_size"`
	Examples  int    `json:"examples"`
}

// order yields training examples in a per-epoch shuffled order.
type order struct {
	n      int
	rng    *rand.PCG
	perm   []int
	epoch  int
	cursor int
	start  []byte // rng state before the current epoch's shuffle
}

func newOrder(n int, seed uint64) *order {
	return &order{n: n, rng: rand.NewPCG(seed, 0x747261696e)} // "train"
}

func (o *order) shuffle() {
	o.start, _ = o.rng.MarshalBinary()
	o.perm = rand.New(o.rng).Perm(o.n)
	o.epoch++
	o.cursor = 0
}

// next returns the next k examples, crossing into new epochs as needed.
func (o *order) next(k int) []int {
	idx := make([]int, 0, k)
	for len(idx) < k {
		if o.perm == nil || o.cursor == o.n {
			o.shuffle()
		}
		take := min(k-len(idx), o.n-o.cursor)
		idx = append(idx, o.perm[o.cursor:o.cursor+take]...)
		o.cursor += take
	}
	return idx
}

// restore puts the order back to a saved position.
func (o *order) restore(start []byte, epoch, cursor int) error {
	if epoch == 0 {
		return nil
	}
	if err := o.rng.UnmarshalBinary(start); err != nil {
		return err
	}
	o.shuffle()
	o.epoch, o.cursor = epoch, cursor
	if cursor < 0 || cursor > o.n {
		return fmt.Errorf("cursor %d outside the %d examples", cursor, o.n)
	}
	return nil
}

func (o *order) save(s *state) {
	s.RNG, s.Epoch, s.Cursor = o.start, o.epoch, o.cursor
}

// splitmix64 mixes a seed, a step and a micro-batch into a batch seed.
func batchSeed(seed uint64, step, micro int) uint64 {
	z := seed ^ uint64(step)*0x9e3779b97f4a7c15 ^ uint64(micro)*0xbf58476d1ce4e5b9
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Train runs cfg on obj, updating the parameters in place.
//
// On a cancelled context it writes a checkpoint (when CheckpointDir is set)
// of the last completed step and returns the result so far with an error
// wrapping ctx.Err(); the interrupted step is not applied.
func Train(ctx context.Context, obj Objective, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MicroBatch == 0 {
		cfg.MicroBatch = cfg.BatchSize
	}
	params := obj.Params()
	if err := checkParams(params); err != nil {
		return nil, err
	}
	n := obj.Len()
	if n <= 0 {
		return nil, fmt.Errorf("train: no training examples")
	}
	opt := newAdamW(params)
	ord := newOrder(n, cfg.Seed)
	st := &state{Seed: cfg.Seed, BatchSize: cfg.BatchSize, Examples: n, BestLoss: math.Inf(1)}
	var best [][]float32
	if cfg.RestoreBest {
		best = make([][]float32, len(params))
	}
	ckpt := ""
	if cfg.CheckpointDir != "" {
		ckpt = filepath.Join(cfg.CheckpointDir, CheckpointFile)
	}
	if cfg.Resume {
		ok, err := loadCheckpoint(ckpt, params, opt, st, best)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := ord.restore(st.RNG, st.Epoch, st.Cursor); err != nil {
				return nil, fmt.Errorf("train: resume %s: %w", ckpt, err)
			}
			cfg.log("resumed", "step", st.Step, "checkpoint", ckpt)
		}
	}
	save := func() error {
		if ckpt != "" {
			ord.save(st)
			if err := saveCheckpoint(ckpt, params, opt, st, best); err != nil {
				return err
			}
			cfg.log("checkpoint", "step", st.Step, "path", ckpt)
		}
		return cfg.writeCurves(st)
	}
	result := func(stopped string) *Result {
		r := &Result{Steps: st.Step, Train: st.Train, Eval: st.Eval, BestStep: st.BestStep, BestLoss: st.BestLoss, Stopped: stopped}
		if r.BestStep == 0 {
			r.BestLoss = 0
		}
		return r
	}
	cancelled := func(err error) (*Result, error) {
		if serr := save(); serr != nil {
			return result("cancelled"), errors.Join(fmt.Errorf("train: cancelled at step %d: %w", st.Step+1, err), serr)
		}
		return result("cancelled"), fmt.Errorf("train: cancelled at step %d: %w", st.Step+1, err)
	}

	bar := newProgress(&cfg, st.Step)
	defer bar.close()
	stopped := "steps"
	for st.Step < cfg.Steps {
		if err := ctx.Err(); err != nil {
			return cancelled(err)
		}
		step := st.Step + 1
		start := time.Now()
		// Take the step's examples from a copy of the order, committed
		// only when the step completes.
		saved := *ord
		idx := ord.next(cfg.BatchSize)
		for _, p := range params {
			clear(p.G)
		}
		var loss Loss
		for j := 0; j*cfg.MicroBatch < len(idx); j++ {
			chunk := idx[j*cfg.MicroBatch : min(len(idx), (j+1)*cfg.MicroBatch)]
			l, err := obj.LossAndGrad(ctx, Batch{Indices: chunk, Seed: batchSeed(cfg.Seed, step, j), Step: step})
			if err != nil {
				*ord = saved
				if cerr := ctx.Err(); cerr != nil {
					return cancelled(cerr)
				}
				return result("error"), fmt.Errorf("train: step %d: %w", step, err)
			}
			loss.Sum += l.Sum
			loss.Tokens += l.Tokens
		}
		if loss.Tokens <= 0 {
			return result("error"), fmt.Errorf("train: step %d: the batch has no loss tokens", step)
		}
		norm, err := scaleAndClip(params, 1/float64(loss.Tokens), cfg.ClipNorm)
		if err != nil {
			return result("error"), fmt.Errorf("train: step %d: %w", step, err)
		}
		lr := cfg.LRAt(step)
		opt.step(params, lr, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay)
		st.Step = step
		sec := time.Since(start).Seconds()
		rec := Record{Step: step, LR: lr, Loss: loss.Mean(), GradNorm: norm, Tokens: loss.Tokens}
		if sec > 0 {
			rec.TokensPerSec = float64(loss.Tokens) / sec
		}
		st.Train = append(st.Train, rec)
		bar.update(rec)

		if cfg.Eval != nil && cfg.EvalEvery > 0 && (step%cfg.EvalEvery == 0 || step == cfg.Steps) {
			el, err := Evaluate(ctx, cfg.Eval, cfg.EvalBatch)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return cancelled(cerr)
				}
				return result("error"), fmt.Errorf("train: step %d: evaluate: %w", step, err)
			}
			m := el.Mean()
			st.Eval = append(st.Eval, EvalRecord{Step: step, Loss: m})
			cfg.log("eval", "step", step, "loss", m, "train_loss", rec.Loss)
			if m < st.BestLoss-cfg.MinDelta {
				st.BestLoss, st.BestStep, st.BadEvals = m, step, 0
				for i := range best {
					best[i] = append(best[i][:0], params[i].W...)
				}
			} else {
				st.BadEvals++
				if cfg.Patience > 0 && st.BadEvals >= cfg.Patience {
					stopped = "early stop"
					cfg.log("early stop", "step", step, "best_step", st.BestStep, "best_loss", st.BestLoss)
				}
			}
		}
		if stopped == "steps" && cfg.CheckpointEvery > 0 && step%cfg.CheckpointEvery == 0 && step < cfg.Steps {
			if err := save(); err != nil {
				return result("error"), err
			}
		}
		if stopped != "steps" {
			break
		}
	}
	// The final checkpoint holds the last weights (and the best ones), so
	// that a run resumed with more steps continues from where it ended.
	if err := save(); err != nil {
		return result(stopped), err
	}
	if cfg.RestoreBest && st.BestStep > 0 && st.BestStep != st.Step {
		for i, p := range params {
			copy(p.W, best[i])
		}
		cfg.log("restored best", "step", st.BestStep, "loss", st.BestLoss)
	}
	return result(stopped), nil
}

// Evaluate returns the summed loss of every example of ev, batch examples
// per call (0: all at once), in order.
func Evaluate(ctx context.Context, ev Evaluator, batch int) (Loss, error) {
	n := ev.Len()
	if batch <= 0 {
		batch = n
	}
	var total Loss
	for i := 0; i < n; i += batch {
		idx := make([]int, 0, batch)
		for j := i; j < min(n, i+batch); j++ {
			idx = append(idx, j)
		}
		l, err := ev.Loss(ctx, Batch{Indices: idx})
		if err != nil {
			return total, err
		}
		total.Sum += l.Sum
		total.Tokens += l.Tokens
	}
	if total.Tokens == 0 {
		return total, fmt.Errorf("held-out set has no loss tokens")
	}
	return total, nil
}

func (c *Config) log(msg string, args ...any) {
	if c.Logger != nil {
		c.Logger.Info("train: "+msg, args...)
	}
}

func checkParams(params []*Param) error {
	if len(params) == 0 {
		return fmt.Errorf("train: the objective has no parameters")
	}
	seen := map[string]bool{}
	for i, p := range params {
		switch {
		case p == nil:
			return fmt.Errorf("train: parameter %d is nil", i)
		case p.Name == "":
			return fmt.Errorf("train: parameter %d has no name", i)
		case seen[p.Name]:
			return fmt.Errorf("train: two parameters named %s", p.Name)
		case len(p.W) != len(p.G):
			return fmt.Errorf("train: parameter %s has %d weights and %d gradients", p.Name, len(p.W), len(p.G))
		}
		seen[p.Name] = true
	}
	return nil
}

// scaleAndClip multiplies every gradient by scale, then, when clip > 0 and
// the global norm exceeds it, by clip/(norm+1e-6) as
// torch.nn.utils.clip_grad_norm_ does. It returns the norm before clipping.
func scaleAndClip(params []*Param, scale, clip float64) (float64, error) {
	var ss float64
	for _, p := range params {
		s := float32(scale)
		for i, g := range p.G {
			g *= s
			p.G[i] = g
			ss += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(ss)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("gradient norm is %g", norm)
	}
	if clip > 0 {
		if coef := clip / (norm + 1e-6); coef < 1 {
			c := float32(coef)
			for _, p := range params {
				for i := range p.G {
					p.G[i] *= c
				}
			}
		}
	}
	return norm, nil
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
