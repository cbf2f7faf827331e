package llm

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
)

// Price is what a model costs, in currency units (e.g. USD) per million
// tokens.
type Price struct {
	Input  float64 `json:"input"`  // per million prompt tokens
	Output float64 `json:"output"` // per million completion tokens
}

// ParsePrices reads a price table written as
// "model=input/output[,model=input/output...]", prices per million tokens,
// e.g. "gpt-4o-mini=0.15/0.60,gpt-4o=2.5/10".
func ParsePrices(s string) (map[string]Price, error) {
	out := map[string]Price{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		model, pr, ok := strings.Cut(f, "=")
		in, outp, ok2 := strings.Cut(pr, "/")
		if !ok || !ok2 || strings.TrimSpace(model) == "" {
			return nil, fmt.Errorf("price %q: want model=input/output", f)
		}
		i, err1 := strconv.ParseFloat(strings.TrimSpace(in), 64)
		o, err2 := strconv.ParseFloat(strings.TrimSpace(outp), 64)
		if err1 != nil || err2 != nil || i < 0 || o < 0 {
			return nil, fmt.Errorf("price %q: prices must be non-negative numbers", f)
		}
		out[strings.TrimSpace(model)] = Price{Input: i, Output: o}
	}
	return out, nil
}

// ModelUsage is the token count of one model over a run.
type ModelUsage struct {
	Model            string `json:"model"`
	Requests         int    `json:"requests"`          // answered by the server
	PromptTokens     int    `json:"prompt_tokens"`     // of those requests
	CompletionTokens int    `json:"completion_tokens"` // of those requests
	// CachedRequests were answered from the cache; their tokens were paid
	// for by an earlier run.
	CachedRequests         int `json:"cached_requests"`
	CachedPromptTokens     int `json:"cached_prompt_tokens"`
	CachedCompletionTokens int `json:"cached_completion_tokens"`
	// Cost is this run's cost of the server's answers; Priced is false when
	// the price table has no entry for the model.
	Cost   float64 `json:"cost"`
	Priced bool    `json:"priced"`
}

// Accounting accumulates token usage and cost per model. It is safe for
// concurrent use; the zero value (with nil Prices) counts tokens only.
type Accounting struct {
	// Prices maps a model name, as sent in requests, to its price.
	Prices map[string]Price

	mu      sync.Mutex
	byModel map[string]*ModelUsage
}

// Add counts one answer for model; cached says it came from the cache.
func (a *Accounting) Add(model string, u Usage, cached bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byModel == nil {
		a.byModel = map[string]*ModelUsage{}
	}
	m := a.byModel[model]
	if m == nil {
		m = &ModelUsage{Model: model}
		a.byModel[model] = m
	}
	if cached {
		m.CachedRequests++
		m.CachedPromptTokens += u.PromptTokens
		m.CachedCompletionTokens += u.CompletionTokens
		return
	}
	m.Requests++
	m.PromptTokens += u.PromptTokens
	m.CompletionTokens += u.CompletionTokens
	if p, ok := a.Prices[model]; ok {
		m.Priced = true
		m.Cost = (float64(m.PromptTokens)*p.Input + float64(m.CompletionTokens)*p.Output) / 1e6
	}
}

// Models returns the usage of every model seen, sorted by name.
func (a *Accounting) Models() []ModelUsage {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]ModelUsage, 0, len(a.byModel))
	for _, k := range slices.Sorted(maps.Keys(a.byModel)) {
		out = append(out, *a.byModel[k])
	}
	return out
}

// Total sums the usage over all models (Model "total"; Priced when every
// model with requests has a price).
func (a *Accounting) Total() ModelUsage {
	t := ModelUsage{Model: "total", Priced: true}
	for _, m := range a.Models() {
		t.Requests += m.Requests
		t.PromptTokens += m.PromptTokens
		t.CompletionTokens += m.CompletionTokens
		t.CachedRequests += m.CachedRequests
		t.CachedPromptTokens += m.CachedPromptTokens
		t.CachedCompletionTokens += m.CachedCompletionTokens
		t.Cost += m.Cost
		if m.Requests > 0 && !m.Priced {
			t.Priced = false
		}
	}
	return t
}

// WriteText writes the usage as a table, one line per model.
func (a *Accounting) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\trequests\tprompt tok\tcompletion tok\tcached\tcost\t")
	for _, m := range append(a.Models(), a.Total()) {
		cost := "?"
		if m.Priced {
			cost = strconv.FormatFloat(m.Cost, 'f', 4, 64)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t\n", m.Model, m.Requests, m.PromptTokens, m.CompletionTokens, m.CachedRequests, cost)
	}
	return tw.Flush()
}
