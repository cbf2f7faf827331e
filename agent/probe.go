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
	// Anchor is the collaborative estimate of the default variant's prompt.
	Anchor
)

func (f Field) String() string {
	switch f {
	case UserMean:
		return "user-mean"
	case ItemAverage:
		return "item-average"
	case MemoryRating:
		return "memory-rating"
	case Anchor:
		return "anchor"
	}
	return fmt.Sprintf("Field(%d)", int(f))
}

// Edit sets one number of a prompt to Value, or, when Relative, moves it
// by Value (the remembered rating is then clamped to the scale by the
// caller's choice of Value; it is written as given).
type Edit struct {
	Field    Field   `json:"field"`
	Value    float64 `json:"value"`
	Relative bool    `json:"relative,omitempty"`
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
	v := e.Value
	switch e.Field {
	case UserMean:
		if e.Relative {
			v += pd.UserMean
		}
		pd.UserMean = v
		pd.Profile = starsOnAverage.ReplaceAllString(pd.Profile, strconv.FormatFloat(v, 'f', 1, 64)+" stars on average")
	case ItemAverage:
		if e.Relative {
			if !pd.Target.HasAverage {
				return fmt.Errorf("agent: probe %s: item %q has no average to move", e.Field, pd.Target.ID)
			}
			v += pd.Target.Average
		}
		pd.Target.Average, pd.Target.HasAverage = v, true
	case MemoryRating:
		if len(pd.Memories) == 0 {
			return fmt.Errorf("agent: probe %s: the prompt has no memory", e.Field)
		}
		if e.Relative {
			old, err := strconv.ParseFloat(pd.Memories[0].Rating, 64)
			if err != nil {
				return fmt.Errorf("agent: probe %s: remembered rating %q: %w", e.Field, pd.Memories[0].Rating, err)
			}
			v += old
		}
		pd.Memories[0].Rating = raft.FormatRating(v)
	case Anchor:
		if !pd.HasAnchor {
			return fmt.Errorf("agent: probe %s: the prompt has no anchor", e.Field)
		}
		if e.Relative {
			v += pd.Anchor
		}
		pd.Anchor = v
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

// Pair is a user and an item (source IDs).
type Pair struct{ User, Item string }

// ProbeMany runs the edit on every pair, all prompts in one backend call.
// Pairs the edit cannot apply to (no memory, no item average to move) are
// skipped; their indices are returned in skipped.
func (p *Pool) ProbeMany(ctx context.Context, pairs []Pair, e Edit) (res []ProbeResult, skipped []int, err error) {
	var ps []Prompt
	for k, pr := range pairs {
		a, err := p.Agent(pr.User)
		if err != nil {
			return nil, nil, err
		}
		pd, err := a.PromptData(pr.Item)
		if err != nil {
			return nil, nil, err
		}
		orig, err := a.prompt(pd)
		if err != nil {
			return nil, nil, err
		}
		if err := e.Apply(pd); err != nil {
			skipped = append(skipped, k)
			continue
		}
		edited, err := a.prompt(pd)
		if err != nil {
			return nil, nil, err
		}
		ps = append(ps, orig, edited)
	}
	rs, err := p.scorePrompts(ctx, ps)
	if err != nil {
		return nil, nil, err
	}
	for k := 0; k < len(rs); k += 2 {
		res = append(res, ProbeResult{Edit: e, Before: rs[k], After: rs[k+1], Shift: rs[k+1].Expected - rs[k].Expected})
	}
	return res, skipped, nil
}

// Probe runs a counterfactual probe for user (source ID) on item.
func (p *Pool) Probe(ctx context.Context, user, item string, e Edit) (ProbeResult, error) {
	a, err := p.Agent(user)
	if err != nil {
		return ProbeResult{}, err
	}
	return a.Probe(ctx, item, e)
}
