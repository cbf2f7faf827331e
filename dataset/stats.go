package dataset

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Stats summarises a dataset.
type Stats struct {
	Name       string `json:"name"`
	Scale      Scale  `json:"scale"`
	Ratings    int    `json:"ratings"`
	Users      int    `json:"users"`       // listed
	Items      int    `json:"items"`       // listed
	RatedUsers int    `json:"rated_users"` // with at least one rating
	RatedItems int    `json:"rated_items"` // with at least one rating
	// Density is Ratings / (RatedUsers × RatedItems); Sparsity is 1 − Density.
	Density   float64    `json:"density"`
	Sparsity  float64    `json:"sparsity"`
	Mean      float64    `json:"mean"`
	Std       float64    `json:"std"`
	Histogram []Bin      `json:"histogram"`
	PerUser   Dist       `json:"per_user"` // ratings per user, over RatedUsers
	PerItem   Dist       `json:"per_item"` // ratings per item, over RatedItems
	HasTime   bool       `json:"has_time"`
	First     *time.Time `json:"first,omitempty"` // earliest rating
	Last      *time.Time `json:"last,omitempty"`  // latest rating
}

// Bin is one bar of the rating histogram: the ratings equal to Value (on a
// continuous scale, within half a bin width of it).
type Bin struct {
	Value float64 `json:"value"`
	Count int     `json:"count"`
	Share float64 `json:"share"`
}

// Dist summarises a count distribution.
type Dist struct {
	Min    int     `json:"min"`
	Median float64 `json:"median"`
	Mean   float64 `json:"mean"`
	Max    int     `json:"max"`
}

// ComputeStats summarises d.
func ComputeStats(d *Dataset) Stats {
	r := &d.Ratings
	s := Stats{Name: d.Name, Scale: d.Scale, Ratings: r.Len(), Users: len(d.Users), Items: len(d.Items), HasTime: d.HasTime()}
	var uc, ic []int
	s.PerUser, uc = dist(d.UserCounts())
	s.PerItem, ic = dist(d.ItemCounts())
	s.RatedUsers, s.RatedItems = len(uc), len(ic)
	if s.RatedUsers > 0 && s.RatedItems > 0 {
		s.Density = float64(s.Ratings) / (float64(s.RatedUsers) * float64(s.RatedItems))
		s.Sparsity = 1 - s.Density
	}
	var sum, sq float64
	for _, v := range r.Value {
		sum += float64(v)
	}
	if n := float64(r.Len()); n > 0 {
		s.Mean = sum / n
		for _, v := range r.Value {
			sq += (float64(v) - s.Mean) * (float64(v) - s.Mean)
		}
		s.Std = math.Sqrt(sq / n)
	}
	s.Histogram = histogram(d.Scale, r.Value)
	if s.HasTime && len(r.Time) > 0 {
		lo, hi := slices.Min(r.Time), slices.Max(r.Time)
		first, last := time.Unix(lo, 0).UTC(), time.Unix(hi, 0).UTC()
		s.First, s.Last = &first, &last
	}
	return s
}

// dist summarises the non-zero counts and returns them sorted.
func dist(counts []int) (Dist, []int) {
	nz := make([]int, 0, len(counts))
	total := 0
	for _, c := range counts {
		if c > 0 {
			nz = append(nz, c)
			total += c
		}
	}
	if len(nz) == 0 {
		return Dist{}, nz
	}
	slices.Sort(nz)
	n := len(nz)
	med := float64(nz[n/2])
	if n%2 == 0 {
		med = float64(nz[n/2-1]+nz[n/2]) / 2
	}
	return Dist{Min: nz[0], Median: med, Mean: float64(total) / float64(n), Max: nz[n-1]}, nz
}

// histogram counts ratings per scale value; a continuous scale gets ten
// equal bins.
func histogram(sc Scale, vals []float32) []Bin {
	values := sc.Values()
	step := sc.Step
	if values == nil {
		step = (sc.Max - sc.Min) / 10
		for i := range 10 {
			values = append(values, sc.Min+step*(float64(i)+0.5))
		}
	}
	bins := make([]Bin, len(values))
	for i, v := range values {
		bins[i].Value = v
	}
	if step <= 0 || len(bins) == 0 {
		return bins
	}
	for _, v := range vals {
		k := int(math.Round((float64(v) - values[0]) / step))
		k = max(0, min(k, len(bins)-1))
		bins[k].Count++
	}
	for i := range bins {
		if len(vals) > 0 {
			bins[i].Share = float64(bins[i].Count) / float64(len(vals))
		}
	}
	return bins
}

// WriteText writes the statistics as an aligned, human-readable table.
func (s Stats) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	p("dataset\t%s\n", s.Name)
	p("scale\t%v\n", s.Scale)
	p("ratings\t%s\n", thousands(s.Ratings))
	p("users\t%s (%s with ratings)\n", thousands(s.Users), thousands(s.RatedUsers))
	p("items\t%s (%s with ratings)\n", thousands(s.Items), thousands(s.RatedItems))
	p("sparsity\t%.4f%% (density %.4f%%)\n", 100*s.Sparsity, 100*s.Density)
	p("mean rating\t%.4f (std %.4f)\n", s.Mean, s.Std)
	p("ratings per user\tmin %d, median %g, mean %.1f, max %d\n", s.PerUser.Min, s.PerUser.Median, s.PerUser.Mean, s.PerUser.Max)
	p("ratings per item\tmin %d, median %g, mean %.1f, max %d\n", s.PerItem.Min, s.PerItem.Median, s.PerItem.Mean, s.PerItem.Max)
	if s.First != nil {
		p("time range\t%s to %s\n", s.First.Format(time.DateOnly), s.Last.Format(time.DateOnly))
	} else {
		p("time range\tno timestamps\n")
	}
	p("histogram\t\n")
	for _, b := range s.Histogram {
		bar := strings.Repeat("#", int(math.Round(b.Share*50)))
		p("  %g\t%11s  %5.1f%%  %s\n", b.Value, thousands(b.Count), 100*b.Share, bar)
	}
	return tw.Flush()
}

// thousands formats n with comma separators: 1000209 → "1,000,209".
func thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
