// Package dataset holds user–item rating data in one compact, columnar
// in-memory form, and loads it from MovieLens releases, generic CSV files
// and the GroupLens download site.
//
// Users and items are addressed by dense int32 indices (0..NumUsers-1,
// 0..NumItems-1); their original identifiers, as written in the source files,
// are kept in Users[i].ID and Items[i].ID. Ratings are stored column by column
// so that MovieLens-25M (25 million rows) fits in about half a gigabyte.
//
// # Loading
//
// LoadML1M, LoadML100K and LoadMLLatest read the MovieLens layouts, LoadCSV
// any ratings table under a column mapping, and Load picks a MovieLens
// loader by release name. Fetch downloads and caches a release first.
//
// Bad input is never skipped: a malformed line, a rating off the scale, a
// rating of a movie (or user) missing from the metadata file, an empty or
// missing file all give an error, a *ParseError naming the file and line
// where there is one. Blank lines carry no data and are ignored.
//
// A (user, item) pair rated twice is an error in MovieLens files (the
// official releases have none, so a duplicate means a damaged or merged
// file); LoadCSV lets the mapping choose between that and keeping the last
// rating (DuplicatePolicy).
//
// Titles are kept as the files give them ("Matrix, The") without the
// trailing "(year)", which goes to Item.Year; Item.DisplayTitle gives "The
// Matrix". Metadata text is decoded thus: a file that is valid UTF-8 is UTF-8,
// anything else is ISO-8859-1 (as MovieLens 100K and 1M write), and
// double-encoded UTF-8 or a file mixing both encodings is an error.
package dataset

import (
	"errors"
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
	// AgeGroup is the age range a coded age stands for, e.g. "25-34" for
	// MovieLens-1M's code 25; empty when Age is an exact age (100K).
	AgeGroup string `json:"age_group,omitempty"`
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

// Index groups rating rows by user or by item in compressed sparse row form:
// the rows of group g are Rows[Offsets[g]:Offsets[g+1]], in increasing row
// order (that is, in file order).
type Index struct {
	Offsets []int32 // len = number of groups + 1
	Rows    []int32 // row numbers into Ratings
}

// Of returns the rows of group g. The slice aliases the index; do not modify.
func (ix *Index) Of(g int32) []int32 { return ix.Rows[ix.Offsets[g]:ix.Offsets[g+1]] }

// Len returns the number of rows of group g.
func (ix *Index) Len(g int32) int { return int(ix.Offsets[g+1] - ix.Offsets[g]) }

// Groups returns the number of groups.
func (ix *Index) Groups() int { return len(ix.Offsets) - 1 }

// UserRows builds the per-user index of rating rows. It takes time linear in
// the number of ratings; callers that need it often should keep the result.
func (d *Dataset) UserRows() *Index { return buildIndex(d.Ratings.User, len(d.Users)) }

// ItemRows builds the per-item index of rating rows, as UserRows does for users.
func (d *Dataset) ItemRows() *Index { return buildIndex(d.Ratings.Item, len(d.Items)) }

// UserCounts returns the number of ratings of each user.
func (d *Dataset) UserCounts() []int { return counts(d.Ratings.User, len(d.Users)) }

// ItemCounts returns the number of ratings of each item.
func (d *Dataset) ItemCounts() []int { return counts(d.Ratings.Item, len(d.Items)) }

// RatedItems returns the number of items with at least one rating.
func (d *Dataset) RatedItems() int {
	n := 0
	for _, c := range d.ItemCounts() {
		if c > 0 {
			n++
		}
	}
	return n
}

func counts(col []int32, n int) []int {
	c := make([]int, n)
	for _, g := range col {
		if g >= 0 && int(g) < n {
			c[g]++
		}
	}
	return c
}

// buildIndex is a counting sort of row numbers by group; out-of-range groups
// are left out (Validate reports them).
func buildIndex(col []int32, n int) *Index {
	off := make([]int32, n+1)
	for _, g := range col {
		if g >= 0 && int(g) < n {
			off[g+1]++
		}
	}
	for g := 0; g < n; g++ {
		off[g+1] += off[g]
	}
	rows := make([]int32, off[n])
	next := make([]int32, n)
	copy(next, off[:n])
	for r, g := range col {
		if g >= 0 && int(g) < n {
			rows[next[g]] = int32(r)
			next[g]++
		}
	}
	return &Index{Offsets: off, Rows: rows}
}

// Validate checks the dataset's internal consistency: column lengths agree,
// every rating row names an existing user and item and a value on the scale,
// and identifiers are unique. It returns all problems found, joined.
func (d *Dataset) Validate() error {
	var errs []error
	add := func(format string, a ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, a...))
		}
	}
	s := d.Scale
	if !(s.Max > s.Min) || s.Step < 0 || math.IsNaN(s.Min) || math.IsInf(s.Max, 0) || math.IsInf(s.Min, 0) {
		add("invalid scale %v", s)
	}
	r := &d.Ratings
	n := len(r.User)
	if len(r.Item) != n || len(r.Value) != n || (r.Time != nil && len(r.Time) != n) {
		add("rating columns differ in length: user %d, item %d, value %d, time %d", n, len(r.Item), len(r.Value), len(r.Time))
		return errors.Join(errs...)
	}
	for i := 0; i < n; i++ {
		if u := r.User[i]; u < 0 || int(u) >= len(d.Users) {
			add("rating row %d: user index %d out of range [0,%d)", i, u, len(d.Users))
		}
		if it := r.Item[i]; it < 0 || int(it) >= len(d.Items) {
			add("rating row %d: item index %d out of range [0,%d)", i, it, len(d.Items))
		}
		if v := float64(r.Value[i]); !s.Valid(v) {
			add("rating row %d: value %g not on scale %v", i, v, s)
		}
	}
	seen := make(map[string]bool, len(d.Users))
	for i, u := range d.Users {
		if seen[u.ID] {
			add("user %d: duplicate id %q", i, u.ID)
		}
		seen[u.ID] = true
		if j, ok := d.userIndex[u.ID]; d.userIndex != nil && (!ok || int(j) != i) {
			add("user %d: id %q not indexed", i, u.ID)
		}
	}
	clear(seen)
	for i, it := range d.Items {
		if seen[it.ID] {
			add("item %d: duplicate id %q", i, it.ID)
		}
		seen[it.ID] = true
		if j, ok := d.itemIndex[it.ID]; d.itemIndex != nil && (!ok || int(j) != i) {
			add("item %d: id %q not indexed", i, it.ID)
		}
	}
	return errors.Join(errs...)
}

// Reindex rebuilds the identifier indices behind UserIndex and ItemIndex from
// Users and Items. Call it after building or editing those slices directly
// rather than through AddUser and AddItem. It reports a duplicate identifier.
func (d *Dataset) Reindex() error {
	d.userIndex = make(map[string]int32, len(d.Users))
	for i, u := range d.Users {
		if _, dup := d.userIndex[u.ID]; dup {
			return fmt.Errorf("user %d: duplicate id %q", i, u.ID)
		}
		d.userIndex[u.ID] = int32(i)
	}
	d.itemIndex = make(map[string]int32, len(d.Items))
	for i, it := range d.Items {
		if _, dup := d.itemIndex[it.ID]; dup {
			return fmt.Errorf("item %d: duplicate id %q", i, it.ID)
		}
		d.itemIndex[it.ID] = int32(i)
	}
	return nil
}
