package persona

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/usersim/usersim/memory"
)

// Names of the behavioural values that do not come from Profile.Features.
const (
	FeatMeanRating = "mean_rating"
	FeatActivity   = "trait.activity" // ln(1 + number of training ratings)
	FeatConformity = "trait.conformity"
	FeatDiversity  = "trait.diversity"
)

// DefaultBehaviourPrefixes select the stats distiller's affinities (genre,
// era, popularity and quality tiers, each in stars against the user's own
// mean) and genre shares (what the user chooses to watch), and leave out its
// restatements of the mean and the traits.
var DefaultBehaviourPrefixes = []string{"genre:", "share:", "era:", "pop:", "quality:"}

// Behaviour embeds a profile's numbers: its mean rating, every entry of
// Profile.Features seen at Fit (genre, era, popularity and quality
// affinities for the stats distiller) and, unless NoTraits, the three raw
// traits. Each value is standardised with the fitted population's mean and
// standard deviation; a feature a profile lacks sits at the mean (0), and a
// feature constant over the population is left out.
type Behaviour struct {
	// Prefixes keep only the Features whose names start with one of them
	// (the mean rating and the traits are kept regardless); nil means
	// DefaultBehaviourPrefixes, []string{""} every feature.
	Prefixes []string
	NoTraits bool

	keys []string
	mean []float64
	sd   []float64
}

// Name is "behaviour".
func (b *Behaviour) Name() string { return EmbedBehaviour }

// Keys returns the fitted value names in vector order.
func (b *Behaviour) Keys() []string { return b.keys }

// Fit learns the value names and their standardisation.
func (b *Behaviour) Fit(ctx context.Context, profiles []memory.Profile) error {
	if len(profiles) == 0 {
		return errors.New("persona: behaviour: no profiles to fit")
	}
	seen := map[string]bool{}
	for _, p := range profiles {
		for k, v := range p.Features {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("persona: behaviour: user %s: feature %q is %v", p.User, k, v)
			}
			if b.keep(k) {
				seen[k] = true
			}
		}
	}
	keys := []string{FeatMeanRating}
	if !b.NoTraits {
		keys = append(keys, FeatActivity, FeatConformity, FeatDiversity)
	}
	keys = append(keys, slices.Sorted(maps.Keys(seen))...)
	b.keys, b.mean, b.sd = b.keys[:0], b.mean[:0], b.sd[:0]
	for _, k := range keys {
		var s, ss, n float64
		for _, p := range profiles {
			v, ok := value(p, k)
			if !ok {
				continue
			}
			s += v
			ss += v * v
			n++
		}
		m := s / n
		sd := math.Sqrt(max(0, ss/n-m*m))
		if sd < 1e-9 {
			continue
		}
		b.keys = append(b.keys, k)
		b.mean = append(b.mean, m)
		b.sd = append(b.sd, sd)
	}
	if len(b.keys) == 0 {
		return errors.New("persona: behaviour: every value is constant over the profiles")
	}
	return nil
}

func (b *Behaviour) keep(k string) bool {
	switch k {
	case FeatMeanRating, FeatActivity, FeatConformity, FeatDiversity:
		return false // reserved names; value() answers them from the profile
	}
	prefixes := b.Prefixes
	if prefixes == nil {
		prefixes = DefaultBehaviourPrefixes
	}
	for _, p := range prefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Embed returns the standardised values of each profile.
func (b *Behaviour) Embed(ctx context.Context, profiles []memory.Profile) ([][]float32, error) {
	if b.keys == nil {
		return nil, errors.New("persona: behaviour: Embed before Fit")
	}
	out := make([][]float32, len(profiles))
	for i, p := range profiles {
		v := make([]float32, len(b.keys))
		for j, k := range b.keys {
			x, ok := value(p, k)
			if !ok {
				continue
			}
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("persona: behaviour: user %s: %q is %v", p.User, k, x)
			}
			v[j] = float32((x - b.mean[j]) / b.sd[j])
		}
		out[i] = v
	}
	return out, nil
}

// value returns the behavioural value k of p and whether p has it.
func value(p memory.Profile, k string) (float64, bool) {
	switch k {
	case FeatMeanRating:
		return p.MeanRating, true
	case FeatActivity:
		return math.Log1p(float64(max(p.Traits.Activity, p.NumRatings))), true
	case FeatConformity:
		return p.Traits.Conformity, true
	case FeatDiversity:
		return float64(p.Traits.Diversity), true
	}
	v, ok := p.Features[k]
	return v, ok
}
