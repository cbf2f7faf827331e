package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/tokenizer"
)

// modelInitFlags are the flags of `usersim model init`.
type modelInitFlags struct {
	corpus   []string
	out      string
	preset   string
	model    slm.CompactOptions
	vocab    int
	minFreq  int
	keywords []string
	buckets  []string
	seed     uint64
	std      float32
	force    bool
	asJSON   bool
}

func newModelInitCmd() *cobra.Command {
	var f modelInitFlags
	cmd := &cobra.Command{
		Use:   "init --corpus FILE[,FILE] --out DIR",
		Short: "Create the compact default base model: a BPE tokenizer trained on a corpus and random Llama weights",
		Long: `Create a compact Llama-architecture model in DIR (Hugging Face format:
config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
generation_config.json), ready for pretraining.

The byte-level BPE tokenizer is trained on the corpus files (UTF-8 text,
- for stdin): digits one per token, the template keywords (--keywords) as
single tokens, optionally bucketed numbers (--bucket MIN:MAX:STEP registers
the tokens "<3.2>"... that tokenizer.BucketNumber writes). The weights are
drawn as GPT-2 and Llama initialise them (std 0.02, residual projections
scaled by 1/sqrt(2·layers)) from --seed.

Presets (vocabulary 4096): tiny 1.3M, small 4.0M, base 11.0M parameters;
--dim, --layers, --heads, --kv-heads, --ffn and --context override them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModelInit(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.corpus, "corpus", nil, "corpus text files, comma-separated or repeated (- for stdin)")
	fl.StringVarP(&f.out, "out", "o", "", "output directory")
	fl.StringVar(&f.preset, "preset", slm.DefaultCompactPreset, "model size: tiny, small or base")
	fl.IntVar(&f.model.Hidden, "dim", 0, "model width (0: the preset's)")
	fl.IntVar(&f.model.Layers, "layers", 0, "transformer blocks (0: the preset's)")
	fl.IntVar(&f.model.Heads, "heads", 0, "attention heads (0: the preset's)")
	fl.IntVar(&f.model.KVHeads, "kv-heads", 0, "key/value heads (0: the preset's)")
	fl.IntVar(&f.model.FFN, "ffn", 0, "SwiGLU inner width (0: 8/3·dim rounded up to 64)")
	fl.IntVar(&f.model.Context, "context", 0, "maximum positions (0: the preset's)")
	fl.IntVar(&f.vocab, "vocab", 4096, "tokenizer vocabulary size")
	fl.IntVar(&f.minFreq, "min-frequency", 2, "fewest occurrences of a pair to merge it")
	fl.StringSliceVar(&f.keywords, "keywords", slm.CompactKeywords, "strings that always encode to one token (comma-separated or repeated)")
	fl.StringArrayVar(&f.buckets, "bucket", nil, "register bucketed number tokens MIN:MAX:STEP, e.g. 1:5:0.1 (repeatable)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed of the weights")
	fl.Float32Var(&f.std, "std", 0.02, "standard deviation of the initial weights")
	fl.BoolVar(&f.force, "force", false, "replace DIR if it exists and is not empty")
	fl.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	return cmd
}

func runModelInit(cmd *cobra.Command, f modelInitFlags) error {
	if len(f.corpus) == 0 {
		return errors.New("give the corpus: --corpus FILE[,FILE]")
	}
	if f.out == "" {
		return errors.New("give the output directory: --out DIR")
	}
	if f.vocab < 256+3 {
		return fmt.Errorf("--vocab %d: must be at least 259 (256 byte tokens and 3 special ones)", f.vocab)
	}
	topt := slm.CompactTokenizerOptions()
	topt.VocabSize = f.vocab
	topt.MinFrequency = f.minFreq
	topt.Forced = nil
	for _, k := range f.keywords {
		if k = strings.TrimSpace(k); k != "" {
			topt.Forced = append(topt.Forced, k)
		}
	}
	for _, s := range f.buckets {
		r, err := parseBucket(s)
		if err != nil {
			return err
		}
		topt.Buckets = append(topt.Buckets, r)
	}
	topt.Progress = func(p tokenizer.TrainProgress) {
		slog.Debug("tokenizer", "bytes", p.Bytes, "merges", p.Merges, "max_merges", p.MaxMerges)
	}
	corpus, closeAll, err := openCorpus(cmd, f.corpus)
	if err != nil {
		return err
	}
	defer closeAll()
	mo := f.model
	mo.Preset = f.preset
	res, err := slm.InitCompact(cmd.Context(), corpus, f.out, slm.InitOptions{
		Model: mo, Tokenizer: topt, Seed: f.seed, Std: f.std, Overwrite: f.force,
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	c := res.Config
	_, err = fmt.Fprintf(out, "wrote %s\n  model      llama, %s parameters (dim %d, %d layers, %d heads, %d KV heads, ffn %d, context %d)\n"+
		"  tokenizer  %d ids, %.2f chars/token on %s of %s corpus (%d merges, %.1f s)\n  took       %.1f s\n",
		res.Dir, groupDigits(res.Params), c.Hidden, c.Layers, c.Heads, c.KVHeads, c.FFN, c.MaxContext,
		res.Vocab, res.CharsPerToken, humanBytes(res.SampleBytes), humanBytes(res.CorpusBytes),
		res.Tokenizer.Merges, res.Tokenizer.Duration.Seconds(), res.Duration.Seconds())
	return err
}

// openCorpus concatenates the corpus files, a newline between two files.
func openCorpus(cmd *cobra.Command, paths []string) (io.Reader, func(), error) {
	var rs []io.Reader
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			closeAll()
			return nil, nil, errors.New("--corpus: empty file name")
		}
		if i > 0 {
			rs = append(rs, strings.NewReader("\n"))
		}
		if p == "-" {
			rs = append(rs, cmd.InOrStdin())
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--corpus: %w", err)
		}
		files = append(files, f)
		rs = append(rs, f)
	}
	return io.MultiReader(rs...), closeAll, nil
}

// parseBucket parses MIN:MAX:STEP.
func parseBucket(s string) (tokenizer.BucketRange, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return tokenizer.BucketRange{}, fmt.Errorf("--bucket %q: want MIN:MAX:STEP", s)
	}
	var v [3]float64
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return tokenizer.BucketRange{}, fmt.Errorf("--bucket %q: %w", s, err)
		}
		v[i] = x
	}
	r := tokenizer.BucketRange{Min: v[0], Max: v[1], Step: v[2]}
	if _, err := r.Tokens(); err != nil {
		return tokenizer.BucketRange{}, fmt.Errorf("--bucket %q: %w", s, err)
	}
	return r, nil
}

// groupDigits writes n with thousands separators.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// humanBytes writes a byte count in KB or MB.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
