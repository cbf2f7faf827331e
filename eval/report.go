package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/usersim/usersim/internal/atomicfile"
)

// WriteJSON writes the results as indented JSON.
func (r *Results) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadResults parses results.json as written by WriteJSON.
func ReadResults(rd io.Reader) (*Results, error) {
	var r Results
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return &r, nil
}

// WriteTable writes the headline metrics as an aligned plain-text table.
func (r *Results) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s — %s\n", r.Dataset, r.Split.Description)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	ci := r.Options.Bootstrap > 0
	ref := r.reference()
	head := []string{"model", "RMSE", "MAE", "URR"}
	if ci {
		head = append(head, fmt.Sprintf("RMSE %g%% CI", 100*r.Options.Level))
	}
	if ref != "" {
		head = append(head, "ΔRMSE vs "+ref)
	}
	head = append(head, "user-RMSE", "pred μ±σ", "TV", "EMD", "fit s")
	var names []string
	for _, p := range r.Predictors {
		names = append(names, p.Name)
	}
	nw := nameWidth(names...)
	writeRow(tw, nw, head)
	for _, p := range r.Predictors {
		row := []string{p.Name, f4(p.RMSE), f4(p.MAE), f3(p.URR)}
		if ci {
			row = append(row, "["+f4(p.CI.RMSE.Lo)+", "+f4(p.CI.RMSE.Hi)+"]")
		}
		if ref != "" {
			cell := "(reference)"
			if c := p.VsReference; c != nil {
				cell = deltaCI(c.DeltaRMSE, c.RMSECI, r.Options.Bootstrap)
			}
			row = append(row, cell)
		}
		row = append(row, f4(p.PerUser.RMSE.Median), f2(p.Histogram.PredMean)+"±"+f2(p.Histogram.PredStd),
			f3(p.Histogram.TV), f3(p.Histogram.EMD), fmt.Sprintf("%.2f", p.FitSeconds))
		writeRow(tw, nw, row)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Predictors) > 0 {
		h := r.Predictors[0].Histogram
		fmt.Fprintf(bw, "truth: mean %s, std %s over %d test rows\n", f2(h.TrueMean), f2(h.TrueStd), r.Split.Test)
	}
	return bw.Flush()
}

// writeRow writes cells to a right-aligning tabwriter, padding the first
// (the model name) on the right to width runes so that it reads
// left-aligned.
func writeRow(tw *tabwriter.Writer, width int, cells []string) {
	for k, c := range cells {
		if k == 0 {
			c += strings.Repeat(" ", max(0, width-utf8.RuneCountInString(c)))
		}
		fmt.Fprint(tw, c, "\t")
	}
	fmt.Fprintln(tw)
}

// nameWidth returns the longest name's length in runes, at least that of
// "model".
func nameWidth(names ...string) int {
	w := len("model")
	for _, n := range names {
		w = max(w, utf8.RuneCountInString(n))
	}
	return w
}

// WriteMarkdown writes report.md: the split in words, the metrics table with
// bootstrap intervals, per-user distributions and the rating histograms.
func (r *Results) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# Rating prediction: %s\n\n", r.Dataset)
	fmt.Fprintf(bw, "**Split.** %s.\n\n", capitalise(r.Split.Description))
	fmt.Fprintf(bw, "Rating scale %s. Metrics are over valid answers; URR is the share of invalid answers (0 for classic baselines).", r.Scale)
	if r.Options.Bootstrap > 0 {
		fmt.Fprintf(bw, " Intervals are %g%% percentile bootstrap over users (%d resamples, seed %d): users, not rows, are resampled because one user's test ratings are correlated.",
			100*r.Options.Level, r.Options.Bootstrap, r.Options.Seed)
	}
	fmt.Fprint(bw, "\n\n")
	fmt.Fprintln(bw, "| model | RMSE | MAE | URR | per-user RMSE median [IQR] | pred mean ± std | hist TV | hist EMD | fit s |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|---|")
	for _, p := range r.Predictors {
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s [%s, %s] | %s ± %s | %s | %s | %.2f |\n",
			p.Name, withCI(p.RMSE, p.CI.RMSE, p.CI.Resamples), withCI(p.MAE, p.CI.MAE, p.CI.Resamples), f3(p.URR),
			f4(p.PerUser.RMSE.Median), f4(p.PerUser.RMSE.P25), f4(p.PerUser.RMSE.P75),
			f2(p.Histogram.PredMean), f2(p.Histogram.PredStd), f3(p.Histogram.TV), f3(p.Histogram.EMD), p.FitSeconds)
	}
	if ref := r.reference(); ref != "" {
		fmt.Fprintf(bw, "\n**Compared with %s** (difference in error, negative is better; paired bootstrap over users):\n\n", ref)
		fmt.Fprintln(bw, "| model | ΔRMSE | ΔMAE |")
		fmt.Fprintln(bw, "|---|---|---|")
		for _, p := range r.Predictors {
			if c := p.VsReference; c != nil {
				fmt.Fprintf(bw, "| %s | %s | %s |\n", p.Name, deltaCI(c.DeltaRMSE, c.RMSECI, r.Options.Bootstrap), deltaCI(c.DeltaMAE, c.MAECI, r.Options.Bootstrap))
			}
		}
	}
	if len(r.Predictors) > 0 {
		h := r.Predictors[0].Histogram
		fmt.Fprintf(bw, "\nTrue test ratings: mean %s ± %s.\n", f2(h.TrueMean), f2(h.TrueStd))
		fmt.Fprint(bw, "\n**Rating histograms** (share of answers per rating, predictions rounded to the scale):\n\n")
		fmt.Fprint(bw, "| rating | truth |")
		for _, p := range r.Predictors {
			fmt.Fprintf(bw, " %s |", p.Name)
		}
		fmt.Fprint(bw, "\n|---|---|")
		for range r.Predictors {
			fmt.Fprint(bw, "---|")
		}
		fmt.Fprintln(bw)
		for k, v := range h.Values {
			fmt.Fprintf(bw, "| %g | %s |", v, share(h.True, k))
			for _, p := range r.Predictors {
				fmt.Fprintf(bw, " %s |", share(p.Histogram.Pred, k))
			}
			fmt.Fprintln(bw)
		}
	}
	fmt.Fprintf(bw, "\nSplit: protocol %q, seed %d, temporal %v, %d sampled users, %d train rows, %d test rows.\n",
		r.Split.Protocol, r.Split.Seed, r.Split.Temporal, r.Split.Users, r.Split.Train, r.Split.Test)
	return bw.Flush()
}

// WriteFiles writes results.json and report.md into dir (created if
// missing), each atomically.
func (r *Results) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "results.json"), 0o644, r.WriteJSON); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "report.md"), 0o644, r.WriteMarkdown)
}

func withCI(v Float, ci Interval, resamples int) string {
	if resamples <= 0 {
		return f4(v)
	}
	return fmt.Sprintf("%s [%s, %s]", f4(v), f4(ci.Lo), f4(ci.Hi))
}

// reference returns the name of the predictor the others were compared
// with, or "" when there was no comparison.
func (r *Results) reference() string {
	for _, p := range r.Predictors {
		if p.VsReference != nil {
			return p.VsReference.Reference
		}
	}
	return ""
}

func deltaCI(v Float, ci Interval, resamples int) string {
	if resamples <= 0 {
		return signed(v)
	}
	return fmt.Sprintf("%s [%s, %s]", signed(v), signed(ci.Lo), signed(ci.Hi))
}

func signed(v Float) string {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return "–"
	}
	return fmt.Sprintf("%+.4f", float64(v))
}

func share(counts []int, k int) string {
	var n int
	for _, c := range counts {
		n += c
	}
	if n == 0 || k >= len(counts) {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(counts[k])/float64(n))
}

func fmtF(v Float, prec int) string {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return "–"
	}
	return fmt.Sprintf("%.*f", prec, float64(v))
}

func f2(v Float) string { return fmtF(v, 2) }
func f3(v Float) string { return fmtF(v, 3) }
func f4(v Float) string { return fmtF(v, 4) }

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
