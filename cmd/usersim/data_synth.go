package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
)

// newDataSynthCmd builds `usersim data synth`: generate a synthetic world
// and write it in MovieLens-1M layout with its truth.
func newDataSynthCmd() *cobra.Command {
	var (
		out    string
		force  bool
		asJSON bool
	)
	cfg := synth.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "synth --out DIR",
		Short: "Generate a synthetic world with known personas and write it in MovieLens-1M layout",
		Long: "synth generates a rating world from a seed: latent personas with known tastes over\n" +
			"genres, release eras and popularity, per-user bias and activity, item quality, and\n" +
			"Gaussian noise of known size before rounding to 1–5 stars. It writes movies.dat\n" +
			"(ISO-8859-1), users.dat and ratings.dat exactly as MovieLens-1M does, plus truth.json\n" +
			"(each user's persona, the persona descriptions, biases, qualities and the noise floor).\n" +
			"Other commands read it with --dataset synthetic --data-dir DIR; without --data-dir they\n" +
			"generate the default world (these flags' defaults) in memory.",
		Example: "  usersim data synth --out world\n" +
			"  usersim data synth --out big --seed 7 --users 6000 --items 3700 --personas 6\n" +
			"  usersim data stats --dataset synthetic --data-dir world",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out DIR is required")
			}
			if _, err := os.Stat(filepath.Join(out, "ratings.dat")); err == nil && !force {
				return fmt.Errorf("%s already holds ratings.dat; pass --force to overwrite it", out)
			} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			w, err := synth.Generate(cfg)
			if err != nil {
				return err
			}
			if err := w.Write(out); err != nil {
				return err
			}
			return printWorld(cmd, out, w, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write the world to (created if needed)")
	f.BoolVar(&force, "force", false, "overwrite a world already in --out")
	f.BoolVar(&asJSON, "json", false, "print a JSON summary instead of text")
	f.Int64Var(&cfg.Seed, "seed", cfg.Seed, "random seed; the same seed and flags give byte-identical files")
	f.IntVar(&cfg.NumUsers, "users", cfg.NumUsers, "number of users")
	f.IntVar(&cfg.NumItems, "items", cfg.NumItems, "number of movies")
	f.IntVar(&cfg.NumPersonas, "personas", cfg.NumPersonas, "number of latent personas")
	f.Float64Var(&cfg.NoiseSigma, "noise", cfg.NoiseSigma, "standard deviation of the rating noise before rounding (stars)")
	f.Float64Var(&cfg.GenreStrength, "genre-strength", cfg.GenreStrength, "stars a persona's loved genre adds (a disliked one subtracts)")
	f.Float64Var(&cfg.UserBiasSigma, "user-bias", cfg.UserBiasSigma, "standard deviation of user bias (stars)")
	f.Float64Var(&cfg.QualitySigma, "item-quality", cfg.QualitySigma, "standard deviation of item quality (stars)")
	f.StringVar(&cfg.Name, "name", cfg.Name, "dataset name recorded in the world")
	return cmd
}

func printWorld(cmd *cobra.Command, dir string, w *synth.World, asJSON bool) error {
	d, t := w.Dataset, &w.Truth
	stdout := cmd.OutOrStdout()
	if asJSON {
		type persona struct {
			ID          int     `json:"id"`
			Name        string  `json:"name"`
			Description string  `json:"description"`
			Users       int     `json:"users"`
			Share       float64 `json:"share"`
		}
		sizes := make([]int, len(t.Personas))
		for _, u := range t.Users {
			sizes[u.Persona]++
		}
		ps := make([]persona, len(t.Personas))
		for p, x := range t.Personas {
			ps[p] = persona{x.ID, x.Name, x.Description, sizes[p], x.Weight}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Dir        string           `json:"dir"`
			Name       string           `json:"name"`
			Seed       int64            `json:"seed"`
			Users      int              `json:"users"`
			Items      int              `json:"items"`
			Ratings    int              `json:"ratings"`
			NoiseSigma float64          `json:"noise_sigma"`
			NoiseFloor synth.NoiseFloor `json:"noise_floor"`
			Personas   []persona        `json:"personas"`
		}{dir, d.Name, t.Config.Seed, d.NumUsers(), d.NumItems(), d.Ratings.Len(), t.NoiseSigma, t.NoiseFloor, ps})
	}
	fmt.Fprintf(stdout, "wrote %s: %d users, %d movies, %d ratings (seed %d)\n",
		dir, d.NumUsers(), d.NumItems(), d.Ratings.Len(), t.Config.Seed)
	fmt.Fprintf(stdout, "noise sigma %.3g; noise floor (predicting E[r|u,i]): RMSE %.4f, MAE %.4f\n",
		t.NoiseSigma, t.NoiseFloor.RMSE, t.NoiseFloor.MAE)
	sizes := make([]int, len(t.Personas))
	for _, u := range t.Users {
		sizes[u.Persona]++
	}
	for p, x := range t.Personas {
		fmt.Fprintf(stdout, "persona %d (%d users): %s\n", p, sizes[p], x.Description)
	}
	return nil
}

// newDataSplitCmd builds `usersim data split`: make the paper's protocol
// split (or a random or k-fold one) and save it for every later stage.
func newDataSplitCmd() *cobra.Command {
	var (
		src      dataSource
		protocol string
		out      string
		seed     int64
		opt      = split.DefaultPaperOptions()
		testFrac float64
		folds    int
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "split --out FILE",
		Short: "Split a dataset into training and test rows and save the split",
		Long: "split makes the rows every model trains and is tested on, and saves them (with a\n" +
			"fingerprint of the dataset, so that the split cannot be used with another one).\n\n" +
			"  paper   the paper's protocol: sample --users users with --min-ratings..--max-ratings\n" +
			"          ratings; each one's oldest floor(--train-frac·n) ratings train, the rest test.\n" +
			"          Without timestamps (ml-1m's ratings_no_ts.dat) each user's ratings are split\n" +
			"          in a seeded random order instead, and the split says so. Every other user's\n" +
			"          ratings train too, unless --sampled-only.\n" +
			"  random  a global random split with --test-frac of the rows as test rows.\n" +
			"  kfold   --folds splits for cross-validation, written as FILE with .foldN before\n" +
			"          its extension.",
		Example: "  usersim data split --out split.bin\n" +
			"  usersim data split --dataset ml-1m --data-dir ../shared/data/ml-1m --seed 1 --out ml1m-paper.bin\n" +
			"  usersim data split --dataset ml-100k --protocol random --test-frac 0.1 --out random.bin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("--out FILE is required")
			}
			if opt.NumUsers == 0 {
				return errors.New("--users 0: sample at least one user (negative: every eligible user)")
			}
			d, err := src.load(cmd.Context())
			if err != nil {
				return err
			}
			var splits []*split.Split
			switch protocol {
			case split.ProtocolPaper:
				opt.Seed = seed
				s, err := split.Paper(d, opt)
				if err != nil {
					return err
				}
				splits = append(splits, s)
			case split.ProtocolRandom:
				s, err := split.Random(d, testFrac, seed)
				if err != nil {
					return err
				}
				splits = append(splits, s)
			case split.ProtocolKFold:
				if splits, err = split.KFold(d, folds, seed); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--protocol %q: want paper, random or kfold", protocol)
			}
			type saved struct {
				Path        string `json:"path"`
				Protocol    string `json:"protocol"`
				Seed        int64  `json:"seed"`
				Temporal    bool   `json:"temporal"`
				Users       int    `json:"users"`
				Train       int    `json:"train"`
				Test        int    `json:"test"`
				Description string `json:"description"`
			}
			var report []saved
			for _, s := range splits {
				path := out
				if protocol == split.ProtocolKFold {
					ext := filepath.Ext(out)
					path = fmt.Sprintf("%s.fold%d%s", strings.TrimSuffix(out, ext), s.Fold+1, ext)
				}
				if err := split.Save(path, s, d); err != nil {
					return err
				}
				report = append(report, saved{path, s.Protocol, s.Seed, s.Temporal, len(s.Users), len(s.Train), len(s.Test), s.String()})
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(report)
			}
			for _, r := range report {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, %s\n", r.Path, d.Name, r.Description)
			}
			return nil
		},
	}
	src.addFlags(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&protocol, "protocol", split.ProtocolPaper, "paper, random or kfold")
	f.StringVar(&out, "out", "", "file to write the split to")
	f.Int64Var(&seed, "seed", 1, "random seed of the user sample and of random orders")
	f.IntVar(&opt.NumUsers, "users", opt.NumUsers, "paper: users to sample (negative: every eligible user)")
	f.IntVar(&opt.MinRatings, "min-ratings", opt.MinRatings, "paper: fewest ratings of an eligible user")
	f.IntVar(&opt.MaxRatings, "max-ratings", opt.MaxRatings, "paper: most ratings of an eligible user")
	f.Float64Var(&opt.TrainFrac, "train-frac", opt.TrainFrac, "paper: share of each sampled user's ratings (oldest first) that train")
	f.BoolVar(&opt.SampledOnly, "sampled-only", false, "paper: train on the sampled users' training rows only")
	f.BoolVar(&opt.AllowFewer, "allow-fewer", false, "paper: take every eligible user when fewer than --users are eligible")
	f.BoolVar(&opt.IgnoreTime, "ignore-time", false, "paper: split each user's ratings in a seeded random order even when timestamps exist")
	f.Float64Var(&testFrac, "test-frac", 0.1, "random: share of all rows that are test rows")
	f.IntVar(&folds, "folds", 5, "kfold: number of folds")
	f.BoolVar(&asJSON, "json", false, "print a JSON summary instead of text")
	return cmd
}
