package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "exp.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCommand builds "usersim eval baselines" with a few flag kinds and
// returns the leaf and the values it will see.
func testCommand() (*cobra.Command, *cobra.Command, *struct {
	Seed      int
	Protocol  string
	Baselines []string
	Sampled   bool
}) {
	v := &struct {
		Seed      int
		Protocol  string
		Baselines []string
		Sampled   bool
	}{}
	root := &cobra.Command{Use: "usersim", SilenceUsage: true, SilenceErrors: true}
	eval := &cobra.Command{Use: "eval"}
	leaf := &cobra.Command{Use: "baselines", RunE: func(*cobra.Command, []string) error { return nil }}
	leaf.Flags().IntVar(&v.Seed, "seed", 1, "")
	leaf.Flags().StringVar(&v.Protocol, "protocol", "paper", "")
	leaf.Flags().StringSliceVar(&v.Baselines, "baselines", []string{"bias"}, "")
	leaf.Flags().BoolVar(&v.Sampled, "sampled-only", false, "")
	root.AddCommand(eval)
	eval.AddCommand(leaf)
	return root, leaf, v
}

func TestApplyConfig(t *testing.T) {
	tests := []struct {
		name      string
		config    string
		args      []string
		seed      int
		protocol  string
		baselines string
		sampled   bool
		err       string
	}{
		{name: "defaults", config: "", seed: 1, protocol: "paper", baselines: "bias"},
		{name: "top level", config: "seed: 7\nprotocol: random\nunrelated-flag: 3\n", seed: 7, protocol: "random", baselines: "bias"},
		{name: "section overrides top level", config: "seed: 7\neval baselines:\n  seed: 9\n  baselines: [svd, svdpp]\n  sampled-only: true\n",
			seed: 9, protocol: "paper", baselines: "svd,svdpp", sampled: true},
		{name: "other section ignored", config: "data split:\n  seed: 5\n", seed: 1, protocol: "paper", baselines: "bias"},
		{name: "command line wins", config: "seed: 7\neval baselines:\n  baselines: [svd]\n", args: []string{"--seed", "3", "--baselines", "item-knn"},
			seed: 3, protocol: "paper", baselines: "item-knn"},
		{name: "typo in own section", config: "eval baselines:\n  sed: 5\n", err: `"sed" is not a flag of "eval baselines"`},
		{name: "bad value", config: "seed: many\n", err: "flag --seed"},
		{name: "nested section", config: "eval baselines:\n  x:\n    y: 1\n", err: "nested sections"},
		{name: "not yaml", config: "seed: [1\n", err: "config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, leaf, v := testCommand()
			p := writeConfig(t, tc.config)
			root.SetArgs(append([]string{"eval", "baselines"}, tc.args...))
			leaf.PreRunE = func(cmd *cobra.Command, _ []string) error { return applyConfig(cmd, p) }
			err := root.Execute()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Seed != tc.seed || v.Protocol != tc.protocol || strings.Join(v.Baselines, ",") != tc.baselines || v.Sampled != tc.sampled {
				t.Errorf("got seed %d protocol %q baselines %v sampled %v", v.Seed, v.Protocol, v.Baselines, v.Sampled)
			}
		})
	}
}

// TestConfigFlagEndToEnd drives a real command through --config.
func TestConfigFlagEndToEnd(t *testing.T) {
	out := filepath.Join(t.TempDir(), "world")
	cfg := writeConfig(t, "seed: 3\ndata synth:\n  users: 40\n  items: 600\n  out: "+out+"\n")
	if _, err := runCLI(t, "--config", cfg, "data", "synth", "--json"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		Users []json.RawMessage `json:"users"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
	if len(truth.Users) != 40 || len(truth.Items) != 600 {
		t.Errorf("world has %d users and %d items, want 40 and 600 from the config", len(truth.Users), len(truth.Items))
	}
	if _, err := runCLI(t, "--config", filepath.Join(t.TempDir(), "missing.yaml"), "data", "stats"); err == nil {
		t.Error("a missing config file was accepted")
	}
}
