package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/memory/llmdistill"
)

// The llm distiller registers itself with `usersim distill` (distill.go).
func init() {
	distillerPlugins["llm"] = distillerPlugin{addFlags: addLLMFlags, make: makeLLMDistiller}
}

// addLLMFlags registers the llm distiller's flags.
func addLLMFlags(fs *pflag.FlagSet) {
	fs.String("llm-url", llm.DefaultBaseURL, "llm: OpenAI-compatible API root, e.g. http://localhost:8000/v1 (vLLM), http://localhost:11434/v1 (Ollama)")
	fs.String("llm-model", "", "llm: model name the server knows (required with --distiller llm)")
	fs.String("llm-key-env", llm.DefaultKeyEnv, "llm: environment variable holding the API key (may be unset for local servers)")
	fs.Int("llm-concurrency", 4, "llm: users distilled and requests in flight at once")
	fs.String("llm-cache", "", "llm: answer cache `DIR`, which makes a killed run resume (default WORKSPACE/llm-cache)")
	fs.String("llm-prices", "", "llm: price table for the cost estimate, `model=in/out,...` per million tokens")
	fs.Float64("llm-temperature", 0, "llm: sampling temperature (negative: not sent, the model's default)")
	fs.Bool("llm-max-completion-tokens", false, "llm: send the bound as max_completion_tokens (OpenAI's newer models) rather than max_tokens")
	fs.Int64("llm-seed", -1, "llm: seed sent with each request (negative: none)")
	fs.Int("llm-batch-size", 10, "llm: ratings per request (the paper: at most 10)")
	fs.Int("llm-max-words", 2000, "llm: word cap of a profile; a user over it fails (negative: no cap)")
	fs.Int("llm-max-tokens", 4096, "llm: max_tokens of one answer")
	fs.Int("llm-repairs", 2, "llm: further requests after an invalid or truncated answer to a batch")
	fs.String("llm-format", "json_schema", "llm: how the answer's JSON is asked for: json_schema, json_object or none")
	fs.String("llm-prompts", "", "llm: `DIR` of prompt templates replacing the built-in ones (see --llm-write-prompts)")
	fs.String("llm-write-prompts", "", "llm: write the built-in prompt templates into `DIR` and exit")
	fs.Bool("llm-skip-failed", false, "llm: leave out users whose distillation fails (as the paper drops profiles over 2,000 words) instead of stopping")
	fs.String("batch-export", "", "llm: write the next round of requests as OpenAI Batch / vllm run-batch JSONL to `FILE` instead of calling the server")
	fs.String("batch-import", "", "llm: read a batch results JSONL `FILE` into the cache before distilling or exporting")
}

// llmOptions are the llm distiller's flag values.
type llmOptions struct {
	url, model, keyEnv, cache, prices, format, prompts, writePrompts string
	exportFile, importFile                                           string
	concurrency, batchSize, maxWords, maxTokens, repairs             int
	temperature                                                      float64
	seed                                                             int64
	skipFailed, maxCompletion                                        bool
}

func readLLMOptions(fs *pflag.FlagSet) (llmOptions, error) {
	var o llmOptions
	var errs []error
	str := func(name string, p *string) {
		v, err := fs.GetString(name)
		errs = append(errs, err)
		*p = v
	}
	num := func(name string, p *int) {
		v, err := fs.GetInt(name)
		errs = append(errs, err)
		*p = v
	}
	str("llm-url", &o.url)
	str("llm-model", &o.model)
	str("llm-key-env", &o.keyEnv)
	str("llm-cache", &o.cache)
	str("llm-prices", &o.prices)
	str("llm-format", &o.format)
	str("llm-prompts", &o.prompts)
	str("llm-write-prompts", &o.writePrompts)
	str("batch-export", &o.exportFile)
	str("batch-import", &o.importFile)
	num("llm-concurrency", &o.concurrency)
	num("llm-batch-size", &o.batchSize)
	num("llm-max-words", &o.maxWords)
	num("llm-max-tokens", &o.maxTokens)
	num("llm-repairs", &o.repairs)
	var err error
	o.temperature, err = fs.GetFloat64("llm-temperature")
	errs = append(errs, err)
	o.seed, err = fs.GetInt64("llm-seed")
	errs = append(errs, err)
	o.skipFailed, err = fs.GetBool("llm-skip-failed")
	errs = append(errs, err)
	o.maxCompletion, err = fs.GetBool("llm-max-completion-tokens")
	errs = append(errs, err)
	return o, errors.Join(errs...)
}

// makeLLMDistiller builds the llm distiller from the distill command's
// flags (the distillerPlugin hook).
func makeLLMDistiller(cmd *cobra.Command) (memory.Distiller, string, any, error) {
	o, err := readLLMOptions(cmd.Flags())
	if err != nil {
		return nil, "", nil, err
	}
	if o.cache == "" {
		ws, _ := cmd.Flags().GetString("workspace")
		o.cache = filepath.Join(ws, "llm-cache")
	}
	pop, _ := cmd.Flags().GetString("population")
	d, err := newLLMDistiller(o, memory.Population(pop), cmd.ErrOrStderr())
	if err != nil {
		return nil, "", nil, err
	}
	return d, d.d.Name(), d.d.Options(), nil
}

// cliLLMDistiller is the llm distiller with the command's batch-file
// workflow, progress bar and usage report around it.
type cliLLMDistiller struct {
	d       *llmdistill.Distiller
	client  *llm.Client
	opts    llmOptions
	stderr  io.Writer
	bar     *progressbar.ProgressBar
	showBar bool
}

// newLLMDistiller builds the llm distiller from its options.
func newLLMDistiller(o llmOptions, pop memory.Population, stderr io.Writer) (*cliLLMDistiller, error) {
	if o.writePrompts != "" {
		if err := llmdistill.WriteDefaultPrompts(o.writePrompts); err != nil {
			return nil, fmt.Errorf("--llm-write-prompts: %w", err)
		}
		return nil, fmt.Errorf("wrote the built-in prompt templates to %s; edit them and pass --llm-prompts %s", o.writePrompts, o.writePrompts)
	}
	if o.model == "" {
		return nil, errors.New("--distiller llm needs --llm-model NAME")
	}
	if o.concurrency < 1 {
		return nil, fmt.Errorf("--llm-concurrency %d: want at least 1", o.concurrency)
	}
	if o.batchSize < 1 {
		return nil, fmt.Errorf("--llm-batch-size %d: want at least 1", o.batchSize)
	}
	if o.maxWords == 0 {
		return nil, errors.New("--llm-max-words 0: want a cap, or a negative value for none")
	}
	if o.repairs < 0 {
		return nil, fmt.Errorf("--llm-repairs %d: want 0 or more", o.repairs)
	}
	prices, err := llm.ParsePrices(o.prices)
	if err != nil {
		return nil, fmt.Errorf("--llm-prices: %w", err)
	}
	cache, err := llm.NewDirCache(o.cache)
	if err != nil {
		return nil, fmt.Errorf("--llm-cache: %w", err)
	}
	client := llm.NewFromEnv(o.url, o.keyEnv)
	client.MaxConcurrency = o.concurrency
	client.Cache = cache
	client.Usage = &llm.Accounting{Prices: prices}
	if client.APIKey == "" && o.url == llm.DefaultBaseURL && o.exportFile == "" {
		return nil, fmt.Errorf("--llm-url %s needs an API key in $%s (or use --batch-export)", o.url, o.keyEnv)
	}
	repairs := o.repairs
	if repairs == 0 {
		repairs = -1 // llmdistill: negative means none
	}
	c := &cliLLMDistiller{client: client, opts: o, stderr: stderr}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		c.showBar = true
	}
	cfg := llmdistill.Config{
		Client: client, Model: o.model, Temperature: o.temperature, MaxCompletionTokens: o.maxCompletion,
		MaxTokens: o.maxTokens, BatchSize: o.batchSize, MaxWords: o.maxWords, MaxRepairs: repairs,
		Concurrency: o.concurrency, ResponseFormat: o.format, PromptDir: o.prompts,
		SkipFailed: o.skipFailed, Population: pop, Progress: c.progress,
	}
	if o.seed >= 0 {
		cfg.Seed = &o.seed
	}
	if c.d, err = llmdistill.New(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *cliLLMDistiller) progress(done, total int) {
	if !c.showBar {
		return
	}
	if c.bar == nil {
		c.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(c.stderr),
			progressbar.OptionSetDescription("distilling (batches)"), progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish())
	}
	c.bar.Set(done)
}

// Distill implements memory.Distiller. With --batch-import and/or
// --batch-export it runs one batch round first; while users are still
// pending it stops with an error that says what to run next.
func (c *cliLLMDistiller) Distill(ctx context.Context, d *dataset.Dataset, s *split.Split, users []int32) ([]memory.Profile, []memory.Interaction, error) {
	defer c.report()
	if c.opts.exportFile != "" || c.opts.importFile != "" {
		if err := c.round(ctx, d, s, users); err != nil {
			return nil, nil, err
		}
	}
	ps, ms, err := c.d.Distill(ctx, d, s, users)
	if c.bar != nil {
		c.bar.Finish()
	}
	return ps, ms, err
}

func (c *cliLLMDistiller) round(ctx context.Context, d *dataset.Dataset, s *split.Split, users []int32) error {
	var results map[string]llm.BatchResult
	if c.opts.importFile != "" {
		f, err := os.Open(c.opts.importFile)
		if err != nil {
			return fmt.Errorf("--batch-import: %w", err)
		}
		results, err = llm.ReadBatchResults(f, c.opts.importFile)
		f.Close()
		if err != nil {
			return fmt.Errorf("--batch-import: %w", err)
		}
	}
	var buf bytes.Buffer
	var w io.Writer
	if c.opts.exportFile != "" {
		w = &buf
	}
	st, err := c.d.Round(ctx, d, s, users, results, w)
	if err != nil {
		return err
	}
	if c.opts.importFile != "" {
		fmt.Fprintf(c.stderr, "imported %d answers from %s (%d results were errors, %d matched no pending request)\n",
			st.Imported, c.opts.importFile, len(st.ResultErrors), st.Unmatched)
		for i, e := range st.ResultErrors {
			if i == 5 {
				fmt.Fprintf(c.stderr, "  ... and %d more\n", len(st.ResultErrors)-5)
				break
			}
			fmt.Fprintf(c.stderr, "  %s\n", e)
		}
	}
	pending := st.Users - st.Complete - len(st.Failed)
	fmt.Fprintf(c.stderr, "%d of %d users complete, %d failed, %d pending\n", st.Complete, st.Users, len(st.Failed), pending)
	if pending == 0 {
		return nil // everything is in the cache: distil from it
	}
	if c.opts.exportFile == "" {
		return fmt.Errorf("%d users still need answers: export the next round with --batch-export FILE", pending)
	}
	if err := os.MkdirAll(filepath.Dir(c.opts.exportFile), 0o755); err != nil {
		return fmt.Errorf("--batch-export: %w", err)
	}
	if err := atomicfile.WriteFile(c.opts.exportFile, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--batch-export: %w", err)
	}
	return fmt.Errorf("wrote %d requests (the next one of each pending user) to %s: run them, e.g.\n"+
		"  vllm run-batch -i %s -o results.jsonl --model %s\n"+
		"or through the OpenAI Batch API, then rerun this command with --batch-import results.jsonl --batch-export NEXT.jsonl",
		st.Written, c.opts.exportFile, c.opts.exportFile, c.opts.model)
}

// report prints the token usage and cost of the run.
func (c *cliLLMDistiller) report() {
	t := c.client.Usage.Total()
	if t.Requests+t.CachedRequests == 0 {
		return
	}
	var b strings.Builder
	c.client.Usage.WriteText(&b)
	fmt.Fprintf(c.stderr, "llm usage (cached: answered from %s):\n%s", c.opts.cache, b.String())
}
