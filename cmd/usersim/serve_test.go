package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
)

func TestParseByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{{"1MB", 1 << 20}, {"512KB", 512 << 10}, {"2048", 2048}, {"1.5MiB", 3 << 19}, {"10 kb", 10 << 10}, {"1G", 1 << 30}, {"7B", 7}} {
		if got, err := parseByteSize(c.in); err != nil || got != c.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "MB", "-1MB", "0", "1XB", "1e20GB", "NaN", "Inf"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) accepted", bad)
		}
	}
}

// TestServeCommand starts `usersim serve` with an adapter on a free port,
// lists its models, and stops it by cancelling its context (as SIGINT does).
func TestServeCommand(t *testing.T) {
	model := sharedtest.Path(t, "models", "stories260K", "stories260K.gguf")
	m, err := slm.LoadModel(model)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(lora.NewConfig("stories260K", 2, 4, "q_proj"), m.Config.LoRABase(), 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "p0")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][]string{
		{model, "--adapter", "nodir"},
		{model, "--adapter", "../x=" + dir},
		{model, "--adapter", "stories260K=" + dir},
		{model, "--adapter", "p0=" + filepath.Join(dir, "missing")},
		{model, "--api-key-env", "USERSIM_TEST_UNSET_KEY"},
		{model, "--max-body", "lots"},
	} {
		cmd := newServeCmd()
		cmd.SetArgs(bad)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.ExecuteContext(context.Background()); err == nil {
			t.Errorf("serve %v: no error", bad)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	cmd := newServeCmd()
	cmd.SetArgs([]string{model, "--adapter", "p0=" + dir, "--addr", "127.0.0.1:0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(pw)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx); pw.Close() }()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("no output: %v", <-errc)
	}
	_, url, ok := strings.Cut(sc.Text(), " on ")
	if !ok {
		t.Fatalf("first line %q has no address", sc.Text())
	}
	go io.Copy(io.Discard, pr)
	resp, err := http.Get(url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Data) != 2 || list.Data[0].ID != "stories260K" || list.Data[1].ID != "p0" {
		t.Fatalf("models %+v, %v", list, err)
	}
	load := func(args ...string) (string, error) {
		lc := newServeCmd()
		var out strings.Builder
		lc.SetArgs(append([]string{"load", url}, args...))
		lc.SetOut(&out)
		lc.SetErr(io.Discard)
		lc.SilenceUsage, lc.SilenceErrors = true, true
		err := lc.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := load("--model", "p0", "--model", "stories260K", "--requests", "6", "--clients", "2", "--max-tokens", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Load struct {
			Requests int     `json:"requests"`
			Errors   int     `json:"errors"`
			Tokens   int64   `json:"tokens"`
			P50ms    float64 `json:"p50_ms"`
			Memory   struct {
				Max struct {
					HeapInuse int64 `json:"heap_inuse_bytes"`
				} `json:"max"`
			} `json:"memory"`
		} `json:"load"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Load.Requests != 6 || res.Load.Errors != 0 || res.Load.Tokens == 0 || res.Load.P50ms <= 0 || res.Load.Memory.Max.HeapInuse <= 0 {
		t.Fatalf("load result %+v (%v) from\n%s", res, err, out)
	}
	if out, err := load("--model", "nope", "--requests", "2"); err == nil || !strings.Contains(out, "404×2") {
		t.Fatalf("load of an unknown model: %v\n%s", err, out)
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
}
