package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
)

var fakeItemLine = regexp.MustCompile(`item_id: "([^"]*)" \|.*\| MY RATING: ([0-9.]+)`)

// fakeChatServer answers every chat request with a valid distiller answer
// built from the batch in the prompt, and counts the requests.
func fakeChatServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		var req llm.ChatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		type item struct {
			ID     string  `json:"item_id"`
			Rating float64 `json:"rating"`
			Reason string  `json:"reason"`
		}
		var items []item
		for _, g := range fakeItemLine.FindAllStringSubmatch(req.Messages[1].Content, -1) {
			var x float64
			fmt.Sscan(g[2], &x)
			items = append(items, item{g[1], x, "item " + g[1] + " is the kind of film I rate " + g[2]})
		}
		content, _ := json.Marshal(map[string]any{"items": items, "reflection": "It fits because I am consistent.",
			"profile": fmt.Sprintf("I have now rated %d more films.", len(items))})
		json.NewEncoder(w).Encode(llm.ChatResponse{Model: req.Model, Choices: []llm.ChatChoice{{
			Message: llm.Message{Role: "assistant", Content: string(content)}, FinishReason: "stop"}},
			Usage: llm.Usage{PromptTokens: 50, CompletionTokens: 10}})
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestDistillLLMCommand(t *testing.T) {
	srv, n := fakeChatServer(t)
	ws := t.TempDir()
	args := []string{"distill", "--distiller", "llm", "--llm-url", srv.URL, "--llm-model", "fake", "--users", "3",
		"--llm-prices", "fake=1/2", "--show", "1"}
	out, err := runCLI(t, append(args, "--workspace", ws)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ps, ms, err := memory.Load(ws)
	if err != nil {
		t.Fatal(err)
	}
	sent := n.Load()
	if len(ps) != 3 || ps[0].Distiller != "llm:fake" || len(ms) == 0 || int(sent) != len(ps[0].Revisions)+len(ps[1].Revisions)+len(ps[2].Revisions) {
		t.Fatalf("%d profiles, %d interactions, %d requests\n%s", len(ps), len(ms), sent, out)
	}
	if !strings.Contains(out, "llm usage") || !strings.Contains(out, "fake") {
		t.Errorf("no usage report:\n%s", out)
	}
	// --force: everything comes from the cache.
	if out, err := runCLI(t, append(args, "--workspace", ws, "--force")...); err != nil || n.Load() != sent {
		t.Fatalf("forced rerun sent %d requests: %v\n%s", n.Load()-sent, err, out)
	}

	// The batch workflow in a second workspace gives the same memories
	// without a live request.
	ws2 := t.TempDir()
	batchArgs := []string{"distill", "--distiller", "llm", "--llm-url", "http://127.0.0.1:1/v1", "--llm-model", "fake",
		"--users", "3", "--workspace", ws2, "--show", "0"}
	results := ""
	for round := 1; ; round++ {
		file := filepath.Join(t.TempDir(), "round.jsonl")
		a := append(batchArgs, "--batch-export", file)
		if results != "" {
			a = append(a, "--batch-import", results)
		}
		out, err := runCLI(t, a...)
		if err == nil {
			break
		}
		if !regexp.MustCompile(`^wrote [123] requests`).MatchString(err.Error()) || round > 20 {
			t.Fatalf("round %d: %v\n%s", round, err, out)
		}
		results = runBatchFile(t, srv.URL, file)
	}
	ps2, ms2, err := memory.Load(ws2)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal([]any{ps, ms})
	b, _ := json.Marshal([]any{ps2, ms2})
	if !bytes.Equal(a, b) {
		t.Error("memories from batch rounds differ from the live run's")
	}
}

// runBatchFile plays vllm run-batch: it sends every line of a batch file to
// the server and writes the results file.
func runBatchFile(t *testing.T, url, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	reqs, err := llm.ReadBatchRequests(f, path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(filepath.Dir(path), "results.jsonl")
	g, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := bufio.NewWriter(g)
	for _, q := range reqs {
		resp, err := http.Post(url+strings.TrimPrefix(q.URL, "/v1"), "application/json", bytes.NewReader(q.Body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		line, _ := json.Marshal(llm.BatchResult{CustomID: q.CustomID, Response: &llm.BatchResponse{StatusCode: resp.StatusCode, Body: body}})
		w.Write(append(line, '\n'))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDistillLLMFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--llm-url", "http://x/v1"}, "needs --llm-model"},
		{[]string{"--llm-model", "m", "--llm-url", "http://x/v1", "--llm-prices", "m=1"}, "--llm-prices"},
		{[]string{"--llm-model", "m", "--llm-url", "http://x/v1", "--llm-format", "xml"}, "response format"},
		{[]string{"--llm-model", "m", "--llm-key-env", "USERSIM_TEST_NO_SUCH_KEY"}, "needs an API key in $USERSIM_TEST_NO_SUCH_KEY"},
	} {
		out, err := runCLI(t, append([]string{"distill", "--distiller", "llm", "--users", "2", "--workspace", t.TempDir()}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q\n%s", tc.args, err, tc.want, out)
		}
	}
}
