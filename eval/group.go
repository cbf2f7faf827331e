package eval

import (
	"cmp"
	"math"
	"slices"
)

// GroupMetric is one predictor's error over the test rows of one group of
// users (a persona cluster, say).
type GroupMetric struct {
	Group string `json:"group"`
	Users int    `json:"users"` // users of the group with test rows
	Rows  int    `json:"rows"`  // their test rows
	RMSE  Float  `json:"rmse"`  // over valid answers; null when none
	MAE   Float  `json:"mae"`
}

// PerGroup returns the error per group of users: groups maps a user to its
// group's label. Test rows of users without a group (absent from the map or
// labelled "") are left out. Groups come in natural order of their labels
// ("persona-2" before "persona-10"); nil when no test row has a group.
// users[k] is the user of test row k.
func PerGroup(users []int32, pred, truth []float64, groups map[int32]string) []GroupMetric {
	if len(groups) == 0 {
		return nil
	}
	type sums struct {
		users    map[int32]bool
		n, valid int
		sse, sae float64
	}
	acc := make(map[string]*sums)
	for k, u := range users {
		g := groups[u]
		if g == "" {
			continue
		}
		s := acc[g]
		if s == nil {
			s = &sums{users: make(map[int32]bool)}
			acc[g] = s
		}
		s.users[u] = true
		s.n++
		if p := pred[k]; IsValid(p) {
			d := p - truth[k]
			s.valid++
			s.sse += d * d
			s.sae += math.Abs(d)
		}
	}
	if len(acc) == 0 {
		return nil
	}
	out := make([]GroupMetric, 0, len(acc))
	for g, s := range acc {
		m := GroupMetric{Group: g, Users: len(s.users), Rows: s.n, RMSE: Float(math.NaN()), MAE: Float(math.NaN())}
		if s.valid > 0 {
			m.RMSE = Float(math.Sqrt(s.sse / float64(s.valid)))
			m.MAE = Float(s.sae / float64(s.valid))
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b GroupMetric) int { return naturalCompare(a.Group, b.Group) })
	return out
}

// naturalCompare orders strings as a person would: runs of ASCII digits
// compare by their numeric value ("persona-2" < "persona-10"), everything
// else byte by byte. Equal values with different spellings ("07" and "7")
// fall back to plain string order, so the order is total.
func naturalCompare(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			// Compare the runs without leading zeros: longer is larger,
			// equal lengths compare digit by digit.
			x, y := trimZeros(a[si:i]), trimZeros(b[sj:j])
			if c := cmp.Compare(len(x), len(y)); c != 0 {
				return c
			}
			if c := cmp.Compare(x, y); c != 0 {
				return c
			}
			continue
		}
		if c := cmp.Compare(a[i], b[j]); c != 0 {
			return c
		}
		i++
		j++
	}
	if c := cmp.Compare(len(a)-i, len(b)-j); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
