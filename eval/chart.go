package eval

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The charts are hand-written, self-contained SVG: no scripts, no external
// fonts or styles, every text escaped, and the same Results always give the
// same bytes. Each data mark carries a <title> (a tooltip in browsers) and
// a class naming what it is, so that tests and scripts can find them.

// Colours per predictor kind, and of the truth in the histograms.
var kindColour = map[string]string{
	KindBaseline: "#4c78a8",
	KindAgent:    "#f58518",
	KindOracle:   "#54a24b",
	"":           "#b279a2",
}

const truthColour = "#9d9d9d"

// kindLabel names a kind in legends.
func kindLabel(kind string) string {
	switch kind {
	case KindBaseline:
		return "baseline"
	case KindAgent:
		return "agent"
	case KindOracle:
		return "oracle"
	}
	return "other"
}

// colourOf returns the colour of a predictor's kind; unknown kinds get the
// "other" colour.
func colourOf(kind string) string {
	if c, ok := kindColour[kind]; ok {
		return c
	}
	return kindColour[""]
}

// series are the colours and markers of the per-group chart, one per
// predictor, cycling (30 distinct combinations).
var (
	seriesColours = []string{"#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"}
	seriesShapes  = []string{"circle", "square", "triangle", "diamond", "triangle-down", "plus"}
)

// svgWriter writes SVG with coordinates rounded to 0.1 px.
type svgWriter struct {
	*bufio.Writer
}

func newSVG(w io.Writer, width, height int, title string) svgWriter {
	s := svgWriter{bufio.NewWriter(w)}
	fmt.Fprintf(s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(s, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(s, `<text x="16" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", esc(title))
	return s
}

func (s svgWriter) end() error {
	s.WriteString("</svg>\n")
	return s.Flush()
}

// text writes a text element; attrs are extra attributes, written as given.
func (s svgWriter) text(x, y float64, attrs, body string) {
	if attrs != "" {
		attrs = " " + attrs
	}
	fmt.Fprintf(s, `<text x="%s" y="%s"%s>%s</text>`+"\n", num(x), num(y), attrs, esc(body))
}

// legendSwatch writes a coloured square and its label; it returns the x
// after the label.
func (s svgWriter) legendSwatch(x, y float64, colour, label string) float64 {
	fmt.Fprintf(s, `<rect class="legend" x="%s" y="%s" width="10" height="10" fill="%s"/>`+"\n", num(x), num(y-9), colour)
	s.text(x+14, y, "", label)
	return x + 14 + textWidth(label) + 16
}

// esc escapes text for XML character data and attribute values, replacing
// characters XML cannot hold (control characters, invalid UTF-8) with
// U+FFFD.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) // writes to a strings.Builder: no error
	return b.String()
}

// num formats a coordinate; non-finite values (which the callers avoid)
// become 0 rather than invalid SVG.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	v = math.Round(v*10) / 10
	if v == 0 {
		v = 0 // no "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// textWidth estimates the width in pixels of s at font size 12.
func textWidth(s string) float64 { return 6.8 * float64(utf8.RuneCountInString(s)) }

// truncate shortens s to at most n runes, ending it with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// extent tracks the range of finite values.
type extent struct{ lo, hi float64 }

func newExtent() extent { return extent{math.Inf(1), math.Inf(-1)} }

func (e *extent) see(vs ...float64) {
	for _, v := range vs {
		if finite(v) {
			e.lo, e.hi = min(e.lo, v), max(e.hi, v)
		}
	}
}

func (e extent) empty() bool { return e.lo > e.hi }

// padded returns round ticks covering the extent plus a margin of 5% of
// its span on each side (at least 0.01 for a single value).
func (e extent) padded(n int) []float64 {
	pad := max(0.05*(e.hi-e.lo), 0.01)
	return niceTicks(e.lo-pad, e.hi+pad, n)
}

// niceTicks returns about n round, evenly spaced values whose first is at
// or below lo and whose last is at or above hi.
func niceTicks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(max(n, 1))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	first := math.Floor(lo/step + 1e-9)
	var ticks []float64
	for k := first; ; k++ {
		v := k * step
		ticks = append(ticks, v)
		if v >= hi-1e-9*step || len(ticks) > 4*n+4 {
			break
		}
	}
	if len(ticks) < 2 {
		ticks = append(ticks, ticks[0]+step)
	}
	return ticks
}

// tickLabel formats a tick value with no more digits than it needs.
func tickLabel(v float64) string {
	if math.Abs(v) < 1e-12 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// linear maps [d0, d1] onto [r0, r1].
func linear(d0, d1, r0, r1 float64) func(float64) float64 {
	return func(v float64) float64 { return r0 + (v-d0)/(d1-d0)*(r1-r0) }
}

// referenceLine returns the name and RMSE of the predictor the report
// compares with: the reference of the comparisons, else Options.Reference,
// else "bias" when evaluated. ok is false when there is none.
func (r *Results) referenceLine() (name string, rmse float64, ok bool) {
	name = r.reference()
	if name == "" {
		name = r.Options.Reference
	}
	if name == "none" {
		return "", 0, false
	}
	if name == "" {
		name = "bias"
	}
	for _, p := range r.Predictors {
		if p.Name == name && finite(float64(p.RMSE)) {
			return name, float64(p.RMSE), true
		}
	}
	return "", 0, false
}

// oracle returns the first predictor of kind oracle, or nil.
func (r *Results) oracle() *PredictorResult {
	for k := range r.Predictors {
		if r.Predictors[k].kind() == KindOracle {
			return &r.Predictors[k]
		}
	}
	return nil
}

// kindsPresent returns the kinds of the predictors in a fixed order.
func (r *Results) kindsPresent() []string {
	seen := make(map[string]bool)
	for i := range r.Predictors {
		k := r.Predictors[i].kind()
		if _, known := kindColour[k]; !known {
			k = ""
		}
		seen[k] = true
	}
	var out []string
	for _, k := range []string{KindBaseline, KindAgent, KindOracle, ""} {
		if seen[k] {
			out = append(out, k)
		}
	}
	return out
}

// WriteRMSEChart draws rmse.svg: every predictor's RMSE as a dot, in the
// order of the table, with its bootstrap interval as an error bar, coloured
// by kind; dashed vertical lines mark the reference's RMSE and the oracle's
// (the noise floor).
func (r *Results) WriteRMSEChart(w io.Writer) error {
	const (
		width       = 760
		top, bottom = 78, 52
		rowH        = 24
		right       = 84
	)
	maxName := 0
	for _, p := range r.Predictors {
		maxName = max(maxName, utf8.RuneCountInString(truncate(p.Name, 40)))
	}
	left := max(90, min(300, 16+6.8*float64(maxName)))
	height := top + bottom + rowH*max(1, len(r.Predictors))
	title := "RMSE per configuration"
	if r.Options.Bootstrap > 0 {
		title += fmt.Sprintf(" (%g%% bootstrap interval over users)", 100*r.Options.Level)
	}
	s := newSVG(w, width, height, title)
	ext := newExtent()
	for _, p := range r.Predictors {
		ext.see(float64(p.RMSE), float64(p.CI.RMSE.Lo), float64(p.CI.RMSE.Hi))
	}
	if ext.empty() {
		s.text(float64(width)/2, float64(top+20), `text-anchor="middle"`, "no valid answers")
		return s.end()
	}
	ticks := ext.padded(6)
	x0, x1 := left, float64(width-right)
	px := linear(ticks[0], ticks[len(ticks)-1], x0, x1)
	plotBottom := float64(height - bottom)

	// Legend: the kinds shown.
	lx := 16.0
	for _, k := range r.kindsPresent() {
		lx = s.legendSwatch(lx, 46, colourOf(k), kindLabel(k))
	}

	// Grid, ticks, axis.
	for k := range r.Predictors {
		if k%2 == 1 {
			fmt.Fprintf(s, `<rect x="0" y="%s" width="%d" height="%d" fill="#f6f6f6"/>`+"\n", num(float64(top+rowH*k)), width, rowH)
		}
	}
	for _, v := range ticks {
		x := px(v)
		fmt.Fprintf(s, `<line class="tick" data-value="%s" x1="%s" y1="%d" x2="%s" y2="%s" stroke="#e0e0e0"/>`+"\n", strconv.FormatFloat(v, 'g', -1, 64), num(x), top, num(x), num(plotBottom))
		s.text(x, plotBottom+16, `text-anchor="middle"`, tickLabel(v))
	}
	fmt.Fprintf(s, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#444"/>`+"\n", num(x0), num(plotBottom), num(x1), num(plotBottom))
	s.text((x0+x1)/2, float64(height-12), `text-anchor="middle"`, "RMSE (lower is better)")

	// Reference lines.
	if name, v, ok := r.referenceLine(); ok {
		x := px(v)
		fmt.Fprintf(s, `<line class="ref" x1="%s" y1="%d" x2="%s" y2="%s" stroke="#555" stroke-dasharray="5 3"/>`+"\n", num(x), top-16, num(x), num(plotBottom))
		s.text(x+4, float64(top-20), `fill="#555"`, truncate(name, 30)+" "+f4(Float(v)))
	}
	if o := r.oracle(); o != nil && finite(float64(o.RMSE)) {
		x := px(float64(o.RMSE))
		fmt.Fprintf(s, `<line class="floor" x1="%s" y1="%d" x2="%s" y2="%s" stroke="%s" stroke-dasharray="2 2"/>`+"\n", num(x), top-4, num(x), num(plotBottom), kindColour[KindOracle])
		s.text(x+4, float64(top-6), `fill="`+kindColour[KindOracle]+`"`, "noise floor "+f4(o.RMSE))
	}

	// One row per predictor.
	for k := range r.Predictors {
		p := &r.Predictors[k]
		y := float64(top + rowH*k + rowH/2)
		colour := colourOf(p.kind())
		tip := fmt.Sprintf("%s (%s): RMSE %s", p.Name, kindLabel(p.kind()), f4(p.RMSE))
		lo, hi := float64(p.CI.RMSE.Lo), float64(p.CI.RMSE.Hi)
		hasCI := p.CI.Resamples > 0 && finite(lo) && finite(hi)
		if hasCI {
			tip += fmt.Sprintf(" [%s, %s]", f4(p.CI.RMSE.Lo), f4(p.CI.RMSE.Hi))
		}
		fmt.Fprintf(s, "<g class=\"row\"><title>%s</title>\n", esc(tip))
		s.text(left-8, y+4, `text-anchor="end"`, truncate(p.Name, 40))
		if hasCI {
			xl, xh := px(lo), px(hi)
			fmt.Fprintf(s, `<line class="ci" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/>`+"\n", num(xl), num(y), num(xh), num(y), colour)
			for _, x := range []float64{xl, xh} {
				fmt.Fprintf(s, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2"/>`+"\n", num(x), num(y-5), num(x), num(y+5), colour)
			}
		}
		if v := float64(p.RMSE); finite(v) {
			fmt.Fprintf(s, `<circle class="dot" cx="%s" cy="%s" r="5" fill="%s" stroke="white"/>`+"\n", num(px(v)), num(y), colour)
			s.text(x1+8, y+4, "", f4(p.RMSE))
		} else {
			s.text(x1+8, y+4, `fill="#999"`, "no valid")
		}
		s.WriteString("</g>\n")
	}
	return s.end()
}

// WriteHistogramChart draws hist.svg: for every predictor a panel with the
// share of true ratings (grey) and of its predictions, rounded to the scale
// (coloured by kind), per scale value; the panels share one y axis.
func (r *Results) WriteHistogramChart(w io.Writer) error {
	const (
		panelW, panelH = 250, 190
		top            = 56
		pl, pr, pt, pb = 44, 10, 30, 28 // panel margins
	)
	n := len(r.Predictors)
	cols := min(max(n, 1), 3)
	rows := (max(n, 1) + cols - 1) / cols
	width, height := 16+cols*panelW, top+rows*panelH+8
	s := newSVG(w, width, height, "Predicted vs true rating histograms")
	if n == 0 {
		s.text(float64(width)/2, float64(top+20), `text-anchor="middle"`, "no predictors")
		return s.end()
	}
	lx := s.legendSwatch(16, 46, truthColour, "truth")
	for _, k := range r.kindsPresent() {
		lx = s.legendSwatch(lx, 46, colourOf(k), "predicted ("+kindLabel(k)+")")
	}
	values := r.Predictors[0].Histogram.Values
	shares := func(c []int) []float64 {
		var tot int
		for _, x := range c {
			tot += x
		}
		out := make([]float64, len(values))
		if tot == 0 {
			return nil
		}
		for k := range out {
			if k < len(c) {
				out[k] = float64(c[k]) / float64(tot)
			}
		}
		return out
	}
	truth := shares(r.Predictors[0].Histogram.True)
	ymax := 0.0
	for _, v := range truth {
		ymax = max(ymax, v)
	}
	for _, p := range r.Predictors {
		for _, v := range shares(p.Histogram.Pred) {
			ymax = max(ymax, v)
		}
	}
	yt := niceTicks(0, max(ymax, 0.01), 4)
	labelEvery := max(1, (len(values)+7)/8)
	for i := range r.Predictors {
		p := &r.Predictors[i]
		ox := float64(16 + (i%cols)*panelW)
		oy := float64(top + (i/cols)*panelH)
		x0, x1 := ox+pl, ox+panelW-pr
		y0, y1 := oy+pt, oy+panelH-pb // top and bottom of the plot
		py := linear(0, yt[len(yt)-1], y1, y0)
		fmt.Fprintf(s, "<g class=\"panel\">\n")
		s.text(ox+8, oy+pt-12, `font-weight="bold" font-size="11"`, truncate(p.Name, 24))
		if tv := float64(p.Histogram.TV); finite(tv) {
			s.text(x1, oy+pt-12, `text-anchor="end" font-size="10" fill="#555"`, "TV "+f3(p.Histogram.TV))
		}
		for _, v := range yt {
			y := py(v)
			fmt.Fprintf(s, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e8e8e8"/>`+"\n", num(x0), num(y), num(x1), num(y))
			s.text(x0-4, y+4, `text-anchor="end" font-size="10"`, tickLabel(100*v)+"%")
		}
		fmt.Fprintf(s, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#444"/>`+"\n", num(x0), num(y1), num(x1), num(y1))
		pred := shares(p.Histogram.Pred)
		gw := (x1 - x0) / float64(max(len(values), 1))
		bw := 0.4 * gw
		for k, v := range values {
			gx := x0 + float64(k)*gw
			t := 0.0
			if truth != nil {
				t = truth[k]
			}
			fmt.Fprintf(s, `<rect class="truth" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
				num(gx+0.1*gw), num(py(t)), num(bw), num(y1-py(t)), truthColour, esc(fmt.Sprintf("rating %s: truth %.1f%%", tickLabel(v), 100*t)))
			if pred != nil {
				fmt.Fprintf(s, `<rect class="pred" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s</title></rect>`+"\n",
					num(gx+0.5*gw), num(py(pred[k])), num(bw), num(y1-py(pred[k])), colourOf(p.kind()), esc(fmt.Sprintf("rating %s: %s %.1f%%", tickLabel(v), p.Name, 100*pred[k])))
			}
			if k%labelEvery == 0 {
				s.text(gx+gw/2, y1+14, `text-anchor="middle" font-size="10"`, tickLabel(v))
			}
		}
		if pred == nil {
			s.text((x0+x1)/2, (y0+y1)/2, `text-anchor="middle" fill="#999"`, "no valid answers")
		}
		s.WriteString("</g>\n")
	}
	return s.end()
}

// hasGroups reports whether some predictor has per-group metrics.
func (r *Results) hasGroups() bool {
	for _, p := range r.Predictors {
		if len(p.PerGroup) > 0 {
			return true
		}
	}
	return false
}

// WriteGroupChart draws groups.svg: each group's RMSE against its number
// of users, one colour and marker per predictor with per-group metrics
// (dodged sideways by at most 6 px so that they do not hide each other),
// and a legend.
func (r *Results) WriteGroupChart(w io.Writer) error {
	const (
		top, bottom = 44, 52
		left, right = 64, 230
		plotW       = 500
	)
	var series []*PredictorResult
	for k := range r.Predictors {
		if len(r.Predictors[k].PerGroup) > 0 {
			series = append(series, &r.Predictors[k])
		}
	}
	width := left + plotW + right
	height := max(420, top+18*len(series)+bottom)
	s := newSVG(w, width, height, "RMSE per group against group size")
	ext, users := newExtent(), newExtent()
	for _, p := range series {
		for _, g := range p.PerGroup {
			if finite(float64(g.RMSE)) {
				ext.see(float64(g.RMSE))
				users.see(float64(g.Users))
			}
		}
	}
	if ext.empty() {
		s.text(float64(width)/2, float64(top+20), `text-anchor="middle"`, "no per-group metrics")
		return s.end()
	}
	yt := ext.padded(6)
	pad := max(0.05*(users.hi-users.lo), 0.5)
	xt := niceTicks(max(0, users.lo-pad), users.hi+pad, 6)
	if xt[1]-xt[0] < 1 { // users are whole: no ticks between them
		xt = xt[:0]
		for v := math.Floor(users.lo - pad); v <= math.Ceil(users.hi+pad); v++ {
			xt = append(xt, max(0, v))
		}
		xt = slices.Compact(xt)
	}
	x0, x1 := float64(left), float64(left+plotW)
	y0, y1 := float64(top), float64(height-bottom)
	px := linear(xt[0], xt[len(xt)-1], x0, x1)
	py := linear(yt[0], yt[len(yt)-1], y1, y0)
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(s, `<line class="ytick" data-value="%s" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e8e8e8"/>`+"\n", strconv.FormatFloat(v, 'g', -1, 64), num(x0), num(y), num(x1), num(y))
		s.text(x0-6, y+4, `text-anchor="end"`, tickLabel(v))
	}
	for _, v := range xt {
		x := px(v)
		fmt.Fprintf(s, `<line class="xtick" data-value="%s" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e8e8e8"/>`+"\n", strconv.FormatFloat(v, 'g', -1, 64), num(x), num(y0), num(x), num(y1))
		s.text(x, y1+16, `text-anchor="middle"`, tickLabel(v))
	}
	fmt.Fprintf(s, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#444"/>`+"\n", num(x0), num(y0), num(x1-x0), num(y1-y0))
	s.text((x0+x1)/2, float64(height-12), `text-anchor="middle"`, "users in group (with test rows)")
	fmt.Fprintf(s, `<text transform="translate(18 %s) rotate(-90)" text-anchor="middle">RMSE</text>`+"\n", num((y0+y1)/2))
	// Series are dodged sideways by a few pixels so that groups of equal
	// size do not hide each other's markers.
	dodge := min(3, 12/float64(len(series)))
	for i, p := range series {
		colour, shape := seriesColours[i%len(seriesColours)], seriesShapes[i%len(seriesShapes)]
		dx := (float64(i) - float64(len(series)-1)/2) * dodge
		fmt.Fprintf(s, "<g class=\"series\">\n")
		for _, g := range p.PerGroup {
			if !finite(float64(g.RMSE)) {
				continue
			}
			tip := fmt.Sprintf("%s, %s: RMSE %s over %d users, %d rows", p.Name, g.Group, f4(g.RMSE), g.Users, g.Rows)
			marker(s, shape, colour, px(float64(g.Users))+dx, py(float64(g.RMSE)), "pt", tip)
		}
		s.WriteString("</g>\n")
		ly := float64(top + 10 + 18*i)
		marker(s, shape, colour, x1+20, ly-4, "legend", "")
		s.text(x1+32, ly, "", truncate(p.Name, 28))
	}
	return s.end()
}

// marker draws one marker of the given shape centred on (x, y), with a
// tooltip when tip is not empty.
func marker(s svgWriter, shape, colour string, x, y float64, class, tip string) {
	const r = 4.5
	var el, attrs string
	switch shape {
	case "circle":
		el, attrs = "circle", fmt.Sprintf(`cx="%s" cy="%s" r="%s" fill="%s"`, num(x), num(y), num(r), colour)
	case "square":
		el, attrs = "rect", fmt.Sprintf(`x="%s" y="%s" width="%s" height="%s" fill="%s"`, num(x-r), num(y-r), num(2*r), num(2*r), colour)
	default:
		var d string
		switch shape {
		case "triangle":
			d = fmt.Sprintf("M%s %sL%s %sL%s %sZ", num(x), num(y-r-1), num(x+r+1), num(y+r), num(x-r-1), num(y+r))
		case "triangle-down":
			d = fmt.Sprintf("M%s %sL%s %sL%s %sZ", num(x), num(y+r+1), num(x+r+1), num(y-r), num(x-r-1), num(y-r))
		case "diamond":
			d = fmt.Sprintf("M%s %sL%s %sL%s %sL%s %sZ", num(x), num(y-r-1), num(x+r+1), num(y), num(x), num(y+r+1), num(x-r-1), num(y))
		default: // plus
			d = fmt.Sprintf("M%s %sH%sM%s %sV%s", num(x-r-1), num(y), num(x+r+1), num(x), num(y-r-1), num(y+r+1))
		}
		el, attrs = "path", fmt.Sprintf(`d="%s" fill="%s" stroke="%s" stroke-width="2.5"`, d, colour, colour)
		if shape != "plus" {
			attrs = fmt.Sprintf(`d="%s" fill="%s"`, d, colour)
		}
	}
	if tip == "" {
		fmt.Fprintf(s, `<%s class="%s" %s/>`+"\n", el, class, attrs)
		return
	}
	fmt.Fprintf(s, `<%s class="%s" %s><title>%s</title></%s>`+"\n", el, class, attrs, esc(tip), el)
}
