package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/serve/loadtest"
)

// loadFlags are the flags of `usersim serve load`.
type loadFlags struct {
	o         loadtest.Options
	a         loadtest.AgentOptions
	agents    bool
	apiKeyEnv string
	asJSON    bool

	malformed      bool
	malformedEvery time.Duration
	maxBody        string
}

// newServeLoadCmd builds `usersim serve load`: a load test from a second
// process against a running server.
func newServeLoadCmd() *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "load URL",
		Short: "Load-test a running server: throughput, latency percentiles, errors and the server's memory",
		Long: `Load-test the server at URL from --clients concurrent clients for --duration
(or --requests requests) and report throughput, latency percentiles, the
responses by status and the server's memory (resident set, Go heap in use,
goroutines) read from its /metrics every --memory-every: before the load,
the largest in the first and in the last --memory-window, and over the run.

By default it sends completions, cycling through the --model names (base
model or adapters). With --agents it sends POST /v1/agents/{user}/rate of
--items items each (and with --choose-every N every Nth request a choose
over a --slate of items) to a server started with --workspace: each request
goes to the next persona in turn, for one of its users drawn at random,
about items drawn at random; users and items come from the server's GET
/v1/agents and /v1/items unless --user and --item give them.

With --malformed one more client sends, every --malformed-every, requests
with one thing wrong each (malformed JSON, wrong shapes, unknown users and
items, too many items, a body over --max-body, over-long and path-like IDs,
wrong methods and routes, a wrong API key): every answer must be 4xx.

The command fails when any request of the load failed or any malformed
request was answered other than 4xx.`,
		Example: `  usersim serve load http://127.0.0.1:8080 --model cinephile --model casual --clients 8 --duration 1m
  usersim serve load http://127.0.0.1:8080 --agents --clients 8 --duration 1m --choose-every 10 --malformed`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runLoad(cmd, args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.o.Models, "model", nil, "a model name to request (repeatable; used in turn)")
	fl.IntVar(&f.o.Clients, "clients", 8, "concurrent clients")
	fl.DurationVar(&f.o.Duration, "duration", 10*time.Second, "how long to send requests")
	fl.IntVar(&f.o.Requests, "requests", 0, "stop after this many requests (0: run for --duration)")
	fl.StringVar(&f.o.Prompt, "prompt", "Once upon a time", "the prompt of every request")
	fl.IntVar(&f.o.MaxTokens, "max-tokens", 32, "max_tokens of every request")
	fl.BoolVar(&f.o.Stream, "stream", false, "stream the responses (measures time to first token)")
	fl.BoolVar(&f.agents, "agents", false, "load the agent API (rate, choose) instead of completions")
	fl.IntVar(&f.a.Items, "items", 10, "items per rate request (--agents)")
	fl.IntVar(&f.a.ChooseEvery, "choose-every", 0, "make every Nth request a choose (--agents; 0: rate only)")
	fl.IntVar(&f.a.SlateSize, "slate", 5, "items per choose request (--agents)")
	fl.StringArrayVar(&f.a.Users, "user", nil, "a user to rate as (repeatable; --agents; default: every user the server lists)")
	fl.StringArrayVar(&f.a.ItemIDs, "item", nil, "an item to rate (repeatable; --agents; default: every item the server lists)")
	fl.IntSliceVar(&f.a.Personas, "persona", nil, "only users of these personas (--agents; default: all)")
	fl.Uint64Var(&f.a.Seed, "seed", 1, "seed of the users and items drawn (--agents)")
	fl.DurationVar(&f.o.MemoryEvery, "memory-every", time.Second, "how often to read the server's memory from /metrics (0: never)")
	fl.DurationVar(&f.o.MemoryWindow, "memory-window", 10*time.Second, "span at the start and the end of the run whose memory readings are compared (at most a quarter of the run)")
	fl.BoolVar(&f.malformed, "malformed", false, "also send malformed, oversized and misrouted requests, which must all be answered 4xx")
	fl.DurationVar(&f.malformedEvery, "malformed-every", 100*time.Millisecond, "pause between two malformed requests")
	fl.StringVar(&f.maxBody, "max-body", "1MB", "the server's --max-body (the oversized malformed request sends a little more)")
	fl.StringVar(&f.apiKeyEnv, "api-key-env", "", "name of an environment variable holding the server's API key")
	fl.BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	return cmd
}

func runLoad(cmd *cobra.Command, url string, f loadFlags) (err error) {
	ctx := cmd.Context()
	o := f.o
	o.URL = url
	if f.apiKeyEnv != "" {
		if o.APIKey = os.Getenv(f.apiKeyEnv); o.APIKey == "" {
			return fmt.Errorf("--api-key-env: the environment variable %s is empty or not set", f.apiKeyEnv)
		}
	}
	if o.MemoryEvery == 0 {
		o.MemoryEvery = -1 // Options reads 0 as the default
	}
	if !f.agents && len(o.Models) == 0 {
		return errors.New("give at least one --model, or --agents")
	}
	if o.Clients < 1 || o.Requests < 0 || o.Duration <= 0 {
		return errors.New("--clients and --duration must be positive, --requests at least 0")
	}
	if f.agents && (f.a.Items < 1 || f.a.SlateSize < 1 || f.a.ChooseEvery < 0) {
		return errors.New("--items and --slate must be positive, --choose-every at least 0")
	}
	maxBody, err := parseByteSize(f.maxBody)
	if err != nil {
		return fmt.Errorf("--max-body: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients + 2}}
	o.Client = client

	// The malformed requests run beside the load, until it ends.
	var (
		probe     loadtest.ProbeResult
		probeErr  error
		probeDone sync.WaitGroup
	)
	loadCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	var po loadtest.ProbeOptions
	if f.malformed {
		po = loadtest.ProbeOptions{URL: url, APIKey: o.APIKey, User: "user", Item: "item", MaxBody: maxBody, Rounds: -1, Interval: f.malformedEvery,
			Client: &http.Client{Timeout: 30 * time.Second}}
		// A real user and item, so that each request has one thing wrong.
		if cat, err := loadtest.FetchCatalog(ctx, client, url, o.APIKey); err == nil && len(cat.Users) > 0 && len(cat.Items) > 0 {
			po.User, po.Item = cat.Users[0].ID, cat.Items[0]
		} else if f.agents {
			return fmt.Errorf("--malformed: the server's catalog: %v", err)
		}
		if len(f.a.Users) > 0 {
			po.User = f.a.Users[0]
		}
		if len(f.a.ItemIDs) > 0 {
			po.Item = f.a.ItemIDs[0]
		}
		probeDone.Go(func() { probe, probeErr = loadtest.Probe(loadCtx, po) })
	}

	var (
		res    any
		text   string
		failed int
		total  int
	)
	if f.agents {
		a := f.a
		a.URL, a.APIKey, a.Client = url, o.APIKey, client
		a.Clients, a.Duration, a.Requests = o.Clients, o.Duration, o.Requests
		a.MemoryEvery, a.MemoryWindow = o.MemoryEvery, o.MemoryWindow
		r, err := loadtest.RunAgents(loadCtx, a)
		stopProbe()
		probeDone.Wait()
		if err != nil {
			return err
		}
		failed, total, text = r.Errors(), r.Requests(), r.String()
		res = struct {
			loadtest.AgentResult
			Rate   latencyMs `json:"rate_ms"`
			Choose latencyMs `json:"choose_ms"`
		}{r, msOf(r.Rate), msOf(r.Choose)}
	} else {
		r, err := loadtest.Run(loadCtx, o)
		stopProbe()
		probeDone.Wait()
		if err != nil {
			return err
		}
		failed, total, text = r.Errors, r.Requests, r.String()
		res = struct {
			loadtest.Result
			latencyMs
		}{r, msOf(r)}
	}
	if probeErr != nil {
		return fmt.Errorf("--malformed: %w", probeErr)
	}
	if f.malformed {
		// Every case once more after the load, so each is answered at
		// least once however short the load was.
		po.Rounds, po.Interval = 1, 0
		last, err := loadtest.Probe(ctx, po)
		if err != nil {
			return fmt.Errorf("--malformed: %w", err)
		}
		probe.Add(last)
	}
	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		var mal *loadtest.ProbeResult
		if f.malformed {
			mal = &probe
		}
		if err := enc.Encode(struct {
			Load      any                   `json:"load"`
			Malformed *loadtest.ProbeResult `json:"malformed,omitempty"`
		}{res, mal}); err != nil {
			return err
		}
	} else {
		fmt.Fprint(out, text)
		if f.malformed {
			fmt.Fprint(out, probe)
		}
	}
	// Report, then fail: a load test passes with zero errors.
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d requests failed", failed, total)
	case f.malformed && probe.Bad > 0:
		return fmt.Errorf("%d of %d malformed requests were not answered 4xx", probe.Bad, probe.Sent)
	case f.malformed && probe.Sent == 0:
		return errors.New("--malformed: no malformed request was answered")
	}
	return nil
}

// latencyMs are a result's latency percentiles in milliseconds.
type latencyMs struct {
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	TTFT50ms float64 `json:"ttft50_ms,omitempty"`
	TTFT99ms float64 `json:"ttft99_ms,omitempty"`
}

func msOf(r loadtest.Result) latencyMs {
	return latencyMs{ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), ms(r.TTFT50), ms(r.TTFT99)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
