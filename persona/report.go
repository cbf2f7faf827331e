package persona

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/memory"
)

// Input is what Build clusters: the profiles and, optionally, what is known
// about their users beyond them.
type Input struct {
	Profiles []memory.Profile
	// Users gives demographics by user ID (dataset.User.ID) for the persona
	// descriptions; nil leaves them out.
	Users map[string]dataset.User
	// Truth gives each user's true persona (a synthetic world's
	// Truth.PersonaOf) for the adjusted Rand index; nil leaves it out.
	Truth map[string]int
}

// Result is a persona clustering and everything reported about it.
type Result struct {
	Embedder   string      `json:"embedder"`
	Options    Options     `json:"options"`
	Users      []string    `json:"users"` // user IDs in profile order, aligned with Clustering.Labels
	Selection  Selection   `json:"selection"`
	Clustering *Clustering `json:"clustering"`
	Separation Separation  `json:"separation"`
	Personas   []Persona   `json:"personas"`
}

// Separation measures how much rating behaviour a clustering separates.
type Separation struct {
	// MeanRatingEta2 is the between-persona share of the variance of the
	// users' mean ratings (η²).
	MeanRatingEta2 float64 `json:"mean_rating_eta2"`
	// GenreEta2 is the mean η² of the genre affinities ("genre:" features);
	// AffinityEta2 the mean over every affinity of DefaultBehaviourPrefixes.
	GenreEta2    float64 `json:"genre_eta2"`
	AffinityEta2 float64 `json:"affinity_eta2"`
	// MeanRatingRange is the highest persona mean rating less the lowest.
	MeanRatingRange float64 `json:"mean_rating_range"`
	// TopFeatures are the affinities the personas separate most.
	TopFeatures []FeatureScore `json:"top_features,omitempty"`
	// ARI is the adjusted Rand index against the true personas, when known
	// (TruthUsers of the users have one).
	ARI        *float64 `json:"ari,omitempty"`
	TruthUsers int      `json:"truth_users,omitempty"`
}

// FeatureScore is a named number: an η², or a persona's mean standardised
// value of a feature.
type FeatureScore struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Persona describes one cluster.
type Persona struct {
	ID         int     `json:"id"`
	Size       int     `json:"size"`
	Share      float64 `json:"share"`
	MeanRating float64 `json:"mean_rating"`
	// Terms are the words and bigrams of the members' descriptions whose
	// tf-idf weight most exceeds the population's.
	Terms []string `json:"terms,omitempty"`
	// High and Low are the affinities (and mean rating) with the largest
	// positive and negative mean standardised value among the members.
	High []FeatureScore `json:"high,omitempty"`
	Low  []FeatureScore `json:"low,omitempty"`
	// Traits gives the share of members at each level of each trait.
	Traits map[string]map[memory.Level]float64 `json:"traits"`
	// Demographics, when the users' data was given.
	Demographics *Demographics `json:"demographics,omitempty"`
	// TruePersona is the true persona most members belong to and Purity
	// their share, when the truth was given.
	TruePersona *int    `json:"true_persona,omitempty"`
	Purity      float64 `json:"purity,omitempty"`
	Text        string  `json:"text"`
}

// Demographics summarise the members' dataset.User fields.
type Demographics struct {
	Known       int            `json:"known"` // members with a user record
	MaleShare   float64        `json:"male_share"`
	Ages        []FeatureScore `json:"ages,omitempty"`        // most common age groups and their shares
	Occupations []FeatureScore `json:"occupations,omitempty"` // most common occupations and their shares
}

// Build fits emb on the profiles, embeds them, clusters them (Cluster) and
// describes the result.
func Build(ctx context.Context, in Input, emb Embedder, opt Options) (*Result, error) {
	opt.fill()
	if len(in.Profiles) == 0 {
		return nil, errors.New("persona: no profiles")
	}
	seen := make(map[string]bool, len(in.Profiles))
	for i, p := range in.Profiles {
		if p.User == "" {
			return nil, fmt.Errorf("persona: profile %d has no user ID", i)
		}
		if seen[p.User] {
			return nil, fmt.Errorf("persona: user %s has two profiles", p.User)
		}
		seen[p.User] = true
	}
	if err := emb.Fit(ctx, in.Profiles); err != nil {
		return nil, err
	}
	vecs, err := emb.Embed(ctx, in.Profiles)
	if err != nil {
		return nil, err
	}
	c, sel, err := Cluster(ctx, vecs, opt)
	if err != nil {
		return nil, err
	}
	r := &Result{Embedder: emb.Name(), Options: opt, Selection: sel, Clustering: c}
	for _, p := range in.Profiles {
		r.Users = append(r.Users, p.User)
	}
	if err := r.describe(ctx, in); err != nil {
		return nil, err
	}
	return r, nil
}

// Assign embeds profiles with emb (fitted on the clustered population, as
// Build left it) and returns each one's nearest persona.
func (r *Result) Assign(ctx context.Context, emb Embedder, profiles []memory.Profile) ([]int, error) {
	vecs, err := emb.Embed(ctx, profiles)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(vecs))
	for i, v := range vecs {
		if out[i], _, err = r.Clustering.Assign(v); err != nil {
			return nil, fmt.Errorf("persona: user %s: %w", profiles[i].User, err)
		}
	}
	return out, nil
}

// describe fills Separation and Personas.
func (r *Result) describe(ctx context.Context, in Input) error {
	ps, labels, k := in.Profiles, r.Clustering.Labels, r.Clustering.K
	sep := Separation{}
	means := make([]float64, len(ps))
	for i, p := range ps {
		means[i] = p.MeanRating
	}
	sep.MeanRatingEta2 = EtaSquared(means, labels, k)

	// Standardised affinities (the behavioural embedder's values).
	beh := &Behaviour{NoTraits: true}
	var z [][]float32
	if err := beh.Fit(ctx, ps); err == nil {
		if z, err = beh.Embed(ctx, ps); err != nil {
			return err
		}
	}
	col := make([]float64, len(ps))
	var genre, aff []float64
	for _, key := range beh.Keys() {
		if key == FeatMeanRating {
			continue
		}
		for i, p := range ps {
			v, ok := p.Features[key]
			if !ok {
				v = math.NaN()
			}
			col[i] = v
		}
		e := EtaSquared(col, labels, k)
		aff = append(aff, e)
		if strings.HasPrefix(key, "genre:") {
			genre = append(genre, e)
		}
		sep.TopFeatures = append(sep.TopFeatures, FeatureScore{key, e})
	}
	sep.GenreEta2, sep.AffinityEta2 = mean(genre), mean(aff)
	slices.SortStableFunc(sep.TopFeatures, func(a, b FeatureScore) int { return cmp.Compare(b.Value, a.Value) })
	sep.TopFeatures = sep.TopFeatures[:min(5, len(sep.TopFeatures))]

	// Truth.
	var truth []int
	if in.Truth != nil {
		var a, b []int
		truth = make([]int, len(ps))
		for i, p := range ps {
			t, ok := in.Truth[p.User]
			truth[i] = -1
			if ok {
				truth[i] = t
				a = append(a, t)
				b = append(b, labels[i])
			}
		}
		if len(a) > 1 {
			ari, err := AdjustedRand(a, b)
			if err != nil {
				return err
			}
			sep.ARI, sep.TruthUsers = &ari, len(a)
		}
	}

	// Terms: the members' mean tf-idf against the population's.
	tf := &TFIDF{}
	var rows [][]entry
	if err := tf.Fit(ctx, ps); err == nil {
		rows = tf.sparse(ps)
	}
	popTF := make([]float64, len(tf.terms))
	for _, row := range rows {
		for _, e := range row {
			popTF[e.j] += e.v / float64(len(ps))
		}
	}

	r.Personas = make([]Persona, k)
	lo, hi := math.Inf(1), math.Inf(-1)
	for c := range k {
		var members []int
		for i, l := range labels {
			if l == c {
				members = append(members, i)
			}
		}
		p := Persona{ID: c, Size: len(members), Share: float64(len(members)) / float64(len(ps))}
		for _, i := range members {
			p.MeanRating += ps[i].MeanRating / float64(len(members))
		}
		lo, hi = min(lo, p.MeanRating), max(hi, p.MeanRating)
		if rows != nil {
			w := make([]float64, len(tf.terms))
			for _, i := range members {
				for _, e := range rows[i] {
					w[e.j] += e.v / float64(len(members))
				}
			}
			order := make([]int, len(w))
			for j := range order {
				order[j] = j
			}
			slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(w[b]-popTF[b], w[a]-popTF[a]) })
			for _, j := range order[:min(8, len(order))] {
				if w[j]-popTF[j] > 0 {
					p.Terms = append(p.Terms, tf.terms[j])
				}
			}
		}
		if z != nil {
			var fs []FeatureScore
			for j, key := range beh.Keys() {
				var s float64
				for _, i := range members {
					s += float64(z[i][j])
				}
				fs = append(fs, FeatureScore{key, s / float64(len(members))})
			}
			slices.SortStableFunc(fs, func(a, b FeatureScore) int { return cmp.Compare(b.Value, a.Value) })
			for _, f := range fs[:min(3, len(fs))] {
				if f.Value > 0.25 {
					p.High = append(p.High, f)
				}
			}
			for i := len(fs) - 1; i >= max(0, len(fs)-3); i-- {
				if fs[i].Value < -0.25 {
					p.Low = append(p.Low, fs[i])
				}
			}
		}
		p.Traits = traitShares(ps, members)
		if in.Users != nil {
			p.Demographics = demographics(ps, members, in.Users)
		}
		if truth != nil {
			count := map[int]int{}
			known := 0
			for _, i := range members {
				if truth[i] >= 0 {
					count[truth[i]]++
					known++
				}
			}
			if known > 0 {
				best := -1
				for _, t := range slices.Sorted(maps.Keys(count)) {
					if best < 0 || count[t] > count[best] {
						best = t
					}
				}
				p.TruePersona, p.Purity = &best, float64(count[best])/float64(known)
			}
		}
		p.Text = p.text()
		r.Personas[c] = p
	}
	sep.MeanRatingRange = hi - lo
	r.Separation = sep
	return nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func traitShares(ps []memory.Profile, members []int) map[string]map[memory.Level]float64 {
	out := map[string]map[memory.Level]float64{"activity": {}, "conformity": {}, "diversity": {}}
	for _, i := range members {
		t := ps[i].Traits
		for name, l := range map[string]memory.Level{"activity": t.ActivityLevel, "conformity": t.ConformityLevel, "diversity": t.DiversityLevel} {
			if l != "" {
				out[name][l] += 1 / float64(len(members))
			}
		}
	}
	return out
}

func demographics(ps []memory.Profile, members []int, users map[string]dataset.User) *Demographics {
	d := &Demographics{}
	ages, occ := map[string]int{}, map[string]int{}
	var male int
	for _, i := range members {
		u, ok := users[ps[i].User]
		if !ok {
			continue
		}
		d.Known++
		if strings.EqualFold(u.Gender, "M") {
			male++
		}
		age := u.AgeGroup
		if age == "" && u.Age > 0 {
			age = fmt.Sprint(u.Age)
		}
		if age != "" {
			ages[age]++
		}
		if u.Occupation != "" {
			occ[u.Occupation]++
		}
	}
	if d.Known == 0 {
		return nil
	}
	d.MaleShare = float64(male) / float64(d.Known)
	d.Ages = topCounts(ages, d.Known, 2)
	d.Occupations = topCounts(occ, d.Known, 3)
	return d
}

func topCounts(m map[string]int, total, n int) []FeatureScore {
	var out []FeatureScore
	for k, c := range m {
		out = append(out, FeatureScore{k, float64(c) / float64(total)})
	}
	slices.SortFunc(out, func(a, b FeatureScore) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out[:min(n, len(out))]
}

// featureLabel turns a feature name into words.
func featureLabel(key string) string {
	name, rest, ok := strings.Cut(key, ":")
	if !ok {
		if key == FeatMeanRating {
			return "mean rating"
		}
		return key
	}
	switch name {
	case "genre":
		return "liking " + rest
	case "era":
		return "liking " + rest + " films"
	case "pop", "quality":
		return "liking " + rest + " films"
	case "share":
		return "watching " + rest
	}
	return rest
}

// text writes the persona in words.
func (p *Persona) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Persona %d: %d users (%.0f%%), mean rating %.2f.", p.ID, p.Size, 100*p.Share, p.MeanRating)
	sd := func(fs []FeatureScore) string {
		var parts []string
		for _, f := range fs {
			parts = append(parts, fmt.Sprintf("%s (%+.1f sd)", featureLabel(f.Name), f.Value))
		}
		return strings.Join(parts, ", ")
	}
	if len(p.High) > 0 {
		fmt.Fprintf(&b, " Above most users in %s.", sd(p.High))
	}
	if len(p.Low) > 0 {
		fmt.Fprintf(&b, " Below most users in %s.", sd(p.Low))
	}
	if len(p.Terms) > 0 {
		fmt.Fprintf(&b, " Characteristic words: %s.", strings.Join(quoteAll(p.Terms), ", "))
	}
	var tr []string
	for _, name := range []string{"activity", "conformity", "diversity"} {
		shares := p.Traits[name]
		best, bs := memory.Level(""), 0.0
		for _, l := range []memory.Level{memory.Low, memory.Medium, memory.High} {
			if shares[l] > bs {
				best, bs = l, shares[l]
			}
		}
		if best != "" {
			tr = append(tr, fmt.Sprintf("%s mostly %s (%.0f%%)", name, best, 100*bs))
		}
	}
	if len(tr) > 0 {
		fmt.Fprintf(&b, " Traits: %s.", strings.Join(tr, ", "))
	}
	if d := p.Demographics; d != nil {
		fmt.Fprintf(&b, " %.0f%% male", 100*d.MaleShare)
		if len(d.Ages) > 0 {
			fmt.Fprintf(&b, "; most often aged %s (%.0f%%)", d.Ages[0].Name, 100*d.Ages[0].Value)
		}
		if len(d.Occupations) > 0 {
			var occ []string
			for _, o := range d.Occupations {
				occ = append(occ, fmt.Sprintf("%s %.0f%%", o.Name, 100*o.Value))
			}
			fmt.Fprintf(&b, "; occupations %s", strings.Join(occ, ", "))
		}
		b.WriteString(".")
	}
	if p.TruePersona != nil {
		fmt.Fprintf(&b, " %.0f%% of its users are true persona %d.", 100*p.Purity, *p.TruePersona)
	}
	return b.String()
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}
