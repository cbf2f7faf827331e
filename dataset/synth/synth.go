// Package synth generates synthetic rating worlds whose truth is known:
// latent personas with tastes over genres, release eras and popularity,
// per-user bias and activity, per-item quality and popularity, and Gaussian
// noise of a known size before rounding to whole stars.
//
// A world is usersim's embedded default dataset (DESIGN.md §4) and the test
// bed of every later stage: the truth tells how well personas are recovered
// and how close a predictor gets to the noise floor, the error of predicting
// every rating by its true expected value.
//
// The model. Item i has a release year y_i, one to three genres G_i, a
// log-normal popularity with standardised log z_i, and a quality q_i. User u
// belongs to persona p(u), has a bias b_u, a taste strength s_u and a
// deviation d_u from the persona's genre affinities a_p. Its latent taste for
// item i is
//
//	t_ui = s_u · ( mean_{g∈G_i} (a_p[g] + d_u[g]) + e_p·ŷ_i + c_p·z_i )
//
// where ŷ_i is the standardised release year, e_p the persona's era slope
// and c_p its popularity affinity. Users pick what to rate as real users
// do, favouring popular items, items they will like and good items: u rates
// n_u distinct items drawn without replacement with weights
// exp(PopularityPull·PopularitySigma·z_i + SelectTaste·t_ui + SelectQuality·q_i).
// The rating is
//
//	r_ui = Snap(GlobalMean + b_u + q_i + t_ui + ε),  ε ~ N(0, NoiseSigma²)
//
// where Snap rounds to the nearest whole star and clips to 1–5. Each user's
// ratings are spread over sessions between Config.StartUnix and EndUnix,
// strictly increasing in time; ratings.dat lists a user's rows in an order
// unrelated to time, as ml-1m does. There is no taste drift: a user's
// expected ratings do not depend on time.
package synth

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/usersim/usersim/dataset"
)

// TruthVersion is the version of the truth.json layout.
const TruthVersion = 1

// World is a generated dataset and the truth behind it.
type World struct {
	Dataset *dataset.Dataset
	Truth   Truth

	once       sync.Once
	itemGenres [][]int   // genre indices of each item
	yearZ      []float64 // standardised release year of each item
}

// Persona is a latent group of users who share tastes and demographics.
type Persona struct {
	ID          int     `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Weight      float64 `json:"weight"` // share of users
	// GenreAffinity is the stars each genre adds, aligned with Truth.Genres.
	GenreAffinity []float64 `json:"genre_affinity"`
	// EraSlope is the stars added per standard deviation of release year
	// (positive: prefers recent films).
	EraSlope float64 `json:"era_slope"`
	// PopularityAffinity is the stars added per standard deviation of log
	// popularity (positive: mainstream, negative: niche).
	PopularityAffinity float64  `json:"popularity_affinity"`
	Loves              []string `json:"loves"`
	Dislikes           []string `json:"dislikes"`
	FavouriteDecades   []int    `json:"favourite_decades,omitempty"`
	// Demographics the persona's users are drawn from.
	MaleShare   float64   `json:"male_share"`
	AgeWeights  []float64 `json:"age_weights"` // over the ml-1m age codes 1, 18, 25, 35, 45, 50, 56
	Occupations []int     `json:"occupations"` // ml-1m occupation codes drawn four times as often
	ZipRegion   int       `json:"zip_region"`  // first digit of most users' zip codes
}

// UserTruth is what the generator drew for one user.
type UserTruth struct {
	ID             string    `json:"id"`
	Persona        int       `json:"persona"`
	Bias           float64   `json:"bias"`
	TasteStrength  float64   `json:"taste_strength"`
	GenreDeviation []float64 `json:"genre_deviation"` // aligned with Truth.Genres
	NumRatings     int       `json:"num_ratings"`
}

// ItemTruth is what the generator drew for one item.
type ItemTruth struct {
	ID      string  `json:"id"`
	Quality float64 `json:"quality"` // stars added to every rating of the item
	// Popularity is the item's standardised log popularity: its chance of
	// being chosen is proportional to exp(PopularityPull·PopularitySigma·Popularity).
	Popularity float64 `json:"popularity"`
}

// NoiseFloor is the error of predicting each rating by its true expected
// value E[r|u,i] (over the noise, after rounding and clipping).
//
// RMSE and MAE are exact expectations over the noise for the rated pairs:
// RMSE = sqrt(mean Var[r|u,i]) and MAE = mean E|r − E[r|u,i]|, each computed
// from the normal distribution's probabilities of landing on each star.
// No predictor that knows only (u, i) has a lower expected squared error.
// (For absolute error the conditional median would do better than the
// mean; MAE here is that of the mean.) RealisedRMSE and RealisedMAE are the
// same errors on the ratings actually drawn.
type NoiseFloor struct {
	Rows         int     `json:"rows"`
	RMSE         float64 `json:"rmse"`
	MAE          float64 `json:"mae"`
	RealisedRMSE float64 `json:"realised_rmse"`
	RealisedMAE  float64 `json:"realised_mae"`
}

// Truth is everything the generator knows about a world. Users and Items
// are indexed like the dataset's dense indices.
type Truth struct {
	Version    int         `json:"version"`
	Config     Config      `json:"config"`
	Genres     []string    `json:"genres"`
	NoiseSigma float64     `json:"noise_sigma"` // same as Config.NoiseSigma
	YearMean   float64     `json:"year_mean"`   // for standardising release years
	YearSD     float64     `json:"year_sd"`
	Personas   []Persona   `json:"personas"`
	Users      []UserTruth `json:"users"`
	Items      []ItemTruth `json:"items"`
	NoiseFloor NoiseFloor  `json:"noise_floor"` // over all ratings
}

// PersonaOf returns the persona of every user, by dense user index.
func (t *Truth) PersonaOf() []int {
	p := make([]int, len(t.Users))
	for u := range t.Users {
		p[u] = t.Users[u].Persona
	}
	return p
}

// ml-1m's demographic codes and their frequencies among its 6,040 users.
var (
	ageCodes        = []int{1, 18, 25, 35, 45, 50, 56}
	ageFrequency    = []float64{222, 1103, 2096, 1193, 550, 496, 380}
	ageLabels       = []string{"Under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"}
	occupationNames = []string{
		"other", "academic/educator", "artist", "clerical/admin", "college/grad student",
		"customer service", "doctor/health care", "executive/managerial", "farmer",
		"homemaker", "K-12 student", "lawyer", "programmer", "retired", "sales/marketing",
		"scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
		"unemployed", "writer",
	}
	occupationFreq = []float64{711, 528, 267, 173, 759, 112, 236, 679, 17, 92, 195, 129, 388, 142, 302, 144, 241, 502, 70, 72, 281}
)

// Generate builds the world that cfg describes.
func Generate(cfg Config) (*World, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "synthetic"
	}
	w := &World{
		Dataset: &dataset.Dataset{Name: cfg.Name, Scale: dataset.FiveStars},
		Truth: Truth{
			Version:    TruthVersion,
			Config:     cfg,
			Genres:     slices.Clone(Genres),
			NoiseSigma: cfg.NoiseSigma,
		},
	}
	w.genItems()
	w.genPersonas()
	w.genUsers()
	w.genRatings()
	w.Truth.NoiseFloor = w.NoiseFloorOf(nil)
	return w, nil
}

func (w *World) genItems() {
	cfg := &w.Truth.Config
	r := newRNG(cfg.Seed, streamItems)
	titles := newTitler(newRNG(cfg.Seed, streamTitles))
	w.Truth.Items = make([]ItemTruth, cfg.NumItems)
	var sum, sum2 float64
	for i := range cfg.NumItems {
		year := cfg.YearMax - int(-math.Log(r.open01())*cfg.YearRecency)
		if year < cfg.YearMin {
			year = r.between(cfg.YearMin, cfg.YearMax)
		}
		k := 1 + r.pick([]float64{0.5, 0.35, 0.15})
		w8 := slices.Clone(genreFrequency)
		var gs []int
		for range k {
			g := r.pick(w8)
			w8[g] = 0
			gs = append(gs, g)
		}
		slices.Sort(gs)
		names := make([]string, len(gs))
		for j, g := range gs {
			names[j] = Genres[g]
		}
		z := r.norm()
		rho := cfg.QualityPopCorr
		q := cfg.QualitySigma * (rho*z + math.Sqrt(1-rho*rho)*r.norm())
		id := strconv.Itoa(i + 1)
		w.Dataset.AddItem(dataset.Item{ID: id, Title: titles.title(gs, year), Year: year, Genres: names})
		w.Truth.Items[i] = ItemTruth{ID: id, Quality: q, Popularity: z}
		sum += float64(year)
		sum2 += float64(year) * float64(year)
	}
	n := float64(cfg.NumItems)
	w.Truth.YearMean = sum / n
	w.Truth.YearSD = math.Sqrt(math.Max(sum2/n-w.Truth.YearMean*w.Truth.YearMean, 0))
	if w.Truth.YearSD < 1 {
		w.Truth.YearSD = 1
	}
}

// stratified returns k values spread evenly over [-1, 1] in random order,
// so that personas differ in every taste dimension.
func stratified(r *rng, k int) []float64 {
	v := make([]float64, k)
	if k == 1 {
		return v
	}
	for i := range v {
		v[i] = -1 + 2*float64(i)/float64(k-1)
	}
	r.shuffle(k, func(i, j int) { v[i], v[j] = v[j], v[i] })
	return v
}

func (w *World) genPersonas() {
	cfg := &w.Truth.Config
	r := newRNG(cfg.Seed, streamPersonas)
	k := cfg.NumPersonas
	weights := cfg.PersonaWeights
	if weights == nil {
		weights = make([]float64, k)
		for p := range weights {
			weights[p] = math.Pow(0.75, float64(p))
		}
	}
	var wsum float64
	for _, x := range weights {
		wsum += x
	}
	eras, pops := stratified(r, k), stratified(r, k)
	used := make([]bool, len(Genres))
	ps := make([]Persona, k)
	for p := range ps {
		aff := make([]float64, len(Genres))
		for g := range aff {
			aff[g] = 0.2 * r.norm()
		}
		// Three loved genres, disjoint across personas while genres last,
		// drawn in proportion to sqrt(frequency) so that personas differ on
		// genres that matter; two disliked genres among the rest.
		chosen := make([]bool, len(Genres))
		draw := func(avoidUsed bool) int {
			wt := make([]float64, len(Genres))
			for g := range wt {
				if !chosen[g] && !(avoidUsed && used[g]) {
					wt[g] = math.Sqrt(genreFrequency[g])
				}
			}
			if slices.Max(wt) == 0 {
				for g := range wt {
					if !chosen[g] {
						wt[g] = math.Sqrt(genreFrequency[g])
					}
				}
			}
			g := r.pick(wt)
			chosen[g] = true
			return g
		}
		var loves, dislikes []int
		for range 3 {
			g := draw(true)
			used[g] = true
			loves = append(loves, g)
			aff[g] = r.uniform(0.8, 1.2)
		}
		for range 2 {
			g := draw(false)
			dislikes = append(dislikes, g)
			aff[g] = -r.uniform(0.8, 1.2)
		}
		for g := range aff {
			aff[g] *= cfg.GenreStrength
		}
		era := cfg.EraStrength * (eras[p] + r.uniform(-0.1, 0.1))
		pop := cfg.PopularityTaste * (pops[p] + r.uniform(-0.1, 0.1))
		ages := make([]float64, len(ageCodes))
		for a := range ages {
			// Personas fond of older films are older.
			ages[a] = ageFrequency[a] * math.Exp(1.5*eras[p]*(3-float64(a))/3)
		}
		occ := r.perm(len(occupationFreq))[:3]
		slices.Sort(occ)
		ps[p] = Persona{
			ID:                 p,
			Weight:             weights[p] / wsum,
			GenreAffinity:      aff,
			EraSlope:           era,
			PopularityAffinity: pop,
			MaleShare:          r.uniform(0.5, 0.9),
			AgeWeights:         ages,
			Occupations:        occ,
			ZipRegion:          r.intn(10),
		}
		// Genres by affinity: the persona's strongest likes and dislikes.
		slices.SortFunc(loves, func(a, b int) int { return cmpDesc(aff[a], aff[b]) })
		slices.SortFunc(dislikes, func(a, b int) int { return cmpDesc(-aff[a], -aff[b]) })
		for _, g := range loves {
			ps[p].Loves = append(ps[p].Loves, Genres[g])
		}
		for _, g := range dislikes {
			ps[p].Dislikes = append(ps[p].Dislikes, Genres[g])
		}
	}
	w.Truth.Personas = ps
	for p := range ps {
		w.describe(&ps[p])
	}
}

func cmpDesc(a, b float64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// describe fills the persona's name, favourite decades and description.
func (w *World) describe(p *Persona) {
	cfg := &w.Truth.Config
	p.Name = strings.Join(p.Loves, "/") + " fans"
	var parts []string
	parts = append(parts, "loves "+joinAnd(p.Loves), "dislikes "+joinAnd(p.Dislikes))
	first, last := cfg.YearMin/10*10, cfg.YearMax/10*10
	strong := 0.33 * cfg.EraStrength
	switch {
	case p.EraSlope > strong:
		p.FavouriteDecades = []int{last}
		if last-10 >= first {
			p.FavouriteDecades = []int{last - 10, last}
		}
		parts = append(parts, "prefers recent films")
	case p.EraSlope < -strong:
		p.FavouriteDecades = []int{first}
		if first+10 <= last {
			p.FavouriteDecades = append(p.FavouriteDecades, first+10)
		}
		parts = append(parts, "prefers older films")
	default:
		parts = append(parts, "has no strong preference for any era")
	}
	if len(p.FavouriteDecades) > 0 {
		parts[len(parts)-1] += fmt.Sprintf(" (the %ds–%ds)", p.FavouriteDecades[0], p.FavouriteDecades[len(p.FavouriteDecades)-1])
	}
	strongPop := 0.33 * cfg.PopularityTaste
	switch {
	case p.PopularityAffinity > strongPop:
		parts = append(parts, "likes mainstream hits")
	case p.PopularityAffinity < -strongPop:
		parts = append(parts, "likes lesser-known films")
	}
	gender := "Mostly men"
	if p.MaleShare < 0.6 {
		gender = "Men and women alike"
	}
	// The median age group of the persona's users.
	var total, cum float64
	for _, x := range p.AgeWeights {
		total += x
	}
	top := 0
	for a, x := range p.AgeWeights {
		if cum += x; cum >= total/2 {
			top = a
			break
		}
	}
	desc := strings.Join(parts, "; ")
	p.Description = strings.ToUpper(desc[:1]) + desc[1:] + fmt.Sprintf(". %s, typically aged %s.", gender, strings.ToLower(ageLabels[top]))
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return "nothing in particular"
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func (w *World) genUsers() {
	cfg := &w.Truth.Config
	r := newRNG(cfg.Seed, streamUsers)
	pw := make([]float64, len(w.Truth.Personas))
	for p := range pw {
		pw[p] = w.Truth.Personas[p].Weight
	}
	personas := r.quota(cfg.NumUsers, pw)
	shares := make([]float64, len(cfg.Activity))
	for k, b := range cfg.Activity {
		shares[k] = b.Share
	}
	bands := r.quota(cfg.NumUsers, shares)
	w.Truth.Users = make([]UserTruth, cfg.NumUsers)
	for u := range cfg.NumUsers {
		p := &w.Truth.Personas[personas[u]]
		dev := make([]float64, len(Genres))
		for g := range dev {
			dev[g] = cfg.UserTasteSigma * r.norm()
		}
		band := cfg.Activity[bands[u]]
		id := strconv.Itoa(u + 1)
		w.Truth.Users[u] = UserTruth{
			ID:             id,
			Persona:        p.ID,
			Bias:           cfg.UserBiasSigma * r.norm(),
			TasteStrength:  math.Exp(cfg.TasteSpread * r.norm()),
			GenreDeviation: dev,
			NumRatings:     r.between(band.Min, band.Max),
		}
		gender := "F"
		if r.float64() < p.MaleShare {
			gender = "M"
		}
		age := r.pick(p.AgeWeights)
		ow := slices.Clone(occupationFreq)
		for _, o := range p.Occupations {
			ow[o] *= 4
		}
		occ := r.pick(ow)
		region := p.ZipRegion
		if r.float64() < 0.4 {
			region = r.intn(10)
		}
		zip := fmt.Sprintf("%d%04d", region, r.intn(10000))
		w.Dataset.AddUser(dataset.User{ID: id, Gender: gender, Age: ageCodes[age], AgeGroup: ageLabels[age], Occupation: occupationNames[occ], Zip: zip})
	}
}

func (w *World) genRatings() {
	w.prepare()
	nu := len(w.Truth.Users)
	type result struct {
		items  []int32
		values []float32
		times  []int64
	}
	res := make([]result, nu)
	// Each user draws from its own stream, so users can be generated in
	// parallel and the world still depends only on the seed.
	workers := min(runtime.GOMAXPROCS(0), 1+nu/64)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newUserScratch(w.Truth.Config.NumItems)
			for {
				u := int(next.Add(1) - 1)
				if u >= nu {
					return
				}
				res[u].items, res[u].values, res[u].times = w.genUser(u, s)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, u := range w.Truth.Users {
		total += u.NumRatings
	}
	d := w.Dataset
	d.Ratings = dataset.Ratings{
		User:  make([]int32, 0, total),
		Item:  make([]int32, 0, total),
		Value: make([]float32, 0, total),
		Time:  make([]int64, 0, total),
	}
	for u, r := range res {
		for k := range r.items {
			d.Append(int32(u), r.items[k], r.values[k], r.times[k], true)
		}
	}
}

// userScratch is one worker's reusable memory.
type userScratch struct {
	keys, sel, taste []float64
	genre            []float64
}

func newUserScratch(ni int) *userScratch {
	return &userScratch{keys: make([]float64, ni), sel: make([]float64, ni), taste: make([]float64, ni), genre: make([]float64, len(Genres))}
}

// genUser draws user u's ratings, listed in the order ratings.dat gives
// them (not time order).
func (w *World) genUser(u int, s *userScratch) ([]int32, []float32, []int64) {
	cfg := &w.Truth.Config
	ut := &w.Truth.Users[u]
	p := &w.Truth.Personas[ut.Persona]
	r := newRNG(cfg.Seed, streamUserBase+uint64(u))
	for g := range s.genre {
		s.genre[g] = p.GenreAffinity[g] + ut.GenreDeviation[g]
	}
	popPull := cfg.PopularityPull * cfg.PopularitySigma
	// Weighted sampling without replacement (Efraimidis–Spirakis): the n
	// smallest of E_i / w_i with E_i ~ Exp(1), in logs.
	for i := range s.keys {
		it := &w.Truth.Items[i]
		var genre float64
		if gs := w.itemGenres[i]; len(gs) > 0 {
			for _, g := range gs {
				genre += s.genre[g]
			}
			genre /= float64(len(gs))
		}
		// The same arithmetic as Taste, so Mean reproduces it exactly.
		t := ut.TasteStrength * (genre + p.EraSlope*w.yearZ[i] + p.PopularityAffinity*it.Popularity)
		s.taste[i] = t
		logw := popPull*it.Popularity + cfg.SelectTaste*t + cfg.SelectQuality*it.Quality
		s.keys[i] = math.Log(-math.Log(r.open01())) - logw
	}
	n := ut.NumRatings
	copy(s.sel, s.keys)
	thr := nthSmallest(s.sel, n-1)
	chosen := make([]int32, 0, n)
	for i, k := range s.keys {
		if k < thr {
			chosen = append(chosen, int32(i))
		}
	}
	for i, k := range s.keys {
		if len(chosen) == n {
			break
		}
		if k == thr {
			chosen = append(chosen, int32(i))
		}
	}
	r.shuffle(n, func(i, j int) { chosen[i], chosen[j] = chosen[j], chosen[i] }) // chosen is now in time order
	times := w.sessionTimes(r, n)
	values := make([]float32, n)
	base := cfg.GlobalMean + ut.Bias
	for k, i := range chosen {
		m := base + w.Truth.Items[i].Quality + s.taste[i]
		values[k] = float32(w.Dataset.Scale.Snap(m + cfg.NoiseSigma*r.norm()))
	}
	// ratings.dat lists a user's rows in no time order.
	order := r.perm(n)
	items, vals, ts := make([]int32, n), make([]float32, n), make([]int64, n)
	for j, k := range order {
		items[j], vals[j], ts[j] = chosen[k], values[k], times[k]
	}
	return items, vals, ts
}

// nthSmallest returns the k-th smallest value of a (0-based), reordering a.
// Quickselect with a median-of-three pivot; deterministic.
func nthSmallest(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// sessionTimes returns n strictly increasing Unix times: sessions of about
// SessionSize ratings a minute or so apart, separated by gaps of about
// SessionGapDays, placed at a random start within [StartUnix, EndUnix] (and
// compressed when a long history would not fit).
func (w *World) sessionTimes(r *rng, n int) []int64 {
	cfg := &w.Truth.Config
	gaps := make([]float64, n)
	var span float64
	for k := 1; k < n; k++ {
		if r.float64() < 1/cfg.SessionSize {
			gaps[k] = 86400 * cfg.SessionGapDays * -math.Log(r.open01())
		} else {
			gaps[k] = 60 * -math.Log(r.open01())
		}
		span += gaps[k]
	}
	avail := float64(cfg.EndUnix-cfg.StartUnix) - float64(n)
	scale := 1.0
	if span > avail {
		scale = math.Max(avail, 0) / span
		span = math.Max(avail, 0)
	}
	t := cfg.StartUnix + int64(r.float64()*(avail-span))
	times := make([]int64, n)
	times[0] = t
	for k := 1; k < n; k++ {
		t += 1 + int64(gaps[k]*scale)
		times[k] = t
	}
	return times
}
