package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/slm"
)

// modelPretrainFlags are the flags of `usersim model pretrain`.
type modelPretrainFlags struct {
	corpus []string
	out    string
	opt    slm.PretrainOptions
	asJSON bool
}

func newModelPretrainCmd() *cobra.Command {
	var f modelPretrainFlags
	cmd := &cobra.Command{
		Use:   "pretrain MODEL_DIR --corpus FILE[,FILE] --out DIR",
		Short: "Train all the weights of a model (the compact base) on a text corpus",
		Long: `Pretrain every weight of the float32 model in MODEL_DIR (a Hugging Face
directory, e.g. from usersim model init) on the corpus files with the
next-token loss.

The corpus is cut into documents at blank lines, encoded with the model's
tokenizer, joined with a BOS token before each document and packed into
sequences of --seq-len tokens; --eval-frac of them are held out. Training is
AdamW with warm-up and cosine decay and gradient clipping, --batch sequences
per step. Checkpoints go to DIR/checkpoints (every --checkpoint-every steps,
and on Ctrl-C); --resume continues a killed run from there, with the same
result as an uninterrupted one. The trained model is written to DIR/model
(config.json, model.safetensors and MODEL_DIR's tokenizer files), the loss
curve to DIR/loss.csv, loss.json and loss.svg.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModelPretrain(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.corpus, "corpus", nil, "corpus text files, comma-separated or repeated (- for stdin)")
	fl.StringVarP(&f.out, "out", "o", "", "output directory")
	fl.IntVar(&f.opt.Steps, "steps", 0, "optimizer steps (0: --epochs decides)")
	fl.Float64Var(&f.opt.Epochs, "epochs", 1, "passes over the training sequences (when --steps is 0)")
	fl.IntVar(&f.opt.Batch, "batch", 16, "sequences per optimizer step")
	fl.IntVar(&f.opt.MicroBatch, "micro-batch", 8, "sequences per forward/backward pass")
	fl.IntVar(&f.opt.SeqLen, "seq-len", 256, "tokens per training sequence")
	fl.Float64Var(&f.opt.LR, "lr", 1e-3, "peak learning rate")
	fl.Float64Var(&f.opt.MinLR, "min-lr", 0, "final learning rate (0: lr/10)")
	fl.IntVar(&f.opt.Warmup, "warmup", 0, "warm-up steps (0: 5% of the steps)")
	fl.Float64Var(&f.opt.WeightDecay, "weight-decay", 0.1, "AdamW weight decay")
	fl.Float64Var(&f.opt.ClipNorm, "clip", 1, "gradient norm limit")
	fl.Uint64Var(&f.opt.Seed, "seed", 0, "seed of the data order and the held-out split")
	fl.Float64Var(&f.opt.EvalFrac, "eval-frac", 0.01, "share of sequences held out (negative: none)")
	fl.IntVar(&f.opt.EvalEvery, "eval-every", 0, "steps between held-out evaluations (0: a tenth of the run)")
	fl.IntVar(&f.opt.CheckpointEvery, "checkpoint-every", 100, "steps between checkpoints (0: only on interrupt and at the end)")
	fl.BoolVar(&f.opt.Resume, "resume", false, "continue from DIR/checkpoints when a checkpoint is there")
	fl.BoolVar(&f.opt.Recompute, "recompute", false, "recompute activations in the backward pass (less memory)")
	fl.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	return cmd
}

func runModelPretrain(cmd *cobra.Command, modelDir string, f modelPretrainFlags) error {
	if len(f.corpus) == 0 {
		return errors.New("give the corpus: --corpus FILE[,FILE]")
	}
	if f.out == "" {
		return errors.New("give the output directory: --out DIR")
	}
	if f.opt.WeightDecay == 0 {
		f.opt.NoDecay = true
	}
	m, tok, err := slm.Load(modelDir)
	if err != nil {
		return err
	}
	r, closeAll, err := openCorpus(cmd, f.corpus)
	if err != nil {
		return err
	}
	text, err := io.ReadAll(r)
	closeAll()
	if err != nil {
		return fmt.Errorf("--corpus: %w", err)
	}
	docs := slm.SplitDocuments(string(text))
	if len(docs) == 0 {
		return errors.New("--corpus: no text")
	}
	o := f.opt
	o.OutDir = f.out
	o.CheckpointDir = filepath.Join(f.out, "checkpoints")
	o.Progress = cmd.ErrOrStderr()
	o.Logger = slog.Default()
	start := time.Now()
	res, err := slm.Pretrain(cmd.Context(), m, tok, docs, o)
	if err != nil {
		if res != nil && res.Train != nil {
			return fmt.Errorf("%w (checkpoint in %s: rerun with --resume)", err, o.CheckpointDir)
		}
		return err
	}
	dst := filepath.Join(f.out, "model")
	if err := m.WritePretrained(dst, modelDir); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Model string `json:"model"`
			*slm.PretrainResult
		}{dst, res})
	}
	_, err = fmt.Fprintf(out, "pretrained %s: %d corpus tokens, %d training + %d held-out sequences of %d\n"+
		"%d steps (%.2f epochs), loss %.3f → %.3f, held-out %.3f\n"+
		"%.0f tokens/s (%d tokens in %s; encoding %s; total %s)\nwrote %s\n",
		modelDir, res.CorpusTokens, res.Sequences, res.EvalSequences, o.SeqLen,
		res.Steps, res.Epochs, res.FirstLoss, res.LastLoss, res.EvalLoss,
		res.TokensPerSec, res.TokensSeen, res.TrainTime.Round(time.Millisecond), res.EncodeTime.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond), dst)
	return err
}
