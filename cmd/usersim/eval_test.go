package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runEvalCLI runs usersim with args and returns stdout and the error.
func runEvalCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestEvalBaselinesCLI(t *testing.T) {
	dir := t.TempDir()
	splitFile := filepath.Join(dir, "split.bin")
	out, err := runEvalCLI(t, "eval", "baselines", "--baselines", "global-mean,bias", "--bootstrap", "100",
		"--out", filepath.Join(dir, "res"), "--save-split", splitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"paper protocol", "global-mean", "bias", "temporal", "oracle"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"res/results.json", "res/report.md", "split.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}

	// Reusing the saved split gives the same rows and the same numbers.
	js, err := runEvalCLI(t, "eval", "baselines", "--baselines", "bias", "--split", splitFile, "--json", "--bootstrap", "100", "--oracle=false")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Split struct {
			Protocol string `json:"protocol"`
			Test     int    `json:"test_rows"`
		} `json:"split"`
		Predictors []struct {
			Name string  `json:"name"`
			RMSE float64 `json:"rmse"`
		} `json:"predictors"`
	}
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("--json output: %v\n%s", err, js)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "res", "results.json"))
	var first struct {
		Split struct {
			Test int `json:"test_rows"`
		} `json:"split"`
		Predictors []struct {
			RMSE float64 `json:"rmse"`
		} `json:"predictors"`
	}
	if err := json.Unmarshal(b, &first); err != nil {
		t.Fatal(err)
	}
	if got.Split.Protocol != "paper" || got.Split.Test != first.Split.Test || len(got.Predictors) != 1 ||
		got.Predictors[0].Name != "bias" || got.Predictors[0].RMSE != first.Predictors[1].RMSE {
		t.Errorf("reused split: %+v vs first run %+v", got, first)
	}
}

func TestEvalBaselinesCLIProtocols(t *testing.T) {
	out, err := runEvalCLI(t, "eval", "baselines", "--protocol", "cv", "--folds", "2", "--baselines", "bias")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "2-fold") || !strings.Contains(out, "±") {
		t.Errorf("cv table:\n%s", out)
	}
	out, err = runEvalCLI(t, "eval", "baselines", "--protocol", "random", "--test-frac", "0.2", "--baselines", "item-mean", "--bootstrap", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "global random split") || !strings.Contains(out, "20.0%") {
		t.Errorf("random table:\n%s", out)
	}
}

func TestEvalBaselinesCLIErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--protocol", "nope"},
		{"--baselines", "nope"},
		{"--baselines", ","},
		{"--protocol", "cv", "--save-split", "x"},
		{"--protocol", "cv", "--split", "x"},
		{"--users", "0", "--baselines", "bias"},
		{"--split", filepath.Join(t.TempDir(), "missing.bin"), "--baselines", "bias"},
		{"extra-arg"},
	} {
		if _, err := runEvalCLI(t, append([]string{"eval", "baselines"}, args...)...); err == nil {
			t.Errorf("eval baselines %v succeeded", args)
		}
	}
}
