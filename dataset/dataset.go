// Package dataset holds user–item rating data in one compact, columnar
// in-memory form, and loads it from MovieLens releases, generic CSV files
// and the GroupLens download site.
//
// Users and items are addressed by dense int32 indices (0..NumUsers-1,
// 0..NumItems-1); their original identifiers, as written in the source files,
// are kept in Users[i].ID and Items[i].ID. Ratings are stored column by column
// so that MovieLens-25M (25 million rows) fits in about half a gigabyte.
package dataset

import (
	"fmt"
	"math"
)

// Scale describes the values a rating may take: Min, Min+Step, ..., Max.
// MovieLens 100K and 1M use whole stars 1–5; the latest/20M/25M releases use
// half stars 0.5–5.
type Scale struct {
	Min  float64 `json:"min" yaml:"min"`
	Max  float64 `json:"max" yaml:"max"`
	Step float64 `json:"step" yaml:"step"`
}

// Common scales.
var (
	FiveStars     = Scale{Min: 1, Max: 5, Step: 1}
	HalfStarsFive = Scale{Min: 0.5, Max: 5, Step: 0.5}
)

// Valid reports whether r is one of the scale's values.
func (s Scale) Valid(r float64) bool {
	if math.IsNaN(r) || r < s.Min-1e-9 || r > s.Max+1e-9 {
		return false
	}
	if s.Step <= 0 {
		return true
	}
	k := (r - s.Min) / s.Step
	return math.Abs(k-math.Round(k)) < 1e-6
}

// Values lists the scale's values in increasing order. A scale with Step <= 0
// is continuous and has no list.
func (s Scale) Values() []float64 {
	if s.Step <= 0 {
		return nil
	}
	n := int(math.Round((s.Max-s.Min)/s.Step)) + 1
	v := make([]float64, n)
	for i := range v {
		v[i] = s.Min + float64(i)*s.Step
	}
	return v
}

// Clamp limits r to [Min, Max].
func (s Scale) Clamp(r float64) float64 {
	return math.Min(s.Max, math.Max(s.Min, r))
}

// Snap returns the scale value nearest to r.
func (s Scale) Snap(r float64) float64 {
	r = s.Clamp(r)
	if s.Step <= 0 {
		return r
	}
	return s.Min + math.Round((r-s.Min)/s.Step)*s.Step
}

func (s Scale) String() string { return fmt.Sprintf("%g–%g step %g", s.Min, s.Max, s.Step) }

// Item is a rated thing (a movie) and the metadata its dataset gives.
type Item struct {
	ID     string   `json:"id"`               // identifier as in the source file
	Title  string   `json:"title"`            // without the trailing "(year)"
	Year   int      `json:"year,omitempty"`   // release year; 0 when unknown
	Genres []string `json:"genres,omitempty"` // e.g. ["Comedy", "Romance"]
}

// User is a rater and the demographics its dataset gives (empty when absent).
type User struct {
	ID         string `json:"id"`
	Gender     string `json:"gender,omitempty"`
	Age        int    `json:"age,omitempty"`
	Occupation string `json:"occupation,omitempty"`
	Zip        string `json:"zip,omitempty"`
}

// Ratings is the columnar table of rating events. Row r says that user
// User[r] gave item Item[r] the rating Value[r] at Unix time Time[r].
// Time is nil when the source has no timestamps.
type Ratings struct {
	User  []int32
	Item  []int32
	Value []float32
	Time  []int64
}

// Len returns the number of rows.
func (r *Ratings) Len() int { return len(r.User) }

// Dataset is a complete rating dataset: users, items and ratings.
type Dataset struct {
	Name    string // "ml-1m", "ml-100k", "synthetic", ...
	Scale   Scale
	Users   []User
	Items   []Item
	Ratings Ratings

	userIndex map[string]int32
	itemIndex map[string]int32
}

// HasTime reports whether the ratings carry timestamps.
func (d *Dataset) HasTime() bool { return d.Ratings.Time != nil }

// NumUsers returns the number of users.
func (d *Dataset) NumUsers() int { return len(d.Users) }

// NumItems returns the number of items.
func (d *Dataset) NumItems() int { return len(d.Items) }

// UserIndex returns the dense index of the user with source identifier id.
func (d *Dataset) UserIndex(id string) (int32, bool) {
	i, ok := d.userIndex[id]
	return i, ok
}

// ItemIndex returns the dense index of the item with source identifier id.
func (d *Dataset) ItemIndex(id string) (int32, bool) {
	i, ok := d.itemIndex[id]
	return i, ok
}

// AddUser appends a user and returns its index. Adding an ID twice returns
// the existing index and leaves the first record unchanged.
func (d *Dataset) AddUser(u User) int32 {
	if d.userIndex == nil {
		d.userIndex = make(map[string]int32)
	}
	if i, ok := d.userIndex[u.ID]; ok {
		return i
	}
	i := int32(len(d.Users))
	d.Users = append(d.Users, u)
	d.userIndex[u.ID] = i
	return i
}

// AddItem appends an item and returns its index. Adding an ID twice returns
// the existing index and leaves the first record unchanged.
func (d *Dataset) AddItem(it Item) int32 {
	if d.itemIndex == nil {
		d.itemIndex = make(map[string]int32)
	}
	if i, ok := d.itemIndex[it.ID]; ok {
		return i
	}
	i := int32(len(d.Items))
	d.Items = append(d.Items, it)
	d.itemIndex[it.ID] = i
	return i
}

// Append adds one rating row. t is ignored when the dataset has no time
// column; the first Append decides whether it has one (withTime).
func (d *Dataset) Append(user, item int32, value float32, t int64, withTime bool) {
	r := &d.Ratings
	if r.Len() == 0 && withTime && r.Time == nil {
		r.Time = make([]int64, 0, cap(r.User))
	}
	r.User = append(r.User, user)
	r.Item = append(r.Item, item)
	r.Value = append(r.Value, value)
	if r.Time != nil {
		r.Time = append(r.Time, t)
	}
}
