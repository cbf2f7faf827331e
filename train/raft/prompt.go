package raft

import (
	"strconv"
	"strings"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/memory"
)

// PromptData is what a prompt template sees. Every number is computed from
// the training split only.
type PromptData struct {
	// Traits are the user's three traits (Ms).
	Traits memory.Traits
	// Profile is the free-text description of likes and dislikes (Ms).
	Profile string
	// UserMean is the user's training mean rating.
	UserMean float64
	// UseMemory says the prompt has a memory section (Ms + Ml); false for
	// the Ms-only ablation, where the section is left out entirely.
	UseMemory bool
	// Memories are the retrieved Ml entries, most similar first: at most
	// one for the paper's top-1 retrieval, none for a user's first rating
	// (the section then says there is no memory yet).
	Memories []MemoryData
	// Target is the item to rate.
	Target ItemData
	// Scale describes the rating scale for the TASK line.
	Scale ScaleData
	// Anchor is a collaborative estimate of the rating (a baseline's
	// prediction) that the agent may adjust; HasAnchor says there is one.
	Anchor    float64
	HasAnchor bool
	// KeyFacts asks the template to restate the most predictive numbers
	// (user mean, item average, remembered rating, anchor) next to the
	// answer slot. The built-in default variant honours it.
	KeyFacts bool
}

// ItemData describes an item as the MOVIE: line quotes it.
type ItemData struct {
	ID         string
	Title      string // display title ("The Matrix")
	Year       int    // 0 when unknown
	Genres     string // comma separated; empty when unknown
	Average    float64
	HasAverage bool // false for an item without training ratings
}

// MemoryData is one retrieved Ml entry.
type MemoryData struct {
	Item   ItemData
	Rating string // the remembered rating as scale text ("4", "3.5")
	Reason string
	Score  float64 // retrieval cosine similarity
}

// ScaleData describes a rating scale to the TASK line.
type ScaleData struct {
	// Paper is true for whole stars 1–5, where the paper's wording applies.
	Paper          bool
	Min, Max, Step string
	// Values are the answers allowed, lowest first; List joins them as
	// "0.5, 1, ..., 4.5 or 5".
	Values []string
	List   string
}

var (
	fiveStars = dataset.FiveStars
	halfStars = dataset.HalfStarsFive
)

func scaleData(s dataset.Scale) ScaleData {
	sd := ScaleData{
		Paper: s == dataset.FiveStars,
		Min:   FormatRating(s.Min), Max: FormatRating(s.Max), Step: FormatRating(s.Step),
	}
	for _, v := range s.Values() {
		sd.Values = append(sd.Values, FormatRating(v))
	}
	switch n := len(sd.Values); {
	case n == 0:
		sd.List = "a number from " + sd.Min + " to " + sd.Max
	case n == 1:
		sd.List = sd.Values[0]
	default:
		sd.List = strings.Join(sd.Values[:n-1], ", ") + " or " + sd.Values[n-1]
	}
	return sd
}

// FormatRating writes a rating as the answer text: "4", "3.5".
func FormatRating(r float64) string {
	return strconv.FormatFloat(r, 'f', -1, 64)
}

func itemData(d *dataset.Dataset, st *memory.Stats, i int32) ItemData {
	it := d.Items[i]
	id := ItemData{ID: it.ID, Title: it.DisplayTitle(), Year: it.Year, Genres: strings.Join(it.Genres, ", ")}
	if int(i) < len(st.ItemCount) && st.ItemCount[i] > 0 {
		id.Average, id.HasAverage = st.ItemMean[i], true
	}
	return id
}
