package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
)

// newEvalCmd builds `usersim eval` and its subcommands.
func newEvalCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate rating predictors: classic baselines, metrics and reports",
	}
	cmd.AddCommand(newEvalBaselinesCmd())
	return cmd
}

// evalBaselinesFlags are the flags of `usersim eval baselines`.
type evalBaselinesFlags struct {
	src         dataSource
	protocol    string
	users       int
	minRatings  int
	maxRatings  int
	trainFrac   float64
	sampledOnly bool
	testFrac    float64
	folds       int
	seed        int64
	splitFile   string
	saveSplit   string
	out         string
	asJSON      bool
	baselines   string
	bootstrap   int
	perUser     bool
	reference   string
	oracle      bool
}

func newEvalBaselinesCmd() *cobra.Command {
	var f evalBaselinesFlags
	cmd := &cobra.Command{
		Use:   "baselines",
		Short: "Train and score the classic baselines on a split; print a table, write results.json and report.md",
		Long: "baselines trains global/user/item means, the bias baseline, SVD, SVD++ and item-kNN\n" +
			"(Surprise's algorithms and defaults) on the training rows of a split and scores them on\n" +
			"its test rows: RMSE, MAE, URR, per-user errors, user-level bootstrap intervals and the\n" +
			"distance between predicted and true rating histograms.\n\n" +
			"Protocols: paper (sampled users with --min-ratings..--max-ratings ratings, per-user\n" +
			"temporal split; a seeded random per-user split when the data have no timestamps),\n" +
			"random (global random split, --test-frac held out), cv (--folds-fold cross-validation,\n" +
			"mean ± std across folds). --split FILE reuses a split saved by --save-split or\n" +
			"`usersim data split`, so every model sees the same rows.\n\n" +
			"Baselines: " + strings.Join(baseline.Names(), ", "),
		Example: "  usersim eval baselines\n" +
			"  usersim eval baselines --dataset ml-100k --data-dir ../shared/data/ml-100k --protocol cv\n" +
			"  usersim eval baselines --dataset ml-1m --data-dir ../shared/data/ml-1m --out results/\n" +
			"  usersim eval baselines --dataset ml-100k --protocol random --baselines bias,svd --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runEvalBaselines(cmd, &f) },
	}
	fs := cmd.Flags()
	f.src.addFlags(fs)
	fs.StringVar(&f.protocol, "protocol", "paper", "split protocol: paper, random or cv")
	fs.IntVar(&f.users, "users", 200, "paper protocol: users to sample (negative: every eligible user)")
	fs.IntVar(&f.minRatings, "min-ratings", 100, "paper protocol: fewest ratings of an eligible user")
	fs.IntVar(&f.maxRatings, "max-ratings", 200, "paper protocol: most ratings of an eligible user")
	fs.Float64Var(&f.trainFrac, "train-frac", 0.6, "paper protocol: share of each sampled user's ratings that train")
	fs.BoolVar(&f.sampledOnly, "sampled-only", false, "paper protocol: train on the sampled users' rows only")
	fs.Float64Var(&f.testFrac, "test-frac", 0.1, "random protocol: share of all ratings held out")
	fs.IntVar(&f.folds, "folds", 5, "cv protocol: number of folds")
	fs.Int64Var(&f.seed, "seed", 1, "seed of the split, the models and the bootstrap")
	fs.StringVar(&f.splitFile, "split", "", "reuse the split saved in `FILE` (the protocol flags are then ignored)")
	fs.StringVar(&f.saveSplit, "save-split", "", "save the split made to `FILE` (not with --protocol cv)")
	fs.StringVar(&f.out, "out", "", "write results.json and report.md into `DIR`")
	fs.BoolVar(&f.asJSON, "json", false, "print the results as JSON instead of a table")
	fs.StringVar(&f.baselines, "baselines", strings.Join(eval.DefaultBaselines, ","), "comma-separated `list` of baselines to run")
	fs.IntVar(&f.bootstrap, "bootstrap", 1000, "user-level bootstrap resamples for the confidence intervals (0: none)")
	fs.StringVar(&f.reference, "reference", "bias", "compare every baseline with this one (paired bootstrap); \"none\" for no comparison")
	fs.BoolVar(&f.oracle, "oracle", true, "synthetic data: add the oracle E[r|u,i], whose error is the world's noise floor")
	fs.BoolVar(&f.perUser, "per-user", false, "keep every user's RMSE and MAE in results.json")
	return cmd
}

func runEvalBaselines(cmd *cobra.Command, f *evalBaselinesFlags) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	protocol := strings.ToLower(f.protocol)
	if f.splitFile == "" && protocol != "paper" && protocol != "random" && protocol != "cv" {
		return fmt.Errorf("--protocol %q: want paper, random or cv", f.protocol)
	}
	if f.splitFile != "" && protocol == "cv" {
		return fmt.Errorf("--split and --protocol cv exclude each other: a saved split is one train/test split")
	}
	if f.saveSplit != "" && protocol == "cv" {
		return fmt.Errorf("--save-split cannot save the %d folds of --protocol cv", f.folds)
	}
	ps, err := makeBaselines(f.baselines, f.seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "loading %s\n", f.src.Name)
	var d *dataset.Dataset
	if f.src.Name == "synthetic" && f.oracle {
		// The world's truth gives the oracle; load it as loadData would.
		w, err := loadWorld(f.src.Dir)
		if err != nil {
			return err
		}
		d = w.Dataset
		ps = append(ps, baseline.NewOracle(w.Expected))
	} else if d, err = f.src.load(ctx); err != nil {
		return err
	}
	opt := eval.Options{Seed: f.seed, Bootstrap: f.bootstrap, PerUserRows: f.perUser, Progress: stderr, Reference: f.reference}
	if !slices.ContainsFunc(ps, func(p eval.Predictor) bool { return p.Name() == f.reference }) {
		opt.Reference = "none" // e.g. --baselines svd,svdpp without bias
	}
	if f.bootstrap == 0 {
		opt.Bootstrap = -1
	}
	attachEpochBars(ps, stderr)

	if protocol == "cv" && f.splitFile == "" {
		folds, err := split.KFold(d, f.folds, f.seed)
		if err != nil {
			return err
		}
		cv, err := eval.CrossValidate(ctx, d, folds, ps, opt)
		if err != nil {
			return err
		}
		return emit(cmd.OutOrStdout(), stderr, f, cv.WriteJSON, cv.WriteTable, cv.WriteFiles)
	}

	s, err := makeSplit(d, f, protocol)
	if err != nil {
		return err
	}
	if f.saveSplit != "" {
		if err := split.Save(f.saveSplit, s, d); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "split saved to %s\n", f.saveSplit)
	}
	res, err := eval.Evaluate(ctx, d, s, ps, opt)
	if err != nil {
		return err
	}
	return emit(cmd.OutOrStdout(), stderr, f, res.WriteJSON, res.WriteTable, res.WriteFiles)
}

// loadWorld reads the synthetic world written in dir, or generates the
// default world when dir is empty, keeping its truth.
func loadWorld(dir string) (*synth.World, error) {
	if dir != "" {
		return synth.Load(dir)
	}
	return synth.Generate(synth.DefaultConfig())
}

// makeSplit loads --split FILE or makes the split the protocol flags ask for.
func makeSplit(d *dataset.Dataset, f *evalBaselinesFlags, protocol string) (*split.Split, error) {
	if f.splitFile != "" {
		return split.Load(f.splitFile, d)
	}
	if protocol == "random" {
		return split.Random(d, f.testFrac, f.seed)
	}
	users := f.users
	if users == 0 {
		return nil, fmt.Errorf("--users 0: sample at least one user (negative: every eligible user)")
	}
	return split.Paper(d, split.PaperOptions{
		MinRatings: f.minRatings, MaxRatings: f.maxRatings, NumUsers: users,
		TrainFrac: f.trainFrac, Seed: f.seed, SampledOnly: f.sampledOnly,
	})
}

// makeBaselines builds the baselines named in a comma-separated list.
func makeBaselines(list string, seed int64) ([]eval.Predictor, error) {
	var ps []eval.Predictor
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		p, err := baseline.New(name, seed)
		if err != nil {
			return nil, fmt.Errorf("--baselines: %w", err)
		}
		if seen[p.Name()] {
			continue
		}
		seen[p.Name()] = true
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("--baselines %q names no baseline (known: %s)", list, strings.Join(baseline.Names(), ", "))
	}
	return ps, nil
}

// attachEpochBars shows a progress bar over the SGD epochs of SVD and SVD++
// when stderr is a terminal.
func attachEpochBars(ps []eval.Predictor, stderr io.Writer) {
	fd, ok := stderr.(interface{ Fd() uintptr })
	if !ok || !term.IsTerminal(int(fd.Fd())) {
		return
	}
	bar := func(name string, epochs int) func(int) {
		var b *progressbar.ProgressBar
		return func(e int) {
			if e == 1 || b == nil {
				b = progressbar.NewOptions(epochs, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription(name+" epochs"), progressbar.OptionShowCount(),
					progressbar.OptionClearOnFinish())
			}
			b.Set(e)
			if e == epochs {
				b.Finish()
				b = nil
			}
		}
	}
	for _, p := range ps {
		switch m := p.(type) {
		case *baseline.SVD:
			m.OnEpoch = bar(m.Name(), m.Epochs)
		case *baseline.SVDpp:
			m.OnEpoch = bar(m.Name(), m.Epochs)
		}
	}
}

// emit prints the results (table or JSON) and writes the files.
func emit(stdout, stderr io.Writer, f *evalBaselinesFlags, writeJSON, writeTable func(io.Writer) error, writeFiles func(string) error) error {
	if f.out != "" {
		if err := writeFiles(f.out); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s and %s\n", filepath.Join(f.out, "results.json"), filepath.Join(f.out, "report.md"))
	}
	if f.asJSON {
		return writeJSON(stdout)
	}
	return writeTable(stdout)
}
