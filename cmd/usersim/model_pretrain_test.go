package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestModelPretrainCLI initialises a small base, pretrains it for a few
// steps, and checks the written model directory, the loss curve, the
// checkpoint, the JSON summary, and that generate runs the result.
func TestModelPretrainCLI(t *testing.T) {
	tmp := t.TempDir()
	pa, pb := writeInitCorpus(t, tmp)
	base := filepath.Join(tmp, "base")
	if _, stderr, err := runModel(t, "init", "--corpus", pa+","+pb, "--out", base, "--preset", "tiny", "--dim", "64",
		"--layers", "2", "--heads", "4", "--kv-heads", "2", "--context", "128", "--vocab", "400"); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr)
	}
	out := filepath.Join(tmp, "pt")
	stdout, stderr, err := runModel(t, "pretrain", base, "--corpus", pa+","+pb, "--out", out, "--steps", "6",
		"--batch", "4", "--seq-len", "64", "--lr", "3e-3", "--json")
	if err != nil {
		t.Fatalf("pretrain: %v\n%s", err, stderr)
	}
	var res struct {
		Model     string  `json:"model"`
		Steps     int     `json:"steps"`
		FirstLoss float64 `json:"first_loss"`
		LastLoss  float64 `json:"last_loss"`
		TokPerSec float64 `json:"tokens_per_sec"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if res.Steps != 6 || res.Model != filepath.Join(out, "model") || !(res.LastLoss < res.FirstLoss) || !(res.TokPerSec > 0) {
		t.Errorf("result %+v", res)
	}
	for _, f := range []string{"model/config.json", "model/model.safetensors", "model/tokenizer.json",
		"loss.csv", "loss.svg", "checkpoints/checkpoint.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if stdout, stderr, err = runModel(t, "generate", res.Model, "--prompt", "MOVIE:", "--max-tokens", "5", "--temperature", "0"); err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}
	if strings.TrimSpace(stdout) == "" {
		t.Error("generate printed nothing")
	}
	if _, _, err := runModel(t, "pretrain", base, "--out", out); err == nil || !strings.Contains(err.Error(), "--corpus") {
		t.Errorf("missing corpus: %v", err)
	}
}
