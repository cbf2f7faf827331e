package synth

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/usersim/usersim/dataset"
)

var (
	defaultOnce  sync.Once
	defaultWorld *World
	defaultErr   error
)

// defaultWorldT generates DefaultConfig's world once for all tests.
func defaultWorldT(t testing.TB) *World {
	t.Helper()
	defaultOnce.Do(func() { defaultWorld, defaultErr = Generate(DefaultConfig()) })
	if defaultErr != nil {
		t.Fatalf("Generate(DefaultConfig()): %v", defaultErr)
	}
	return defaultWorld
}

// ratingStats summarises a world's ratings.
type ratingStats struct {
	mean, globalRMSE float64
	hist             [5]float64 // shares of 1..5 stars
}

func statsOf(w *World) ratingStats {
	var s ratingStats
	r := &w.Dataset.Ratings
	n := float64(r.Len())
	for _, v := range r.Value {
		s.mean += float64(v)
		s.hist[int(v)-1]++
	}
	s.mean /= n
	for _, v := range r.Value {
		s.globalRMSE += (float64(v) - s.mean) * (float64(v) - s.mean)
	}
	s.globalRMSE = math.Sqrt(s.globalRMSE / n)
	for k := range s.hist {
		s.hist[k] /= n
	}
	return s
}

// biasBaseline fits r ≈ mu + b_u + b_i by alternating regularised least
// squares (as Surprise's BaselineOnly: reg_i 10, reg_u 15, 10 rounds) on the
// rows with train[row] set and returns the RMSE on the others and the RMSE
// of the training mean on the others.
func biasBaseline(w *World, train []bool) (bias, global float64) {
	d := w.Dataset
	r := &d.Ratings
	var mu, n float64
	for k, v := range r.Value {
		if train[k] {
			mu += float64(v)
			n++
		}
	}
	mu /= n
	bu := make([]float64, d.NumUsers())
	bi := make([]float64, d.NumItems())
	su := make([]float64, d.NumUsers())
	cu := make([]float64, d.NumUsers())
	si := make([]float64, d.NumItems())
	ci := make([]float64, d.NumItems())
	for range 10 {
		clear(si)
		clear(ci)
		for k, v := range r.Value {
			if train[k] {
				si[r.Item[k]] += float64(v) - mu - bu[r.User[k]]
				ci[r.Item[k]]++
			}
		}
		for i := range bi {
			bi[i] = si[i] / (ci[i] + 10)
		}
		clear(su)
		clear(cu)
		for k, v := range r.Value {
			if train[k] {
				su[r.User[k]] += float64(v) - mu - bi[r.Item[k]]
				cu[r.User[k]]++
			}
		}
		for u := range bu {
			bu[u] = su[u] / (cu[u] + 15)
		}
	}
	var se, sg, m float64
	for k, v := range r.Value {
		if !train[k] {
			e := float64(v) - (mu + bu[r.User[k]] + bi[r.Item[k]])
			se += e * e
			sg += (float64(v) - mu) * (float64(v) - mu)
			m++
		}
	}
	return math.Sqrt(se / m), math.Sqrt(sg / m)
}

// holdout marks about 90% of rows as training rows, deterministically.
func holdout(n int) []bool {
	r := newRNG(99, 7)
	train := make([]bool, n)
	for k := range train {
		train[k] = r.float64() < 0.9
	}
	return train
}

func TestDefaultWorldShape(t *testing.T) {
	w := defaultWorldT(t)
	cfg := DefaultConfig()
	d := w.Dataset
	if d.Name != "synthetic" || d.NumUsers() != cfg.NumUsers || d.NumItems() != cfg.NumItems {
		t.Fatalf("name %q, %d users, %d items; want synthetic, %d, %d", d.Name, d.NumUsers(), d.NumItems(), cfg.NumUsers, cfg.NumItems)
	}
	r := &d.Ratings
	if n := r.Len(); n < 75_000 || n > 100_000 {
		t.Errorf("%d ratings, want 75k–100k", n)
	}
	if !d.HasTime() || len(r.Time) != r.Len() || len(r.Item) != r.Len() || len(r.Value) != r.Len() {
		t.Fatalf("ragged columns: %d %d %d %d", len(r.User), len(r.Item), len(r.Value), len(r.Time))
	}
	perUser := make([][]int, d.NumUsers())
	for k := range r.Len() {
		if !d.Scale.Valid(float64(r.Value[k])) {
			t.Fatalf("row %d: rating %v off the scale", k, r.Value[k])
		}
		if r.Time[k] < cfg.StartUnix || r.Time[k] > cfg.EndUnix {
			t.Fatalf("row %d: time %d outside [%d, %d]", k, r.Time[k], cfg.StartUnix, cfg.EndUnix)
		}
		if k > 0 && r.User[k] < r.User[k-1] {
			t.Fatalf("row %d: rows are not grouped by user", k)
		}
		perUser[r.User[k]] = append(perUser[r.User[k]], k)
	}
	eligible, inTimeOrder := 0, 0
	for u, rows := range perUser {
		if len(rows) != w.Truth.Users[u].NumRatings {
			t.Fatalf("user %d: %d rows, truth says %d", u, len(rows), w.Truth.Users[u].NumRatings)
		}
		if len(rows) >= 100 && len(rows) <= 200 {
			eligible++
		}
		items := make(map[int32]bool)
		times := make(map[int64]bool)
		sorted := true
		for j, k := range rows {
			if items[r.Item[k]] || times[r.Time[k]] {
				t.Fatalf("user %d: item %d or time %d twice", u, r.Item[k], r.Time[k])
			}
			items[r.Item[k]], times[r.Time[k]] = true, true
			if j > 0 && r.Time[k] < r.Time[rows[j-1]] {
				sorted = false
			}
		}
		if sorted {
			inTimeOrder++
		}
	}
	if eligible < 300 {
		t.Errorf("%d users with 100–200 ratings, want >= 300 (the paper samples 200)", eligible)
	}
	if inTimeOrder > d.NumUsers()/10 {
		t.Errorf("%d users' rows are listed in time order; the file order should not give time away", inTimeOrder)
	}
	titles := make(map[string]bool)
	accented := 0
	for i, it := range d.Items {
		if it.Title == "" || it.Year < cfg.YearMin || it.Year > cfg.YearMax || len(it.Genres) == 0 || len(it.Genres) > 3 {
			t.Fatalf("item %d: %+v", i, it)
		}
		if titles[it.Title] {
			t.Fatalf("title %q twice", it.Title)
		}
		titles[it.Title] = true
		if strings.ContainsFunc(it.Title, func(c rune) bool { return c > 127 }) {
			accented++
		}
		if !slices.IsSortedFunc(it.Genres, func(a, b string) int {
			return slices.Index(Genres, a) - slices.Index(Genres, b)
		}) {
			t.Fatalf("item %d: genres %v not in ml-1m order", i, it.Genres)
		}
	}
	if accented == 0 {
		t.Errorf("no title has an accented letter; the Latin-1 path goes untested")
	}
	for _, u := range d.Users {
		if (u.Gender != "M" && u.Gender != "F") || u.AgeGroup == "" || !slices.Contains(occupationNames, u.Occupation) || len(u.Zip) != 5 {
			t.Fatalf("user %+v: incomplete demographics", u)
		}
	}
	s := statsOf(w)
	t.Logf("%d ratings, mean %.3f, sd %.3f, shares of 1–5 stars %.3f; noise floor RMSE %.3f MAE %.3f",
		r.Len(), s.mean, s.globalRMSE, s.hist, w.Truth.NoiseFloor.RMSE, w.Truth.NoiseFloor.MAE)
	if s.mean < 3.3 || s.mean > 3.9 || s.hist[3] < s.hist[0] || s.hist[0] > 0.1 {
		t.Errorf("rating distribution unlike MovieLens: mean %.3f, shares %.3f", s.mean, s.hist)
	}
}

// TestPersonasRecoverable checks that each persona's taste shows in its
// users' ratings: a user's rating residuals per genre point to its own
// persona's genre affinities far more often than chance.
func TestPersonasRecoverable(t *testing.T) {
	w := defaultWorldT(t)
	d := w.Dataset
	r := &d.Ratings
	w.prepare()
	ng := len(Genres)
	userMean := make([]float64, d.NumUsers())
	count := make([]float64, d.NumUsers())
	for k := range r.Len() {
		userMean[r.User[k]] += float64(r.Value[k])
		count[r.User[k]]++
	}
	for u := range userMean {
		userMean[u] /= count[u]
	}
	sum := make([][]float64, d.NumUsers())
	cnt := make([][]float64, d.NumUsers())
	for u := range sum {
		sum[u], cnt[u] = make([]float64, ng), make([]float64, ng)
	}
	for k := range r.Len() {
		u := r.User[k]
		for _, g := range w.itemGenres[r.Item[k]] {
			sum[u][g] += float64(r.Value[k]) - userMean[u]
			cnt[u][g]++
		}
	}
	correct := 0
	lovedOverDisliked := 0
	for u := range sum {
		best, bestScore := -1, math.Inf(-1)
		for p := range w.Truth.Personas {
			var score float64
			for g := range ng {
				if cnt[u][g] > 0 {
					score += w.Truth.Personas[p].GenreAffinity[g] * sum[u][g] / (cnt[u][g] + 2)
				}
			}
			if score > bestScore {
				best, bestScore = p, score
			}
		}
		if best == w.Truth.Users[u].Persona {
			correct++
		}
		p := &w.Truth.Personas[w.Truth.Users[u].Persona]
		var loved, disliked, nl, nd float64
		for g := range ng {
			switch {
			case slices.Contains(p.Loves, Genres[g]):
				loved, nl = loved+sum[u][g], nl+cnt[u][g]
			case slices.Contains(p.Dislikes, Genres[g]):
				disliked, nd = disliked+sum[u][g], nd+cnt[u][g]
			}
		}
		if nl > 0 && nd > 0 && loved/nl > disliked/nd {
			lovedOverDisliked++
		}
	}
	acc := float64(correct) / float64(d.NumUsers())
	t.Logf("persona of %d/%d users recovered from genre residuals (%.1f%%); %d rate loved genres above disliked ones",
		correct, d.NumUsers(), 100*acc, lovedOverDisliked)
	if acc < 0.8 {
		t.Errorf("personas recovered for %.1f%% of users, want >= 80%% (chance is about 30%%)", 100*acc)
	}
	if lovedOverDisliked < d.NumUsers()*9/10 {
		t.Errorf("only %d of %d users rate their persona's loved genres above its disliked ones", lovedOverDisliked, d.NumUsers())
	}
	// Persona sizes follow the weights.
	sizes := make([]int, len(w.Truth.Personas))
	for _, u := range w.Truth.Users {
		sizes[u.Persona]++
	}
	for p, n := range sizes {
		want := w.Truth.Personas[p].Weight * float64(d.NumUsers())
		if math.Abs(float64(n)-want) > 1 {
			t.Errorf("persona %d has %d users, want %.1f", p, n, want)
		}
	}
}

func TestQualityShowsInItemMeans(t *testing.T) {
	w := defaultWorldT(t)
	d := w.Dataset
	r := &d.Ratings
	sum := make([]float64, d.NumItems())
	cnt := make([]float64, d.NumItems())
	for k := range r.Len() {
		sum[r.Item[k]] += float64(r.Value[k])
		cnt[r.Item[k]]++
	}
	var q, m, pop, c []float64
	for i := range sum {
		if cnt[i] >= 20 {
			q = append(q, w.Truth.Items[i].Quality)
			m = append(m, sum[i]/cnt[i])
		}
		pop = append(pop, w.Truth.Items[i].Popularity)
		c = append(c, cnt[i])
	}
	rq := corr(q, m)
	rp := corr(pop, c)
	t.Logf("corr(quality, item mean) = %.3f over %d items; corr(popularity, count) = %.3f", rq, len(q), rp)
	if rq < 0.5 {
		t.Errorf("item quality and item mean rating correlate %.3f, want >= 0.5", rq)
	}
	if rp < 0.5 {
		t.Errorf("item popularity and rating count correlate %.3f, want >= 0.5", rp)
	}
}

func corr(x, y []float64) float64 {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

// TestBaselineBetweenFloorAndMean checks the world's difficulty: a bias
// baseline beats the global mean clearly but stays well above the noise
// floor, leaving room for models that learn tastes.
func TestBaselineBetweenFloorAndMean(t *testing.T) {
	w := defaultWorldT(t)
	train := holdout(w.Dataset.Ratings.Len())
	var test []int32
	for k, tr := range train {
		if !tr {
			test = append(test, int32(k))
		}
	}
	floor := w.NoiseFloorOf(test)
	bias, global := biasBaseline(w, train)
	t.Logf("held-out RMSE: global mean %.3f, bias baseline %.3f, noise floor %.3f (realised %.3f)", global, bias, floor.RMSE, floor.RealisedRMSE)
	if !(bias < global-0.1) {
		t.Errorf("bias baseline %.3f does not beat the global mean %.3f by 0.1", bias, global)
	}
	if !(bias > floor.RMSE+0.08) {
		t.Errorf("bias baseline %.3f is within 0.08 of the noise floor %.3f: tastes add too little", bias, floor.RMSE)
	}
	if math.Abs(floor.RMSE-floor.RealisedRMSE) > 0.02 {
		t.Errorf("expected floor %.4f and realised %.4f differ", floor.RMSE, floor.RealisedRMSE)
	}
	// Predicting by the truth beats the bias baseline on the same rows.
	var se float64
	for _, k := range test {
		e := float64(w.Dataset.Ratings.Value[k]) - w.Expected(w.Dataset.Ratings.User[k], w.Dataset.Ratings.Item[k])
		se += e * e
	}
	if truth := math.Sqrt(se / float64(len(test))); truth > bias-0.05 {
		t.Errorf("predicting E[r|u,i] gives RMSE %.3f, not clearly below the bias baseline %.3f", truth, bias)
	}
}

func TestSnapMomentsMatchesMonteCarlo(t *testing.T) {
	vals := dataset.FiveStars.Values()
	r := newRNG(5, 5)
	for _, tc := range []struct{ m, sigma float64 }{
		{3.2, 0.8}, {0.3, 0.5}, {5.9, 1.2}, {4.5, 0.3}, {2.0, 2.5},
	} {
		mean, variance, mad := snapMoments(tc.m, tc.sigma, vals)
		const n = 200_000
		xs := make([]float64, n)
		var mcMean float64
		for k := range xs {
			xs[k] = dataset.FiveStars.Snap(tc.m + tc.sigma*r.norm())
			mcMean += xs[k]
		}
		mcMean /= n
		var mcVar, mcMad float64
		for _, x := range xs {
			mcVar += (x - mean) * (x - mean)
			mcMad += math.Abs(x - mean)
		}
		mcVar /= n
		mcMad /= n
		if math.Abs(mean-mcMean) > 0.01 || math.Abs(variance-mcVar) > 0.015 || math.Abs(mad-mcMad) > 0.01 {
			t.Errorf("m=%v sigma=%v: exact (%.4f, %.4f, %.4f), Monte Carlo (%.4f, %.4f, %.4f)",
				tc.m, tc.sigma, mean, variance, mad, mcMean, mcVar, mcMad)
		}
	}
	// Without noise the rating is certain.
	if mean, variance, mad := snapMoments(3.6, 0, vals); mean != 4 || variance != 0 || mad != 0 {
		t.Errorf("sigma 0: got (%v, %v, %v), want (4, 0, 0)", mean, variance, mad)
	}
}

func writeWorld(t *testing.T, w *World) string {
	t.Helper()
	dir := t.TempDir()
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

var worldFiles = []string{"movies.dat", "users.dat", "ratings.dat", TruthFile}

func smallConfig(seed int64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.NumUsers = 60
	cfg.NumItems = 300
	cfg.Activity = []ActivityBand{{Share: 1, Min: 10, Max: 150}}
	return cfg
}

func TestDeterminism(t *testing.T) {
	read := func(dir string) map[string][]byte {
		m := make(map[string][]byte)
		for _, f := range worldFiles {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			m[f] = b
		}
		return m
	}
	gen := func(seed int64) map[string][]byte {
		w, err := Generate(smallConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		return read(writeWorld(t, w))
	}
	a, b, c := gen(7), gen(7), gen(8)
	for _, f := range worldFiles {
		if !bytes.Equal(a[f], b[f]) {
			t.Errorf("%s differs between two worlds of seed 7", f)
		}
		if bytes.Equal(a[f], c[f]) {
			t.Errorf("%s is the same for seeds 7 and 8", f)
		}
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	w := defaultWorldT(t)
	dir := writeWorld(t, w)
	movies, err := os.ReadFile(filepath.Join(dir, "movies.dat"))
	if err != nil {
		t.Fatal(err)
	}
	if utf8.Valid(movies) {
		t.Errorf("movies.dat is valid UTF-8; ml-1m's is ISO-8859-1")
	}
	if !bytes.HasPrefix(movies, []byte("1::"+w.Dataset.Items[0].Title+" (")) {
		t.Errorf("movies.dat starts %q", movies[:40])
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dataset.Name != w.Dataset.Name || got.Dataset.Scale != w.Dataset.Scale {
		t.Errorf("name/scale %q %v, want %q %v", got.Dataset.Name, got.Dataset.Scale, w.Dataset.Name, w.Dataset.Scale)
	}
	if !reflect.DeepEqual(got.Dataset.Users, w.Dataset.Users) {
		t.Errorf("users differ after the round trip")
	}
	if !reflect.DeepEqual(got.Dataset.Items, w.Dataset.Items) {
		for i := range w.Dataset.Items {
			if !reflect.DeepEqual(got.Dataset.Items[i], w.Dataset.Items[i]) {
				t.Fatalf("item %d: got %+v, want %+v", i, got.Dataset.Items[i], w.Dataset.Items[i])
			}
		}
	}
	if !reflect.DeepEqual(got.Dataset.Ratings, w.Dataset.Ratings) {
		t.Errorf("ratings differ after the round trip")
	}
	if !reflect.DeepEqual(got.Truth, w.Truth) {
		t.Errorf("truth differs after the round trip")
	}
	for k := 0; k < w.Dataset.Ratings.Len(); k += 997 {
		u, i := w.Dataset.Ratings.User[k], w.Dataset.Ratings.Item[k]
		if a, b := w.Expected(u, i), got.Expected(u, i); a != b {
			t.Fatalf("row %d: E[r|u,i] %v before, %v after", k, a, b)
		}
	}
	if f := got.NoiseFloorOf(nil); f != w.Truth.NoiseFloor {
		t.Errorf("noise floor recomputed after loading %+v, stored %+v", f, w.Truth.NoiseFloor)
	}
}

func TestLoadErrors(t *testing.T) {
	w, err := Generate(smallConfig(3))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		break_ func(dir string) error
		want   string
	}{
		{"no truth", func(dir string) error { return os.Remove(filepath.Join(dir, TruthFile)) }, TruthFile},
		{"truth not json", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, TruthFile), []byte("{\"version\": 1,"), 0o644)
		}, TruthFile},
		{"truth of another world", func(dir string) error {
			other, err := Generate(DefaultConfig())
			if err != nil {
				return err
			}
			odir := t.TempDir()
			if err := other.Write(odir); err != nil {
				return err
			}
			b, err := os.ReadFile(filepath.Join(odir, TruthFile))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, TruthFile), b, 0o644)
		}, "truth has 600 users"},
		{"no ratings", func(dir string) error { return os.Remove(filepath.Join(dir, "ratings.dat")) }, "ratings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeWorld(t, w)
			if err := tc.break_(dir); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no users", func(c *Config) { c.NumUsers = 0 }, "num_users"},
		{"no personas", func(c *Config) { c.NumPersonas = 0 }, "num_personas"},
		{"weights", func(c *Config) { c.PersonaWeights = []float64{1, 2} }, "persona_weights"},
		{"years", func(c *Config) { c.YearMin, c.YearMax = 2000, 1990 }, "year_min"},
		{"negative noise", func(c *Config) { c.NoiseSigma = -1 }, "noise_sigma"},
		{"NaN strength", func(c *Config) { c.GenreStrength = math.NaN() }, "genre_strength"},
		{"band over items", func(c *Config) { c.NumItems = 100 }, "activity[2].max"},
		{"empty band", func(c *Config) { c.Activity = []ActivityBand{{Share: 1, Min: 5, Max: 4}} }, "activity[0]"},
		{"no bands", func(c *Config) { c.Activity = nil }, "activity"},
		{"time", func(c *Config) { c.EndUnix = c.StartUnix }, "start/end"},
		{"correlation", func(c *Config) { c.QualityPopCorr = 2 }, "quality_pop_corr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			_, err := Generate(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Generate: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("DefaultConfig is invalid: %v", err)
	}
}

func TestTinyWorlds(t *testing.T) {
	for _, tc := range []struct{ users, items, personas int }{
		{1, 1, 1}, {5, 3, 7}, {30, 40, 2},
	} {
		cfg := DefaultConfig()
		cfg.NumUsers, cfg.NumItems, cfg.NumPersonas = tc.users, tc.items, tc.personas
		cfg.Activity = []ActivityBand{{Share: 1, Min: 1, Max: tc.items}}
		w, err := Generate(cfg)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if w.Dataset.NumUsers() != tc.users || len(w.Truth.Personas) != tc.personas {
			t.Fatalf("%+v: %d users, %d personas", tc, w.Dataset.NumUsers(), len(w.Truth.Personas))
		}
		if _, err := Load(writeWorld(t, w)); err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
	}
}

func BenchmarkGenerateDefault(b *testing.B) {
	cfg := DefaultConfig()
	for b.Loop() {
		if _, err := Generate(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNthSmallest(t *testing.T) {
	r := newRNG(1, 1)
	for trial := range 300 {
		n := 1 + r.intn(60)
		a := make([]float64, n)
		for i := range a {
			a[i] = float64(r.intn(1 + trial%10)) // many ties when trial%10 is small
		}
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		k := r.intn(n)
		if got := nthSmallest(slices.Clone(a), k); got != sorted[k] {
			t.Fatalf("nthSmallest(%v, %d) = %v, want %v", a, k, got, sorted[k])
		}
	}
}

// TestParallelDeterminism checks that the world does not depend on how
// many goroutines generate it.
func TestParallelDeterminism(t *testing.T) {
	cfg := smallConfig(11)
	cfg.NumUsers = 300
	prev := runtime.GOMAXPROCS(1)
	one, err := Generate(cfg)
	runtime.GOMAXPROCS(4)
	four, err2 := Generate(cfg)
	runtime.GOMAXPROCS(prev)
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	if !reflect.DeepEqual(one.Dataset.Ratings, four.Dataset.Ratings) {
		t.Fatal("ratings differ between GOMAXPROCS 1 and 4")
	}
}

// TestMeanMatchesGeneration checks that Mean, used by the noise floor,
// reproduces the latent mean the generator drew ratings around: with no
// noise every rating is Snap(Mean).
func TestMeanMatchesGeneration(t *testing.T) {
	cfg := smallConfig(12)
	cfg.NoiseSigma = 0
	w, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &w.Dataset.Ratings
	for k := range r.Len() {
		if want := w.Dataset.Scale.Snap(w.Mean(r.User[k], r.Item[k])); float64(r.Value[k]) != want {
			t.Fatalf("row %d: rating %v, Snap(Mean) %v", k, r.Value[k], want)
		}
	}
	if w.Truth.NoiseFloor.RMSE != 0 || w.Truth.NoiseFloor.RealisedRMSE != 0 {
		t.Errorf("noise 0 gives floor %+v, want 0", w.Truth.NoiseFloor)
	}
}

// TestDemographicsFollowPersonas checks that users' demographics carry
// their persona's signature: its favoured occupations and zip region are
// more common among its users than among the others.
func TestDemographicsFollowPersonas(t *testing.T) {
	w := defaultWorldT(t)
	for p, ps := range w.Truth.Personas {
		var inOcc, inZip, outOcc, outZip, in, out float64
		for u, ut := range w.Truth.Users {
			us := w.Dataset.Users[u]
			occ := slices.Contains(ps.Occupations, slices.Index(occupationNames, us.Occupation))
			zip := us.Zip[0] == byte('0'+ps.ZipRegion)
			if ut.Persona == p {
				in++
				inOcc += b2f(occ)
				inZip += b2f(zip)
			} else {
				out++
				outOcc += b2f(occ)
				outZip += b2f(zip)
			}
		}
		t.Logf("persona %d: favoured occupations %.2f vs %.2f, zip region %.2f vs %.2f; %s",
			p, inOcc/in, outOcc/out, inZip/in, outZip/out, ps.Description)
		if inOcc/in < 1.5*outOcc/out || inZip/in < 1.5*outZip/out {
			t.Errorf("persona %d's demographics do not stand out", p)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
