package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/internal/sharedtest"
)

var (
	worldOnce sync.Once
	world     *synth.World
	worldErr  error
)

// testWorld is the default synthetic world (4 personas, ~85k ratings).
func testWorld(t testing.TB) *synth.World {
	t.Helper()
	worldOnce.Do(func() { world, worldErr = synth.Generate(synth.DefaultConfig()) })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return world
}

func paperSplit(t testing.TB, d *dataset.Dataset) *split.Split {
	t.Helper()
	s, err := split.Paper(d, split.DefaultPaperOptions())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDistillInteractions(t *testing.T) {
	w := testWorld(t)
	d := w.Dataset
	s := paperSplit(t, d)
	ps, ms, err := DistillStats(context.Background(), d, s, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != len(s.Users) {
		t.Fatalf("%d profiles for %d users", len(ps), len(s.Users))
	}
	byUser := split.ByUser(d, s.Train)
	k := 0
	for j, u := range s.Users {
		p := ps[j]
		if p.User != d.Users[u].ID || p.Distiller != "stats" || p.NumRatings != len(byUser[u]) || p.Traits.Activity != p.NumRatings {
			t.Fatalf("profile %d: %+v", j, p)
		}
		want := map[string]float64{}
		for _, row := range byUser[u] {
			want[d.Items[d.Ratings.Item[row]].ID] = float64(d.Ratings.Value[row])
		}
		var sum float64
		for o := range len(byUser[u]) {
			m := ms[k]
			k++
			if m.User != p.User || m.Order != o || m.Reason == "" {
				t.Fatalf("user %s interaction %d: %+v", p.User, o, m)
			}
			if r, ok := want[m.Item]; !ok || r != m.Rating {
				t.Fatalf("user %s: interaction %+v is not a training rating", p.User, m)
			}
			delete(want, m.Item)
			if o > 0 && m.Time < ms[k-2].Time {
				t.Fatalf("user %s: interactions out of time order at %d", p.User, o)
			}
			sum += m.Rating
		}
		if len(want) != 0 {
			t.Fatalf("user %s: %d training ratings without an interaction", p.User, len(want))
		}
		if !near(sum/float64(p.NumRatings), p.MeanRating) {
			t.Fatalf("user %s: mean %v, interactions give %v", p.User, p.MeanRating, sum/float64(p.NumRatings))
		}
	}
	if k != len(ms) {
		t.Fatalf("%d interactions, %d expected", len(ms), k)
	}
}

func TestDistillDeterministic(t *testing.T) {
	w := testWorld(t)
	s := paperSplit(t, w.Dataset)
	opt := StatsOptions{Revisions: true}
	p1, m1, err := DistillStats(context.Background(), w.Dataset, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	old := runtime.GOMAXPROCS(1)
	p2, m2, err := DistillStats(context.Background(), w.Dataset, s, opt)
	runtime.GOMAXPROCS(old)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(m1, m2) {
		t.Fatal("two runs (GOMAXPROCS n and 1) differ")
	}
	// Phrasings vary across users: the rating-style sentence alone comes
	// in six wordings.
	forms := map[string]bool{}
	for _, p := range p1 {
		for _, sent := range sentenceEnd.Split(p.Description, -1) {
			if strings.HasPrefix(sent, "I rate ") {
				forms[regexp.MustCompile(`[0-9.]+`).ReplaceAllString(sent, "N")] = true
			}
		}
	}
	if len(forms) < 4 {
		t.Errorf("only %d wordings of the style sentence over %d profiles: %v", len(forms), len(p1), forms)
	}
}

func TestDistillCancelled(t *testing.T) {
	w := testWorld(t)
	s := paperSplit(t, w.Dataset)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := DistillStats(ctx, w.Dataset, s, StatsOptions{}); err == nil {
		t.Fatal("cancelled context: no error")
	}
}

func TestDistillErrors(t *testing.T) {
	d, train := tiny(t)
	s := &split.Split{Protocol: "paper", Users: []int32{0, 1, 2}, Train: train, Test: []int32{8}}
	if _, _, err := (StatsDistiller{}).Distill(context.Background(), d, s, []int32{7}); err == nil {
		t.Error("out-of-range user: no error")
	}
	d.AddUser(dataset.User{ID: "idle"})
	if _, _, err := (StatsDistiller{}).Distill(context.Background(), d, s, []int32{3}); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Errorf("user without training rows: %v", err)
	}
	if _, _, err := (StatsDistiller{Options: StatsOptions{Population: "some"}}).Distill(context.Background(), d, s, nil); err == nil {
		t.Error("unknown population: no error")
	}
}

var sentenceEnd = regexp.MustCompile(`\.( |$)`)

// TestDescriptionAgreesWithNumbers reads every description back and checks
// each claim against the profile's features.
func TestDescriptionAgreesWithNumbers(t *testing.T) {
	w := testWorld(t)
	s := paperSplit(t, w.Dataset)
	ps, _, err := DistillStats(context.Background(), w.Dataset, s, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkDescriptions(t, ps)
}

func checkDescriptions(t *testing.T, ps []Profile) {
	t.Helper()
	pos := []string{" fan"}
	neg := []string{"skeptic"}
	has := func(s string, words []string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(s, w) })
	}
	claims := 0
	for _, p := range ps {
		var genres []string
		for k := range p.Features {
			if g, ok := strings.CutPrefix(k, "genre:"); ok {
				genres = append(genres, g)
			}
		}
		for _, sent := range sentenceEnd.Split(p.Description, -1) {
			if sent == "" {
				continue
			}
			isPos, isNeg := has(sent, pos), has(sent, neg)
			for _, g := range genres {
				if !regexp.MustCompile(`(^|[ ,])` + regexp.QuoteMeta(g) + `( |,|$)`).MatchString(sent) {
					continue
				}
				a := p.Features["genre:"+g]
				switch {
				case strings.Contains(sent, "watch") || strings.Contains(sent, "viewing"):
					// a share, not a liking
				case isPos && isNeg:
					t.Errorf("user %s: mixed sentence %q", p.User, sent)
				case isPos:
					claims++
					if a < mildAff {
						t.Errorf("user %s: %q but genre:%s = %.3f", p.User, sent, g, a)
					}
				case isNeg:
					claims++
					if a > -mildAff {
						t.Errorf("user %s: %q but genre:%s = %.3f", p.User, sent, g, a)
					}
				default:
					t.Errorf("user %s: genre %s in a sentence of no known polarity: %q", p.User, g, sent)
				}
			}
			for k, v := range p.Features {
				era, ok := strings.CutPrefix(k, "era:")
				if !ok || !strings.Contains(sent, eraPhrase(era)) {
					continue
				}
				claims++
				if has(sent, []string{"suit me"}) && v < mildAff {
					t.Errorf("user %s: %q but %s = %.3f", p.User, sent, k, v)
				}
				if has(sent, []string{"disappoint"}) && v > -mildAff {
					t.Errorf("user %s: %q but %s = %.3f", p.User, sent, k, v)
				}
			}
			switch {
			case has(sent, []string{"generously"}) && p.Features["mean_offset"] <= styleGap,
				has(sent, []string{"strictly"}) && p.Features["mean_offset"] >= -styleGap,
				has(sent, []string{"like most viewers"}) && math.Abs(p.Features["mean_offset"]) > styleGap,
				has(sent, []string{"prefer popular"}) && p.Features["pop_gap"] < popGap,
				has(sent, []string{"prefer lesser-known"}) && p.Features["pop_gap"] > -popGap,
				has(sent, []string{"Acclaimed"}) && p.Features["quality_gap"] < qualGap:
				t.Errorf("user %s: %q contradicts the features", p.User, sent)
			}
		}
	}
	if claims < len(ps) {
		t.Errorf("only %d checked claims over %d profiles", claims, len(ps))
	}
}

// TestReasonsAgreeWithNumbers checks every reason's genre and reputation
// claims against the user's affinities, the rating and the item average.
func TestReasonsAgreeWithNumbers(t *testing.T) {
	w := testWorld(t)
	d := w.Dataset
	s := paperSplit(t, d)
	ps, ms, err := DistillStats(context.Background(), d, s, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkReasons(t, d, s, ps, ms)
}

// TestClaimsML1M runs both claim checks on MovieLens-1M's paper split.
func TestClaimsML1M(t *testing.T) {
	if testing.Short() {
		t.Skip("loads MovieLens-1M")
	}
	d, err := dataset.LoadML1M(sharedtest.Path(t, "data", "ml-1m"))
	if err != nil {
		t.Fatal(err)
	}
	s := paperSplit(t, d)
	ps, ms, err := DistillStats(context.Background(), d, s, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkDescriptions(t, ps)
	checkReasons(t, d, s, ps, ms)
}

func checkReasons(t *testing.T, d *dataset.Dataset, s *split.Split, ps []Profile, ms []Interaction) {
	t.Helper()
	st, _ := NewStats(d, s.Train, StatsOptions{})
	prof := map[string]Profile{}
	for _, p := range ps {
		prof[p.User] = p
	}
	avgRe := regexp.MustCompile(`(\d\.\d) on average|averaging (\d\.\d)|just (\d\.\d)|rate it (\d\.\d)`)
	kinds := map[string]bool{}
	for _, m := range ms {
		p := prof[m.User]
		dev := m.Rating - p.MeanRating
		item, _ := d.ItemIndex(m.Item)
		pro, con, _ := strings.Cut(strings.Replace(m.Reason, ", although ", ", even though ", 1), ", even though ")
		for _, g := range d.Items[item].Genres {
			a := p.Features["genre:"+g]
			if strings.Contains(pro, g) {
				kinds["genre"] = true
				if dev >= neutral && a < mildAff || dev <= -neutral && a > -mildAff || math.Abs(dev) < neutral {
					t.Errorf("user %s rated %s %v (mean %.2f): %q but genre:%s = %.2f", m.User, m.Item, m.Rating, p.MeanRating, m.Reason, g, a)
				}
			}
			if strings.Contains(con, g) {
				kinds["contrary"] = true
				if dev >= neutral && a > -mildAff || dev <= -neutral && a < mildAff {
					t.Errorf("user %s rated %s %v: %q but genre:%s = %.2f", m.User, m.Item, m.Rating, m.Reason, g, a)
				}
			}
		}
		if sm := avgRe.FindStringSubmatch(m.Reason); sm != nil {
			kinds["average"] = true
			want := fmt.Sprintf("%.1f", st.ItemMean[item])
			if !slices.Contains(sm[1:], want) {
				t.Errorf("%q quotes an average, the item's is %s", m.Reason, want)
			}
			q := st.ItemMean[item] - st.GlobalMean
			good := strings.Contains(m.Reason, "better-rated") || strings.Contains(m.Reason, "fine reputation") || strings.Contains(m.Reason, "rate it well")
			agree := strings.Contains(m.Reason, "others agree") || strings.Contains(m.Reason, "much as others")
			if agree {
				kinds["agree"] = true
				if math.Abs(st.ItemMean[item]-m.Rating) >= 0.5 || math.Abs(dev) >= neutral {
					t.Errorf("%q but item average %.2f, rating %v, mean %.2f", m.Reason, st.ItemMean[item], m.Rating, p.MeanRating)
				}
			} else if good && q < itemGap || !good && q > -itemGap && !strings.Contains(m.Reason, "rate it") {
				t.Errorf("%q but item average %.2f vs global %.2f", m.Reason, st.ItemMean[item], st.GlobalMean)
			}
		}
	}
	for _, k := range []string{"genre", "contrary", "average", "agree"} {
		if !kinds[k] {
			t.Errorf("no reason of kind %s checked", k)
		}
	}
}

// TestAffinitiesRecoverPersonas: on the synthetic world, the genres a
// persona loves get a positive mean affinity over its users, the genres it
// dislikes a negative one.
func TestAffinitiesRecoverPersonas(t *testing.T) {
	w := testWorld(t)
	s := paperSplit(t, w.Dataset)
	ps, _, err := DistillStats(context.Background(), w.Dataset, s, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	of := w.Truth.PersonaOf()
	for _, per := range w.Truth.Personas {
		sum := map[string]float64{}
		n := 0
		for j, u := range s.Users {
			if of[u] != per.ID {
				continue
			}
			n++
			for k, v := range ps[j].Features {
				sum[k] += v
			}
		}
		if n == 0 {
			continue
		}
		for _, g := range per.Loves {
			if sum["genre:"+g] <= 0 {
				t.Errorf("persona %s loves %s; mean affinity %.3f", per.Name, g, sum["genre:"+g]/float64(n))
			}
		}
		for _, g := range per.Dislikes {
			if sum["genre:"+g] >= 0 {
				t.Errorf("persona %s dislikes %s; mean affinity %.3f", per.Name, g, sum["genre:"+g]/float64(n))
			}
		}
	}
}

func TestRevisions(t *testing.T) {
	w := testWorld(t)
	s := paperSplit(t, w.Dataset)
	ps, _, err := DistillStats(context.Background(), w.Dataset, s, StatsOptions{Revisions: true, BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	realized := 0
	for _, p := range ps {
		want := (p.NumRatings + 9) / 10
		if len(p.Revisions) != want {
			t.Fatalf("user %s: %d revisions for %d ratings", p.User, len(p.Revisions), p.NumRatings)
		}
		for b, r := range p.Revisions {
			if r.Batch != b || r.Description == "" || r.Reflection == "" {
				t.Fatalf("user %s revision %d: %+v", p.User, b, r)
			}
			if strings.Contains(r.Reflection, "realized") {
				realized++
			}
		}
		if last := p.Revisions[len(p.Revisions)-1]; last.Description != p.Description {
			t.Fatalf("user %s: last revision differs from the profile", p.User)
		}
	}
	if realized == 0 {
		t.Error("no reflection ever reports a new liking")
	}
}

// TestNoLeakage plants a distinctive test rating — a sampled user's newest
// rating, of an item nobody else rates, with a genre, title and era of its
// own and an extreme value — and turns every other test rating upside
// down: no profile, memory, feature or statistic may change, and the
// planted words may appear nowhere.
func TestNoLeakage(t *testing.T) {
	w := testWorld(t)
	d := w.Dataset
	s := paperSplit(t, d)
	opt := StatsOptions{Revisions: true, Population: PopulationAll}
	p0, m0, err := DistillStats(context.Background(), d, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	st0, _ := NewStats(d, s.Train, opt)

	// A copy of d with the planted row and the test values flipped.
	d2 := &dataset.Dataset{Name: d.Name, Scale: d.Scale, Users: slices.Clone(d.Users), Items: slices.Clone(d.Items)}
	d2.Ratings = dataset.Ratings{
		User: slices.Clone(d.Ratings.User), Item: slices.Clone(d.Ratings.Item),
		Value: slices.Clone(d.Ratings.Value), Time: slices.Clone(d.Ratings.Time),
	}
	if err := d2.Reindex(); err != nil {
		t.Fatal(err)
	}
	for _, row := range s.Test {
		d2.Ratings.Value[row] = float32(6 - d2.Ratings.Value[row])
	}
	leak := d2.AddItem(dataset.Item{ID: "zyzzyva-9999", Title: "Zyzzyva Leakage", Year: 1901, Genres: []string{"Zyzzyvagenre"}})
	u := s.Users[0]
	d2.Append(u, leak, 1, slices.Max(d.Ratings.Time)+1, true)
	s2 := *s
	s2.Test = append(slices.Clone(s.Test), int32(d2.Ratings.Len()-1))
	if err := s2.Validate(d2); err != nil {
		t.Fatal(err)
	}

	p2, m2, err := DistillStats(context.Background(), d2, &s2, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p0, p2) {
		for j := range p0 {
			if !reflect.DeepEqual(p0[j], p2[j]) {
				t.Fatalf("profile of user %s changed with the test rows:\n%+v\n%+v", p0[j].User, p0[j], p2[j])
			}
		}
	}
	if !reflect.DeepEqual(m0, m2) {
		t.Fatal("interactions changed with the test rows")
	}
	st2, _ := NewStats(d2, s2.Train, opt)
	if st2.GlobalMean != st0.GlobalMean || !slices.Equal(st2.ItemMean[:d.NumItems()], st0.ItemMean) ||
		!slices.Equal(st2.UserMean, st0.UserMean) || !slices.Equal(st2.Genres, st0.Genres) || !slices.Equal(st2.Eras, st0.Eras) ||
		!slices.Equal(st2.Conformity, st0.Conformity) || !slices.Equal(st2.Diversity, st0.Diversity) {
		t.Fatal("statistics changed with the test rows")
	}
	if st2.ItemCount[leak] != 0 || st2.ItemMean[leak] != 0 || st2.ItemPopTier(leak) != -1 || st2.ItemEra(leak) != -1 {
		t.Fatal("the planted item has statistics")
	}
	e0, e2 := NewFeatureEmbedder(st0, FeatureOptions{}), NewFeatureEmbedder(st2, FeatureOptions{})
	for i := range int32(d.NumItems()) {
		if !slices.Equal(e0.Embed(i), e2.Embed(i)) {
			t.Fatalf("item %d's retrieval embedding changed with the test rows", i)
		}
	}
	blob, _ := json.Marshal([]any{p2, m2, st2.Genres, st2.Eras})
	for _, word := range []string{"Zyzzyva", "zyzzyva"} {
		if strings.Contains(string(blob), word) {
			t.Fatalf("%q leaked into the output", word)
		}
	}
}

// TestShrinkOption: the options reach the affinities through the distiller
// (defaults filled once, "none" kept as none).
func TestShrinkOption(t *testing.T) {
	d, train := tiny(t)
	s := &split.Split{Protocol: split.ProtocolPaper, Users: []int32{0, 1, 2}, Train: train, Test: []int32{8}}
	for _, c := range []struct {
		shrink, want float64
	}{{-1, 7.0 / 6}, {0, 7.0 / 3 / 4}, {2, 7.0 / 3 / 4}, {1, 7.0 / 3 / 3}} {
		ps, _, err := DistillStats(context.Background(), d, s, StatsOptions{Shrink: c.shrink})
		if err != nil {
			t.Fatal(err)
		}
		if got := ps[0].Features["genre:Action"]; !near(got, c.want) {
			t.Errorf("shrink %v: u0 Action affinity %v, want %v", c.shrink, got, c.want)
		}
	}
}
