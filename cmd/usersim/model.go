package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/usersim/usersim/hub"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/chat"
	"github.com/usersim/usersim/slm/generate"
	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/sample"
	"github.com/usersim/usersim/slm/tensor"
	"github.com/usersim/usersim/slm/tokenizer"
)

// newModelCmd builds `usersim model` and its subcommands.
func newModelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Inspect, run, convert and download language models (GGUF or Hugging Face)",
	}
	cmd.AddCommand(newModelInfoCmd(), newModelGenerateCmd(), newModelConvertCmd(), newModelPullCmd(), newModelInitCmd(), newModelPretrainCmd())
	return cmd
}

func newModelInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info PATH",
		Short: "Show a model's architecture, parameter count, weight types and memory",
		Long:  "PATH is a GGUF file or a Hugging Face directory (config.json and *.safetensors).",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := slm.LoadModel(args[0])
			if err != nil {
				return err
			}
			info := m.Info()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err = io.WriteString(out, info.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

// modelGenerateFlags are the flags of `usersim model generate`.
type modelGenerateFlags struct {
	prompt      string
	promptFile  string
	system      string
	maxTokens   int
	temperature float32
	topK        int
	topP        float32
	minP        float32
	repeat      float32
	repeatLastN int
	seed        uint64
	stop        []string
	chat        bool
	echo        bool
	ignoreEOS   bool
	quiet       bool
}

func newModelGenerateCmd() *cobra.Command {
	var f modelGenerateFlags
	cmd := &cobra.Command{
		Use:   "generate PATH",
		Short: "Generate text with a model, streaming it to stdout",
		Long: `Generate text with the model at PATH (a GGUF file or a Hugging Face directory).

Without --prompt generation starts from the BOS token. --temperature 0 is
greedy decoding. With --chat the prompt is the user's message, wrapped in the
model's chat template (from tokenizer_config.json or the GGUF metadata, else
the built-in format of its family). Speeds of the prompt (prefill) and of the
generation (decode) go to stderr.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModelGenerate(cmd, args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.prompt, "prompt", "p", "", "prompt text (default: start from BOS)")
	fl.StringVarP(&f.promptFile, "prompt-file", "f", "", "read the prompt from this file (- for stdin)")
	fl.StringVar(&f.system, "system", "", "system message (with --chat)")
	fl.IntVarP(&f.maxTokens, "max-tokens", "n", 256, "most tokens to generate (0: until the end token or the context is full)")
	fl.Float32VarP(&f.temperature, "temperature", "t", 0.8, "sampling temperature; 0 is greedy")
	fl.IntVar(&f.topK, "top-k", 40, "sample among the k most likely tokens (0: all)")
	fl.Float32Var(&f.topP, "top-p", 0.95, "nucleus sampling: smallest set with this much probability (1: all)")
	fl.Float32Var(&f.minP, "min-p", 0, "drop tokens below this fraction of the best token's probability")
	fl.Float32Var(&f.repeat, "repeat-penalty", 1, "penalty for tokens of the last --repeat-last-n (1: none)")
	fl.IntVar(&f.repeatLastN, "repeat-last-n", 64, "how many recent tokens the repeat penalty looks at (0: all)")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed")
	fl.StringArrayVar(&f.stop, "stop", nil, "stop when this text appears (repeatable)")
	fl.BoolVar(&f.chat, "chat", false, "wrap the prompt in the model's chat template")
	fl.BoolVar(&f.echo, "echo", false, "print the prompt before the generated text")
	fl.BoolVar(&f.ignoreEOS, "ignore-eos", false, "keep generating past end-of-sequence tokens")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "do not print speeds to stderr")
	return cmd
}

func runModelGenerate(cmd *cobra.Command, path string, f modelGenerateFlags) error {
	if f.maxTokens < 0 {
		return fmt.Errorf("--max-tokens %d: must be 0 or more", f.maxTokens)
	}
	if f.temperature < 0 || f.topP < 0 || f.topP > 1 || f.minP < 0 || f.minP > 1 || f.repeat < 0 || f.topK < 0 {
		return errors.New("--temperature, --repeat-penalty and --top-k must be ≥ 0, --top-p and --min-p within [0, 1]")
	}
	if f.promptFile != "" {
		if f.prompt != "" {
			return errors.New("give --prompt or --prompt-file, not both")
		}
		var b []byte
		var err error
		if f.promptFile == "-" {
			b, err = io.ReadAll(cmd.InOrStdin())
		} else {
			b, err = os.ReadFile(f.promptFile)
		}
		if err != nil {
			return fmt.Errorf("read prompt: %w", err)
		}
		f.prompt = string(b)
	}
	m, tok, err := slm.Load(path)
	if err != nil {
		return err
	}
	ids, text, err := promptIDs(path, m, tok, f)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.echo {
		if _, err := io.WriteString(out, text); err != nil {
			return err
		}
	}
	opt := generate.Options{
		MaxTokens: f.maxTokens,
		Sample: sample.Options{Temperature: f.temperature, TopK: f.topK, TopP: f.topP, MinP: f.minP,
			RepeatPenalty: f.repeat, RepeatLastN: f.repeatLastN, Seed: f.seed},
		Stop:      f.stop,
		IgnoreEOS: f.ignoreEOS,
	}
	st, err := generate.Generate(cmd.Context(), m, tok, ids, opt, func(s string) error {
		_, err := io.WriteString(out, s)
		return err
	})
	fmt.Fprintln(out)
	if !f.quiet {
		errw := cmd.ErrOrStderr()
		fmt.Fprintf(errw, "prefill: %d tokens in %.1f ms, %.1f tokens/s\n", st.PromptTokens, millis(st.Prefill.Seconds()), st.PrefillTokensPerSecond())
		fmt.Fprintf(errw, "decode:  %d tokens in %.1f ms, %.1f tokens/s (stop: %s)\n", st.DecodeSteps, millis(st.Decode.Seconds()), st.DecodeTokensPerSecond(), st.StopReason)
	}
	return err
}

func millis(s float64) float64 { return s * 1000 }

// promptIDs builds the prompt's token ids and its text.
func promptIDs(path string, m *slm.Model, tok *tokenizer.Tokenizer, f modelGenerateFlags) ([]int, string, error) {
	if !f.chat {
		if f.prompt == "" {
			if tok.BOS() < 0 {
				return nil, "", errors.New("the tokenizer has no BOS token to start from: give --prompt")
			}
			return []int{tok.BOS()}, "", nil
		}
		ids, err := tok.Encode(f.prompt, tokenizer.EncodeOptions{AddBOS: tok.AddBOSDefault()})
		if err != nil {
			return nil, "", fmt.Errorf("encode prompt: %w", err)
		}
		if len(ids) == 0 {
			return nil, "", errors.New("the prompt encodes to no tokens")
		}
		return ids, f.prompt, nil
	}
	tmpl, err := chatTemplate(path, m.Config.Arch, tok)
	if err != nil {
		return nil, "", err
	}
	var msgs []chat.Message
	if f.system != "" {
		msgs = append(msgs, chat.Message{Role: "system", Content: f.system})
	}
	msgs = append(msgs, chat.Message{Role: "user", Content: f.prompt})
	text, err := chat.Render(tmpl, msgs, true)
	if err != nil {
		return nil, "", err
	}
	// As llama.cpp does: add BOS when the tokenizer wants one and the
	// template did not write it.
	addBOS := tok.AddBOSDefault() && tok.BOS() >= 0 && !strings.HasPrefix(text, tok.TokenText(tok.BOS()))
	ids, err := tok.Encode(text, tokenizer.EncodeOptions{AddBOS: addBOS, ParseSpecial: true})
	if err != nil {
		return nil, "", fmt.Errorf("encode chat prompt: %w", err)
	}
	return ids, text, nil
}

// chatTemplate finds the chat template of the model at path: the
// tokenizer_config.json of a Hugging Face directory, the
// tokenizer.chat_template of a GGUF file, else the family's built-in format.
func chatTemplate(path, arch string, tok *tokenizer.Tokenizer) (chat.Template, error) {
	bos, eos := "", ""
	if tok.BOS() >= 0 {
		bos = tok.TokenText(tok.BOS())
	}
	if tok.EOS() >= 0 {
		eos = tok.TokenText(tok.EOS())
	}
	st, err := os.Stat(path)
	if err != nil {
		return chat.Template{}, err
	}
	if st.IsDir() {
		cfg, err := os.ReadFile(filepath.Join(path, "tokenizer_config.json"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return chat.Template{}, err
		}
		if len(cfg) == 0 {
			return chat.ForArch(arch, bos, eos)
		}
		t, err := chat.Detect(arch, cfg)
		return fallbackTemplate(t, err, arch, bos, eos)
	}
	g, err := gguf.Open(path)
	if err != nil {
		return chat.Template{}, err
	}
	defer g.Close()
	src, err := g.String("tokenizer.chat_template")
	switch {
	case err == nil:
		t, err := chat.Jinja(src, bos, eos)
		return fallbackTemplate(t, err, arch, bos, eos)
	case errors.Is(err, gguf.ErrNotFound):
		return chat.ForArch(arch, bos, eos)
	default:
		return chat.Template{}, fmt.Errorf("%s: %w", path, err)
	}
}

// fallbackTemplate replaces a model's chat template that the Jinja engine
// cannot compile by the family's built-in format, with a warning.
func fallbackTemplate(t chat.Template, err error, arch, bos, eos string) (chat.Template, error) {
	if err == nil {
		return t, nil
	}
	b, berr := chat.ForArch(arch, bos, eos)
	if berr != nil {
		return chat.Template{}, err
	}
	slog.Warn("using the built-in chat format instead of the model's template", "format", b.Format, "err", err)
	return b, nil
}

func newModelConvertCmd() *cobra.Command {
	var dtype string
	cmd := &cobra.Command{
		Use:   "convert IN OUT",
		Short: "Convert a model between GGUF and a Hugging Face safetensors directory",
		Long: `Convert IN to OUT, tokenizer included: a GGUF file to a Hugging Face directory
(config.json, model.safetensors, tokenizer.json, tokenizer_config.json), or a
Hugging Face directory to a GGUF file (tokenizer in its metadata). --dtype
sets the type of the weight matrices.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModelConvert(cmd, args[0], args[1], dtype)
		},
	}
	cmd.Flags().StringVar(&dtype, "dtype", "f32", "weight type: f32, f16 or bf16 (GGUF output also q8_0)")
	return cmd
}

func parseDType(s string, toGGUF bool) (tensor.DType, error) {
	switch strings.ToLower(s) {
	case "f32":
		return tensor.F32, nil
	case "f16":
		return tensor.F16, nil
	case "bf16":
		return tensor.BF16, nil
	case "q8_0":
		if toGGUF {
			return tensor.Q8_0, nil
		}
	}
	return tensor.Invalid, fmt.Errorf("--dtype %q: want f32, f16 or bf16 (q8_0 for GGUF output)", s)
}

func runModelConvert(cmd *cobra.Command, in, out, dtype string) error {
	st, err := os.Stat(in)
	if err != nil {
		return err
	}
	toGGUF := st.IsDir()
	d, err := parseDType(dtype, toGGUF)
	if err != nil {
		return err
	}
	if toGGUF {
		if err := slm.ConvertHFToGGUF(in, out, slm.SaveOptions{DType: d}); err != nil {
			return err
		}
	} else {
		if err := slm.ConvertGGUFToHF(in, out, slm.SaveOptions{DType: d}); err != nil {
			return err
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", out)
	return nil
}

func newModelPullCmd() *cobra.Command {
	var include []string
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "pull REPO[@REVISION]",
		Short: "Download a model from the Hugging Face Hub into the shared cache",
		Long: `Download the files of a Hugging Face model repository into the cache that
huggingface_hub uses ($HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub) and print the snapshot folder, which 'usersim model'
commands accept as PATH. By default the configuration, tokenizer and
safetensors weights are pulled; --include selects other files (for example
--include '*Q8_0.gguf'). HF_TOKEN authenticates for private and gated
repositories; HF_ENDPOINT selects a mirror. Interrupted downloads resume.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, rev, err := hub.ParseRef(args[0])
			if err != nil {
				return err
			}
			opt := hub.Options{Include: include, CacheDir: cacheDir}
			if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				opt.Progress = f
			}
			dir, err := hub.Pull(cmd.Context(), repo, rev, opt)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), dir)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&include, "include", nil, "glob of files to pull (repeatable; default config, tokenizer and *.safetensors)")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", "", "hub cache folder (default from HF_HUB_CACHE / HF_HOME)")
	return cmd
}
