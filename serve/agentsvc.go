package serve

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/usersim/usersim/agent"
	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/persona"
	"github.com/usersim/usersim/train/raft"
)

// PoolService is the AgentService (and AgentCatalog) of an agent.Pool:
// users and items are looked up in the pool's dataset only, and the
// personas are described by a workspace's persona summary.
type PoolService struct {
	pool     *agent.Pool
	d        *dataset.Dataset
	personas []PersonaInfo
	users    []UserInfo // the pool's profiled users, in profile order
	items    []ItemInfo // the dataset's items, in dataset order
}

// NewPoolService returns the service of pool, whose prompts are built over
// d. sum describes the personas (nil: none); assign maps user IDs to their
// personas, as persona.Assignments.Personas does (nil: none; the users
// listed by GET /v1/agents then have persona -1); adapter names persona
// k's adapter ("" when none is loaded; nil for none at all).
func NewPoolService(pool *agent.Pool, d *dataset.Dataset, sum *persona.Summary, assign map[string]int, adapter func(k int) string) (*PoolService, error) {
	if pool == nil || d == nil {
		return nil, fmt.Errorf("serve: NewPoolService needs a pool and its dataset")
	}
	s := &PoolService{pool: pool, d: d}
	for _, u := range pool.Builder().Users() {
		p, ok := assign[u]
		if !ok {
			p = -1
		}
		s.users = append(s.users, UserInfo{ID: u, Persona: p})
	}
	s.items = make([]ItemInfo, len(d.Items))
	for i, it := range d.Items {
		s.items[i] = ItemInfo{ID: it.ID, Title: it.Title}
	}
	if sum != nil {
		for _, p := range sum.Personas {
			info := PersonaInfo{ID: p.ID, Size: p.Size, Share: p.Share, MeanRating: p.MeanRating,
				Terms: slices.Clone(p.Terms), Description: p.Text}
			if adapter != nil {
				info.Adapter = adapter(p.ID)
			}
			s.personas = append(s.personas, info)
		}
		slices.SortFunc(s.personas, func(a, b PersonaInfo) int { return a.ID - b.ID })
	}
	return s, nil
}

// agent returns user's agent after checking user and items against the
// dataset.
func (s *PoolService) agent(user string, items []string) (*agent.Agent, error) {
	if _, ok := s.d.UserIndex(user); !ok {
		return nil, fmt.Errorf("user %q: %w in dataset %s", user, ErrNotFound, s.d.Name)
	}
	for _, it := range items {
		if _, ok := s.d.ItemIndex(it); !ok {
			return nil, fmt.Errorf("item %q: %w in dataset %s", it, ErrNotFound, s.d.Name)
		}
	}
	a, err := s.pool.Agent(user)
	if err != nil {
		// A user of the dataset that was not profiled has no agent.
		return nil, fmt.Errorf("user %q has no agent (%w): %v", user, ErrNotFound, err)
	}
	return a, nil
}

// Rate implements AgentService.
func (s *PoolService) Rate(ctx context.Context, user string, items []string, explain bool) ([]ItemRating, error) {
	a, err := s.agent(user, items)
	if err != nil {
		return nil, err
	}
	rs, err := a.RateMany(ctx, items)
	if err != nil {
		return nil, err
	}
	out := make([]ItemRating, len(items))
	for i, r := range rs {
		out[i] = ItemRatingOf(items[i], r)
		if explain {
			e, err := a.Explain(ctx, items[i])
			if err != nil {
				return nil, fmt.Errorf("explain %q: %w", items[i], err)
			}
			out[i].Explanation = e.Reason
		}
	}
	return out, nil
}

// ItemRatingOf converts an agent's rating of item to the API's shape.
func ItemRatingOf(item string, r agent.Rating) ItemRating {
	ir := ItemRating{Item: item, Distribution: make(map[string]float64, len(r.Values)),
		Expected: r.Expected, Argmax: r.Argmax, Mass: r.Mass, Valid: r.Valid}
	for j, v := range r.Values {
		ir.Distribution[raft.FormatRating(v)] = r.Dist[j]
	}
	if !r.Valid || math.IsNaN(r.Expected) || math.IsNaN(r.Argmax) {
		// JSON has no NaN.
		ir.Valid, ir.Expected, ir.Argmax = false, 0, 0
		for k := range ir.Distribution {
			ir.Distribution[k] = 0
		}
	}
	return ir
}

// Choose implements AgentService.
func (s *PoolService) Choose(ctx context.Context, user string, items []string) (SlateChoice, error) {
	a, err := s.agent(user, items)
	if err != nil {
		return SlateChoice{}, err
	}
	c, err := a.Choose(ctx, items)
	if err != nil {
		return SlateChoice{}, err
	}
	return SlateChoiceOf(c), nil
}

// SlateChoiceOf converts an agent's choice to the API's shape.
func SlateChoiceOf(c agent.Choice) SlateChoice {
	sc := SlateChoice{Choice: ExitChoice, Probabilities: make(map[string]float64, len(c.Items)), Exit: c.Exit}
	for i, it := range c.Items {
		sc.Probabilities[it] = c.Probs[i]
	}
	if c.Chosen >= 0 && c.Chosen < len(c.Items) {
		sc.Choice = c.Items[c.Chosen]
	}
	return sc
}

// Personas implements AgentService.
func (s *PoolService) Personas() []PersonaInfo {
	out := slices.Clone(s.personas)
	for i := range out {
		out[i].Terms = slices.Clone(out[i].Terms)
	}
	return out
}

// Users implements AgentCatalog: the users with a profile, hence an agent.
func (s *PoolService) Users() []UserInfo { return s.users }

// Items implements AgentCatalog: every item of the dataset.
func (s *PoolService) Items() []ItemInfo { return s.items }
