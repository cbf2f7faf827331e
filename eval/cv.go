package eval

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/split"
	"github.com/usersim/usersim/internal/atomicfile"
)

// MeanStd is a mean and a standard deviation across folds. Std is the
// population standard deviation (divided by the number of folds), as
// Surprise's cross_validate reports it.
type MeanStd struct {
	Mean Float `json:"mean"`
	Std  Float `json:"std"`
}

// CVSummary is one predictor's scores across folds.
type CVSummary struct {
	Name       string  `json:"name"`
	Folds      int     `json:"folds"`
	RMSE       MeanStd `json:"rmse"`
	MAE        MeanStd `json:"mae"`
	URR        MeanStd `json:"urr"`
	FitSeconds MeanStd `json:"fit_seconds"`
	// DeltaRMSE is the RMSE difference from the reference predictor
	// (Options.Reference) across folds; nil for the reference itself.
	Reference string   `json:"reference,omitempty"`
	DeltaRMSE *MeanStd `json:"delta_rmse,omitempty"`
}

// CVResults are the results of every fold and their summary.
type CVResults struct {
	Dataset string        `json:"dataset"`
	Scale   dataset.Scale `json:"scale"`
	Summary []CVSummary   `json:"summary"`
	Folds   []*Results    `json:"folds"`
}

// CrossValidate evaluates the predictors on each fold in turn (refitting them
// on each fold's training rows) and summarises each metric as mean ± std
// across folds.
func CrossValidate(ctx context.Context, d *dataset.Dataset, folds []*split.Split, ps []Predictor, opt Options) (*CVResults, error) {
	if len(folds) == 0 {
		return nil, errors.New("cross-validate: no folds")
	}
	cv := &CVResults{}
	for k, s := range folds {
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "fold %d/%d\n", k+1, len(folds))
		}
		r, err := Evaluate(ctx, d, s, ps, opt)
		if err != nil {
			return nil, fmt.Errorf("cross-validate fold %d: %w", k+1, err)
		}
		cv.Folds = append(cv.Folds, r)
	}
	cv.Dataset, cv.Scale = cv.Folds[0].Dataset, cv.Folds[0].Scale
	for pi, p := range cv.Folds[0].Predictors {
		var rmse, mae, urr, fit, delta []float64
		for _, f := range cv.Folds {
			q := f.Predictors[pi]
			rmse = append(rmse, float64(q.RMSE))
			mae = append(mae, float64(q.MAE))
			urr = append(urr, float64(q.URR))
			fit = append(fit, q.FitSeconds)
			if q.VsReference != nil {
				delta = append(delta, float64(q.VsReference.DeltaRMSE))
			}
		}
		sum := CVSummary{Name: p.Name, Folds: len(cv.Folds),
			RMSE: meanStdOf(rmse), MAE: meanStdOf(mae), URR: meanStdOf(urr), FitSeconds: meanStdOf(fit)}
		if len(delta) == len(cv.Folds) {
			d := meanStdOf(delta)
			sum.Reference, sum.DeltaRMSE = p.VsReference.Reference, &d
		}
		cv.Summary = append(cv.Summary, sum)
	}
	return cv, nil
}

func meanStdOf(v []float64) MeanStd {
	m, s := meanStd(v)
	return MeanStd{Float(m), Float(s)}
}

// WriteJSON writes the cross-validation results as indented JSON.
func (cv *CVResults) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(cv)
}

// WriteTable writes mean ± std per predictor as a plain-text table.
func (cv *CVResults) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s — %d-fold cross-validation (%s)\n", cv.Dataset, len(cv.Folds), cv.foldWords())
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	var names []string
	for _, s := range cv.Summary {
		names = append(names, s.Name)
	}
	nw := nameWidth(names...)
	ref := cv.reference()
	head := []string{"model", "RMSE", "MAE", "URR"}
	if ref != "" {
		head = append(head, "ΔRMSE vs "+ref)
	}
	writeRow(tw, nw, append(head, "fit s"))
	for _, s := range cv.Summary {
		row := []string{s.Name, pm(s.RMSE), pm(s.MAE), f3(s.URR.Mean)}
		if ref != "" {
			row = append(row, pmDelta(s.DeltaRMSE))
		}
		writeRow(tw, nw, append(row, fmt.Sprintf("%.2f", float64(s.FitSeconds.Mean))))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// WriteMarkdown writes report.md for a cross-validation run.
func (cv *CVResults) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Rating prediction: %s, %d-fold cross-validation\n\n", cv.Dataset, len(cv.Folds))
	fmt.Fprintf(bw, "**Split.** %s. Each fold's model is trained on the other folds' rows only. Values are mean ± standard deviation across folds (population std, as Surprise reports); metrics are over valid answers.\n\n", capitalise(cv.foldWords()))
	ref := cv.reference()
	if ref != "" {
		fmt.Fprintf(bw, "| model | RMSE | MAE | URR | ΔRMSE vs %s | fit s |\n|---|---|---|---|---|---|\n", ref)
	} else {
		fmt.Fprint(bw, "| model | RMSE | MAE | URR | fit s |\n|---|---|---|---|---|\n")
	}
	for _, s := range cv.Summary {
		fmt.Fprintf(bw, "| %s | %s | %s | %s |", s.Name, pm(s.RMSE), pm(s.MAE), f3(s.URR.Mean))
		if ref != "" {
			fmt.Fprintf(bw, " %s |", pmDelta(s.DeltaRMSE))
		}
		fmt.Fprintf(bw, " %.2f |\n", float64(s.FitSeconds.Mean))
	}
	fmt.Fprintln(bw, "\n**Per fold (RMSE):**")
	fmt.Fprintln(bw)
	fmt.Fprint(bw, "| model |")
	for k := range cv.Folds {
		fmt.Fprintf(bw, " fold %d |", k+1)
	}
	fmt.Fprint(bw, "\n|---|")
	for range cv.Folds {
		fmt.Fprint(bw, "---|")
	}
	fmt.Fprintln(bw)
	for pi, s := range cv.Summary {
		fmt.Fprintf(bw, "| %s |", s.Name)
		for _, f := range cv.Folds {
			fmt.Fprintf(bw, " %s |", f4(f.Predictors[pi].RMSE))
		}
		fmt.Fprintln(bw)
	}
	return bw.Flush()
}

// WriteFiles writes results.json and report.md into dir, atomically.
func (cv *CVResults) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "results.json"), 0o644, cv.WriteJSON); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "report.md"), 0o644, cv.WriteMarkdown)
}

func (cv *CVResults) foldWords() string {
	if len(cv.Folds) == 0 {
		return "no folds"
	}
	s := cv.Folds[0].Split
	if s.Protocol == split.ProtocolKFold {
		return fmt.Sprintf("all ratings shuffled with seed %d and cut into %d folds of about %d test rows", s.Seed, len(cv.Folds), s.Test)
	}
	return fmt.Sprintf("%d splits of protocol %q, seed %d, about %d test rows each", len(cv.Folds), s.Protocol, s.Seed, s.Test)
}

func pm(m MeanStd) string { return f4(m.Mean) + " ± " + f4(m.Std) }

func pmDelta(m *MeanStd) string {
	if m == nil {
		return "(reference)"
	}
	return signed(m.Mean) + " ± " + f4(m.Std)
}

// reference returns the name of the predictor the others were compared
// with, or "".
func (cv *CVResults) reference() string {
	for _, s := range cv.Summary {
		if s.DeltaRMSE != nil {
			return s.Reference
		}
	}
	return ""
}
