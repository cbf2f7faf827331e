package eval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
)

// DefaultBaselines names the baselines a report shows by default (see
// eval/baseline.New).
var DefaultBaselines = []string{"global-mean", "user-mean", "item-mean", "bias", "svd", "svdpp", "item-knn"}

// Options tune Evaluate. The zero value is usable.
type Options struct {
	// Bootstrap is the number of user-level bootstrap resamples for the
	// confidence intervals: 0 means 1000, a negative number disables them.
	Bootstrap int `json:"bootstrap"`
	// Level is the confidence level of the intervals; 0 means 0.95.
	Level float64 `json:"level"`
	// Seed drives the bootstrap.
	Seed int64 `json:"seed"`
	// Reference names the predictor every other one is compared with
	// (paired bootstrap of the RMSE and MAE differences). Empty means
	// "bias" when it is evaluated; "none" disables the comparison.
	Reference string `json:"reference,omitempty"`
	// PerUserRows keeps every user's metrics in the results (they are
	// always summarised).
	PerUserRows bool `json:"per_user_rows"`
	// Progress, when set, receives one line per stage (fitting, predicting)
	// with timings.
	Progress io.Writer `json:"-"`
	// Groups maps a dense user index to the label of the user's group
	// ("persona-2"); every predictor then gets PerGroup metrics. Users
	// without a label count everywhere but in PerGroup. Nil: no groups.
	Groups map[int32]string `json:"-"`
}

func (o Options) withDefaults() Options {
	if o.Bootstrap == 0 {
		o.Bootstrap = 1000
	}
	if o.Level == 0 {
		o.Level = 0.95
	}
	return o
}

// SplitInfo describes the split evaluated on.
type SplitInfo struct {
	Protocol string `json:"protocol"`
	Seed     int64  `json:"seed"`
	Temporal bool   `json:"temporal"`
	// HasTime reports whether the dataset carries timestamps.
	HasTime   bool `json:"has_time"`
	Users     int  `json:"users"`      // sampled (evaluated) users
	TestUsers int  `json:"test_users"` // users with at least one test row
	Train     int  `json:"train_rows"`
	Test      int  `json:"test_rows"`
	// The paper protocol's parameters.
	MinRatings  int     `json:"min_ratings,omitempty"`
	MaxRatings  int     `json:"max_ratings,omitempty"`
	TrainFrac   float64 `json:"train_frac,omitempty"`
	SampledOnly bool    `json:"sampled_only,omitempty"`
	// The random protocol's test share; the k-fold protocol's fold (0-based)
	// and number of folds.
	TestFrac float64 `json:"test_frac,omitempty"`
	Fold     int     `json:"fold,omitempty"`
	Folds    int     `json:"folds,omitempty"`
	// Description says in words how the split was made.
	Description string `json:"description"`
}

// PredictorResult is one predictor's scores on the test rows.
type PredictorResult struct {
	Name    string      `json:"name"`
	N       int         `json:"n"`     // test rows
	Valid   int         `json:"valid"` // valid answers
	RMSE    Float       `json:"rmse"`  // over valid answers
	MAE     Float       `json:"mae"`   // over valid answers
	URR     Float       `json:"urr"`   // share of invalid answers
	CI      BootstrapCI `json:"ci"`    // user-level bootstrap
	PerUser struct {
		RMSE Summary      `json:"rmse"`
		MAE  Summary      `json:"mae"`
		Rows []UserMetric `json:"rows,omitempty"`
	} `json:"per_user"`
	Histogram Histogram `json:"histogram"`
	// PerGroup is the error per group of users (Options.Groups), in
	// natural order of the labels.
	PerGroup []GroupMetric `json:"per_group,omitempty"`
	// Info describes the configuration: filled by Evaluate from a
	// Describer (or the name of a known baseline or the oracle); callers may
	// set it before writing the report.
	Info PredictorInfo `json:"info"`
	// VsReference compares with Options.Reference; nil for the reference
	// itself or when there is none.
	VsReference    *Comparison `json:"vs_reference,omitempty"`
	FitSeconds     float64     `json:"fit_seconds"`
	PredictSeconds float64     `json:"predict_seconds"`
}

// Results is everything Evaluate measured; it marshals to results.json.
type Results struct {
	Dataset    string            `json:"dataset"`
	Scale      dataset.Scale     `json:"scale"`
	Split      SplitInfo         `json:"split"`
	Options    Options           `json:"options"`
	Predictors []PredictorResult `json:"predictors"`
	// Sections are extra report sections (diagnostics), appended to
	// report.md after the main content, in order.
	Sections []Section `json:"sections,omitempty"`
}

// Section is an extra section of report.md: a level-2 heading and a
// Markdown body written as given.
type Section struct {
	Title    string `json:"title"`
	Markdown string `json:"markdown"`
}

// Evaluate fits every predictor on the split's training rows, asks it for
// every test row and scores the answers. Predictors run one after another in
// the given order; the context is checked between them and passed to Fit.
func Evaluate(ctx context.Context, d *dataset.Dataset, s *split.Split, ps []Predictor, opt Options) (*Results, error) {
	if d == nil || s == nil {
		return nil, errors.New("evaluate: nil dataset or split")
	}
	if err := checkSplit(d, s); err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", d.Name, err)
	}
	opt = opt.withDefaults()
	if opt.Level <= 0 || opt.Level >= 1 {
		return nil, fmt.Errorf("evaluate: confidence level %g outside (0, 1)", opt.Level)
	}
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if seen[p.Name()] {
			return nil, fmt.Errorf("evaluate: two predictors are named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	if ref := opt.Reference; ref != "" && ref != "none" && !slices.ContainsFunc(ps, func(p Predictor) bool { return p.Name() == ref }) {
		return nil, fmt.Errorf("evaluate: reference predictor %q is not among those evaluated", ref)
	}
	r := &d.Ratings
	users := make([]int32, len(s.Test))
	items := make([]int32, len(s.Test))
	truth := make([]float64, len(s.Test))
	for k, row := range s.Test {
		users[k], items[k], truth[k] = r.User[row], r.Item[row], float64(r.Value[row])
	}
	res := &Results{Dataset: d.Name, Scale: d.Scale, Split: describeSplit(d, s, users), Options: opt}
	preds := make([][]float64, 0, len(ps))
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		name := p.Name()
		progress(opt.Progress, "%s: fitting on %d rows", name, len(s.Train))
		t0 := time.Now()
		if err := p.Fit(ctx, d, s.Train); err != nil {
			return nil, fmt.Errorf("evaluate: fit %s: %w", name, err)
		}
		fit := time.Since(t0)
		var info PredictorInfo
		if ds, ok := p.(Describer); ok {
			info = ds.Describe()
		}
		if info.Kind == "" {
			info.Kind = inferKind(name)
		}
		progress(opt.Progress, "%s: fitted in %.2fs; predicting %d rows", name, fit.Seconds(), len(s.Test))
		t0 = time.Now()
		pred := make([]float64, len(s.Test))
		if bp, ok := p.(BatchPredictor); ok {
			if err := bp.PredictBatch(ctx, users, items, pred); err != nil {
				return nil, fmt.Errorf("evaluate: predict %s: %w", name, err)
			}
		} else {
			for k := range pred {
				if k%4096 == 0 {
					if err := ctx.Err(); err != nil {
						return nil, fmt.Errorf("evaluate: predict %s: %w", name, err)
					}
				}
				pred[k] = p.Predict(users[k], items[k])
			}
		}
		pt := time.Since(t0)
		pr := Score(d.Scale, users, pred, truth, opt)
		pr.Name, pr.Info = name, info
		pr.FitSeconds, pr.PredictSeconds = fit.Seconds(), pt.Seconds()
		progress(opt.Progress, "%s: RMSE %.4f MAE %.4f (%.2fs)", name, float64(pr.RMSE), float64(pr.MAE), pt.Seconds())
		res.Predictors = append(res.Predictors, pr)
		preds = append(preds, pred)
	}
	compare(res, preds, users, truth)
	return res, nil
}

// compare fills VsReference of every predictor but the reference.
func compare(res *Results, preds [][]float64, users []int32, truth []float64) {
	opt := res.Options
	refName := opt.Reference
	if refName == "none" {
		return
	}
	if refName == "" {
		refName = "bias"
	}
	ref := slices.IndexFunc(res.Predictors, func(p PredictorResult) bool { return p.Name == refName })
	if ref < 0 {
		return
	}
	for k := range res.Predictors {
		if k == ref {
			continue
		}
		c := PairedBootstrap(users, preds[k], preds[ref], truth, max(0, opt.Bootstrap), opt.Level, opt.Seed)
		c.Reference = refName
		res.Predictors[k].VsReference = &c
	}
}

// Score computes every metric of one predictor's answers: pred[k] answers
// test row k of user users[k] whose true rating is truth[k]. The Name and
// timings of the result are left empty; PerGroup is filled when
// opt.Groups is set.
func Score(sc dataset.Scale, users []int32, pred, truth []float64, opt Options) PredictorResult {
	opt = opt.withDefaults()
	var pr PredictorResult
	pr.N = len(pred)
	for _, p := range pred {
		if IsValid(p) {
			pr.Valid++
		}
	}
	pr.RMSE, pr.MAE, pr.URR = Float(RMSE(pred, truth)), Float(MAE(pred, truth)), Float(URR(pred))
	pr.CI = Bootstrap(users, pred, truth, max(0, opt.Bootstrap), opt.Level, opt.Seed)
	pu := PerUser(users, pred, truth)
	rm := make([]float64, len(pu))
	ma := make([]float64, len(pu))
	for k, m := range pu {
		rm[k], ma[k] = float64(m.RMSE), float64(m.MAE)
	}
	pr.PerUser.RMSE, pr.PerUser.MAE = Summarize(rm), Summarize(ma)
	if opt.PerUserRows {
		pr.PerUser.Rows = pu
	}
	pr.Histogram = CompareHistograms(sc, pred, truth)
	pr.PerGroup = PerGroup(users, pred, truth, opt.Groups)
	return pr
}

// checkSplit makes sure every row index is inside the ratings table.
func checkSplit(d *dataset.Dataset, s *split.Split) error {
	n := int32(d.Ratings.Len())
	for _, part := range []struct {
		name string
		rows []int32
	}{{"train", s.Train}, {"test", s.Test}} {
		for k, row := range part.rows {
			if row < 0 || row >= n {
				return fmt.Errorf("split %s row %d (position %d) outside ratings table of %d rows", part.name, row, k, n)
			}
		}
	}
	if len(s.Test) == 0 {
		return errors.New("split has no test rows")
	}
	return nil
}

func describeSplit(d *dataset.Dataset, s *split.Split, testUsers []int32) SplitInfo {
	u := slices.Clone(testUsers)
	slices.Sort(u)
	u = slices.Compact(u)
	info := SplitInfo{
		Protocol: s.Protocol, Seed: s.Seed, Temporal: s.Temporal, HasTime: d.HasTime(),
		Users: len(s.Users), TestUsers: len(u), Train: len(s.Train), Test: len(s.Test),
		MinRatings: s.MinRatings, MaxRatings: s.MaxRatings, TrainFrac: s.TrainFrac, SampledOnly: s.SampledOnly,
		TestFrac: s.TestFrac, Fold: s.Fold, Folds: s.Folds,
	}
	info.Description = describe(info, d.NumUsers())
	return info
}

// describe says in words how the split was made.
func describe(in SplitInfo, allUsers int) string {
	var b strings.Builder
	share := 100 * float64(in.Test) / math.Max(1, float64(in.Train+in.Test))
	switch in.Protocol {
	case split.ProtocolPaper:
		fmt.Fprintf(&b, "paper protocol: %d users", in.Users)
		if in.MaxRatings > 0 {
			fmt.Fprintf(&b, " with %d–%d ratings", in.MinRatings, in.MaxRatings)
		}
		fmt.Fprintf(&b, " sampled out of %d (seed %d); ", allUsers, in.Seed)
		switch {
		case in.Temporal:
			b.WriteString("per-user temporal split")
		case !in.HasTime:
			b.WriteString("random per-user split because the dataset has no timestamps")
		default:
			b.WriteString("random per-user split (timestamps ignored)")
		}
		if in.TrainFrac > 0 {
			p := int(math.Round(100 * in.TrainFrac))
			if in.Temporal {
				fmt.Fprintf(&b, ", %d/%d: each user's oldest %d%% of ratings train, the newest are test", p, 100-p, p)
			} else {
				fmt.Fprintf(&b, ", %d/%d", p, 100-p)
			}
		}
		if in.SampledOnly {
			b.WriteString("; training on the sampled users' rows only")
		} else {
			b.WriteString("; every other user's whole history is training data too")
		}
	case split.ProtocolRandom:
		fmt.Fprintf(&b, "global random split (seed %d): %.1f%% of all ratings held out at random as test", in.Seed, share)
	case split.ProtocolKFold:
		if in.Folds > 0 {
			fmt.Fprintf(&b, "%d-fold cross-validation (seed %d), fold %d: ratings shuffled and cut into %d folds", in.Folds, in.Seed, in.Fold+1, in.Folds)
		} else {
			fmt.Fprintf(&b, "k-fold cross-validation (seed %d): ratings shuffled and cut into folds", in.Seed)
		}
	default:
		fmt.Fprintf(&b, "%s split (seed %d)", in.Protocol, in.Seed)
		if in.Temporal {
			b.WriteString(", per-user temporal")
		}
	}
	fmt.Fprintf(&b, "; %d training rows, %d test rows of %d users (%.1f%% test)", in.Train, in.Test, in.TestUsers, share)
	return b.String()
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}
