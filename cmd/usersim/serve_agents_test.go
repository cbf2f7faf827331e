package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/persona"
	"github.com/usersim/usersim/pipeline"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/tokenizer"
	"github.com/usersim/usersim/train/raft"
)

// agentWorkspaceFixture writes a tiny experiment: a synthetic world in
// worldDir and a workspace (split, stats memories, two personas, a random
// compact base in models/base and random persona adapters) in ws.
func agentWorkspaceFixture(t *testing.T) (worldDir, ws string, users, items []string) {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	worldDir, ws = filepath.Join(root, "world"), filepath.Join(root, "ws")
	cfg := synth.DefaultConfig()
	cfg.Seed, cfg.NumUsers, cfg.NumItems, cfg.NumPersonas = 5, 20, 30, 2
	cfg.Activity = []synth.ActivityBand{{Share: 1, Min: 12, Max: 18}}
	w, err := synth.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(worldDir); err != nil {
		t.Fatal(err)
	}
	// The dataset as `usersim serve` will load it.
	d, err := loadData(ctx, "synthetic", worldDir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := split.Paper(d, split.PaperOptions{MinRatings: 12, MaxRatings: 18, NumUsers: 4, AllowFewer: true, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ws, "split"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := split.Save(filepath.Join(ws, filepath.FromSlash(splitFile)), s, d); err != nil {
		t.Fatal(err)
	}
	ps, ms, err := memory.DistillStats(ctx, d, s, memory.StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	man := memory.Manifest{Version: memory.ManifestVersion, Dataset: split.FingerprintOf(d), Split: memory.SplitInfoOf(s), Distiller: "stats", Users: len(ps)}
	if err := memory.Save(ws, man, ps, ms); err != nil {
		t.Fatal(err)
	}
	as := persona.Assignments{Embedder: "test", K: 2, Personas: map[string]int{}}
	sum := persona.Summary{K: 2, Sizes: []int{0, 0}, Users: len(ps)}
	for i, p := range ps {
		as.Personas[p.User] = i % 2
		sum.Sizes[i%2]++
		users = append(users, p.User)
	}
	for k := range 2 {
		sum.Personas = append(sum.Personas, persona.Persona{ID: k, Size: sum.Sizes[k], Text: fmt.Sprintf("persona %d in words", k)})
	}
	if err := os.MkdirAll(filepath.Join(ws, persona.Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"assignments.json": as, "summary.json": sum} {
		data, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(ws, persona.Dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b, err := raft.NewBuilder(raft.Inputs{Dataset: d, Split: s, Profiles: ps, Interactions: ms}, raft.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var corpus strings.Builder
	for _, u := range users {
		ex, err := b.BuildQuery(u, d.Items[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		corpus.WriteString(ex.Prompt + " 1 2 3 4 5\n\n")
	}
	topt := tokenizer.DefaultTrainOptions()
	topt.VocabSize = 350
	tr, err := tokenizer.Train(ctx, strings.NewReader(corpus.String()), topt)
	if err != nil {
		t.Fatal(err)
	}
	tok := tr.Tokenizer()
	mcfg, err := slm.CompactConfig(slm.CompactOptions{Preset: "tiny", Hidden: 32, Layers: 1, Heads: 4, KVHeads: 2, Context: 2048,
		Vocab: tok.VocabSize(), BOS: tok.BOS(), EOS: []int{tok.EOS()}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := slm.New(mcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.InitRandom(rand.New(rand.NewPCG(3, 4)), 0.1); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(ws, filepath.FromSlash(baseModelDir))
	if err := m.WriteHF(base, slm.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tokenizer.WriteHFDir(base, tr); err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		a, err := lora.New(lora.NewConfig("tiny", 2, 4, "q_proj", "v_proj"), mcfg.LoRABase(), uint64(k+1))
		if err != nil {
			t.Fatal(err)
		}
		// As `usersim run` lays them out: the paper family's.
		if err := a.Save(filepath.Join(ws, adaptersDir, "paper", fmt.Sprintf(personaAdapter, k))); err != nil {
			t.Fatal(err)
		}
	}
	for _, it := range d.Items[:3] {
		items = append(items, it.ID)
	}
	return worldDir, ws, users, items
}

// TestServeWorkspace serves a workspace's agents and asks them over HTTP;
// incomplete workspaces fail naming the missing artefact.
func TestServeWorkspace(t *testing.T) {
	worldDir, ws, users, items := agentWorkspaceFixture(t)
	execute := func(ctx context.Context, stderr io.Writer, args ...string) error {
		cmd := newServeCmd()
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(stderr)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		return cmd.ExecuteContext(ctx)
	}

	t.Setenv("USERSIM_TEST_AGENT_KEY", "k3y")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- execute(ctx, pw, "--workspace", ws, "--data-dir", worldDir, "--addr", "127.0.0.1:0", "--api-key-env", "USERSIM_TEST_AGENT_KEY")
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	url := ""
	for url == "" && sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), " on http://"); ok {
			url = "http://" + after
		}
	}
	if url == "" {
		t.Fatalf("no address: %v", <-errc)
	}
	go io.Copy(io.Discard, pr)
	post := func(path, key, body string, out any) int {
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode
	}
	var rate struct {
		Ratings []struct {
			Item         string             `json:"item"`
			Distribution map[string]float64 `json:"distribution"`
			Expected     float64            `json:"expected"`
		} `json:"ratings"`
	}
	body := fmt.Sprintf(`{"items":[%q,%q]}`, items[0], items[1])
	if st := post("/v1/agents/"+users[0]+"/rate", "k3y", body, &rate); st != http.StatusOK || len(rate.Ratings) != 2 {
		t.Fatalf("rate: status %d, %+v", st, rate)
	}
	for _, r := range rate.Ratings {
		sum, exp := 0.0, 0.0
		for v, p := range r.Distribution {
			var x float64
			fmt.Sscan(v, &x)
			sum, exp = sum+p, exp+x*p
		}
		if len(r.Distribution) != 5 || math.Abs(sum-1) > 1e-9 || math.Abs(exp-r.Expected) > 1e-9 {
			t.Errorf("rating %+v: sum %v, Σ v·p %v", r, sum, exp)
		}
	}
	if st := post("/v1/agents/"+users[0]+"/rate", "", body, nil); st != http.StatusUnauthorized {
		t.Errorf("rate without the key: status %d", st)
	}
	if st := post("/v1/agents/nobody/choose", "k3y", body, nil); st != http.StatusNotFound {
		t.Errorf("choose for an unknown user: status %d", st)
	}
	var choice struct {
		Choice string  `json:"choice"`
		Exit   float64 `json:"exit"`
	}
	if st := post("/v1/agents/"+users[1]+"/choose", "k3y", body, &choice); st != http.StatusOK || choice.Choice == "" {
		t.Errorf("choose: status %d, %+v", st, choice)
	}
	req, _ := http.NewRequest("GET", url+"/v1/personas", nil)
	req.Header.Set("Authorization", "Bearer k3y")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ps struct {
		K    int `json:"k"`
		Data []struct {
			Adapter     string `json:"adapter"`
			Description string `json:"description"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&ps)
	resp.Body.Close()
	if err != nil || ps.K != 2 || len(ps.Data) != 2 || ps.Data[1].Adapter != "persona-1" || ps.Data[1].Description != "persona 1 in words" {
		t.Errorf("personas %+v, %v", ps, err)
	}
	// The persona adapters are models of the completion endpoints too.
	if st := post("/v1/completions", "k3y", `{"model":"persona-0","prompt":"I","max_tokens":2}`, nil); st != http.StatusOK {
		t.Errorf("completion with persona-0: status %d", st)
	}

	// `usersim serve load --agents` over every persona's users, with the
	// malformed requests beside it.
	var out strings.Builder
	lc := newServeCmd()
	lc.SetArgs([]string{"load", url, "--agents", "--requests", "12", "--clients", "2", "--items", "3", "--choose-every", "4", "--slate", "2",
		"--malformed", "--malformed-every", "1ms", "--memory-every", "10ms", "--api-key-env", "USERSIM_TEST_AGENT_KEY", "--json"})
	lc.SetOut(&out)
	lc.SetErr(io.Discard)
	lc.SilenceUsage, lc.SilenceErrors = true, true
	if err := lc.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("serve load --agents: %v\n%s", err, out.String())
	}
	var lr struct {
		Load struct {
			Rate struct {
				Requests int `json:"requests"`
				Errors   int `json:"errors"`
			} `json:"rate"`
			Choose struct {
				Requests int `json:"requests"`
			} `json:"choose"`
			Ratings   int            `json:"ratings"`
			ByPersona map[string]int `json:"by_persona"`
			RateMs    struct {
				P50 float64 `json:"p50_ms"`
			} `json:"rate_ms"`
			Memory struct {
				Samples []json.RawMessage `json:"samples"`
			} `json:"memory"`
		} `json:"load"`
		Malformed struct {
			Sent int `json:"sent"`
			Bad  int `json:"bad"`
		} `json:"malformed"`
	}
	if err := json.Unmarshal([]byte(out.String()), &lr); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	l := lr.Load
	if l.Rate.Requests != 9 || l.Choose.Requests != 3 || l.Rate.Errors != 0 || l.Ratings != 27 || l.ByPersona["0"] != 6 || l.ByPersona["1"] != 6 ||
		l.RateMs.P50 <= 0 || len(l.Memory.Samples) < 2 || lr.Malformed.Sent == 0 || lr.Malformed.Bad != 0 {
		t.Fatalf("serve load --agents:\n%s", out.String())
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}

	// Incomplete workspaces: the error names what is missing.
	for _, tc := range []struct {
		remove, want string
	}{
		{filepath.Join(adaptersDir, "paper", "persona-1"), "persona-1"},
		{filepath.Join(persona.Dir, "summary.json"), "summary.json"},
		{filepath.Join(persona.Dir, "assignments.json"), "assignments.json"},
		{splitFile, "split.bin"},
		{filepath.Join(memory.Dir, memory.ManifestFile), memory.ManifestFile},
	} {
		if err := os.RemoveAll(filepath.Join(ws, filepath.FromSlash(tc.remove))); err != nil {
			t.Fatal(err)
		}
		err := execute(context.Background(), io.Discard, "--workspace", ws, "--data-dir", worldDir, "--addr", "127.0.0.1:0")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "incomplete") {
			t.Errorf("without %s: %v, want an error naming %s", tc.remove, err, tc.want)
		}
	}
	if err := execute(context.Background(), io.Discard, "--addr", "127.0.0.1:0"); err == nil {
		t.Error("no MODEL and no --workspace: no error")
	}
}

// TestServeWorkspaceOtherDataset refuses a workspace distilled from another
// dataset than the one loaded.
func TestServeWorkspaceOtherDataset(t *testing.T) {
	_, ws, _, _ := agentWorkspaceFixture(t)
	other := filepath.Join(t.TempDir(), "other")
	cfg := synth.DefaultConfig()
	cfg.Seed, cfg.NumUsers, cfg.NumItems = 9, 10, 20
	cfg.Activity = []synth.ActivityBand{{Share: 1, Min: 5, Max: 10}}
	w, err := synth.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(other); err != nil {
		t.Fatal(err)
	}
	cmd := newServeCmd()
	cmd.SetArgs([]string{"--workspace", ws, "--data-dir", other, "--addr", "127.0.0.1:0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "distilled from dataset") {
		t.Errorf("another dataset: %v", err)
	}
}

func TestAgentFamily(t *testing.T) {
	cfg := pipeline.DefaultConfig()
	cfg.Agents = []pipeline.AgentSpec{{Variant: "paper", Adapter: pipeline.AdapterNone}, {Variant: "paper", Adapter: pipeline.AdapterPersona, K: 8},
		{Variant: "default", MsOnly: true, Adapter: pipeline.AdapterPersona}, {Variant: "paper", Adapter: pipeline.AdapterPersona}}
	noPersona := pipeline.DefaultConfig()
	noPersona.Agents = []pipeline.AgentSpec{{Variant: "default", Adapter: pipeline.AdapterShared}}
	for _, c := range []struct {
		name string
		cfg  *pipeline.Config
		o    workspaceOptions
		want promptFamily
	}{
		{"no config", nil, workspaceOptions{}, promptFamily{"paper", false}},
		{"the main persona agent", &cfg, workspaceOptions{}, promptFamily{"default", true}},
		{"no persona agent", &noPersona, workspaceOptions{}, promptFamily{"paper", false}},
		{"flags win", &cfg, workspaceOptions{variant: "paper"}, promptFamily{"paper", false}},
		{"--no-memory alone", &cfg, workspaceOptions{noMemory: true}, promptFamily{"paper", true}},
	} {
		if got := agentFamily(c.cfg, c.o); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if d := (promptFamily{"default", true}).dir(); d != "default-ms" {
		t.Errorf("dir %q", d)
	}

	ws := t.TempDir()
	if got := familyAdaptersDir(ws, promptFamily{variant: "paper"}); got != filepath.Join(ws, adaptersDir) {
		t.Errorf("an older workspace: %s", got)
	}
	if err := os.MkdirAll(filepath.Join(ws, adaptersDir, "paper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := familyAdaptersDir(ws, promptFamily{variant: "paper"}); got != filepath.Join(ws, adaptersDir, "paper") {
		t.Errorf("a family's directory: %s", got)
	}
}
