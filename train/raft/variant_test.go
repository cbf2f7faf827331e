package raft

import (
	"context"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestDefaultVariantSwitches(t *testing.T) {
	w := newTiny(t)
	for _, tc := range []struct {
		name              string
		anchor            bool
		opt               Options
		wantAnchor, wantK bool
	}{
		{"anchor and facts", true, Options{Variant: VariantDefault}, true, true},
		{"no anchor given", false, Options{Variant: VariantDefault}, false, true},
		// The anchor lives in the key-facts line: without it, no anchor.
		{"no key facts", true, Options{Variant: VariantDefault, NoKeyFacts: true}, false, false},
		{"paper ignores both", true, Options{}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := w.inputs()
			if tc.anchor {
				in.Anchor = constAnchor(2.26)
			}
			exs, err := Build(context.Background(), in, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			p := exs[1].Prompt
			if got := strings.Contains(p, "; expected <2.3>.\nRATING:"); got != tc.wantAnchor {
				t.Errorf("anchor line present %v, want %v:\n%s", got, tc.wantAnchor, p)
			}
			if got := strings.Contains(p, "\nKEY FACTS: my mean <4.0>; movie average <4.0>; remembered 5"); got != tc.wantK {
				t.Errorf("key facts present %v, want %v:\n%s", got, tc.wantK, p)
			}
			if !strings.HasSuffix(p, "\nRATING:") {
				t.Errorf("prompt does not end in RATING:")
			}
		})
	}
}

// Counterfactual probes: edit the template data, render again.
func TestPromptDataProbe(t *testing.T) {
	b, err := NewBuilder(newTiny(t).inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	pd, err := b.PromptData("u1", "m2")
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.BuildQuery("u1", "m2")
	if err != nil {
		t.Fatal(err)
	}
	msgs, prompt, err := b.Render(pd)
	if err != nil || prompt != q.Prompt || !reflect.DeepEqual(msgs, q.Messages) {
		t.Fatalf("PromptData + Render differs from BuildQuery (%v)", err)
	}
	pd.Target.Average = 1.5
	pd.Memories[0].Rating = "1"
	_, prompt, err = b.Render(pd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prompt, "Toy Story was released in the year 1995 is of Animation, Comedy genre with historical average rating of 1.50.\nRATING:") ||
		!strings.Contains(prompt, " as 1 because ") {
		t.Errorf("edited data not rendered:\n%s", prompt)
	}
	if _, err := b.BuildQuery("u1", "nope"); err == nil {
		t.Error("unknown item: no error")
	}
	if _, err := b.BuildQuery("nobody", "m1"); err == nil {
		t.Error("unknown user: no error")
	}
	if _, err := b.Queries(context.Background(), []int32{99}); err == nil {
		t.Error("row out of range: no error")
	}
}

func TestBuildDeterministic(t *testing.T) {
	in := newTiny(t).inputs()
	a, err := Build(context.Background(), in, Options{Variant: VariantDefault})
	if err != nil {
		t.Fatal(err)
	}
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	b, err := Build(context.Background(), in, Options{Variant: VariantDefault})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("examples depend on the number of cores")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, in, Options{}); err == nil {
		t.Error("cancelled context: no error")
	}
}

func TestPromptsPerUser(t *testing.T) {
	w := newTiny(t)
	c, cs := corpusOf(t, w.inputs(), CorpusOptions{Seed: 3, PromptsOnly: true, PromptsPerUser: 2})
	if cs.PromptDocs != 4 || strings.Count(c, "RATING: ") != 4 {
		t.Errorf("%d prompts, want 2 per user: %+v", strings.Count(c, "RATING: "), cs)
	}
	if !strings.Contains(c, "I love Sci-Fi") || !strings.Contains(c, "I am hard to please") {
		t.Error("every user must keep prompts")
	}
	if _, err := WriteCorpus(context.Background(), &strings.Builder{}, w.inputs(), CorpusOptions{PromptsPerUser: -1}); err == nil {
		t.Error("negative PromptsPerUser: no error")
	}
}
