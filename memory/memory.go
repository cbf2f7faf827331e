// Package memory holds what a user agent remembers about its user: the
// profile Ms (short-term memory: traits and a description of likes and
// dislikes, revised as the history is read) and the enriched interactions Ml
// (long-term memory: one first-person explanation per training rating).
//
// Distillers turn a dataset's training split into these memories; the store
// reads and writes them as JSON Lines in a workspace; retrieval finds the
// remembered interactions most similar to a target item.
package memory

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
	Reason string  `json:"reason"`
}
