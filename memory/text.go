package memory

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Thresholds of the stats distiller's words, in stars of affinity.
const (
	strongAff = 0.5 // "love", "dislike"
	mildAff   = 0.2 // "enjoy", "lukewarm"
	minTier   = 5   // ratings a tier or era needs before it is talked about
	popGap    = 0.3 // popular vs lesser-known affinity gap worth a sentence
	qualGap   = 0.6 // top-rated vs weaker gap: "reputation matters"
	qualFlat  = 0.2 // below this gap: "reputation does little"
	styleGap  = 0.3 // user mean vs global mean: generous / demanding
	itemGap   = 0.3 // item average vs global mean: better / worse regarded
	neutral   = 0.3 // |rating − mean| below this is an ordinary rating
	strongDev = 1.0 // |rating − mean| from this on is a strong reaction
)

// pick chooses one of n phrasings deterministically from the keys.
func pick(n int, keys ...string) int {
	// FNV-1a over the keys, each followed by a zero byte.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			h ^= uint64(k[i])
			h *= prime
		}
		h *= prime // the separator: h ^= 0; h *= prime
	}
	return int(h % uint64(n))
}

// list joins names as English: "A", "A and B", "A, B and C".
func list(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// lesser is the frame of the milder genre sentence: "to a lesser degree"
// after a strong one, "somewhat" alone.
func lesser(strong int) string {
	if strong > 0 {
		return "To a lesser degree, I am %s."
	}
	return "I am somewhat %s."
}

// bound lists names each bound to word with its article:
// "an Action fan, a Crime fan and a Drama fan".
func bound(names []string, word string) string {
	out := make([]string, len(names))
	for k, n := range names {
		art := "a"
		if n != "" && strings.ContainsRune("AEIOUaeiou", rune(n[0])) {
			art = "an"
		}
		out[k] = art + " " + n + " " + word
	}
	return list(out)
}

// eraPhrase turns an era label into words: "the 1970s", "before 1950".
func eraPhrase(label string) string {
	if label == "pre-1950" {
		return "before 1950"
	}
	return "the " + label
}

// fmtStars formats a rating or mean: 4 → "4", 3.62 → "3.6".
func fmtStars(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

type scored struct {
	name string
	v    float64
}

// genresBy returns the user's genres (with at least minCount ratings) whose
// affinity passes keep, strongest first (ties by name), at most n.
func genresBy(s *Stats, us *UserStats, minCount int, keep func(float64) bool, desc bool, n int) []scored {
	var out []scored
	for g, a := range us.Genre {
		if a.Count >= minCount && keep(a.Value) {
			out = append(out, scored{s.Genres[g], a.Value})
		}
	}
	slices.SortFunc(out, func(a, b scored) int {
		if a.v != b.v {
			if (a.v > b.v) == desc {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return out[:min(n, len(out))]
}

func names(xs []scored) []string {
	out := make([]string, len(xs))
	for k, x := range xs {
		out[k] = x.name
	}
	return out
}

// describe writes the profile text of a user from the statistics. Every
// sentence has one polarity and rests on the numbers it names: a genre is
// called a "fan" genre only with an affinity of at least mildAff, a
// "skeptic" genre only with one of at most -mildAff, and so on. The traits
// are not restated: the rating prompt gives them beside the profile.
//
// The genre sentences keep one wording, each genre bound to its polarity
// word ("an Action fan", "a Horror skeptic"), so that a bag of words and
// word pairs (tf-idf with bigrams, as persona clustering sees a profile)
// keeps which genres are liked and which are not. The other sentences vary
// among phrasings chosen by a hash of the user's strongest genre, not of the
// user's ID: the wording follows taste rather than chance, since wording
// that varies by chance is what a bag-of-words embedder clusters on first
// (measured on the synthetic world: ARI of tf-idf personas 0.06 with
// ID-keyed wording and trait sentences, 0.45 without).
func describe(s *Stats, us *UserStats, minGenre int) string {
	if us.Count == 0 {
		return "I have not rated anything yet."
	}
	all := len(s.Genres)
	loves := genresBy(s, us, minGenre, func(v float64) bool { return v >= strongAff }, true, all)
	likes := genresBy(s, us, minGenre, func(v float64) bool { return v >= mildAff && v < strongAff }, true, all)
	hates := genresBy(s, us, minGenre, func(v float64) bool { return v <= -strongAff }, false, all)
	meh := genresBy(s, us, minGenre, func(v float64) bool { return v <= -mildAff && v > -strongAff }, false, all)
	taste := ""
	for _, xs := range [][]scored{loves, likes, hates, meh} {
		if len(xs) > 0 {
			taste = xs[0].name
			break
		}
	}
	var out []string
	sayKey := func(variants []string, salt, key string, args ...any) {
		out = append(out, fmt.Sprintf(variants[pick(len(variants), key, salt)], args...))
	}
	say := func(variants []string, salt string, args ...any) { sayKey(variants, salt, taste, args...) }

	// Genres, each bound to its polarity word ("an Action fan", "a Horror
	// skeptic") in one fixed wording, so that a bag of words and word pairs
	// (tf-idf with bigrams) keeps which genres are liked and which are not.
	if len(loves) > 0 {
		out = append(out, fmt.Sprintf("I am %s.", bound(names(loves), "fan")))
	}
	if len(likes) > 0 {
		out = append(out, fmt.Sprintf(lesser(len(loves)), bound(names(likes), "fan")))
	}
	if len(hates) > 0 {
		out = append(out, fmt.Sprintf("I am %s.", bound(names(hates), "skeptic")))
	}
	if len(meh) > 0 {
		out = append(out, fmt.Sprintf(lesser(len(hates)), bound(names(meh), "skeptic")))
	}
	rated := slices.ContainsFunc(us.Genre, func(a Affinity) bool { return a.Count >= minGenre })
	if rated && len(loves)+len(likes)+len(hates)+len(meh) == 0 {
		say([]string{
			"No genre stands out for me.",
			"No genre stands out: I rate all genres much alike.",
		}, "even")
	}

	// Eras: the decade word is bound to "suit" or "disappoint".
	best, worst := -1, -1
	for e, a := range us.Era {
		if a.Count < minTier {
			continue
		}
		if a.Value >= mildAff && (best < 0 || a.Value > us.Era[best].Value) {
			best = e
		}
		if a.Value <= -mildAff && (worst < 0 || a.Value < us.Era[worst].Value) {
			worst = e
		}
	}
	if best >= 0 {
		say([]string{"Films from %s suit me.", "Films from %s suit me best."}, "era+", eraPhrase(s.Eras[best]))
	}
	if worst >= 0 {
		say([]string{"Films from %s disappoint me.", "Films from %s disappoint me most."}, "era-", eraPhrase(s.Eras[worst]))
	}

	// Popularity and reputation, stated only where they matter.
	if hi, lo := us.Pop[TierHigh], us.Pop[TierLow]; hi.Count >= minTier && lo.Count >= minTier {
		switch d := hi.Value - lo.Value; {
		case d >= popGap:
			say([]string{"I prefer popular films.", "I prefer popular films to obscure ones."}, "pop")
		case d <= -popGap:
			say([]string{"I prefer lesser-known films.", "I prefer lesser-known films to big hits."}, "pop")
		}
	}
	if hi, lo := us.Quality[TierHigh], us.Quality[TierLow]; hi.Count >= minTier && lo.Count >= minTier && hi.Value-lo.Value >= qualGap {
		say([]string{"Acclaimed films earn my best ratings.", "Acclaimed films earn my highest ratings."}, "qual")
	}

	// What the user watches most (a share, not a liking).
	var top []scored
	for k, a := range us.Genre {
		if a.Count > 0 {
			top = append(top, scored{s.Genres[k], float64(a.Count)})
		}
	}
	slices.SortFunc(top, func(a, b scored) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	if len(top) > 0 {
		say([]string{"I mostly watch %s.", "I mostly watch %s films."}, "share", list(names(top[:min(2, len(top))])))
	}

	// Rating style.
	m, g := fmtStars(us.Mean), fmtStars(s.GlobalMean)
	switch off := us.Mean - s.GlobalMean; {
	case off > styleGap:
		say([]string{"I rate generously, %s stars on average against %s overall.", "I rate generously: %s stars on average, where most give %s."}, "style", m, g)
	case off < -styleGap:
		say([]string{"I rate strictly, %s stars on average against %s overall.", "I rate strictly: %s stars on average, where most give %s."}, "style", m, g)
	default:
		say([]string{"I rate like most viewers, %s stars on average against %s overall.", "I rate like most viewers: %s stars on average, where most give %s."}, "style", m, g)
	}
	return strings.Join(out, " ")
}

// reason writes the clause completing "I rated X r because …" for one
// training rating: the factors that agree with how the rating sits against
// the user's mean (the genres' affinities, the item's training average, its
// era and popularity tier), and at most one factor that goes against it.
func reason(s *Stats, us *UserStats, id string, item int32, itemID string, rating float64, minGenre int) string {
	dev := rating - us.Mean
	choose := func(variants []string, salt string) string {
		return variants[pick(len(variants), id, itemID, salt)]
	}
	sign := 0
	switch {
	case dev >= neutral:
		sign = 1
	case dev <= -neutral:
		sign = -1
	}

	var pro []string
	var con string
	// Genres.
	var posStrong, posMild, negStrong, negMild []string
	for _, g := range s.itemGenres[item] {
		a := us.Genre[g]
		if a.Count < minGenre {
			continue
		}
		name := s.Genres[g]
		switch {
		case a.Value >= strongAff:
			posStrong = append(posStrong, name)
		case a.Value >= mildAff:
			posMild = append(posMild, name)
		case a.Value <= -strongAff:
			negStrong = append(negStrong, name)
		case a.Value <= -mildAff:
			negMild = append(negMild, name)
		}
	}
	switch sign {
	case 1:
		if len(posStrong) > 0 {
			pro = append(pro, fmt.Sprintf(choose([]string{"I love %s films", "%s is my kind of film", "I am a big fan of %s"}, "g+"), list(posStrong)))
		}
		if len(posMild) > 0 {
			pro = append(pro, fmt.Sprintf(choose([]string{"I enjoy %s films", "I have a soft spot for %s"}, "g~"), list(posMild)))
		}
		if n := append(negStrong, negMild...); len(n) > 0 {
			con = fmt.Sprintf(choose([]string{"even though %s is not usually my thing", "although I do not usually care for %s"}, "gc"), list(n))
		}
	case -1:
		if len(negStrong) > 0 {
			pro = append(pro, fmt.Sprintf(choose([]string{"I dislike %s films", "%s films rarely work for me", "I have little patience for %s"}, "g-"), list(negStrong)))
		}
		if len(negMild) > 0 {
			pro = append(pro, fmt.Sprintf(choose([]string{"%s films tend to leave me cold", "I am lukewarm about %s"}, "g~"), list(negMild)))
		}
		if p := append(posStrong, posMild...); len(p) > 0 {
			con = fmt.Sprintf(choose([]string{"even though I usually enjoy %s", "although %s is normally a safe bet for me"}, "gc"), list(p))
		}
	}

	// The item's training-split average.
	if int(s.ItemCount[item]) >= s.opt.MinItemRatings {
		avg := s.ItemMean[item]
		q := avg - s.GlobalMean
		a := fmt.Sprintf("%.1f", avg)
		switch {
		case sign > 0 && q >= itemGap:
			pro = append(pro, fmt.Sprintf(choose([]string{
				"it is one of the better-rated films (%s on average)",
				"others rate it well too (%s on average)",
				"it has a fine reputation (%s on average)",
			}, "q"), a))
		case sign < 0 && q <= -itemGap:
			pro = append(pro, fmt.Sprintf(choose([]string{
				"it is poorly regarded in general (%s on average)",
				"others did not think much of it either (%s on average)",
			}, "q"), a))
		case sign < 0 && q >= itemGap && con == "":
			con = fmt.Sprintf(choose([]string{"even though most people rate it well (%s on average)", "although others rate it %s on average"}, "qc"), a)
		case sign > 0 && q <= -itemGap && con == "":
			con = fmt.Sprintf(choose([]string{"even though most people rate it poorly (%s on average)", "although others give it just %s on average"}, "qc"), a)
		}
	}

	// Era.
	if e := s.itemEra[item]; e >= 0 && us.Era[e].Count >= minTier {
		v := us.Era[e].Value
		switch {
		case sign > 0 && v >= mildAff:
			pro = append(pro, fmt.Sprintf(choose([]string{"I like films from %s", "films from %s suit me"}, "e"), eraPhrase(s.Eras[e])))
		case sign < 0 && v <= -mildAff:
			pro = append(pro, fmt.Sprintf(choose([]string{"films from %s rarely impress me", "I am less taken with films from %s"}, "e"), eraPhrase(s.Eras[e])))
		}
	}

	// Popularity.
	if t := s.itemPop[item]; t == TierHigh || t == TierLow {
		if a := us.Pop[t]; a.Count >= minTier {
			switch {
			case sign > 0 && a.Value >= mildAff && t == TierHigh:
				pro = append(pro, "I like a popular crowd-pleaser")
			case sign > 0 && a.Value >= mildAff && t == TierLow:
				pro = append(pro, "I enjoy finding lesser-known films")
			case sign < 0 && a.Value <= -mildAff && t == TierHigh:
				pro = append(pro, "big popular films often leave me underwhelmed")
			case sign < 0 && a.Value <= -mildAff && t == TierLow:
				pro = append(pro, "lesser-known films seldom win me over")
			}
		}
	}

	if len(pro) > 3 {
		pro = pro[:3]
	}
	var b strings.Builder
	switch {
	case sign == 0:
		b.WriteString(fmt.Sprintf(choose([]string{
			"it was about what I expect from a film, close to my usual %s",
			"it was decent, in line with my usual %s",
			"it was fine but nothing special for me, near my usual %s",
		}, "n"), fmtStars(us.Mean)))
		if int(s.ItemCount[item]) >= s.opt.MinItemRatings && math.Abs(s.ItemMean[item]-rating) < 0.5 {
			b.WriteString(fmt.Sprintf(choose([]string{
				", and others agree (%.1f on average)",
				", much as others rate it (%.1f on average)",
			}, "na"), s.ItemMean[item]))
		}
	case len(pro) == 0 && dev >= strongDev:
		b.WriteString(choose([]string{"it simply clicked with me", "it surprised me in a good way", "it was far better than I expected"}, "p0"))
	case len(pro) == 0 && sign > 0:
		b.WriteString(choose([]string{"I liked it a little more than most films", "it was a bit better than my usual", "it was pleasant enough to rate above my usual"}, "p0"))
	case len(pro) == 0 && dev <= -strongDev:
		b.WriteString(choose([]string{"it did not work for me", "it fell well short of what I hoped", "it disappointed me"}, "m0"))
	case len(pro) == 0:
		b.WriteString(choose([]string{"it was a little weaker than most films I see", "it left me slightly underwhelmed", "it was a bit below my usual"}, "m0"))
	default:
		b.WriteString(joinClauses(pro))
	}
	if con != "" && sign != 0 {
		b.WriteString(", ")
		b.WriteString(con)
	}
	return b.String()
}

func joinClauses(cs []string) string {
	switch len(cs) {
	case 1:
		return cs[0]
	case 2:
		return cs[0] + " and " + cs[1]
	}
	return strings.Join(cs[:len(cs)-1], ", ") + " and " + cs[len(cs)-1]
}
