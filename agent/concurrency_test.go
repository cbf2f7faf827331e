package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// TestConcurrentRate rates from many goroutines at once (one shared prefix
// per user, computed once) and checks the answers equal sequential ones.
func TestConcurrentRate(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModel(t, w)
	p, l := newLocalPool(t, w, tm, Config{})
	users := []string{"u1", "u2", "u3"}
	items := []string{"m4", "m5", "m6"}
	want := map[[2]string]Rating{}
	for _, u := range users {
		a, _ := p.Agent(u)
		for _, it := range items {
			r, err := a.Rate(ctx, it)
			if err != nil {
				t.Fatal(err)
			}
			want[[2]string{u, it}] = r
		}
	}
	l.mu.Lock()
	l.prefixes = nil // start cold: the goroutines race to compute the prefixes
	l.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 27)
	for range 3 {
		for _, u := range users {
			for _, it := range items {
				wg.Go(func() {
					a, err := p.Agent(u)
					if err != nil {
						errs <- err
						return
					}
					r, err := a.Rate(ctx, it)
					if err != nil {
						errs <- err
						return
					}
					if wr := want[[2]string{u, it}]; !near(r.Expected, wr.Expected, 1e-6) {
						errs <- errors.New(u + "/" + it + ": concurrent rating differs")
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(l.prefixes); n != 3 {
		t.Errorf("%d prefixes kept, want one per user", n)
	}
}

// TestErrors checks bad input and cancellation give errors, and a cancelled
// prefix computation is not kept.
func TestErrors(t *testing.T) {
	w := newWorld(t, dataset.FiveStars)
	tm := newTinyModel(t, w)
	p, l := newLocalPool(t, w, tm, Config{})
	if _, err := p.Agent("nobody"); err == nil {
		t.Error("agent for a user without profile")
	}
	a, _ := p.Agent("u1")
	if _, err := a.Rate(context.Background(), "no-such-item"); err == nil {
		t.Error("rated an unknown item")
	}
	if _, err := l.Score(context.Background(), []Prompt{{Adapter: "nope", Text: "x"}}, []string{" 1"}); err == nil {
		t.Error("unknown adapter accepted")
	}
	if _, err := l.Score(context.Background(), []Prompt{{Text: "x"}}, []string{""}); err == nil {
		t.Error("empty candidate accepted")
	}
	if _, err := l.Score(context.Background(), []Prompt{{Text: "x", Prefix: 5}}, []string{" 1"}); err == nil {
		t.Error("prefix past the text accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Rate(ctx, "m4"); err == nil {
		t.Error("rated with a cancelled context")
	}
	if len(l.prefixes) != 0 {
		t.Errorf("%d prefixes kept after a cancelled computation", len(l.prefixes))
	}
	if _, err := a.Rate(context.Background(), "m4"); err != nil {
		t.Errorf("after a cancelled call: %v", err)
	}
	if _, err := NewPool(w.inputs(), raftOptions(), l, Config{ChooseTemplate: "/nonexistent/choose.tmpl"}); err == nil {
		t.Error("missing choose template accepted")
	}
}

func TestChooseTemplateOverride(t *testing.T) {
	w := newWorld(t, dataset.FiveStars)
	f := &fake{lp: []float64{-1, -1, -1}}
	dir := t.TempDir()
	good := filepath.Join(dir, "choose.tmpl")
	if err := os.WriteFile(good, []byte("PICK ONE:{{range .Options}} {{.Label}}={{.Item.Title}}{{end}} or {{.ExitLabel}}\nCHOICE:"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(w.inputs(), raftOptions(), f, Config{ChooseTemplate: good})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Agent("u1")
	pr, err := a.ChoosePrompt([]string{"m4", "m5"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(pr.Text, "PICK ONE: A=Fargo B=Babe or 0\nCHOICE:") {
		t.Errorf("prompt %q", pr.Text)
	}
	bad := filepath.Join(dir, "bad.tmpl")
	if err := os.WriteFile(bad, []byte("{{.Nope}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewPool(w.inputs(), raftOptions(), f, Config{ChooseTemplate: bad}); err == nil || !strings.Contains(err.Error(), "bad.tmpl") {
		t.Errorf("bad template: %v", err)
	}
}
