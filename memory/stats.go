package memory

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
)

// Tiers of items by popularity and by quality, indices into Stats.PopTiers
// and Stats.QualityTiers.
const (
	TierLow  = 0
	TierMid  = 1
	TierHigh = 2
)

// PopTiers name the popularity tiers: the least-rated items that together
// hold a third of the training ratings, the middle third, and the most-rated
// third.
var PopTiers = [3]string{"lesser-known", "mid", "popular"}

// QualityTiers name the quality tiers: items by training-split average
// rating, cut so that each tier holds a third of the training ratings of
// items with at least StatsOptions.MinItemRatings ratings.
var QualityTiers = [3]string{"weaker", "middling", "top-rated"}

// Stats are the training split's statistics every distiller and embedder
// shares: item averages and counts, user means, the genre vocabulary, the
// items' eras and popularity/quality tiers, and each user's training history
// in time order. They are computed from the training rows alone: a test row
// changes nothing here.
type Stats struct {
	NumTrain   int     // training rows
	GlobalMean float64 // mean of the training ratings

	ItemMean  []float64 // per item; 0 when the item has no training rating
	ItemCount []int32   // training ratings per item
	UserMean  []float64 // per user; 0 when the user has no training rating
	UserCount []int32   // training ratings per user

	// Genres is the genre vocabulary: every genre of an item with at least
	// one training rating, sorted.
	Genres []string
	// Eras are decade labels ("pre-1950", "1950s", ...) of items with
	// training ratings, oldest first.
	Eras []string

	// Conformity is each user's mean squared deviation from the item
	// averages; Diversity the number of genres covering 80% of the user's
	// genre occurrences (Agent4Rec's definitions).
	Conformity []float64
	Diversity  []int32

	itemGenres [][]int16 // per item: indices into Genres
	itemEra    []int16   // per item: index into Eras, -1 unknown
	itemPop    []int8    // per item: popularity tier, -1 without training ratings
	itemQual   []int8    // per item: quality tier, -1 with too few ratings
	history    [][]int32 // per user: training rows, oldest first
	yearMean   float64   // over items with training ratings and a year
	yearSD     float64
	logCntMean float64 // of log(1+count) over items with training ratings
	logCntSD   float64
	d          *dataset.Dataset
	opt        StatsOptions
}

// StatsOptions tune the statistics. The zero value takes the defaults.
type StatsOptions struct {
	// Shrink is the pseudo-count that pulls an affinity toward 0: an
	// affinity is sum(r − mean_u) / (n + Shrink). Default 2; negative: none.
	Shrink float64 `json:"shrink"`
	// MinItemRatings is the fewest training ratings an item needs to get a
	// quality tier. Default 10.
	MinItemRatings int `json:"min_item_ratings"`
	// MinGenreRatings is the fewest of a user's ratings in a genre before
	// the description or a reason talks about it. Default 3.
	MinGenreRatings int `json:"min_genre_ratings"`
	// Population says over which users the trait cut-offs are computed.
	// Default PopulationProfiled.
	Population Population `json:"population"`
	// Revisions makes the stats distiller emulate the paper's batch-by-batch
	// reading: after each batch of BatchSize ratings in time order, the
	// profile is rewritten from the ratings read so far and the change
	// explained (Profile.Revisions).
	Revisions bool `json:"revisions,omitempty"`
	// BatchSize is the batch of the revisions; default 10.
	BatchSize int `json:"batch_size,omitempty"`
}

// shrink is the effective Shrink: 0 means the default 2, negative none.
func (o *StatsOptions) shrink() float64 {
	switch {
	case o.Shrink == 0:
		return 2
	case o.Shrink < 0:
		return 0
	}
	return o.Shrink
}

// fill sets the defaults of the zero fields (Shrink is read through
// shrink). It is idempotent.
func (o *StatsOptions) fill() {
	if o.MinGenreRatings <= 0 {
		o.MinGenreRatings = 3
	}
	if o.Population == "" {
		o.Population = PopulationProfiled
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 10
	}
	if o.MinItemRatings <= 0 {
		o.MinItemRatings = 10
	}
}

// NewStats computes the statistics of d's training rows train.
func NewStats(d *dataset.Dataset, train []int32, opt StatsOptions) (*Stats, error) {
	opt.fill()
	r := &d.Ratings
	n := r.Len()
	nu, ni := d.NumUsers(), d.NumItems()
	for k, row := range train {
		if row < 0 || int(row) >= n {
			return nil, fmt.Errorf("memory stats: training row %d (position %d) out of range [0, %d)", row, k, n)
		}
		if u, i := r.User[row], r.Item[row]; u < 0 || int(u) >= nu || i < 0 || int(i) >= ni {
			return nil, fmt.Errorf("memory stats: training row %d names user %d / item %d out of range", row, u, i)
		}
	}
	if len(train) == 0 {
		return nil, fmt.Errorf("memory stats: no training rows")
	}
	s := &Stats{
		NumTrain:  len(train),
		ItemMean:  make([]float64, ni),
		ItemCount: make([]int32, ni),
		UserMean:  make([]float64, nu),
		UserCount: make([]int32, nu),
		d:         d,
		opt:       opt,
	}
	var total float64
	for _, row := range train {
		v := float64(r.Value[row])
		u, i := r.User[row], r.Item[row]
		total += v
		s.ItemMean[i] += v
		s.ItemCount[i]++
		s.UserMean[u] += v
		s.UserCount[u]++
	}
	s.GlobalMean = total / float64(len(train))
	for i, c := range s.ItemCount {
		if c > 0 {
			s.ItemMean[i] /= float64(c)
		}
	}
	for u, c := range s.UserCount {
		if c > 0 {
			s.UserMean[u] /= float64(c)
		}
	}

	// Genre vocabulary and eras from items with training ratings only.
	gset := map[string]bool{}
	eset := map[int]bool{}
	var ysum, ysq, ny float64
	var lsum, lsq, nl float64
	for i, it := range d.Items {
		if s.ItemCount[i] == 0 {
			continue
		}
		for _, g := range it.Genres {
			gset[g] = true
		}
		if it.Year > 0 {
			eset[eraKey(it.Year)] = true
			y := float64(it.Year)
			ysum += y
			ysq += y * y
			ny++
		}
		l := math.Log1p(float64(s.ItemCount[i]))
		lsum += l
		lsq += l * l
		nl++
	}
	s.Genres = sortedKeys(gset)
	gidx := make(map[string]int16, len(s.Genres))
	for k, g := range s.Genres {
		gidx[g] = int16(k)
	}
	ekeys := sortedKeys(eset)
	eidx := make(map[int]int16, len(ekeys))
	for k, e := range ekeys {
		eidx[e] = int16(k)
		s.Eras = append(s.Eras, eraLabel(e))
	}
	s.yearMean, s.yearSD = meanSD(ysum, ysq, ny)
	s.logCntMean, s.logCntSD = meanSD(lsum, lsq, nl)

	s.itemGenres = make([][]int16, ni)
	s.itemEra = make([]int16, ni)
	for i, it := range d.Items {
		s.itemEra[i] = -1
		if s.ItemCount[i] == 0 {
			continue
		}
		for _, g := range it.Genres {
			if k, ok := gidx[g]; ok && !slices.Contains(s.itemGenres[i], k) {
				s.itemGenres[i] = append(s.itemGenres[i], k)
			}
		}
		if it.Year > 0 {
			s.itemEra[i] = eidx[eraKey(it.Year)]
		}
	}
	s.itemPop = s.tiers(func(i int) (float64, bool) { return float64(s.ItemCount[i]), s.ItemCount[i] > 0 })
	s.itemQual = s.tiers(func(i int) (float64, bool) {
		return s.ItemMean[i], int(s.ItemCount[i]) >= opt.MinItemRatings
	})

	// Histories in time order, conformity and diversity.
	s.history = split.ByUser(d, train)
	s.Conformity = make([]float64, nu)
	s.Diversity = make([]int32, nu)
	gcount := make([]int, len(s.Genres))
	for u, rows := range s.history {
		if len(rows) == 0 {
			continue
		}
		split.SortByTime(d, rows)
		var sq float64
		clear(gcount)
		for _, row := range rows {
			i := r.Item[row]
			dv := float64(r.Value[row]) - s.ItemMean[i]
			sq += dv * dv
			for _, g := range s.itemGenres[i] {
				gcount[g]++
			}
		}
		s.Conformity[u] = sq / float64(len(rows))
		s.Diversity[u] = int32(coverCount(gcount, 0.8))
	}
	return s, nil
}

// tiers cuts the items that key accepts into three tiers by key, each
// holding about a third of those items' training ratings.
func (s *Stats) tiers(key func(i int) (float64, bool)) []int8 {
	out := make([]int8, len(s.ItemCount))
	var items []int
	var total int64
	for i := range out {
		out[i] = -1
		if _, ok := key(i); ok {
			items = append(items, i)
			total += int64(s.ItemCount[i])
		}
	}
	slices.SortStableFunc(items, func(a, b int) int {
		ka, _ := key(a)
		kb, _ := key(b)
		return cmp.Compare(ka, kb)
	})
	var cum int64
	for k := 0; k < len(items); {
		// Items with equal keys share a tier: the third in which the
		// middle of their ratings falls.
		ka, _ := key(items[k])
		end, group := k, int64(0)
		for ; end < len(items); end++ {
			if kb, _ := key(items[end]); kb != ka {
				break
			}
			group += int64(s.ItemCount[items[end]])
		}
		tier := int8(min(2, (6*cum+3*group)/(2*max(total, 1))))
		for ; k < end; k++ {
			out[items[k]] = tier
		}
		cum += group
	}
	return out
}

// coverCount returns the fewest counts (largest first) whose sum reaches
// frac of the total; 0 when all are zero.
func coverCount(counts []int, frac float64) int {
	c := slices.Clone(counts)
	slices.SortFunc(c, func(a, b int) int { return cmp.Compare(b, a) })
	total := 0
	for _, v := range c {
		total += v
	}
	if total == 0 {
		return 0
	}
	need := frac * float64(total)
	sum := 0
	for k, v := range c {
		sum += v
		if float64(sum) >= need-1e-9 {
			return k + 1
		}
	}
	return len(c)
}

// History returns user u's training rows, oldest first (by time, ties by
// row; by row without timestamps). The slice aliases the statistics.
func (s *Stats) History(u int32) []int32 { return s.history[u] }

// ItemGenres returns the indices into Genres of item i's genres (only
// genres in the vocabulary).
func (s *Stats) ItemGenres(i int32) []int16 { return s.itemGenres[i] }

// ItemEra returns the index into Eras of item i's decade, -1 when unknown
// or when the item has no training rating.
func (s *Stats) ItemEra(i int32) int { return int(s.itemEra[i]) }

// ItemPopTier returns item i's popularity tier (TierLow..TierHigh), -1 when
// it has no training rating.
func (s *Stats) ItemPopTier(i int32) int { return int(s.itemPop[i]) }

// ItemQualityTier returns item i's quality tier, -1 when it has fewer than
// MinItemRatings training ratings.
func (s *Stats) ItemQualityTier(i int32) int { return int(s.itemQual[i]) }

// Options returns the options the statistics were computed with, defaults
// filled in.
func (s *Stats) Options() StatsOptions { return s.opt }

// Population says over which users the trait cut-offs are computed.
type Population string

const (
	// PopulationProfiled: the users whose profiles are built (a paper
	// split's sampled users). The levels then rank users among their peers.
	PopulationProfiled Population = "profiled"
	// PopulationAll: every user with a training rating.
	PopulationAll Population = "all"
)

// Cutoffs are the percentile cut-offs of the three traits over a
// population: activity at the 60th/90th, conformity (mean squared
// deviation) at the 25th/80th, diversity at the 33rd/66th percentile.
type Cutoffs struct {
	Population Population `json:"population"`
	Users      int        `json:"users"`
	Activity   [2]float64 `json:"activity"`
	Conformity [2]float64 `json:"conformity"`
	Diversity  [2]float64 `json:"diversity"`
}

// Cutoffs computes the trait cut-offs over users (those without training
// ratings are left out). Percentiles interpolate linearly between order
// statistics, as numpy's default does.
func (s *Stats) Cutoffs(pop Population, users []int32) Cutoffs {
	var act, conf, div []float64
	for _, u := range users {
		if s.UserCount[u] == 0 {
			continue
		}
		act = append(act, float64(s.UserCount[u]))
		conf = append(conf, s.Conformity[u])
		div = append(div, float64(s.Diversity[u]))
	}
	slices.Sort(act)
	slices.Sort(conf)
	slices.Sort(div)
	return Cutoffs{
		Population: pop,
		Users:      len(act),
		Activity:   [2]float64{percentile(act, 60), percentile(act, 90)},
		Conformity: [2]float64{percentile(conf, 25), percentile(conf, 80)},
		Diversity:  [2]float64{percentile(div, 33), percentile(div, 66)},
	}
}

// Traits returns user u's traits under the cut-offs c. A value at or below
// the lower cut-off is low, above the upper one high, medium between;
// conformity is reversed (a small deviation from the item averages is high
// conformity).
func (s *Stats) Traits(u int32, c Cutoffs) Traits {
	t := Traits{
		Activity:   int(s.UserCount[u]),
		Conformity: s.Conformity[u],
		Diversity:  int(s.Diversity[u]),
	}
	t.ActivityLevel = level(float64(t.Activity), c.Activity)
	t.DiversityLevel = level(float64(t.Diversity), c.Diversity)
	switch level(t.Conformity, c.Conformity) {
	case Low:
		t.ConformityLevel = High
	case High:
		t.ConformityLevel = Low
	default:
		t.ConformityLevel = Medium
	}
	return t
}

func level(v float64, cut [2]float64) Level {
	switch {
	case v <= cut[0]:
		return Low
	case v > cut[1]:
		return High
	}
	return Medium
}

// percentile of sorted values, linear interpolation; 0 when empty.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	f := pos - float64(lo)
	return sorted[lo] + f*(sorted[hi]-sorted[lo])
}

// Affinity is a user's liking of a group of items (a genre, an era, a
// tier): the shrunken mean deviation of the user's ratings of those items
// from the user's own mean, in stars, and how many ratings it rests on.
type Affinity struct {
	Value float64 `json:"value"`
	Count int     `json:"count"`
}

// UserStats are one user's training statistics.
type UserStats struct {
	User    int32
	Mean    float64
	Std     float64
	Count   int
	Genre   []Affinity // aligned with Stats.Genres
	Era     []Affinity // aligned with Stats.Eras
	Pop     [3]Affinity
	Quality [3]Affinity
}

// User computes user u's statistics over the first n rows of the user's
// history (all of it when n < 0 or beyond its length).
func (s *Stats) User(u int32, n int) UserStats {
	rows := s.history[u]
	if n >= 0 && n < len(rows) {
		rows = rows[:n]
	}
	r := &s.d.Ratings
	us := UserStats{
		User:  u,
		Count: len(rows),
		Genre: make([]Affinity, len(s.Genres)),
		Era:   make([]Affinity, len(s.Eras)),
	}
	if len(rows) == 0 {
		return us
	}
	var sum, sq float64
	for _, row := range rows {
		v := float64(r.Value[row])
		sum += v
		sq += v * v
	}
	us.Mean = sum / float64(len(rows))
	us.Std = math.Sqrt(max(0, sq/float64(len(rows))-us.Mean*us.Mean))
	add := func(a *Affinity, dv float64) {
		a.Value += dv
		a.Count++
	}
	for _, row := range rows {
		i := r.Item[row]
		dv := float64(r.Value[row]) - us.Mean
		for _, g := range s.itemGenres[i] {
			add(&us.Genre[g], dv)
		}
		if e := s.itemEra[i]; e >= 0 {
			add(&us.Era[e], dv)
		}
		if t := s.itemPop[i]; t >= 0 {
			add(&us.Pop[t], dv)
		}
		if t := s.itemQual[i]; t >= 0 {
			add(&us.Quality[t], dv)
		}
	}
	shrink := func(as []Affinity) {
		for k := range as {
			if as[k].Count > 0 {
				as[k].Value /= float64(as[k].Count) + s.opt.shrink()
			}
		}
	}
	shrink(us.Genre)
	shrink(us.Era)
	shrink(us.Pop[:])
	shrink(us.Quality[:])
	return us
}

// YearZ returns item i's release year standardised over the items with
// training ratings, 0 when unknown.
func (s *Stats) YearZ(i int32) float64 {
	y := s.d.Items[i].Year
	if y <= 0 || s.yearSD == 0 {
		return 0
	}
	return (float64(y) - s.yearMean) / s.yearSD
}

// PopZ returns item i's standardised log(1 + training count).
func (s *Stats) PopZ(i int32) float64 {
	if s.logCntSD == 0 {
		return 0
	}
	return (math.Log1p(float64(s.ItemCount[i])) - s.logCntMean) / s.logCntSD
}

func eraKey(year int) int {
	if year < 1950 {
		return 1940
	}
	return year / 10 * 10
}

func eraLabel(key int) string {
	if key <= 1940 {
		return "pre-1950"
	}
	return fmt.Sprintf("%ds", key)
}

func sortedKeys[K cmp.Ordered](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func meanSD(sum, sq, n float64) (float64, float64) {
	if n == 0 {
		return 0, 0
	}
	m := sum / n
	return m, math.Sqrt(max(0, sq/n-m*m))
}
