package eval

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	head = append(head, "user-RMSE", "pred μ±σ", "TV", "EMD")
	var withParams, withTrain bool
	for _, p := range r.Predictors {
		withParams = withParams || p.Info.TrainableParams > 0
		withTrain = withTrain || p.Info.TrainSeconds > 0
	}
	if withParams {
		head = append(head, "params")
	}
	if withTrain {
		head = append(head, "train s")
	}
	head = append(head, "fit s", "pred/s")
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
			f3(p.Histogram.TV), f3(p.Histogram.EMD))
		if withParams {
			row = append(row, params(p.Info.TrainableParams))
		}
		if withTrain {
			row = append(row, seconds(p.Info.TrainSeconds))
		}
		row = append(row, fmt.Sprintf("%.2f", p.FitSeconds), rate(p.N, p.PredictSeconds))
		writeRow(tw, nw, row)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Predictors) > 0 {
		h := r.Predictors[0].Histogram
		fmt.Fprintf(bw, "truth: mean %s, std %s over %d test rows\n", f2(h.TrueMean), f2(h.TrueStd), r.Split.Test)
	}
	if o := r.oracle(); o != nil {
		fmt.Fprintf(bw, "noise floor: %s predicts the expected rating, RMSE %s\n", o.Name, f4(o.RMSE))
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
	fmt.Fprintf(bw, "# Rating prediction: %s\n\n", mdText(r.Dataset))
	fmt.Fprintf(bw, "**Split.** %s.\n\n", capitalise(r.Split.Description))
	fmt.Fprintf(bw, "Rating scale %s. Metrics are over valid answers; URR is the share of invalid answers (0 for classic baselines).", r.Scale)
	if r.Options.Bootstrap > 0 {
		fmt.Fprintf(bw, " Intervals are %g%% percentile bootstrap over users (%d resamples, seed %d): users, not rows, are resampled because one user's test ratings are correlated.",
			100*r.Options.Level, r.Options.Bootstrap, r.Options.Seed)
	}
	fmt.Fprint(bw, "\n\n")
	fmt.Fprintln(bw, "| model | RMSE | MAE | URR | per-user RMSE median [IQR] | pred mean ± std | hist TV | hist EMD | trainable params | train s | fit s | pred/s |")
	fmt.Fprintln(bw, "|---|---|---|---|---|---|---|---|--:|--:|--:|--:|")
	for _, p := range r.Predictors {
		fmt.Fprintf(bw, "| %s | %s | %s | %s | %s [%s, %s] | %s ± %s | %s | %s | %s | %s | %.2f | %s |\n",
			mdCell(p.Name), withCI(p.RMSE, p.CI.RMSE, p.CI.Resamples), withCI(p.MAE, p.CI.MAE, p.CI.Resamples), f3(p.URR),
			f4(p.PerUser.RMSE.Median), f4(p.PerUser.RMSE.P25), f4(p.PerUser.RMSE.P75),
			f2(p.Histogram.PredMean), f2(p.Histogram.PredStd), f3(p.Histogram.TV), f3(p.Histogram.EMD),
			params(p.Info.TrainableParams), seconds(p.Info.TrainSeconds), p.FitSeconds, rate(p.N, p.PredictSeconds))
	}
	fmt.Fprint(bw, "\nTrain s is training done before the evaluation (adapters); fit s is Fit's time here; pred/s is test rows answered per second. Blank: none or unknown.\n")
	if o := r.oracle(); o != nil {
		name := "The oracle"
		if o.Name != "oracle" {
			name = "The oracle (" + mdText(o.Name) + ")"
		}
		fmt.Fprintf(bw, "%s predicts the world's expected rating: its RMSE (%s) is the noise floor no model can beat.\n", name, f4(o.RMSE))
	}
	fmt.Fprint(bw, "\n![RMSE per configuration](rmse.svg)\n")
	r.writeConfigurations(bw)
	if ref := r.reference(); ref != "" {
		fmt.Fprintf(bw, "\n**Compared with %s** (difference in error, negative is better; paired bootstrap over users):\n\n", ref)
		fmt.Fprintln(bw, "| model | ΔRMSE | ΔMAE |")
		fmt.Fprintln(bw, "|---|---|---|")
		for _, p := range r.Predictors {
			if c := p.VsReference; c != nil {
				fmt.Fprintf(bw, "| %s | %s | %s |\n", mdCell(p.Name), deltaCI(c.DeltaRMSE, c.RMSECI, r.Options.Bootstrap), deltaCI(c.DeltaMAE, c.MAECI, r.Options.Bootstrap))
			}
		}
	}
	if len(r.Predictors) > 0 {
		h := r.Predictors[0].Histogram
		fmt.Fprintf(bw, "\nTrue test ratings: mean %s ± %s.\n", f2(h.TrueMean), f2(h.TrueStd))
		fmt.Fprint(bw, "\n**Rating histograms** (share of answers per rating, predictions rounded to the scale):\n\n")
		fmt.Fprint(bw, "| rating | truth |")
		for _, p := range r.Predictors {
			fmt.Fprintf(bw, " %s |", mdCell(p.Name))
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
		fmt.Fprint(bw, "\n![Predicted vs true rating histograms](hist.svg)\n")
	}
	r.writeGroups(bw)
	fmt.Fprintf(bw, "\nSplit: protocol %q, seed %d, temporal %v, %d sampled users, %d train rows, %d test rows.\n",
		r.Split.Protocol, r.Split.Seed, r.Split.Temporal, r.Split.Users, r.Split.Train, r.Split.Test)
	for _, sec := range r.Sections {
		fmt.Fprintf(bw, "\n## %s\n\n%s\n", mdText(sec.Title), strings.TrimRight(sec.Markdown, "\n"))
	}
	return bw.Flush()
}

// writeConfigurations lists the predictors that carry a description.
func (r *Results) writeConfigurations(w io.Writer) {
	var any bool
	for _, p := range r.Predictors {
		if p.Info.Description != "" {
			any = true
		}
	}
	if !any {
		return
	}
	fmt.Fprint(w, "\n**Configurations:**\n\n")
	for _, p := range r.Predictors {
		if p.Info.Description == "" {
			continue
		}
		kind := ""
		if k := p.kind(); k != "" {
			kind = " (" + mdText(k) + ")"
		}
		fmt.Fprintf(w, "- **%s**%s: %s\n", mdText(p.Name), kind, mdText(p.Info.Description))
	}
}

// writeGroups writes the per-group table and links groups.svg when some
// predictor has per-group metrics.
func (r *Results) writeGroups(w io.Writer) {
	if !r.hasGroups() {
		return
	}
	var series []*PredictorResult
	size := make(map[string]GroupMetric) // users and rows of each group
	var groups []string
	for k := range r.Predictors {
		p := &r.Predictors[k]
		if len(p.PerGroup) == 0 {
			continue
		}
		series = append(series, p)
		for _, g := range p.PerGroup {
			if _, ok := size[g.Group]; !ok {
				size[g.Group] = g
				groups = append(groups, g.Group)
			}
		}
	}
	slices.SortFunc(groups, naturalCompare)
	fmt.Fprint(w, "\n**RMSE per group of users** (each group's test rows; users without a group are left out):\n\n")
	fmt.Fprint(w, "| group | users | rows |")
	for _, p := range series {
		fmt.Fprintf(w, " %s |", mdCell(p.Name))
	}
	fmt.Fprint(w, "\n|---|--:|--:|")
	for range series {
		fmt.Fprint(w, "--:|")
	}
	fmt.Fprintln(w)
	const maxRows = 100
	for k, g := range groups {
		if k == maxRows {
			fmt.Fprintf(w, "\n%d more groups are in results.json.\n", len(groups)-maxRows)
			break
		}
		fmt.Fprintf(w, "| %s | %d | %d |", mdCell(g), size[g].Users, size[g].Rows)
		for _, p := range series {
			cell := "–"
			if i := slices.IndexFunc(p.PerGroup, func(m GroupMetric) bool { return m.Group == g }); i >= 0 {
				cell = f4(p.PerGroup[i].RMSE)
			}
			fmt.Fprintf(w, " %s |", cell)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "\n![RMSE per group against group size](groups.svg)\n")
}

// WriteFiles writes results.json, report.md and the charts it links —
// rmse.svg, hist.svg and, when some predictor has per-group metrics,
// groups.svg (a stale one is removed otherwise) — into dir (created if
// missing), each atomically.
func (r *Results) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	type file struct {
		name  string
		write func(io.Writer) error
	}
	files := []file{{"results.json", r.WriteJSON}, {"rmse.svg", r.WriteRMSEChart}, {"hist.svg", r.WriteHistogramChart}}
	if r.hasGroups() {
		files = append(files, file{"groups.svg", r.WriteGroupChart})
	} else if err := os.Remove(filepath.Join(dir, "groups.svg")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write results: remove stale chart: %w", err)
	}
	files = append(files, file{"report.md", r.WriteMarkdown}) // last: it links the others
	for _, f := range files {
		if err := atomicfile.Write(filepath.Join(dir, f.name), 0o644, f.write); err != nil {
			return err
		}
	}
	return nil
}

// mdText makes s safe inside a Markdown paragraph or list item: one line,
// with the characters that would start markup or HTML escaped.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune("\\`*_[]<>|#", c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// mdCell makes s safe inside a Markdown table cell.
func mdCell(s string) string { return mdText(s) }

// params formats a parameter count compactly; blank for 0.
func params(n int64) string {
	switch v := float64(n); {
	case n <= 0:
		return ""
	case n < 10_000:
		return strconv.FormatInt(n, 10)
	case v < 1e6:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "k"
	case v < 1e9:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	default:
		return strconv.FormatFloat(v/1e9, 'f', 2, 64) + "B"
	}
}

// seconds formats a duration in seconds; blank for 0.
func seconds(s float64) string {
	if !(s > 0) || math.IsInf(s, 0) {
		return ""
	}
	return strconv.FormatFloat(s, 'f', 1, 64)
}

// rate formats n answers in secs seconds as answers per second, compactly
// (12.3, 456, 7890, 12k, 3.4M); blank when the time is unknown.
func rate(n int, secs float64) string {
	if n <= 0 || !(secs > 0) || math.IsInf(secs, 0) {
		return ""
	}
	switch v := float64(n) / secs; {
	case v >= 999_500:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case v >= 9_999.5:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case v >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
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
