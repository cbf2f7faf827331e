package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/pipeline"
	"github.com/usersim/usersim/slm"
)

// TestServeRunParity serves the workspace a quick `usersim run` wrote and
// checks that the served agents of each prompt family rate the evaluated
// test rows exactly as the run's report scored them (the adapters'
// layout, the prompt family and the default variant's anchor all agree).
func TestServeRunParity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick pipeline")
	}
	ctx := context.Background()
	cfg := pipeline.QuickConfig()
	cfg.Workspace = t.TempDir()
	cfg.Agents = []pipeline.AgentSpec{{Variant: "default", Adapter: pipeline.AdapterPersona}, {Variant: "paper", Adapter: pipeline.AdapterPersona}}
	cfg.Base.Steps, cfg.Eval.MaxTestUsers = 20, 3
	if _, err := pipeline.Run(ctx, cfg, pipeline.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatal(err)
	}
	ws := cfg.Workspace
	data, err := os.ReadFile(filepath.Join(ws, pipeline.ResultsDir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Predictors []struct {
			Name string  `json:"name"`
			N    int     `json:"n"`
			RMSE float64 `json:"rmse"`
		} `json:"predictors"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}

	m, tok, err := slm.Load(filepath.Join(ws, filepath.FromSlash(baseModelDir)))
	if err != nil {
		t.Fatal(err)
	}
	for _, variant := range []string{"default", "paper"} {
		aw, err := loadAgentWorkspace(ctx, ws, m, tok, workspaceOptions{variant: variant})
		if err != nil {
			t.Fatal(err)
		}
		d, _, err := workspaceDataset(ctx, ws, dataSource{}, false)
		if err != nil {
			t.Fatal(err)
		}
		s, err := split.Load(filepath.Join(ws, filepath.FromSlash(splitFile)), d)
		if err != nil {
			t.Fatal(err)
		}
		users := s.Users[:min(cfg.Eval.MaxTestUsers, len(s.Users))]
		var se float64
		n := 0
		for _, u := range users {
			var items []string
			var truth []float64
			for _, row := range s.Test {
				if d.Ratings.User[row] == u {
					items = append(items, d.Items[d.Ratings.Item[row]].ID)
					truth = append(truth, float64(d.Ratings.Value[row]))
				}
			}
			rs, err := aw.svc.Rate(ctx, d.Users[u].ID, items, false)
			if err != nil {
				t.Fatal(err)
			}
			for k, r := range rs {
				se += (r.Expected - truth[k]) * (r.Expected - truth[k])
				n++
			}
		}
		aw.backend.Close()
		name := fmt.Sprintf("agent-%s-K%d", variant, cfg.K)
		i := slices.IndexFunc(res.Predictors, func(p struct {
			Name string  `json:"name"`
			N    int     `json:"n"`
			RMSE float64 `json:"rmse"`
		}) bool {
			return p.Name == name
		})
		if i < 0 {
			t.Fatalf("the report has no %s", name)
		}
		want := res.Predictors[i]
		if got := math.Sqrt(se / float64(n)); n != want.N || math.Abs(got-want.RMSE) > 1e-9 {
			t.Errorf("%s served: RMSE %.6f over %d rows; the run scored %.6f over %d", name, got, n, want.RMSE, want.N)
		}
	}
}
