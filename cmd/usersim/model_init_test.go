package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeInitCorpus writes two small corpus files in the rating-prompt format.
func writeInitCorpus(t *testing.T, dir string) (string, string) {
	t.Helper()
	var a, b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&a, "TASK: rate it.\nYOUR MEMORIES\nMY MEMORY: Movie %d (%d) was good, I rated it %d.\nMOVIE: Movie %d\nRATING: %d\n", i%37, 1960+i%50, 1+i%5, i%41, 1+i%5)
		fmt.Fprintf(&b, "The user liked the story of movie %d and the average rating was <%.1f>.\n", i, 1+float64(i%41)/10)
	}
	pa, pb := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(pa, []byte(a.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pb, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return pa, pb
}

func TestModelInitCLI(t *testing.T) {
	tmp := t.TempDir()
	pa, pb := writeInitCorpus(t, tmp)
	out := filepath.Join(tmp, "base")
	small := []string{"--preset", "tiny", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--context", "128", "--vocab", "400", "--seed", "5"}
	stdout, stderr, err := runModel(t, append([]string{"init", "--corpus", pa + "," + pb, "--out", out, "--bucket", "1:5:0.1"}, small...)...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	for _, want := range []string{"wrote " + out, "parameters (dim 64, 2 layers, 4 heads, 2 KV heads, ffn 192, context 128)", "chars/token"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	// model info and generate accept the directory.
	stdout, stderr, err = runModel(t, "info", "--json", out)
	if err != nil {
		t.Fatalf("info: %v\n%s", err, stderr)
	}
	var info struct {
		Params int64 `json:"params"`
		Vocab  int   `json:"vocab"`
		Hidden int   `json:"hidden"`
		Tied   bool  `json:"tied_embeddings"`
	}
	if err := json.Unmarshal([]byte(stdout), &info); err != nil {
		t.Fatal(err)
	}
	if info.Hidden != 64 || !info.Tied || info.Vocab > 400 || info.Vocab < 300 || info.Params <= int64(info.Vocab*64) {
		t.Errorf("info %+v", info)
	}
	stdout, stderr, err = runModel(t, "generate", out, "-p", "RATING:", "-n", "5", "-t", "0", "-q")
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}

	// --json, and the same seed gives the same weights.
	out2 := filepath.Join(tmp, "base2")
	stdout, stderr, err = runModel(t, append([]string{"init", "--corpus", pa, "--corpus", pb, "--out", out2, "--json", "--bucket", "1:5:0.1"}, small...)...)
	if err != nil {
		t.Fatalf("init --json: %v\n%s", err, stderr)
	}
	var res struct {
		Params        int64   `json:"params"`
		Vocab         int     `json:"vocab"`
		CharsPerToken float64 `json:"chars_per_token"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if res.Params != info.Params || res.Vocab != info.Vocab || res.CharsPerToken < 1 {
		t.Errorf("json result %+v, info %+v", res, info)
	}
	w1, _ := os.ReadFile(filepath.Join(out, "model.safetensors"))
	w2, _ := os.ReadFile(filepath.Join(out2, "model.safetensors"))
	if len(w1) == 0 || string(w1) != string(w2) {
		t.Error("the same seed and corpus gave different weights")
	}
	tj, _ := os.ReadFile(filepath.Join(out, "tokenizer.json"))
	for _, want := range []string{`"RATING:"`, `"MY MEMORY:"`, `"<3.2>"`} {
		if !strings.Contains(string(tj), want) {
			t.Errorf("tokenizer.json lacks the forced token %s", want)
		}
	}

	// A second init into a full directory needs --force.
	if _, _, err := runModel(t, append([]string{"init", "--corpus", pa, "--out", out}, small...)...); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("init over a model: %v", err)
	}
	if _, _, err := runModel(t, append([]string{"init", "--corpus", pa, "--out", out, "--force"}, small...)...); err != nil {
		t.Errorf("init --force: %v", err)
	}
}

func TestModelInitCLIErrors(t *testing.T) {
	tmp := t.TempDir()
	pa, _ := writeInitCorpus(t, tmp)
	out := filepath.Join(tmp, "m")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"init", "--out", out}, "--corpus"},
		{[]string{"init", "--corpus", pa}, "--out"},
		{[]string{"init", "--corpus", filepath.Join(tmp, "missing.txt"), "--out", out}, "missing.txt"},
		{[]string{"init", "--corpus", pa, "--out", out, "--vocab", "100"}, "--vocab 100"},
		{[]string{"init", "--corpus", pa, "--out", out, "--bucket", "1:5"}, "MIN:MAX:STEP"},
		{[]string{"init", "--corpus", pa, "--out", out, "--bucket", "1:x:0.1"}, `--bucket "1:x:0.1"`},
		{[]string{"init", "--corpus", pa, "--out", out, "--preset", "huge"}, `unknown preset "huge"`},
		{[]string{"init", "--corpus", pa, "--out", out, "--dim", "100", "--heads", "3"}, "not a multiple of heads 3"},
		{[]string{"init", "--corpus", pa, "--out", out, "--layers", "-2"}, "layers -2"},
	} {
		_, _, err := runModel(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("failed inits created %s", out)
	}
}
