package raft

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/memory"
)

func corpusOf(t *testing.T, in Inputs, opt CorpusOptions) (string, CorpusStats) {
	t.Helper()
	var buf bytes.Buffer
	cs, err := WriteCorpus(context.Background(), &buf, in, opt)
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), cs
}

// A planted, distinctive test rating changes no example, no query average
// and no corpus byte, and never appears in the corpus.
func TestNoLeakage(t *testing.T) {
	ctx := context.Background()
	base := newTiny(t)
	exs0, err := Build(ctx, base.inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	corpus0, _ := corpusOf(t, base.inputs(), CorpusOptions{Seed: 1})

	w := newTiny(t)
	zi := w.d.AddItem(dataset.Item{ID: "z", Title: "Zanzibar Nights", Year: 1950, Genres: []string{"Action", "Sci-Fi"}})
	w.d.Append(0, zi, 1, 99, true) // row 9: u1 rates a test-only movie
	w.d.Append(1, 0, 1, 99, true)  // row 10: u2 re-rates The Matrix 1 in test
	w.d.Ratings.Value[7] = 5       // u1's test rating of Fargo changed
	w.s.Test = append(w.s.Test, 9, 10)
	exs1, err := Build(ctx, w.inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(exs0, exs1) {
		t.Error("test rows changed the training examples")
	}
	corpus1, _ := corpusOf(t, w.inputs(), CorpusOptions{Seed: 1})
	if corpus0 != corpus1 {
		t.Error("test rows changed the corpus")
	}
	if strings.Contains(corpus1, "Zanzibar") || strings.Contains(corpus1, "Fargo") {
		t.Error("corpus names a movie rated only in test rows")
	}
	b, err := NewBuilder(w.inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.BuildQuery("u1", "m1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q.Prompt, "The Matrix was released in the year 1999 is of Action, Sci-Fi genre with historical average rating of 4.50.") {
		t.Errorf("query average is not the training-only 4.50:\n%s", q.Prompt)
	}
	qs, err := b.Queries(ctx, w.s.Test)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 4 || qs[0].Answer != "5" || qs[0].Order != -1 {
		t.Fatalf("queries of test rows: %+v", qs)
	}
	if !strings.Contains(qs[0].Prompt, "Fargo was released in the year 1996 is of Crime, Drama genre with no historical average rating.") {
		t.Errorf("a movie rated only in test rows has an average:\n%s", qs[0].Prompt)
	}
}

// Training examples retrieve among earlier interactions only; a later twin
// of the target is never retrieved there, but is at inference.
func TestRetrievalBeforeOnly(t *testing.T) {
	w := newTiny(t)
	twin := w.d.AddItem(dataset.Item{ID: "m6", Title: "Heat Again", Year: 1995, Genres: []string{"Action", "Crime"}})
	w.d.Append(0, twin, 2, 100, true) // row 9: u1's latest training rating
	w.s.Train = append(w.s.Train, 9)
	w.ms = append(w.ms, memory.Interaction{User: "u1", Item: "m6", Rating: 2, Time: 100, Order: 3, Reason: "it repeats itself"})
	b, err := NewBuilder(w.inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	exs, err := b.UserExamples("u1")
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 4 {
		t.Fatalf("%d examples, want 4", len(exs))
	}
	titles := []string{"The Matrix", "Toy Story", "Heat", "Heat Again"}
	for _, e := range exs {
		pd, _, _ := strings.Cut(e.Prompt, "TASK:")
		for k, title := range titles {
			remembered := strings.Contains(pd, "MY MEMORY: I rated movie "+title+" as")
			if remembered && k >= e.Order {
				t.Errorf("example %d (%s) remembers %s, rated at order %d", e.Order, e.Item, title, k)
			}
		}
		if e.Order == 0 && !strings.Contains(pd, "None yet") {
			t.Errorf("first example has a memory:\n%s", e.Prompt)
		}
	}
	if !strings.Contains(exs[2].Prompt, "MY MEMORY: I rated movie The Matrix as 5") {
		t.Errorf("Heat at order 2 should remember The Matrix (the closer earlier item):\n%s", exs[2].Prompt)
	}
	q, err := b.BuildQuery("u1", "m6")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q.Prompt, "MY MEMORY: I rated movie Heat Again as 2 because it repeats itself.") {
		t.Errorf("a query should retrieve among all training interactions (the twin):\n%s", q.Prompt)
	}
}

func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "paper_user.tmpl"), []byte("Q: {{.Target.Title}} ({{printf \"%.1f\" .Target.Average}})\nA:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exs, err := Build(context.Background(), newTiny(t).inputs(), Options{TemplateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := exs[0].Messages[1].Content; got != "Q: The Matrix (4.5)\nA:" {
		t.Errorf("overridden user text = %q", got)
	}
	if !strings.HasPrefix(exs[0].Messages[0].Content, "You excel at role-playing.") {
		t.Errorf("the system text should stay built in: %q", exs[0].Messages[0].Content)
	}
}

func TestTemplateErrors(t *testing.T) {
	for name, text := range map[string]string{
		"unknown field": "{{.Target.Rating}}\n",
		"syntax":        "{{.Target.Title\n",
		"unknown block": "{{template \"nope\" .}}\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "paper_user.tmpl")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadTemplates(VariantPaper, dir)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "paper_user.tmpl") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	if _, err := LoadTemplates("nosuch", ""); err == nil {
		t.Error("unknown variant: no error")
	}
	if _, err := LoadTemplates(VariantPaper, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory: no error")
	}
}

func TestInputErrors(t *testing.T) {
	ctx := context.Background()
	for name, edit := range map[string]func(*tiny){
		"memory order mismatch": func(w *tiny) { w.ms[0].Order, w.ms[1].Order = 1, 0 },
		"memory rating differs": func(w *tiny) { w.ms[2].Rating = 1 },
		"missing memory":        func(w *tiny) { w.ms = w.ms[1:] },
		"unknown profile user":  func(w *tiny) { w.ps[0].User = "nobody" },
		"unknown memory item":   func(w *tiny) { w.ms[0].Item = "nothing" },
	} {
		t.Run(name, func(t *testing.T) {
			w := newTiny(t)
			edit(w)
			if _, err := Build(ctx, w.inputs(), Options{}); err == nil {
				t.Error("no error")
			}
		})
	}
	w := newTiny(t)
	in := w.inputs()
	in.Personas = nil
	if _, err := Build(ctx, in, Options{Personas: []int{0}}); err == nil {
		t.Error("persona filter without assignments: no error")
	}
	exs, err := Build(ctx, w.inputs(), Options{Personas: []int{1}})
	if g := ByPersona(exs); len(g) != 1 || len(g[1]) != 4 {
		t.Errorf("ByPersona: %v", g)
	}
	if err != nil || len(exs) != 4 || exs[0].User != "u2" || exs[0].Persona != 1 {
		t.Errorf("persona filter: %d examples, %v", len(exs), err)
	}
}

func TestHalfStars(t *testing.T) {
	w := newTiny(t)
	w.d.Scale = dataset.HalfStarsFive
	w.d.Ratings.Value[0], w.ms[0].Rating = 4.5, 4.5
	exs, err := Build(context.Background(), w.inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if exs[0].Answer != "4.5" || exs[0].Rating != 4.5 {
		t.Errorf("answer %q rating %v, want 4.5", exs[0].Answer, exs[0].Rating)
	}
	if !strings.Contains(exs[0].Prompt, "scale from 0.5 to 5 in steps of 0.5") || !strings.Contains(exs[0].Prompt, "4, 4.5 or 5.") {
		t.Errorf("half-star task line:\n%s", exs[0].Prompt)
	}
}

func TestJSONL(t *testing.T) {
	exs, err := Build(context.Background(), newTiny(t).inputs(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	chat := filepath.Join(dir, "chat.jsonl")
	if err := WriteChatJSONL(chat, exs); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadChatJSONL(chat)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(exs) {
		t.Fatalf("%d records, want %d", len(recs), len(exs))
	}
	for i, r := range recs {
		if !reflect.DeepEqual(r.Messages, exs[i].ChatMessages()) {
			t.Errorf("record %d differs", i)
		}
	}
	raw, _ := os.ReadFile(chat)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	var first map[string][]map[string]string
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	msgs := first["messages"]
	if len(first) != 1 || len(msgs) != 3 || msgs[0]["role"] != "system" || msgs[1]["role"] != "user" ||
		msgs[2]["role"] != "assistant" || msgs[2]["content"] != "5" || len(msgs[2]) != 2 {
		t.Errorf("first line is not TRL chat format: %s", lines[0])
	}
	pc := filepath.Join(dir, "pc.jsonl")
	if err := WritePromptCompletionJSONL(pc, exs); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(pc)
	var p PromptCompletion
	if err := json.Unmarshal([]byte(strings.SplitN(string(raw), "\n", 2)[0]), &p); err != nil {
		t.Fatal(err)
	}
	if p.Prompt != exs[0].Prompt || p.Completion != " 5" || !strings.HasSuffix(p.Prompt, "RATING:") {
		t.Errorf("prompt/completion record: %+v", p)
	}
	exs[1].Answer = ""
	if err := WriteChatJSONL(chat, exs); err == nil {
		t.Error("an example without an answer: no error")
	}
	if recs, err := ReadChatJSONL(chat); err != nil || len(recs) != len(exs) {
		t.Error("a failed write replaced the file")
	}
	if err := os.WriteFile(chat, []byte("{\"messages\":[]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadChatJSONL(chat); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("empty messages: %v", err)
	}
}

func TestCorpus(t *testing.T) {
	w := newTiny(t)
	c1, cs := corpusOf(t, w.inputs(), CorpusOptions{Seed: 7})
	c2, _ := corpusOf(t, w.inputs(), CorpusOptions{Seed: 7})
	if c1 != c2 {
		t.Error("same seed, different corpus")
	}
	c3, _ := corpusOf(t, w.inputs(), CorpusOptions{Seed: 8})
	if c3 == c1 || len(c3) != len(c1) {
		t.Error("another seed should reorder the same documents")
	}
	if cs.Users != 2 || cs.PromptDocs != 7 || cs.ProfileDocs != 2 || cs.Bytes != int64(len(c1)) || cs.EstTokens != int64(float64(len(c1))/DefaultCharsPerToken) {
		t.Errorf("stats %+v (corpus %d bytes)", cs, len(c1))
	}
	docs := strings.Split(strings.TrimSuffix(c1, DefaultSeparator), DefaultSeparator)
	if len(docs) != 9 {
		t.Fatalf("%d documents, want 9", len(docs))
	}
	// Every example's prompt with its answer is a document, verbatim.
	exs, _ := Build(context.Background(), w.inputs(), Options{})
	set := map[string]bool{}
	for _, d := range docs {
		set[d] = true
	}
	for _, e := range exs {
		if !set[e.Prompt+" "+e.Answer] {
			t.Errorf("corpus lacks the prompt of %s/%s", e.User, e.Item)
		}
	}
	if !strings.Contains(c1, "YOUR PROFILE: I am hard to please.\n\nYOUR MEMORIES:\nMOVIE: The movie The Matrix was released in the year 1999 is of Action, Sci-Fi genre with historical average rating of 4.50.\nMY MEMORY: I rated movie The Matrix as 4 because the effects are great.\nMOVIE: The movie Heat") {
		t.Error("profile document of u2 missing or malformed")
	}
	po, cs := corpusOf(t, w.inputs(), CorpusOptions{Seed: 7, PromptsOnly: true, MemoriesPerDoc: 2})
	if cs.ProfileDocs != 0 || cs.PromptDocs != 7 || strings.Count(po, DefaultSeparator) != 7 {
		t.Errorf("prompts only: %+v", cs)
	}
	_, cs = corpusOf(t, w.inputs(), CorpusOptions{MemoriesPerDoc: 2})
	if cs.ProfileDocs != 4 {
		t.Errorf("%d profile documents with 2 memories each, want 2+2", cs.ProfileDocs)
	}
	// A user of the training pool without a profile is an error.
	in := w.inputs()
	in.Profiles = in.Profiles[:1]
	if _, err := WriteCorpus(context.Background(), &bytes.Buffer{}, in, CorpusOptions{}); err == nil {
		t.Error("unprofiled training user: no error")
	}
	_, cs = corpusOf(t, in, CorpusOptions{ProfiledOnly: true})
	if cs.Unprofiled != 1 || cs.Users != 1 {
		t.Errorf("profiled only: %+v", cs)
	}
	path := filepath.Join(t.TempDir(), "corpus.txt")
	if _, err := WriteCorpusFile(context.Background(), path, w.inputs(), CorpusOptions{Seed: 7}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != c1 {
		t.Error("corpus file differs from the stream")
	}
}

func TestCorpusGolden(t *testing.T) {
	c, _ := corpusOf(t, newTiny(t).inputs(), CorpusOptions{Seed: 5, MemoriesPerDoc: 2})
	golden(t, "corpus.golden", c)
}
