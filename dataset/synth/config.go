package synth

import (
	"errors"
	"fmt"
	"math"
)

// Genres are the 18 genres of MovieLens 1M, in the order movies.dat uses.
var Genres = []string{
	"Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
	"Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical",
	"Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
}

// genreFrequency is how many of ml-1m's 3,883 movies carry each genre; the
// generator draws item genres in these proportions.
var genreFrequency = []float64{
	503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106, 471, 276, 492, 143, 68,
}

// ActivityBand is a share of users and the range of their rating counts.
type ActivityBand struct {
	Share float64 `json:"share"` // relative share of users (the bands' shares are normalised)
	Min   int     `json:"min"`   // fewest ratings, inclusive
	Max   int     `json:"max"`   // most ratings, inclusive
}

// Config describes a synthetic world. Every field is part of the world's
// identity: the same Config gives byte-identical files.
type Config struct {
	Seed        int64  `json:"seed"`
	Name        string `json:"name"` // dataset name, "synthetic" by default
	NumUsers    int    `json:"num_users"`
	NumItems    int    `json:"num_items"`
	NumPersonas int    `json:"num_personas"`
	// PersonaWeights are the personas' relative sizes; nil gives sizes
	// proportional to 0.75^p (for 4 personas 37%, 28%, 21%, 15%), so that some
	// personas have little data, as in the paper.
	PersonaWeights []float64 `json:"persona_weights,omitempty"`

	// Items.
	YearMin         int     `json:"year_min"`         // earliest release year
	YearMax         int     `json:"year_max"`         // latest release year
	YearRecency     float64 `json:"year_recency"`     // mean years before YearMax (exponential); real catalogues are mostly recent
	PopularitySigma float64 `json:"popularity_sigma"` // sd of log popularity (log-normal popularity)
	QualitySigma    float64 `json:"quality_sigma"`    // sd of item quality (stars)
	QualityPopCorr  float64 `json:"quality_pop_corr"` // correlation of quality with log popularity

	// Users.
	Activity        []ActivityBand `json:"activity"`
	UserBiasSigma   float64        `json:"user_bias_sigma"`  // sd of user bias (stars)
	TasteSpread     float64        `json:"taste_spread"`     // sd of log of a user's taste strength (1 = the persona's)
	UserTasteSigma  float64        `json:"user_taste_sigma"` // sd of a user's own deviation from the persona's genre affinities
	GenreStrength   float64        `json:"genre_strength"`   // stars added by a loved genre (subtracted by a disliked one)
	EraStrength     float64        `json:"era_strength"`     // stars per sd of release year for the most era-minded persona
	PopularityTaste float64        `json:"popularity_taste"` // stars per sd of log popularity for the most mainstream persona
	GlobalMean      float64        `json:"global_mean"`      // latent global mean before noise and rounding
	NoiseSigma      float64        `json:"noise_sigma"`      // sd of the Gaussian noise added before rounding
	SelectTaste     float64        `json:"select_taste"`     // how strongly users pick items they will like (per star of taste)
	SelectQuality   float64        `json:"select_quality"`   // how strongly users pick good items (per star of quality)
	PopularityPull  float64        `json:"popularity_pull"`  // exponent on popularity in the choice of what to rate

	// Time.
	StartUnix      int64   `json:"start"`            // Unix time of the earliest possible rating
	EndUnix        int64   `json:"end"`              // Unix time of the latest possible rating
	SessionSize    float64 `json:"session_size"`     // mean ratings per session
	SessionGapDays float64 `json:"session_gap_days"` // mean days between sessions
}

// DefaultConfig is the world usersim uses when no dataset is given: 600
// users, 1,500 movies, 4 personas, about 85,000 ratings with timestamps.
//
// Sizing: the paper's protocol needs at least 200 users with 100–200 ratings;
// 60% of the users fall in that band (360 eligible), 20% are light raters
// (20–60), 10% moderate (60–100) and 10% heavy (200–500), so the sampled
// users' neighbours give the collaborative baselines real data. 85k ratings
// is a twelfth of ml-1m: every stage (distillation, a tiny base model's
// pretraining text, LoRA training on 200 users) stays within minutes on two
// cores. The density (about 9%) is twice ml-1m's.
func DefaultConfig() Config {
	return Config{
		Seed:        1,
		Name:        "synthetic",
		NumUsers:    600,
		NumItems:    1500,
		NumPersonas: 4,
		YearMin:     1930,
		YearMax:     2000,
		YearRecency: 12,

		PopularitySigma: 1.2,
		QualitySigma:    0.5,
		QualityPopCorr:  0.4,

		Activity: []ActivityBand{
			{Share: 0.2, Min: 20, Max: 60},
			{Share: 0.1, Min: 61, Max: 99},
			{Share: 0.6, Min: 100, Max: 200},
			{Share: 0.1, Min: 201, Max: 500},
		},
		UserBiasSigma:   0.45,
		TasteSpread:     0.3,
		UserTasteSigma:  0.25,
		GenreStrength:   0.9,
		EraStrength:     0.3,
		PopularityTaste: 0.25,
		GlobalMean:      3.0,
		NoiseSigma:      0.8,
		SelectTaste:     1,
		SelectQuality:   0.3,
		PopularityPull:  1,

		StartUnix:      956703932,  // 2000-04-25, ml-1m's first rating
		EndUnix:        1046454590, // 2003-02-28, ml-1m's last
		SessionSize:    25,
		SessionGapDays: 20,
	}
}

// Validate reports the first field that makes the configuration unusable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("synth config: %s: "+format, append([]any{field}, args...)...))
	}
	nonNeg := func(field string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			bad(field, "must be a finite number >= 0, got %v", v)
		}
	}
	if c.NumUsers < 1 {
		bad("num_users", "must be >= 1, got %d", c.NumUsers)
	}
	if c.NumItems < 1 {
		bad("num_items", "must be >= 1, got %d", c.NumItems)
	}
	if c.NumPersonas < 1 || c.NumPersonas > 64 {
		bad("num_personas", "must be in 1..64, got %d", c.NumPersonas)
	}
	if c.PersonaWeights != nil {
		if len(c.PersonaWeights) != c.NumPersonas {
			bad("persona_weights", "has %d entries for %d personas", len(c.PersonaWeights), c.NumPersonas)
		}
		var sum float64
		for _, w := range c.PersonaWeights {
			nonNeg("persona_weights", w)
			sum += w
		}
		if !(sum > 0) {
			bad("persona_weights", "must not all be zero")
		}
	}
	if c.YearMin < 1870 || c.YearMax > 2100 || c.YearMin > c.YearMax {
		bad("year_min/year_max", "need 1870 <= year_min <= year_max <= 2100, got %d..%d", c.YearMin, c.YearMax)
	}
	if !(c.YearRecency > 0) {
		bad("year_recency", "must be > 0, got %v", c.YearRecency)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"popularity_sigma", c.PopularitySigma}, {"quality_sigma", c.QualitySigma},
		{"user_bias_sigma", c.UserBiasSigma}, {"taste_spread", c.TasteSpread},
		{"user_taste_sigma", c.UserTasteSigma}, {"genre_strength", c.GenreStrength},
		{"era_strength", c.EraStrength}, {"popularity_taste", c.PopularityTaste},
		{"noise_sigma", c.NoiseSigma}, {"select_taste", c.SelectTaste},
		{"select_quality", c.SelectQuality}, {"popularity_pull", c.PopularityPull},
	} {
		nonNeg(f.name, f.v)
	}
	if !(c.QualityPopCorr >= -1 && c.QualityPopCorr <= 1) {
		bad("quality_pop_corr", "must be in [-1, 1], got %v", c.QualityPopCorr)
	}
	if math.IsNaN(c.GlobalMean) || c.GlobalMean < 1 || c.GlobalMean > 5 {
		bad("global_mean", "must be in [1, 5], got %v", c.GlobalMean)
	}
	if len(c.Activity) == 0 {
		bad("activity", "needs at least one band")
	}
	var share float64
	for k, b := range c.Activity {
		nonNeg(fmt.Sprintf("activity[%d].share", k), b.Share)
		share += b.Share
		if b.Min < 1 || b.Min > b.Max {
			bad(fmt.Sprintf("activity[%d]", k), "need 1 <= min <= max, got %d..%d", b.Min, b.Max)
		}
		if b.Max > c.NumItems && c.NumItems >= 1 {
			bad(fmt.Sprintf("activity[%d].max", k), "%d ratings exceed the %d items", b.Max, c.NumItems)
		}
	}
	if len(c.Activity) > 0 && !(share > 0) {
		bad("activity", "shares must not all be zero")
	}
	most := 0
	for _, b := range c.Activity {
		most = max(most, b.Max)
	}
	if c.StartUnix <= 0 || c.EndUnix-c.StartUnix < int64(2*most) {
		bad("start/end", "need 0 < start and at least two seconds per rating of the most active user between start and end, got %d..%d", c.StartUnix, c.EndUnix)
	}
	if !(c.SessionSize >= 1) {
		bad("session_size", "must be >= 1, got %v", c.SessionSize)
	}
	nonNeg("session_gap_days", c.SessionGapDays)
	return errors.Join(errs...)
}
