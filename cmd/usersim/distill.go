package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/memory"
)

// distillerPlugin is a distiller other than the built-in stats one, added
// by its own file of this package from an init function, e.g.
//
//	func init() { distillerPlugins["llm"] = distillerPlugin{addFlags: ..., make: ...} }
//
// so that `usersim distill --distiller NAME` can use it without this file
// changing.
type distillerPlugin struct {
	// addFlags registers the distiller's own flags on the distill command.
	addFlags func(fs *pflag.FlagSet)
	// make builds the distiller from those flags once they are parsed. name
	// is what the manifest records (e.g. "llm:MODEL"); options are recorded
	// as JSON so that a rerun with other options is detected (leave secrets
	// such as API keys out of them).
	make func(cmd *cobra.Command) (d memory.Distiller, name string, options any, err error)
}

// distillerPlugins are the registered extra distillers by --distiller name.
var distillerPlugins = map[string]distillerPlugin{}

// distillFlags are the flags of `usersim distill`.
type distillFlags struct {
	src         dataSource
	splitFile   string
	protocol    string
	seed        int64
	users       int
	minRatings  int
	maxRatings  int
	trainFrac   float64
	sampledOnly bool
	testFrac    float64
	workspace   string
	distiller   string
	allUsers    bool
	stats       memory.StatsOptions
	population  string
	force       bool
	asJSON      bool
	show        int
}

func newDistillCmd() *cobra.Command {
	var f distillFlags
	cmd := &cobra.Command{
		Use:   "distill",
		Short: "Distil each user's training history into a profile (Ms) and per-rating reasons (Ml)",
		Long: "distill reads the training rows of a split and writes, into the workspace,\n" +
			"memory/profiles.jsonl (one profile per user: traits, a description of likes and\n" +
			"dislikes, the numbers behind it), memory/interactions.jsonl (one first-person reason\n" +
			"per training rating, oldest first) and memory/manifest.json (the dataset fingerprint,\n" +
			"the split, the distiller and its options). Nothing from the test rows is read.\n\n" +
			"A rerun with the same inputs finds the manifest and does nothing (--force redoes it);\n" +
			"other inputs are detected and the memories rewritten.\n\n" +
			"The split is --split FILE, or made by the protocol flags and saved as\n" +
			"WORKSPACE/split/split.bin. The paper protocol profiles its sampled users, the random\n" +
			"protocol every user; --all-users profiles every user with training rows.\n\n" +
			"Distillers: stats (offline, deterministic: affinities for genres, decades,\n" +
			"popularity and reputation measured against the user's own mean)" + pluginNames() + ".",
		Example: "  usersim distill --workspace ws\n" +
			"  usersim distill --dataset ml-1m --data-dir ../shared/data/ml-1m --seed 1 --workspace ws-ml1m --show 2\n" +
			"  usersim distill --split ws/split/split.bin --workspace ws --revisions --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDistill(cmd, &f) },
	}
	fs := cmd.Flags()
	f.src.addFlags(fs)
	fs.StringVar(&f.splitFile, "split", "", "use the split saved in `FILE` (the protocol flags are then ignored)")
	fs.StringVar(&f.protocol, "protocol", split.ProtocolPaper, "split protocol when no --split: paper or random")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the split")
	fs.IntVar(&f.users, "users", 200, "paper protocol: users to sample (negative: every eligible user)")
	fs.IntVar(&f.minRatings, "min-ratings", 100, "paper protocol: fewest ratings of an eligible user")
	fs.IntVar(&f.maxRatings, "max-ratings", 200, "paper protocol: most ratings of an eligible user")
	fs.Float64Var(&f.trainFrac, "train-frac", 0.6, "paper protocol: share of each sampled user's ratings that train")
	fs.BoolVar(&f.sampledOnly, "sampled-only", false, "paper protocol: train on the sampled users' rows only")
	fs.Float64Var(&f.testFrac, "test-frac", 0.1, "random protocol: share of all ratings held out")
	fs.StringVar(&f.workspace, "workspace", "workspace", "experiment `DIR` the memories are written into")
	fs.StringVar(&f.distiller, "distiller", memory.StatsDistillerName, "distiller: stats"+pluginNames())
	fs.BoolVar(&f.allUsers, "all-users", false, "profile every user with training rows, not only the split's users")
	fs.StringVar(&f.population, "population", string(memory.PopulationProfiled),
		"users over whom the trait percentiles are computed: profiled (the users distilled) or all (every user with training rows)")
	fs.Float64Var(&f.stats.Shrink, "shrink", 2, "stats: pseudo-count pulling affinities toward 0")
	fs.IntVar(&f.stats.MinItemRatings, "min-item-ratings", 10, "stats: training ratings an item needs before its average is quoted")
	fs.IntVar(&f.stats.MinGenreRatings, "min-genre-ratings", 3, "stats: a user's ratings in a genre before it is talked about")
	fs.BoolVar(&f.stats.Revisions, "revisions", false, "stats: emulate batch-by-batch reading and keep each profile's revisions")
	fs.IntVar(&f.stats.BatchSize, "batch-size", 10, "stats: ratings per batch of the revisions")
	fs.BoolVar(&f.force, "force", false, "distil again even when the workspace is up to date")
	fs.BoolVar(&f.asJSON, "json", false, "print a JSON summary (manifest and samples) instead of text")
	fs.IntVar(&f.show, "show", 2, "print `N` sample profiles with three reasons each")
	for _, name := range sortedPlugins() {
		if p := distillerPlugins[name]; p.addFlags != nil {
			p.addFlags(fs)
		}
	}
	return cmd
}

func pluginNames() string {
	var b strings.Builder
	for _, n := range sortedPlugins() {
		b.WriteString(", " + n)
	}
	return b.String()
}

func sortedPlugins() []string {
	names := make([]string, 0, len(distillerPlugins))
	for n := range distillerPlugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// distillSummary is what --json prints.
type distillSummary struct {
	Workspace string            `json:"workspace"`
	Skipped   bool              `json:"skipped"` // up to date: nothing was distilled
	Seconds   float64           `json:"seconds"`
	Manifest  memory.Manifest   `json:"manifest"`
	Samples   []distillSample   `json:"samples,omitempty"`
	Cutoffs   *memory.Cutoffs   `json:"cutoffs,omitempty"`
	Split     string            `json:"split"`
	Files     map[string]string `json:"files"`
}

type distillSample struct {
	Profile memory.Profile `json:"profile"`
	Reasons []string       `json:"reasons"`
}

func runDistill(cmd *cobra.Command, f *distillFlags) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	if f.workspace == "" {
		return errors.New("--workspace DIR is required")
	}
	if f.show < 0 {
		return fmt.Errorf("--show %d: want 0 or more", f.show)
	}
	pop := memory.Population(f.population)
	if pop != memory.PopulationProfiled && pop != memory.PopulationAll {
		return fmt.Errorf("--population %q: want profiled or all", f.population)
	}
	f.stats.Population = pop

	fmt.Fprintf(stderr, "loading %s\n", f.src.Name)
	d, err := f.src.load(ctx)
	if err != nil {
		return err
	}
	s, splitPath, err := distillSplit(d, f)
	if err != nil {
		return err
	}

	// The distiller switch. Built in: stats. Others (helper J's "llm") are
	// registered in distillerPlugins by their own file.
	var (
		dist    memory.Distiller
		name    string
		options any
	)
	switch f.distiller {
	case memory.StatsDistillerName:
		dist, name = memory.StatsDistiller{Options: f.stats}, memory.StatsDistillerName
		options = struct {
			memory.StatsOptions
			Version int `json:"version"` // a new version redoes a cached distillation
		}{f.stats, memory.StatsVersion}
	default:
		p, ok := distillerPlugins[f.distiller]
		if !ok {
			return fmt.Errorf("--distiller %q: want stats%s", f.distiller, pluginNames())
		}
		if dist, name, options, err = p.make(cmd); err != nil {
			return err
		}
	}
	optJSON, err := json.Marshal(options)
	if err != nil {
		return fmt.Errorf("distiller options: %w", err)
	}

	users := s.Users
	if f.allUsers {
		users = usersWithRows(d, s.Train)
	}
	want := memory.Manifest{
		Dataset:   split.FingerprintOf(d),
		Split:     memory.SplitInfoOf(s),
		Distiller: name,
		Options:   optJSON,
		Users:     len(users),
		AllUsers:  f.allUsers,
	}
	sum := distillSummary{
		Workspace: f.workspace,
		Split:     splitPath,
		Files: map[string]string{
			"profiles":     filepath.Join(f.workspace, memory.Dir, memory.ProfilesFile),
			"interactions": filepath.Join(f.workspace, memory.Dir, memory.InteractionsFile),
			"manifest":     filepath.Join(f.workspace, memory.Dir, memory.ManifestFile),
		},
	}
	var (
		ps []memory.Profile
		ms []memory.Interaction
	)
	ok, why, err := memory.UpToDate(f.workspace, want)
	if err != nil {
		return err
	}
	if ok && !f.force {
		fmt.Fprintf(stderr, "%s is up to date (%s, %d users): nothing to do (--force redoes it)\n",
			filepath.Join(f.workspace, memory.Dir), name, len(users))
		sum.Skipped = true
		if ps, ms, err = memory.Load(f.workspace); err != nil {
			return err
		}
	} else {
		if !ok {
			fmt.Fprintf(stderr, "distilling %d users with %s (%s)\n", len(users), name, why)
		}
		start := time.Now()
		if ps, ms, err = dist.Distill(ctx, d, s, users); err != nil {
			return err
		}
		if err := memory.Save(f.workspace, want, ps, ms); err != nil {
			return err
		}
		sum.Seconds = time.Since(start).Seconds()
	}
	if sum.Manifest, err = memory.ReadManifest(f.workspace); err != nil {
		return err
	}
	if f.distiller == memory.StatsDistillerName {
		if st, err := memory.NewStats(d, s.Train, f.stats); err == nil {
			pu := users
			if pop == memory.PopulationAll {
				pu = st.UsersWithTraining()
			}
			c := st.Cutoffs(pop, pu)
			sum.Cutoffs = &c
		}
	}
	sum.Samples = sampleMemories(d, ps, ms, f.show)

	out := cmd.OutOrStdout()
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(sum)
	}
	return writeDistillText(out, d, s, &sum)
}

// distillSplit loads --split or makes the split the protocol flags ask for
// and saves it in the workspace. It returns the split's file.
func distillSplit(d *dataset.Dataset, f *distillFlags) (*split.Split, string, error) {
	if f.splitFile != "" {
		s, err := split.Load(f.splitFile, d)
		return s, f.splitFile, err
	}
	var (
		s   *split.Split
		err error
	)
	switch f.protocol {
	case split.ProtocolPaper:
		if f.users == 0 {
			return nil, "", errors.New("--users 0: sample at least one user (negative: every eligible user)")
		}
		s, err = split.Paper(d, split.PaperOptions{
			MinRatings: f.minRatings, MaxRatings: f.maxRatings, NumUsers: f.users,
			TrainFrac: f.trainFrac, Seed: f.seed, SampledOnly: f.sampledOnly,
		})
	case split.ProtocolRandom:
		s, err = split.Random(d, f.testFrac, f.seed)
	default:
		return nil, "", fmt.Errorf("--protocol %q: want paper or random", f.protocol)
	}
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(f.workspace, "split")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "split.bin")
	if err := split.Save(path, s, d); err != nil {
		return nil, "", err
	}
	return s, path, nil
}

// usersWithRows returns the users with at least one of rows, ascending.
func usersWithRows(d *dataset.Dataset, rows []int32) []int32 {
	has := make([]bool, d.NumUsers())
	for _, r := range rows {
		has[d.Ratings.User[r]] = true
	}
	var out []int32
	for u, h := range has {
		if h {
			out = append(out, int32(u))
		}
	}
	return out
}

// sampleMemories picks n profiles spread over the list and, for each, three
// reasons: its highest and lowest rating and one in between.
func sampleMemories(d *dataset.Dataset, ps []memory.Profile, ms []memory.Interaction, n int) []distillSample {
	if n <= 0 || len(ps) == 0 {
		return nil
	}
	n = min(n, len(ps))
	byUser := map[string][]memory.Interaction{}
	for _, m := range ms {
		byUser[m.User] = append(byUser[m.User], m)
	}
	var out []distillSample
	for k := range n {
		p := ps[k*len(ps)/n]
		mine := byUser[p.User]
		var picks []memory.Interaction
		if len(mine) > 0 {
			sorted := slices.Clone(mine)
			slices.SortStableFunc(sorted, func(a, b memory.Interaction) int {
				switch {
				case a.Rating > b.Rating:
					return -1
				case a.Rating < b.Rating:
					return 1
				}
				return 0
			})
			idx := []int{0, len(sorted) / 2, len(sorted) - 1}
			idx = slices.Compact(idx)
			for _, i := range idx {
				picks = append(picks, sorted[i])
			}
		}
		s := distillSample{Profile: p}
		s.Profile.Revisions = nil
		for _, m := range picks {
			s.Reasons = append(s.Reasons, m.Sentence(itemTitle(d, m.Item)))
		}
		out = append(out, s)
	}
	return out
}

// itemTitle is "Title (Year)" for a source item ID.
func itemTitle(d *dataset.Dataset, id string) string {
	i, ok := d.ItemIndex(id)
	if !ok {
		return id
	}
	it := d.Items[i]
	if it.Title == "" {
		return "item " + id
	}
	if it.Year > 0 {
		return fmt.Sprintf("%s (%d)", it.DisplayTitle(), it.Year)
	}
	return it.DisplayTitle()
}

func writeDistillText(w io.Writer, d *dataset.Dataset, s *split.Split, sum *distillSummary) error {
	m := sum.Manifest
	state := fmt.Sprintf("distilled in %.2fs", sum.Seconds)
	if sum.Skipped {
		state = "up to date, not redone"
	}
	fmt.Fprintf(w, "%s: %s\n", d.Name, s)
	fmt.Fprintf(w, "%d profiles and %d reasons by %s (%s)\n", m.Profiles, m.Interactions, m.Distiller, state)
	fmt.Fprintf(w, "  %s\n  %s\n  %s\n  split: %s\n", sum.Files["profiles"], sum.Files["interactions"], sum.Files["manifest"], sum.Split)
	if c := sum.Cutoffs; c != nil {
		fmt.Fprintf(w, "trait cut-offs over %d %s users: activity %.0f/%.0f ratings, conformity %.3f/%.3f, diversity %.0f/%.0f genres\n",
			c.Users, c.Population, c.Activity[0], c.Activity[1], c.Conformity[0], c.Conformity[1], c.Diversity[0], c.Diversity[1])
	}
	for _, smp := range sum.Samples {
		p := smp.Profile
		t := p.Traits
		fmt.Fprintf(w, "\nuser %s: %d ratings, mean %.2f; activity %s (%d), conformity %s (%.2f), diversity %s (%d)\n",
			p.User, p.NumRatings, p.MeanRating, t.ActivityLevel, t.Activity, t.ConformityLevel, t.Conformity, t.DiversityLevel, t.Diversity)
		fmt.Fprintf(w, "  %s\n", p.Description)
		for _, r := range smp.Reasons {
			fmt.Fprintf(w, "  - %s\n", r)
		}
	}
	return nil
}
