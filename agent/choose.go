package agent

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"text/template"

	"github.com/usersim/usersim/train/raft"
)

//go:embed templates/choose.tmpl
var builtinTemplates embed.FS

// ExitLabel is the answer that leaves a slate without choosing.
const ExitLabel = "0"

// MaxSlate is the largest slate Choose accepts (options are labelled A..Z).
const MaxSlate = 26

// ChooseData is what the slate prompt template sees.
type ChooseData struct {
	// Options are the offered items, labelled "A", "B", ...
	Options []ChooseOption
	// ExitLabel is the answer for choosing none (ExitLabel).
	ExitLabel string
	// Memories are the agent's memories retrieved for the offered items
	// (each item's top-1, without repeats), most similar first.
	Memories []raft.MemoryData
}

// ChooseOption is one offered item.
type ChooseOption struct {
	Label string
	Item  raft.ItemData
}

type chooseTemplate struct{ t *template.Template }

func loadChooseTemplate(path string) (chooseTemplate, error) {
	var src []byte
	var err error
	name := "choose.tmpl"
	if path == "" {
		src, err = builtinTemplates.ReadFile("templates/choose.tmpl")
	} else {
		name = path
		src, err = os.ReadFile(path)
	}
	if err != nil {
		return chooseTemplate{}, fmt.Errorf("agent: choose template: %w", err)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return chooseTemplate{}, fmt.Errorf("agent: choose template %s: %w", name, err)
	}
	ct := chooseTemplate{t}
	sample := &ChooseData{ExitLabel: ExitLabel,
		Options:  []ChooseOption{{Label: "A", Item: raft.ItemData{ID: "1", Title: "A Movie", Year: 1999, Genres: "Drama", Average: 3.5, HasAverage: true}}},
		Memories: []raft.MemoryData{{Item: raft.ItemData{ID: "2", Title: "Another"}, Rating: "4", Reason: "it is good"}},
	}
	if _, err := ct.render(sample); err != nil {
		return chooseTemplate{}, err
	}
	return ct, nil
}

func (ct chooseTemplate) render(d *ChooseData) (string, error) {
	var sb strings.Builder
	if err := ct.t.Execute(&sb, d); err != nil {
		return "", fmt.Errorf("agent: choose template %s: %w", ct.t.Name(), err)
	}
	return sb.String(), nil
}

// Choice is an agent's answer to "which of these items would you watch?".
type Choice struct {
	Items  []string `json:"items"`  // the slate, as offered
	Labels []string `json:"labels"` // their answer labels ("A", "B", ...)
	// Probs[i] is the probability of choosing Items[i] and Exit that of
	// leaving; together they sum to 1 (renormalised over the options).
	Probs []float64 `json:"probs"`
	Exit  float64   `json:"exit"`
	// Chosen is the index of the most probable item, -1 when leaving is
	// the most probable answer.
	Chosen int `json:"chosen"`
	// Mass is the probability the options' labels got before
	// renormalising.
	Mass float64 `json:"mass"`
}

// ChoosePrompt returns the prompt of the slate.
func (a *Agent) ChoosePrompt(slate []string) (Prompt, error) {
	if len(slate) == 0 || len(slate) > MaxSlate {
		return Prompt{}, fmt.Errorf("agent: a slate has 1 to %d items, not %d", MaxSlate, len(slate))
	}
	d := &ChooseData{ExitLabel: ExitLabel}
	var sys string
	seen := map[string]bool{}
	for i, it := range slate {
		pd, err := a.PromptData(it)
		if err != nil {
			return Prompt{}, err
		}
		if i == 0 {
			msgs, _, err := a.pool.b.Render(pd)
			if err != nil {
				return Prompt{}, fmt.Errorf("agent: render: %w", err)
			}
			if len(msgs) > 0 && msgs[0].Role == "system" {
				sys = msgs[0].Content
			}
		}
		d.Options = append(d.Options, ChooseOption{Label: string(rune('A' + i)), Item: pd.Target})
		for _, m := range pd.Memories {
			if !seen[m.Item.ID] {
				seen[m.Item.ID] = true
				d.Memories = append(d.Memories, m)
			}
		}
	}
	slices.SortStableFunc(d.Memories, func(x, y raft.MemoryData) int { return -cmpFloat(x.Score, y.Score) })
	user, err := a.pool.chooseT.render(d)
	if err != nil {
		return Prompt{}, err
	}
	user = strings.TrimRight(user, "\n")
	var msgs []raft.Message
	if sys != "" {
		msgs = append(msgs, raft.Message{Role: "system", Content: sys})
	}
	msgs = append(msgs, raft.Message{Role: "user", Content: user})
	return a.pool.render(a.Adapter, msgs, raft.JoinPrompt(sys, user))
}

// Choose asks which item of the slate (source IDs, at most MaxSlate) the
// user would watch, or whether they would leave: every option's label is
// scored as a continuation of the slate prompt (Config.ChooseTemplate or the
// built-in one) and the probabilities renormalised over the options.
func (a *Agent) Choose(ctx context.Context, slate []string) (Choice, error) {
	pr, err := a.ChoosePrompt(slate)
	if err != nil {
		return Choice{}, err
	}
	c := Choice{Items: slices.Clone(slate), Probs: make([]float64, len(slate)), Chosen: -1}
	cands := make([]string, 0, len(slate)+1)
	for i := range slate {
		l := string(rune('A' + i))
		c.Labels = append(c.Labels, l)
		cands = append(cands, a.pool.prefix+l)
	}
	cands = append(cands, a.pool.prefix+ExitLabel)
	lps, err := a.pool.backend.Score(ctx, []Prompt{pr}, cands)
	if err != nil {
		return Choice{}, err
	}
	if len(lps) != 1 || len(lps[0]) != len(cands) {
		return Choice{}, errors.New("agent: backend scored the wrong number of options")
	}
	lse := logSumExp(lps[0])
	if math.IsInf(lse, -1) || math.IsNaN(lse) {
		return Choice{}, errors.New("agent: choose: the model gave the options no probability")
	}
	c.Mass = math.Exp(lse)
	best := math.Exp(lps[0][len(slate)] - lse)
	c.Exit = best
	for i := range slate {
		c.Probs[i] = math.Exp(lps[0][i] - lse)
		if c.Probs[i] > best {
			best, c.Chosen = c.Probs[i], i
		}
	}
	return c, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
