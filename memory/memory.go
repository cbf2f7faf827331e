// Package memory holds what a user agent remembers about its user: the
// profile Ms (short-term memory: traits and a description of likes and
// dislikes, revised as the history is read) and the enriched interactions Ml
// (long-term memory: one first-person explanation per training rating).
//
// Distillers turn a dataset's training split into these memories; the store
// reads and writes them as JSON Lines in a workspace; retrieval finds the
// remembered interactions most similar to a target item.
//
// # No leakage
//
// Everything here is computed from a split's training rows alone: item
// averages and counts, user means, the genre vocabulary, the popularity and
// quality tiers, the trait cut-offs, every affinity, description and reason.
// Changing, adding or removing test rows changes no output (a test checks
// this by planting a distinctive test rating).
//
// # The stats distiller
//
// DistillStats (or StatsDistiller) is offline and deterministic. A user's
// affinity for a group of items (a genre, a release decade, a popularity or
// quality tier) is the mean deviation of the user's ratings of those items
// from the user's own mean, shrunk toward zero by a pseudo-count
// (StatsOptions.Shrink). The description names the genres the user is a fan
// of (affinity >= 0.5, and "to a lesser degree" >= 0.2) or a skeptic of
// (<= -0.5, <= -0.2), the decades that suit or disappoint, a preference for
// popular or lesser-known films and for acclaimed ones where there is one,
// the genres watched most and the rating style; each sentence has one
// polarity and rests on the numbers in Profile.Features. The traits are in
// Profile.Traits and not restated. Phrasings vary by the user's taste,
// never across runs.
// With StatsOptions.Revisions it also emulates the paper's batch-by-batch
// reading: after each batch of 10 ratings in time order the description is
// rewritten from the ratings read so far and a reflection names the genres
// the batch revealed or undid ("However, I have realized that I also
// appreciate Horror.").
//
// A user's training history is read oldest first: by timestamp, ties by row;
// without timestamps (ml-1m's ratings_no_ts.dat) in the rows' file order.
//
// # Trait population
//
// The trait levels cut at percentiles of a population: by default the users
// being profiled (a paper split's 200 sampled users, so levels rank a user
// among its peers), or with PopulationAll every user with a training rating.
//
// # Retrieval
//
// A Retriever embeds the target item and a user's remembered items with an
// ItemEmbedder (built in: FeatureEmbedder, from genres, release year,
// popularity, training average and hashed title tf-idf) and returns the top
// k by cosine similarity, ties to the more recent memory; Before(order) and
// BeforeTime(t) keep only memories earlier than a position in the history
// or a time, as RAFT training examples need.
package memory

import (
	"context"
	"fmt"
	"strconv"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
)

// Distiller turns the training rows of a split into memories: one Profile
// per user in users (in that order) and the user's Interactions, grouped by
// user in the same order and oldest first within a user. users nil means
// s.Users. Only s.Train may be read; s.Test must not influence anything.
type Distiller interface {
	Distill(ctx context.Context, d *dataset.Dataset, s *split.Split, users []int32) ([]Profile, []Interaction, error)
}

// Level is a trait's bucket, cut at percentiles of the training population.
type Level string

// Trait levels.
const (
	Low    Level = "low"
	Medium Level = "medium"
	High   Level = "high"
)

// Traits are Agent4Rec's three behavioural traits of a user, each with its
// raw statistic and its level.
type Traits struct {
	// Activity: number of training ratings (cut at the 60th/90th percentiles).
	Activity      int   `json:"activity"`
	ActivityLevel Level `json:"activity_level"`
	// Conformity: mean squared deviation of the user's ratings from the item
	// averages of the training split (cut at the 25th/80th percentiles; a low
	// deviation means high conformity).
	Conformity      float64 `json:"conformity"`
	ConformityLevel Level   `json:"conformity_level"`
	// Diversity: number of genres covering 80% of the user's ratings
	// (cut at the 33rd/66th percentiles).
	Diversity      int   `json:"diversity"`
	DiversityLevel Level `json:"diversity_level"`
}

// Revision is one step of a profile's history: the description after reading
// a batch of interactions, and why it changed.
type Revision struct {
	Batch       int    `json:"batch"`       // 0-based batch index in time order
	Description string `json:"description"` // the profile text after this batch
	Reflection  string `json:"reflection,omitempty"`
}

// Profile is Ms, a user's short-term memory.
type Profile struct {
	User        string  `json:"user"` // source user ID (dataset.User.ID)
	Traits      Traits  `json:"traits"`
	Description string  `json:"description"` // free text: likes and dislikes
	MeanRating  float64 `json:"mean_rating"` // training-split mean of the user's ratings
	NumRatings  int     `json:"num_ratings"`
	// Features are named numbers behind the description (genre affinities,
	// era and popularity preferences, ...) for behavioural embedders.
	Features  map[string]float64 `json:"features,omitempty"`
	Revisions []Revision         `json:"revisions,omitempty"`
	Distiller string             `json:"distiller"` // "stats" or "llm:<model>"
}

// Interaction is one Ml entry: a remembered training rating and its
// first-person reason ("I rated X 4 because ...").
type Interaction struct {
	User   string  `json:"user"` // source user ID
	Item   string  `json:"item"` // source item ID (dataset.Item.ID)
	Rating float64 `json:"rating"`
	Time   int64   `json:"time,omitempty"` // Unix seconds; 0 when unknown
	Order  int     `json:"order"`          // position in the user's training history, oldest first
	// Reason is the first-person explanation that completes "I rated
	// {title} {rating} because …", without "because" and without a final
	// full stop: "I love Animation films and it has a fine reputation".
	Reason string `json:"reason"`
}

// Sentence writes the memory as the rating prompt quotes it:
// "I rated {title} {rating} because {reason}."
func (m Interaction) Sentence(title string) string {
	return fmt.Sprintf("I rated %s %s because %s.", title, strconv.FormatFloat(m.Rating, 'f', -1, 64), m.Reason)
}
