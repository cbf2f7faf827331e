package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/dataset/synth"
	"github.com/usersim/usersim/llm"
	"github.com/usersim/usersim/memory"
	"github.com/usersim/usersim/persona"
)

// personasFlags are the flags of `usersim personas`.
type personasFlags struct {
	workspace string
	embedder  string
	k         int
	kRange    string
	seed      int64
	nInit     int
	compare   bool
	force     bool
	asJSON    bool
	src       dataSource
	llmURL    string
	llmModel  string
	llmKeyEnv string
	llmDims   int
}

// newPersonasCmd builds `usersim personas`: embed the workspace's profiles,
// cluster them into personas and write personas/ in the workspace.
func newPersonasCmd() *cobra.Command {
	var f personasFlags
	cmd := &cobra.Command{
		Use:   "personas --workspace DIR",
		Short: "Group users into personas: embed their profiles, k-means++, choose K",
		Long: "personas reads DIR/memory/profiles.jsonl (written by `usersim distill`), embeds each\n" +
			"profile, clusters the users with k-means++ (restarts in parallel, deterministic for\n" +
			"--seed) and writes DIR/personas/{assignments,centroids,summary}.json. K is the elbow of\n" +
			"the inertia over --k-range (silhouettes reported beside it) unless --k fixes it.\n" +
			"A rerun with the same profiles and options is skipped (--force redoes it).\n\n" +
			"Embedders: behaviour (standardised affinities, mean rating and traits; the default,\n" +
			"it separates rating behaviour most), tfidf, lsa (tf-idf reduced by truncated SVD),\n" +
			"openai (any OpenAI-compatible /embeddings endpoint: --llm-url, --llm-model).\n\n" +
			"With --dataset/--data-dir naming the data the profiles came from, the personas are\n" +
			"described with demographics too, and on a synthetic world scored against the true\n" +
			"personas (adjusted Rand index). --compare measures every built-in embedder at the\n" +
			"chosen K.",
		Example: "  usersim personas --workspace ws\n" +
			"  usersim personas --workspace ws --embedder tfidf --k 4 --json\n" +
			"  usersim personas --workspace ws --dataset synthetic --compare\n" +
			"  usersim personas --workspace ws --embedder openai --llm-url http://localhost:8000/v1 --llm-model bge-m3",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPersonas(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workspace, "workspace", "", "workspace directory (reads memory/profiles.jsonl, writes personas/)")
	fl.StringVar(&f.embedder, "embedder", persona.DefaultEmbedder, "behaviour, tfidf, lsa or openai")
	fl.IntVar(&f.k, "k", 0, "number of personas (0: choose by the elbow over --k-range)")
	fl.StringVar(&f.kRange, "k-range", "2:10", "K values to try, MIN:MAX")
	fl.Int64Var(&f.seed, "seed", 1, "random seed of k-means++ and of sampled silhouettes")
	fl.IntVar(&f.nInit, "n-init", 10, "k-means restarts per K")
	fl.BoolVar(&f.compare, "compare", false, "also measure every built-in embedder and report their separation")
	fl.BoolVar(&f.force, "force", false, "recompute even when the outputs are up to date")
	fl.BoolVar(&f.asJSON, "json", false, "print the summary as JSON")
	f.src.addFlags(fl)
	fl.StringVar(&f.llmURL, "llm-url", llm.DefaultBaseURL, "openai embedder: API root of an OpenAI-compatible server")
	fl.StringVar(&f.llmModel, "llm-model", "", "openai embedder: embedding model")
	fl.StringVar(&f.llmKeyEnv, "llm-key-env", llm.DefaultKeyEnv, "openai embedder: environment variable holding the API key")
	fl.IntVar(&f.llmDims, "llm-dimensions", 0, "openai embedder: shorten vectors to this many dimensions (0: the model's)")
	return cmd
}

func runPersonas(cmd *cobra.Command, f *personasFlags) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if f.workspace == "" {
		return errors.New("--workspace DIR is required")
	}
	opt := persona.Options{K: f.k, Seed: f.seed, NInit: f.nInit}
	if f.k < 0 {
		return fmt.Errorf("--k %d: want a positive number of personas, or 0 to choose", f.k)
	}
	if f.k == 0 {
		lo, hi, err := parseKRange(f.kRange)
		if err != nil {
			return err
		}
		opt.KMin, opt.KMax = lo, hi
	}
	path := filepath.Join(f.workspace, memory.Dir, memory.ProfilesFile)
	profiles, err := memory.ReadProfiles(path)
	if err != nil {
		return fmt.Errorf("read profiles (run `usersim distill` first): %w", err)
	}
	emb, err := f.newEmbedder(f.embedder)
	if err != nil {
		return err
	}
	in := persona.Input{Profiles: profiles}
	extra := ""
	if cmd.Flags().Changed("dataset") || cmd.Flags().Changed("data-dir") {
		if extra, err = loadPersonaContext(ctx, f, &in); err != nil {
			return err
		}
	}
	key, err := persona.InputKey(profiles, emb.Name(), opt, fmt.Sprintf("%s compare=%v", extra, f.compare))
	if err != nil {
		return err
	}
	if !f.force {
		ok, why, err := persona.UpToDate(f.workspace, key)
		if err != nil {
			return err
		}
		if ok {
			slog.Info("personas up to date; skipping", "workspace", f.workspace)
			s, err := persona.LoadSummary(f.workspace)
			if err != nil {
				return err
			}
			return printPersonas(cmd.OutOrStdout(), s, f.asJSON, true)
		}
		slog.Debug("computing personas", "reason", why)
	}
	res, err := persona.Build(ctx, in, emb, opt)
	if err != nil {
		return err
	}
	var cmp []persona.Comparison
	if f.compare {
		// At the chosen K: η² grows with K, so only equal K compare.
		cmpOpt := opt
		cmpOpt.K = res.Selection.K
		for _, name := range []string{persona.EmbedBehaviour, persona.EmbedTFIDF, persona.EmbedLSA} {
			e, _ := persona.NewEmbedder(name, f.seed)
			c := persona.Comparison{Embedder: name}
			r, err := persona.Build(ctx, in, e, cmpOpt)
			if err != nil {
				c.Error = err.Error()
			} else {
				c.K, c.Separation = r.Selection.K, r.Separation
			}
			cmp = append(cmp, c)
		}
	}
	if err := persona.Save(f.workspace, key, res, cmp); err != nil {
		return err
	}
	s, err := persona.LoadSummary(f.workspace)
	if err != nil {
		return err
	}
	return printPersonas(cmd.OutOrStdout(), s, f.asJSON, false)
}

// newEmbedder builds the embedder the flags name.
func (f *personasFlags) newEmbedder(name string) (persona.Embedder, error) {
	if strings.EqualFold(name, persona.EmbedOpenAI) {
		if f.llmModel == "" {
			return nil, errors.New("--embedder openai needs --llm-model")
		}
		c := llm.NewFromEnv(f.llmURL, f.llmKeyEnv)
		return &persona.OpenAI{Client: persona.LLMClient{Client: c, Dimensions: f.llmDims}, Model: f.llmModel}, nil
	}
	return persona.NewEmbedder(name, f.seed)
}

// loadPersonaContext loads the dataset the flags name, checks it is the one
// the profiles were distilled from (when the memory manifest says), and fills
// the demographics and, for a synthetic world, the truth. It returns a
// string identifying the dataset for the manifest key.
func loadPersonaContext(ctx context.Context, f *personasFlags, in *persona.Input) (string, error) {
	var d *dataset.Dataset
	if f.src.Name == "synthetic" {
		var (
			w   *synth.World
			err error
		)
		if f.src.Dir != "" {
			w, err = synth.Load(f.src.Dir)
		} else {
			w, err = synth.Generate(synth.DefaultConfig())
		}
		if err != nil {
			return "", err
		}
		d = w.Dataset
		truth := w.Truth.PersonaOf()
		in.Truth = make(map[string]int, len(truth))
		for u, p := range truth {
			in.Truth[d.Users[u].ID] = p
		}
	} else {
		var err error
		if d, err = loadData(ctx, f.src.Name, f.src.Dir); err != nil {
			return "", err
		}
	}
	fp := split.FingerprintOf(d)
	if m, err := memory.ReadManifest(f.workspace); err == nil && m.Dataset.SHA256 != "" && m.Dataset.SHA256 != fp.SHA256 {
		return "", fmt.Errorf("--dataset %s: not the dataset the workspace's profiles were distilled from (%s)", f.src.Name, m.Dataset.Name)
	}
	in.Users = make(map[string]dataset.User, len(d.Users))
	for _, u := range d.Users {
		in.Users[u.ID] = u
	}
	missing := 0
	for _, p := range in.Profiles {
		if _, ok := in.Users[p.User]; !ok {
			missing++
		}
	}
	if missing == len(in.Profiles) {
		return "", fmt.Errorf("--dataset %s: none of the %d profiled users is in it", f.src.Name, len(in.Profiles))
	}
	return fp.Name + ":" + fp.SHA256, nil
}

// parseKRange parses "MIN:MAX".
func parseKRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, ":")
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi < lo {
		return 0, 0, fmt.Errorf("--k-range %q: want MIN:MAX with 1 <= MIN <= MAX, e.g. 2:10", s)
	}
	return lo, hi, nil
}

// printPersonas writes the summary as a table or JSON.
func printPersonas(w io.Writer, s *persona.Summary, asJSON, cached bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	note := ""
	if cached {
		note = " (up to date, not recomputed)"
	}
	fmt.Fprintf(w, "personas: %d users, embedder %s, K = %d by %s%s\n\n", s.Users, s.Embedder, s.K, s.Selection.Method, note)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "K\tinertia\tsilhouette\t\t")
	for _, r := range s.Selection.Table {
		var marks []string
		if r.K == s.Selection.ElbowK {
			marks = append(marks, "elbow")
		}
		if r.K == s.Selection.SilhouetteK {
			marks = append(marks, "best silhouette")
		}
		if r.K == s.K {
			marks = append(marks, "chosen")
		}
		fmt.Fprintf(tw, "%d\t%.4g\t%.3f\t%s\t\n", r.K, r.Inertia, r.Silhouette, strings.Join(marks, ", "))
	}
	tw.Flush()
	if s.Selection.SilhouetteSampled {
		fmt.Fprintf(w, "(silhouettes on a sample of %d users)\n", s.Options.SilhouetteSample)
	}
	fmt.Fprintf(w, "\nsizes: %v\n", s.Sizes)
	sep := s.Separation
	fmt.Fprintf(w, "separation: η² of user mean ratings %.3f, of genre affinities %.3f (all affinities %.3f); persona mean ratings span %.2f stars\n",
		sep.MeanRatingEta2, sep.GenreEta2, sep.AffinityEta2, sep.MeanRatingRange)
	if sep.ARI != nil {
		fmt.Fprintf(w, "adjusted Rand index against the true personas: %.3f (%d users)\n", *sep.ARI, sep.TruthUsers)
	}
	if len(s.Comparison) > 0 {
		fmt.Fprintf(w, "\nembedders compared at K = %d:\n", s.K)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "embedder\tK\tη² mean rating\tη² genres\tη² affinities\tARI\t")
		for _, c := range s.Comparison {
			if c.Error != "" {
				fmt.Fprintf(tw, "%s\terror: %s\t\t\t\t\t\n", c.Embedder, c.Error)
				continue
			}
			ari := "-"
			if c.Separation.ARI != nil {
				ari = fmt.Sprintf("%.3f", *c.Separation.ARI)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%.3f\t%s\t\n", c.Embedder, c.K, c.Separation.MeanRatingEta2, c.Separation.GenreEta2, c.Separation.AffinityEta2, ari)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	for _, p := range s.Personas {
		fmt.Fprintln(w, p.Text)
	}
	return nil
}
