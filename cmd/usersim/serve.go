package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/serve"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
)

// serveFlags are the flags of `usersim serve`.
type serveFlags struct {
	adapters  []string
	addr      string
	name      string
	maxBatch  int
	queue     int
	apiKeyEnv string
	maxBody   string
	timeout   time.Duration
	maxTokens int
	prefill   int
	drain     time.Duration

	// The agent API (--workspace).
	workspace string
	ws        workspaceOptions
	maxRate   int
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [MODEL]",
		Short: "Serve a model and its persona adapters over an OpenAI-compatible HTTP API",
		Long: `Serve MODEL (a GGUF file or a Hugging Face directory) and LoRA adapters over
HTTP: POST /v1/chat/completions and /v1/completions (OpenAI-compatible, with
streaming and logprobs; "model" is an adapter's name, or the base model's name
for none), GET /v1/models, /healthz and /metrics (Prometheus).

With --workspace DIR it also serves the workspace's user agents, each with
its persona's adapter (adapters/<family>/persona-<k>/, served as
"persona-<k>"): POST /v1/agents/{user}/rate ({"items": [...], "explain":
false}: rating distributions), POST /v1/agents/{user}/choose ({"items":
[...]}: the chosen item or "exit"), GET /v1/personas, and the catalog GET
/v1/agents (users and their personas) and GET /v1/items. MODEL defaults to
DIR/models/base; the dataset to the one the workspace was distilled from;
the prompt family (--prompt-variant, --no-memory) to that of the
experiment's main persona agent in DIR/config.yaml (the default variant's
collaborative anchor is fitted at start as ` + "`usersim run`" + ` fits it).

Concurrent requests are batched together on the shared base, whatever their
adapters. SIGINT or SIGTERM stops accepting connections and lets the running
requests finish (up to --drain).`,
		Example: `  usersim serve base.gguf --adapter cinephile=adapters/p0 --adapter casual=adapters/p1
  USERSIM_API_KEY=secret usersim serve base.gguf --api-key-env USERSIM_API_KEY --addr 0.0.0.0:8080
  usersim serve --workspace ws
  usersim serve --workspace ws-ml1m --dataset ml-1m --data-dir ../shared/data/ml-1m`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f.ws.srcChanged = cmd.Flags().Changed("dataset") || cmd.Flags().Changed("data-dir")
			switch {
			case len(args) == 1:
				return runServe(cmd, args[0], f)
			case f.workspace != "":
				return runServe(cmd, filepath.Join(f.workspace, filepath.FromSlash(baseModelDir)), f)
			}
			return errors.New("give MODEL, or --workspace DIR to serve its base model")
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.adapters, "adapter", nil, "a LoRA adapter to serve, as NAME=DIR (PEFT directory); repeatable")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.name, "name", "", "the base model's name in requests (default: MODEL's file name without extension)")
	fl.IntVar(&f.maxBatch, "max-batch", 8, "most sequences in one forward pass")
	fl.IntVar(&f.queue, "queue", 0, "most requests waiting for a batch slot before 429 (default 8 × --max-batch)")
	fl.StringVar(&f.apiKeyEnv, "api-key-env", "", "name of an environment variable holding the bearer token clients must send")
	fl.StringVar(&f.maxBody, "max-body", "1MB", "largest request body (B, KB, MB; 1KB = 1024 bytes)")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "longest time one request may take, queueing included")
	fl.IntVar(&f.maxTokens, "max-tokens", 512, "most tokens one request may generate (and the default)")
	fl.IntVar(&f.prefill, "max-prefill", 2048, "most prompt tokens that join the batch in one step (a longer prompt joins alone)")
	fl.DurationVar(&f.drain, "drain", 30*time.Second, "on shutdown, how long running requests may take to finish")
	fl.StringVar(&f.workspace, "workspace", "", "serve the user agents of the experiment in `DIR` (dataset, split, memories, personas, adapters)")
	f.ws.src.addFlags(fl)
	fl.StringVar(&f.ws.variant, "prompt-variant", "", "the agents' prompt variant, as the adapters were trained (paper or default; default: the workspace's main persona agent's, else paper)")
	fl.BoolVar(&f.ws.noMemory, "no-memory", false, "Ms-only agent prompts (no retrieved memory), as the adapters were trained (the family's adapters are then read from adapters/<variant>-ms)")
	fl.IntVar(&f.ws.topK, "top-k", 0, "memories retrieved per agent prompt (0: raft's default, 1)")
	fl.IntVar(&f.maxRate, "max-rate-items", serve.DefaultMaxRateItems, "most items one rate request may carry")
	cmd.AddCommand(newServeLoadCmd())
	return cmd
}

// adapterName is what an adapter may be called: no spaces or control
// characters, nothing that looks like a path to anyone reading logs.
var adapterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func runServe(cmd *cobra.Command, path string, f serveFlags) error {
	maxBody, err := parseByteSize(f.maxBody)
	if err != nil {
		return fmt.Errorf("--max-body: %w", err)
	}
	if f.maxBatch < 1 || f.maxTokens < 1 || f.prefill < 1 || f.timeout <= 0 || f.queue < 0 {
		return errors.New("--max-batch, --max-tokens, --max-prefill and --timeout must be positive, --queue at least 0")
	}
	if f.maxRate < 1 || f.ws.topK < 0 {
		return errors.New("--max-rate-items must be positive, --top-k at least 0")
	}
	apiKey := ""
	if f.apiKeyEnv != "" {
		apiKey = os.Getenv(f.apiKeyEnv)
		if apiKey == "" {
			return fmt.Errorf("--api-key-env: the environment variable %s is empty or not set", f.apiKeyEnv)
		}
	}
	name := f.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(filepath.Clean(path)), filepath.Ext(path))
	}
	m, tok, err := slm.Load(path)
	if err != nil {
		return err
	}
	adapters := map[string]*lora.Adapter{}
	for _, spec := range f.adapters {
		an, dir, ok := strings.Cut(spec, "=")
		if !ok || dir == "" {
			return fmt.Errorf("--adapter %q: want NAME=DIR", spec)
		}
		if !adapterName.MatchString(an) {
			return fmt.Errorf("--adapter %q: the name must be letters, digits, '.', '_', ':' or '-'", spec)
		}
		if _, dup := adapters[an]; dup || an == name {
			return fmt.Errorf("--adapter %q: the name %s is taken", spec, an)
		}
		a, err := lora.Load(dir, m.Config.LoRABase())
		if err != nil {
			return fmt.Errorf("--adapter %s: %w", an, err)
		}
		adapters[an] = a
	}
	var ws *agentWorkspace
	if f.workspace != "" {
		if ws, err = loadAgentWorkspace(cmd.Context(), f.workspace, m, tok, f.ws); err != nil {
			return err
		}
		defer ws.backend.Close()
		for an, a := range ws.adapters {
			if _, dup := adapters[an]; dup || an == name {
				return fmt.Errorf("--workspace: the persona adapter name %s is taken by --adapter or --name", an)
			}
			adapters[an] = a
		}
	}
	tmpl, err := chatTemplate(path, m.Config.Arch, tok)
	opt := serve.Options{
		Name: name, Adapters: adapters, Arch: m.Config.Arch, MaxContext: m.Config.MaxContext,
		MaxBatch: f.maxBatch, QueueSize: f.queue, MaxBodyBytes: maxBody, Timeout: f.timeout,
		MaxTokens: f.maxTokens, MaxPrefillTokens: f.prefill, APIKey: apiKey,
	}
	if err == nil {
		opt.Template = &tmpl
	} else {
		slog.Warn("no chat template: chat requests get a plain transcript", "err", err)
	}
	s, err := serve.New(m, tok, opt)
	if err != nil {
		return err
	}
	defer s.Close()
	if ws != nil {
		s.HandleAgents(ws.svc, serve.AgentOptions{MaxRateItems: f.maxRate})
		fmt.Fprintf(cmd.ErrOrStderr(), "serving the agents of %d users of %s (prompt family %s)\n", ws.users, f.workspace, ws.family)
	}

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      f.timeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(cmd.ErrOrStderr(), "serving %s with %d adapters %v on http://%s\n", name, len(adapters), s.Models()[1:], ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "shutting down: draining running requests")
	sctx, cancel := context.WithTimeout(context.Background(), f.drain)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// parseByteSize reads sizes such as 1MB, 512KB, 2048 or 1.5MiB (powers of
// 1024 either way).
func parseByteSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || v*float64(mult) > 1<<40 {
		return 0, fmt.Errorf("%q is not a size such as 1MB", s)
	}
	return int64(v * float64(mult)), nil
}
