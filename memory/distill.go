package memory

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
)

// StatsDistillerName is the Profile.Distiller of the stats distiller.
const StatsDistillerName = "stats"

// StatsVersion changes whenever the stats distiller's output for the same
// inputs changes (wording, thresholds, features), so that a cached
// distillation made by an older version is redone.
const StatsVersion = 2

// StatsDistiller is the offline, deterministic Distiller: it writes
// profiles and reasons from the training split's statistics.
type StatsDistiller struct {
	Options StatsOptions
}

// Distill implements Distiller.
func (sd StatsDistiller) Distill(ctx context.Context, d *dataset.Dataset, s *split.Split, users []int32) ([]Profile, []Interaction, error) {
	opt := sd.Options
	opt.fill()
	if users == nil {
		users = s.Users
	}
	st, err := NewStats(d, s.Train, opt)
	if err != nil {
		return nil, nil, err
	}
	return DistillWith(ctx, st, users, opt)
}

// DistillStats runs the stats distiller on the users of s (a paper split's
// sampled users; every user for the other protocols).
func DistillStats(ctx context.Context, d *dataset.Dataset, s *split.Split, opt StatsOptions) ([]Profile, []Interaction, error) {
	return StatsDistiller{Options: opt}.Distill(ctx, d, s, nil)
}

// UsersWithTraining returns every user with at least one training row, in
// index order: the users to profile when every user is wanted.
func (s *Stats) UsersWithTraining() []int32 {
	var out []int32
	for u, c := range s.UserCount {
		if c > 0 {
			out = append(out, int32(u))
		}
	}
	return out
}

// DistillWith runs the stats distiller over precomputed statistics. Users
// are distilled in parallel over the available cores; the output does not
// depend on the number of cores. A user without training rows is an error.
func DistillWith(ctx context.Context, st *Stats, users []int32, opt StatsOptions) ([]Profile, []Interaction, error) {
	opt.fill()
	d := st.d
	if len(users) == 0 {
		return nil, nil, fmt.Errorf("stats distiller: no users to profile")
	}
	for _, u := range users {
		if u < 0 || int(u) >= d.NumUsers() {
			return nil, nil, fmt.Errorf("stats distiller: user index %d out of range [0, %d)", u, d.NumUsers())
		}
		if st.UserCount[u] == 0 {
			return nil, nil, fmt.Errorf("stats distiller: user %s has no training ratings", d.Users[u].ID)
		}
	}
	var pop []int32
	switch opt.Population {
	case PopulationProfiled:
		pop = users
	case PopulationAll:
		pop = st.UsersWithTraining()
	default:
		return nil, nil, fmt.Errorf("stats distiller: population %q: want %q or %q", opt.Population, PopulationProfiled, PopulationAll)
	}
	cut := st.Cutoffs(opt.Population, pop)

	profiles := make([]Profile, len(users))
	inter := make([][]Interaction, len(users))
	workers := min(runtime.GOMAXPROCS(0), len(users))
	var (
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for k := range next {
				profiles[k], inter[k] = distillUser(st, users[k], cut, opt)
			}
		})
	}
	var err error
feed:
	for k := range users {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		case next <- k:
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, nil, fmt.Errorf("stats distiller: %w", err)
	}
	n := 0
	for _, in := range inter {
		n += len(in)
	}
	all := make([]Interaction, 0, n)
	for _, in := range inter {
		all = append(all, in...)
	}
	return profiles, all, nil
}

// distillUser writes one user's profile and interactions.
func distillUser(st *Stats, u int32, cut Cutoffs, opt StatsOptions) (Profile, []Interaction) {
	d := st.d
	id := d.Users[u].ID
	us := st.User(u, -1)
	tr := st.Traits(u, cut)
	p := Profile{
		User:        id,
		Traits:      tr,
		Description: describe(st, &us, opt.MinGenreRatings),
		MeanRating:  us.Mean,
		NumRatings:  us.Count,
		Features:    features(st, &us, tr),
		Distiller:   StatsDistillerName,
	}
	if opt.Revisions {
		p.Revisions = revisions(st, u, opt)
	}
	r := &d.Ratings
	rows := st.History(u)
	out := make([]Interaction, len(rows))
	for k, row := range rows {
		i := r.Item[row]
		v := float64(r.Value[row])
		m := Interaction{
			User:   id,
			Item:   d.Items[i].ID,
			Rating: v,
			Order:  k,
			Reason: reason(st, &us, id, i, d.Items[i].ID, v, opt.MinGenreRatings),
		}
		if d.HasTime() {
			m.Time = r.Time[row]
		}
		out[k] = m
	}
	return p, out
}

// features are the named numbers behind a profile. Every profile made from
// one Stats has the same keys:
//
//	mean, mean_offset (mean − global mean), std, ratings
//	activity, conformity, diversity and their *_level (0 low, 1 medium, 2 high)
//	genre:<G>  affinity for genre G;  share:<G>  share of the user's ratings in G
//	era:<decade>  affinity;  pop:<tier>, quality:<tier>  affinities
//	pop_gap (popular − lesser-known), quality_gap (top-rated − weaker)
func features(st *Stats, us *UserStats, t Traits) map[string]float64 {
	f := make(map[string]float64, 12+2*len(st.Genres)+len(st.Eras)+6)
	f["mean"] = us.Mean
	f["mean_offset"] = us.Mean - st.GlobalMean
	f["std"] = us.Std
	f["ratings"] = float64(us.Count)
	f["activity"] = float64(t.Activity)
	f["conformity"] = t.Conformity
	f["diversity"] = float64(t.Diversity)
	f["activity_level"] = levelNum(t.ActivityLevel)
	f["conformity_level"] = levelNum(t.ConformityLevel)
	f["diversity_level"] = levelNum(t.DiversityLevel)
	for g, a := range us.Genre {
		f["genre:"+st.Genres[g]] = a.Value
		f["share:"+st.Genres[g]] = float64(a.Count) / float64(max(us.Count, 1))
	}
	for e, a := range us.Era {
		f["era:"+st.Eras[e]] = a.Value
	}
	for k, name := range PopTiers {
		f["pop:"+name] = us.Pop[k].Value
	}
	for k, name := range QualityTiers {
		f["quality:"+name] = us.Quality[k].Value
	}
	f["pop_gap"] = us.Pop[TierHigh].Value - us.Pop[TierLow].Value
	f["quality_gap"] = us.Quality[TierHigh].Value - us.Quality[TierLow].Value
	return f
}

func levelNum(l Level) float64 {
	switch l {
	case Medium:
		return 1
	case High:
		return 2
	}
	return 0
}

// revisions emulates the paper's batch-by-batch reading: after each batch
// the description is rewritten from the ratings read so far, and the
// reflection says which liked or disliked genres the batch revealed or
// undid. The last revision's description is the profile's.
func revisions(st *Stats, u int32, opt StatsOptions) []Revision {
	n := len(st.History(u))
	var out []Revision
	var prevLike, prevDislike []string
	for b := 0; b*opt.BatchSize < n; b++ {
		end := min(n, (b+1)*opt.BatchSize)
		us := st.User(u, end)
		desc := describe(st, &us, opt.MinGenreRatings)
		like := names(genresBy(st, &us, opt.MinGenreRatings, func(v float64) bool { return v >= mildAff }, true, len(st.Genres)))
		dislike := names(genresBy(st, &us, opt.MinGenreRatings, func(v float64) bool { return v <= -mildAff }, false, len(st.Genres)))
		slices.Sort(like)
		slices.Sort(dislike)
		var refl []string
		if b == 0 {
			refl = append(refl, "My first ratings give a first picture of my taste.")
		} else {
			if x := minus(like, prevLike); len(x) > 0 {
				refl = append(refl, fmt.Sprintf("However, I have realized that I also appreciate %s.", list(x)))
			}
			if x := minus(prevLike, like); len(x) > 0 {
				refl = append(refl, fmt.Sprintf("On reflection, I care less for %s than I thought.", list(x)))
			}
			if x := minus(dislike, prevDislike); len(x) > 0 {
				refl = append(refl, fmt.Sprintf("I have noticed that %s films often disappoint me.", list(x)))
			}
			if x := minus(prevDislike, dislike); len(x) > 0 {
				refl = append(refl, fmt.Sprintf("I was too harsh on %s before.", list(x)))
			}
			if len(refl) == 0 {
				refl = append(refl, "These ratings fit the picture I already had of my taste.")
			}
		}
		out = append(out, Revision{Batch: b, Description: desc, Reflection: strings.Join(refl, " ")})
		prevLike, prevDislike = like, dislike
	}
	return out
}

// minus returns the sorted names in a but not in b (both sorted).
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}
