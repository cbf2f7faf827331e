package agent

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/usersim/usersim/train/raft"
)

// Field names the number a counterfactual probe edits.
type Field int

const (
	// UserMean is the profile's mean rating: PromptData.UserMean and the
	// "N stars on average" the stats distiller writes into the profile.
	UserMean Field = iota
	// ItemAverage is the target item's historical average rating.
	ItemAverage
	// MemoryRating is the rating of the retrieved (top-1) memory.
	MemoryRating
)

func (f Field) String() string {
	switch f {
	case UserMean:
		return "user-mean"
	case ItemAverage:
		return "item-average"
	case MemoryRating:
		return "memory-rating"
	}
	return fmt.Sprintf("Field(%d)", int(f))
}

// Edit sets one number of a prompt to Value.
type Edit struct {
	Field Field
	Value float64
}

// ProbeResult is how an edit moved the agent's rating.
type ProbeResult struct {
	Edit   Edit   `json:"edit"`
	Before Rating `json:"before"`
	After  Rating `json:"after"`
	// Shift is After.Expected − Before.Expected.
	Shift float64 `json:"shift"`
}

var starsOnAverage = regexp.MustCompile(`\d+(?:\.\d+)? stars on average`)

// Apply edits pd in place.
func (e Edit) Apply(pd *raft.PromptData) error {
	switch e.Field {
	case UserMean:
		pd.UserMean = e.Value
		pd.Profile = starsOnAverage.ReplaceAllString(pd.Profile, strconv.FormatFloat(e.Value, 'f', 1, 64)+" stars on average")
	case ItemAverage:
		pd.Target.Average, pd.Target.HasAverage = e.Value, true
	case MemoryRating:
		if len(pd.Memories) == 0 {
			return fmt.Errorf("agent: probe %s: the prompt has no memory", e.Field)
		}
		pd.Memories[0].Rating = raft.FormatRating(e.Value)
	default:
		return fmt.Errorf("agent: unknown probe field %d", int(e.Field))
	}
	return nil
}

// Probe rates item as the agent does and again with one number of its
// prompt edited (re-rendered through raft's templates), and reports the
// shift of the expected rating: how much the agent reads that number.
func (a *Agent) Probe(ctx context.Context, item string, e Edit) (ProbeResult, error) {
	pd, err := a.PromptData(item)
	if err != nil {
		return ProbeResult{}, err
	}
	orig, err := a.prompt(pd)
	if err != nil {
		return ProbeResult{}, err
	}
	if err := e.Apply(pd); err != nil {
		return ProbeResult{}, err
	}
	edited, err := a.prompt(pd)
	if err != nil {
		return ProbeResult{}, err
	}
	rs, err := a.pool.scorePrompts(ctx, []Prompt{orig, edited})
	if err != nil {
		return ProbeResult{}, err
	}
	return ProbeResult{Edit: e, Before: rs[0], After: rs[1], Shift: rs[1].Expected - rs[0].Expected}, nil
}

// Probe runs a counterfactual probe for user (source ID) on item.
func (p *Pool) Probe(ctx context.Context, user, item string, e Edit) (ProbeResult, error) {
	a, err := p.Agent(user)
	if err != nil {
		return ProbeResult{}, err
	}
	return a.Probe(ctx, item, e)
}
