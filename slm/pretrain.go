package slm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train"
)

// PretrainOptions configure Pretrain. Zero values take the defaults named.
type PretrainOptions struct {
	// SeqLen is the length of the packed training sequences (default 256,
	// at most the model's context).
	SeqLen int
	// Steps is the number of optimizer steps; when 0, Epochs passes over
	// the training sequences (default 1) decide it.
	Steps  int
	Epochs float64
	// Batch is the number of sequences per optimizer step (default 16);
	// MicroBatch those per forward/backward (default 8; 0 < MicroBatch).
	Batch      int
	MicroBatch int
	// LR is the peak learning rate (default 1e-3), decayed by a cosine to
	// MinLR (default LR/10) after Warmup steps (default 5% of the steps).
	LR, MinLR   float64
	Warmup      int
	WeightDecay float64 // default 0.1 (0 with NoDecay)
	NoDecay     bool
	ClipNorm    float64 // default 1
	Seed        uint64
	// EvalFrac is the share of sequences held out (default 0.01; negative:
	// none); they are evaluated every EvalEvery steps (default Steps/10).
	EvalFrac  float64
	EvalEvery int
	// CheckpointDir, when set, receives a checkpoint every CheckpointEvery
	// steps (0: only on cancellation and at the end); Resume continues
	// from it.
	CheckpointDir   string
	CheckpointEvery int
	Resume          bool
	// OutDir, when set, receives the loss curve (loss.csv, loss.json,
	// loss.svg).
	OutDir string
	// Recompute trades compute for activation memory (TrainOptions).
	Recompute bool
	// Progress, NoProgress and Logger are passed to train.Config.
	Progress   io.Writer
	NoProgress bool
	Logger     *slog.Logger
}

// PretrainResult describes a pretraining run.
type PretrainResult struct {
	CorpusTokens  int           `json:"corpus_tokens"`  // tokens of the packed corpus, separators included
	Sequences     int           `json:"sequences"`      // training sequences
	EvalSequences int           `json:"eval_sequences"` // held-out sequences
	Steps         int           `json:"steps"`
	Epochs        float64       `json:"epochs"`         // passes over the training sequences the steps make
	TokensSeen    int64         `json:"tokens_seen"`    // target tokens trained on in this call (resumed steps excluded)
	TokensPerSec  float64       `json:"tokens_per_sec"` // TokensSeen over the training time
	TrainTime     time.Duration `json:"train_ns"`
	EncodeTime    time.Duration `json:"encode_ns"`
	FirstLoss     float64       `json:"first_loss"` // mean loss of the first step
	LastLoss      float64       `json:"last_loss"`  // mean loss of the last step
	EvalLoss      float64       `json:"eval_loss"`  // last held-out loss (NaN: none)
	Train         *train.Result `json:"train"`
}

// SplitDocuments cuts a corpus text into documents at blank lines (one or
// more empty or all-space lines); each document keeps its inner newlines.
func SplitDocuments(text string) []string {
	var docs []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			docs = append(docs, s)
		}
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

// PackCorpus encodes the documents with tok and packs them into one token
// stream, each document preceded by the tokenizer's BOS (its first EOS when
// it has no BOS), cut into sequences of seqLen tokens. Consecutive
// sequences overlap by one token, so that every token after the first is
// predicted exactly once; a last shorter sequence is kept when it has a
// target. It returns the sequences and the stream's length.
func PackCorpus(ctx context.Context, tok *tokenizer.Tokenizer, docs []string, seqLen int) ([][]int, int, error) {
	if seqLen < 2 {
		return nil, 0, fmt.Errorf("pack corpus: sequence length %d: must be at least 2", seqLen)
	}
	sep := tok.BOS()
	if sep < 0 {
		if e := tok.EOSIDs(); len(e) > 0 {
			sep = e[0]
		}
	}
	var stream []int
	for i, d := range docs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
		}
		ids, err := tok.Encode(d, tokenizer.EncodeOptions{})
		if err != nil {
			return nil, 0, fmt.Errorf("pack corpus: document %d: %w", i, err)
		}
		if sep >= 0 {
			stream = append(stream, sep)
		}
		stream = append(stream, ids...)
	}
	var seqs [][]int
	for lo := 0; lo+1 < len(stream); lo += seqLen - 1 {
		hi := min(len(stream), lo+seqLen)
		seqs = append(seqs, stream[lo:hi:hi])
	}
	return seqs, len(stream), nil
}

// Pretrain trains every weight of m (float32) on the documents with the
// next-token loss: PackCorpus cuts them into sequences, a seeded EvalFrac
// of which are held out, and train.Train runs AdamW with warm-up and
// cosine decay, clipping, gradient accumulation and checkpoints (a killed
// run continues with Resume and ends with the same weights, bit for bit).
// The model is changed in place; save it with WritePretrained.
func Pretrain(ctx context.Context, m *Model, tok *tokenizer.Tokenizer, docs []string, opt PretrainOptions) (*PretrainResult, error) {
	if tok.VocabSize() > m.Config.Vocab {
		return nil, fmt.Errorf("pretrain: tokenizer has %d tokens, the model %d", tok.VocabSize(), m.Config.Vocab)
	}
	o, err := opt.withDefaults(m)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	seqs, ntok, err := PackCorpus(ctx, tok, docs, o.SeqLen)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	res := &PretrainResult{CorpusTokens: ntok, EncodeTime: time.Since(t0), EvalLoss: math.NaN()}
	nEval := 0
	if o.EvalFrac > 0 {
		nEval = int(math.Round(o.EvalFrac * float64(len(seqs))))
		if nEval == 0 && len(seqs) >= 10 {
			nEval = 1
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x65766c)) // "evl"
	held := map[int]bool{}
	for _, i := range rng.Perm(len(seqs))[:nEval] {
		held[i] = true
	}
	var tr, ev []TrainSeq
	for i, s := range seqs {
		if held[i] {
			ev = append(ev, TrainSeq{Tokens: s})
		} else {
			tr = append(tr, TrainSeq{Tokens: s})
		}
	}
	if len(tr) == 0 {
		return nil, errors.New("pretrain: the corpus gives no training sequence")
	}
	res.Sequences, res.EvalSequences = len(tr), len(ev)
	steps := o.Steps
	if steps == 0 {
		steps = max(1, int(math.Ceil(o.Epochs*float64(len(tr))/float64(o.Batch))))
	}
	res.Steps = steps
	res.Epochs = float64(steps*o.Batch) / float64(len(tr))

	obj, err := NewFullObjective(m, tr, ev, TrainOptions{Recompute: o.Recompute})
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	cfg := train.DefaultConfig(steps, o.Batch, o.LR)
	cfg.MicroBatch = min(o.MicroBatch, o.Batch)
	cfg.MinLR = o.MinLR
	cfg.Warmup = o.Warmup
	if o.Warmup < 0 {
		cfg.Warmup = steps / 20
	}
	cfg.WeightDecay = o.WeightDecay
	cfg.ClipNorm = o.ClipNorm
	cfg.Seed = o.Seed
	if len(ev) > 0 {
		cfg.Eval = obj.EvalSet()
		cfg.EvalEvery = o.EvalEvery
		if cfg.EvalEvery == 0 {
			cfg.EvalEvery = max(1, steps/10)
		}
		cfg.EvalBatch = o.MicroBatch
	}
	cfg.CheckpointDir, cfg.CheckpointEvery, cfg.Resume = o.CheckpointDir, o.CheckpointEvery, o.Resume
	cfg.OutDir = o.OutDir
	cfg.Progress, cfg.NoProgress, cfg.Logger = o.Progress, o.NoProgress, o.Logger

	t1 := time.Now()
	cnt := &countingObjective{FullObjective: obj}
	out, err := train.Train(ctx, cnt, cfg)
	res.TrainTime = time.Since(t1)
	res.Train = out
	res.TokensSeen = cnt.tokens.Load()
	if out != nil {
		if len(out.Train) > 0 {
			res.FirstLoss = out.Train[0].Loss
			res.LastLoss = out.Train[len(out.Train)-1].Loss
		}
		if len(out.Eval) > 0 {
			res.EvalLoss = out.Eval[len(out.Eval)-1].Loss
		}
	}
	if res.TrainTime > 0 {
		res.TokensPerSec = float64(res.TokensSeen) / res.TrainTime.Seconds()
	}
	if err != nil {
		return res, fmt.Errorf("pretrain: %w", err)
	}
	return res, nil
}

func (opt PretrainOptions) withDefaults(m *Model) (PretrainOptions, error) {
	o := opt
	if o.SeqLen == 0 {
		o.SeqLen = min(256, m.Config.MaxContext)
	}
	if o.SeqLen < 2 || o.SeqLen > m.Config.MaxContext {
		return o, fmt.Errorf("pretrain: sequence length %d: must be in [2, %d] (the model's context)", o.SeqLen, m.Config.MaxContext)
	}
	if o.Steps < 0 {
		return o, fmt.Errorf("pretrain: steps %d: must not be negative", o.Steps)
	}
	if o.Epochs == 0 {
		o.Epochs = 1
	}
	if !(o.Epochs > 0) || math.IsInf(o.Epochs, 0) {
		return o, fmt.Errorf("pretrain: epochs %v: must be positive", opt.Epochs)
	}
	if o.Batch == 0 {
		o.Batch = 16
	}
	if o.MicroBatch == 0 {
		o.MicroBatch = min(8, o.Batch)
	}
	if o.Batch < 1 || o.MicroBatch < 1 {
		return o, fmt.Errorf("pretrain: batch %d, micro-batch %d: must be positive", o.Batch, o.MicroBatch)
	}
	if o.LR == 0 {
		o.LR = 1e-3
	}
	if o.MinLR == 0 {
		o.MinLR = o.LR / 10
	}
	if o.Warmup == 0 {
		o.Warmup = -1 // 5% of the steps, once they are known
	}
	if o.WeightDecay == 0 && !o.NoDecay {
		o.WeightDecay = 0.1
	}
	if o.ClipNorm == 0 {
		o.ClipNorm = 1
	}
	if o.EvalFrac == 0 {
		o.EvalFrac = 0.01
	}
	if o.EvalFrac >= 1 {
		return o, fmt.Errorf("pretrain: eval fraction %v: must be below 1", o.EvalFrac)
	}
	return o, nil
}

// WritePretrained writes m as a Hugging Face directory dir (config.json,
// model.safetensors) with the tokenizer and generation files of the model
// directory src copied beside them, so that Load reads it with its
// tokenizer. The directory appears whole or not at all (written beside
// it, then renamed); an existing dir is replaced.
func (m *Model) WritePretrained(dir, src string) (err error) {
	if dir, err = filepath.Abs(dir); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := m.WriteHF(tmp, SaveOptions{}); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || name == "config.json" || strings.HasSuffix(name, ".safetensors") ||
			strings.HasSuffix(name, ".safetensors.index.json") || strings.HasPrefix(name, ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return fmt.Errorf("write model: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(tmp, name), data); err != nil {
			return fmt.Errorf("write model: %w", err)
		}
	}
	// Keep the source's padding token (WriteHF's config has none).
	if data, rerr := os.ReadFile(filepath.Join(src, "config.json")); rerr == nil {
		var sc struct {
			Pad *int `json:"pad_token_id"`
		}
		if json.Unmarshal(data, &sc) == nil && sc.Pad != nil {
			if err := addPadToConfig(filepath.Join(tmp, "config.json"), *sc.Pad); err != nil {
				return fmt.Errorf("write model: %w", err)
			}
		}
	}
	ents, err = os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	for _, e := range ents {
		if err := os.Chmod(filepath.Join(tmp, e.Name()), 0o644); err != nil {
			return fmt.Errorf("write model: %w", err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("write model: %w", err)
	}
	var old string
	if _, serr := os.Stat(dir); serr == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("write model: replace %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("write model: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	if d, derr := os.Open(parent); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// countingObjective counts the target tokens of the training passes it
// runs (those of this call, not of resumed steps).
type countingObjective struct {
	*FullObjective
	tokens atomic.Int64
}

// pretrainHook, when set (by tests), runs before each training pass.
var pretrainHook func()

func (c *countingObjective) LossAndGrad(ctx context.Context, b train.Batch) (train.Loss, error) {
	if pretrainHook != nil {
		pretrainHook()
	}
	l, err := c.FullObjective.LossAndGrad(ctx, b)
	c.tokens.Add(int64(l.Tokens))
	return l, err
}
