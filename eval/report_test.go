package eval_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/eval"
	"github.com/usersim/usersim/eval/baseline"
)

// described renames a predictor and describes it as an agent would.
type described struct {
	eval.Predictor
	name string
	info eval.PredictorInfo
}

func (d described) Name() string                 { return d.name }
func (d described) Describe() eval.PredictorInfo { return d.info }

const agentName = `agent <K=4> | "x" & y`

// fullResults evaluates baselines, a described agent, an all-invalid
// predictor and the oracle on a small world with users in groups (every
// seventh user has none).
func fullResults(t *testing.T) (*eval.Results, map[int32]string) {
	t.Helper()
	d := smallWorld(1, false)
	s := perUserSplit(d, false)
	groups := make(map[int32]string)
	for u := range int32(d.NumUsers()) {
		if u%7 != 0 {
			groups[u] = fmt.Sprintf("persona-%d", u%11)
		}
	}
	info := eval.PredictorInfo{Kind: eval.KindAgent, TrainableParams: 1_234_567, TrainSeconds: 33.3, Description: "persona LoRA, K = 4"}
	ps := []eval.Predictor{
		baseline.NewGlobalMean(), baseline.NewBias(), baseline.NewSVD(1), halfInvalid{},
		described{baseline.NewUserMean(), agentName, info},
		allInvalid{},
		baseline.NewOracle(func(u, i int32) float64 { return 3.5 }),
	}
	res, err := eval.Evaluate(context.Background(), d, s, ps, eval.Options{Seed: 1, Bootstrap: 100, Groups: groups, PerUserRows: true})
	if err != nil {
		t.Fatal(err)
	}
	res.Sections = []eval.Section{
		{Title: "Prediction spread", Markdown: "Spread *body*.\n"},
		{Title: "Counterfactual probes", Markdown: "| probe | Δ |\n|---|---|\n| genre | 0.1 |"},
	}
	return res, groups
}

// allInvalid never gives a valid answer.
type allInvalid struct{}

func (allInvalid) Name() string                                         { return "mute" }
func (allInvalid) Fit(context.Context, *dataset.Dataset, []int32) error { return nil }
func (allInvalid) Predict(u, i int32) float64                           { return eval.Invalid }

func TestEvaluateInfoAndGroups(t *testing.T) {
	res, groups := fullResults(t)
	kinds := map[string]string{"global-mean": "baseline", "bias": "baseline", "svd": "baseline", "llm-ish": "",
		agentName: "agent", "mute": "", "oracle": "oracle"}
	for _, p := range res.Predictors {
		if p.Info.Kind != kinds[p.Name] {
			t.Errorf("%s: kind %q, want %q", p.Name, p.Info.Kind, kinds[p.Name])
		}
	}
	if a := res.Predictors[4].Info; a.TrainableParams != 1_234_567 || a.TrainSeconds != 33.3 || a.Description == "" {
		t.Errorf("agent info %+v", a)
	}
	// Per-group metrics agree with the per-user ones pooled by group.
	for _, p := range res.Predictors {
		if p.Name == "mute" {
			for _, g := range p.PerGroup {
				if !math.IsNaN(float64(g.RMSE)) {
					t.Errorf("mute: group %s RMSE %v", g.Group, g.RMSE)
				}
			}
			continue
		}
		type acc struct {
			users, rows, valid int
			sse                float64
		}
		want := make(map[string]*acc)
		for _, u := range p.PerUser.Rows {
			g := groups[u.User]
			if g == "" {
				continue
			}
			if want[g] == nil {
				want[g] = &acc{}
			}
			a := want[g]
			a.users++
			a.rows += u.N
			if v := u.N - u.Invalid; v > 0 {
				a.valid += v
				a.sse += float64(v) * float64(u.RMSE) * float64(u.RMSE)
			}
		}
		if len(p.PerGroup) != len(want) || len(want) != 11 {
			t.Fatalf("%s: %d groups, want %d (11)", p.Name, len(p.PerGroup), len(want))
		}
		for k, g := range p.PerGroup {
			if g.Group != "persona-"+strconv.Itoa(k) {
				t.Errorf("%s: group %d is %q, want natural order", p.Name, k, g.Group)
			}
			a := want[g.Group]
			if g.Users != a.users || g.Rows != a.rows || math.Abs(float64(g.RMSE)-math.Sqrt(a.sse/float64(a.valid))) > 1e-9 {
				t.Errorf("%s %s: %+v, want users %d rows %d RMSE %v", p.Name, g.Group, g, a.users, a.rows, math.Sqrt(a.sse/float64(a.valid)))
			}
		}
	}
}

func TestResultsRoundTrip(t *testing.T) {
	res, _ := fullResults(t)
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	first := buf.String()
	back, err := eval.ReadResults(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := back.WriteJSON(&again); err != nil {
		t.Fatal(err)
	}
	if again.String() != first {
		t.Error("results.json changed in a round trip")
	}
	a := back.Predictors[4]
	if a.Info != res.Predictors[4].Info || len(a.PerGroup) != 11 || a.PerGroup[10] != res.Predictors[4].PerGroup[10] {
		t.Errorf("round trip lost info or groups: %+v", a.Info)
	}
	if len(back.Sections) != 2 || back.Sections[1] != res.Sections[1] {
		t.Errorf("round trip lost sections: %+v", back.Sections)
	}
	for _, key := range []string{`"per_group"`, `"info"`, `"sections"`, `"trainable_params": 1234567`} {
		if !strings.Contains(first, key) {
			t.Errorf("results.json lacks %s", key)
		}
	}
	// Charts and report drawn from the read-back results are the same bytes.
	for _, w := range []func(*eval.Results, *bytes.Buffer) error{
		func(r *eval.Results, b *bytes.Buffer) error { return r.WriteMarkdown(b) },
		func(r *eval.Results, b *bytes.Buffer) error { return r.WriteRMSEChart(b) },
		func(r *eval.Results, b *bytes.Buffer) error { return r.WriteHistogramChart(b) },
		func(r *eval.Results, b *bytes.Buffer) error { return r.WriteGroupChart(b) },
	} {
		var x, y bytes.Buffer
		if err := w(res, &x); err != nil {
			t.Fatal(err)
		}
		if err := w(back, &y); err != nil {
			t.Fatal(err)
		}
		if x.String() != y.String() {
			t.Error("output differs after a JSON round trip")
		}
	}
}

// An old results.json, written before predictor info, groups and sections
// existed, still reads.
func TestReadOldResults(t *testing.T) {
	const old = `{"dataset": "ml-100k", "scale": {"min": 1, "max": 5, "step": 1},
"split": {"protocol": "paper", "seed": 1, "temporal": true, "has_time": true, "users": 3, "test_users": 3, "train_rows": 10, "test_rows": 5, "description": "d"},
"options": {"bootstrap": 10, "level": 0.95, "seed": 1, "per_user_rows": false},
"predictors": [{"name": "bias", "n": 5, "valid": 5, "rmse": 0.9, "mae": 0.7, "urr": 0,
  "ci": {"resamples": 10, "rmse": {"lo": 0.8, "hi": 1, "level": 0.95}, "mae": {"lo": null, "hi": null, "level": 0.95}, "urr": {"lo": 0, "hi": 0, "level": 0.95}},
  "per_user": {"rmse": {"n": 3}, "mae": {"n": 3}},
  "histogram": {"values": [1, 2, 3, 4, 5], "pred": [0, 1, 2, 2, 0], "true": [1, 1, 1, 1, 1], "tv": 0.3, "emd": 0.2},
  "fit_seconds": 0.1, "predict_seconds": 0.01}]}`
	r, err := eval.ReadResults(strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	p := r.Predictors[0]
	if p.Name != "bias" || p.Info != (eval.PredictorInfo{}) || p.PerGroup != nil || r.Sections != nil || p.RMSE != 0.9 {
		t.Errorf("old results read as %+v", p)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil || !strings.Contains(md.String(), "| bias |") || strings.Contains(md.String(), "groups.svg") {
		t.Errorf("report of old results: %v\n%s", err, md.String())
	}
	if err := r.WriteFiles(t.TempDir()); err != nil {
		t.Error(err)
	}
}

func TestMarkdownReport(t *testing.T) {
	res, _ := fullResults(t)
	var b bytes.Buffer
	if err := res.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| trainable params | train s | fit s | pred/s |",
		`| agent \<K=4\> \| "x" & y |`, // the name cannot break the table
		"| 1.23M | 33.3 |",
		"its RMSE (" + strconv.FormatFloat(float64(res.Predictors[6].RMSE), 'f', 4, 64) + ") is the noise floor no model can beat",
		"![RMSE per configuration](rmse.svg)",
		"![Predicted vs true rating histograms](hist.svg)",
		"![RMSE per group against group size](groups.svg)",
		"(agent): persona LoRA, K = 4",
		"| persona-2 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// Every row of the main table has as many cells as its header.
	lines := strings.Split(md, "\n")
	head := indexPrefix(lines, "| model | RMSE |")
	for _, l := range lines[head : head+2+len(res.Predictors)] {
		if n := cells(l); n != cells(lines[head]) {
			t.Errorf("row has %d cells, header %d: %s", n, cells(lines[head]), l)
		}
	}
	// Blank params and train time for the baselines; a rate for everyone.
	if l := lines[head+2]; !strings.Contains(l, "|  |  | ") || strings.HasSuffix(l, "|  |") {
		t.Errorf("global-mean row: %s", l)
	}
	var tbl bytes.Buffer
	if err := res.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"params  train s  fit s  pred/s", "1.23M     33.3", "noise floor: oracle predicts the expected rating, RMSE"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	// Groups in natural order; sections after everything else, in order.
	if strings.Index(md, "| persona-2 |") > strings.Index(md, "| persona-10 |") {
		t.Error("persona-10 listed before persona-2")
	}
	s1, s2 := strings.Index(md, "\n## Prediction spread\n\nSpread *body*.\n"), strings.Index(md, "\n## Counterfactual probes\n\n| probe | Δ |")
	if s1 < 0 || s2 < s1 || s1 < strings.Index(md, "Split: protocol") {
		t.Errorf("sections misplaced (%d, %d):\n%s", s1, s2, md)
	}

	// No oracle, no groups: no noise floor sentence, no groups chart.
	res.Predictors = res.Predictors[:3]
	for k := range res.Predictors {
		res.Predictors[k].PerGroup = nil
	}
	b.Reset()
	if err := res.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "noise floor") || strings.Contains(b.String(), "groups.svg") {
		t.Error("noise floor or groups chart without an oracle or groups")
	}
	tbl.Reset()
	if err := res.WriteTable(&tbl); err != nil || strings.Contains(tbl.String(), "params") || strings.Contains(tbl.String(), "noise floor") {
		t.Errorf("baseline table: %v\n%s", err, tbl.String())
	}
}

// indexPrefix returns the index of the first line starting with prefix, or -1.
func indexPrefix(lines []string, prefix string) int {
	for k, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return k
		}
	}
	return -1
}

// cells counts the cells of a Markdown table row (escaped bars are text).
func cells(row string) int {
	return strings.Count(strings.ReplaceAll(row, `\|`, ""), "|") - 1
}

func TestWriteFilesCharts(t *testing.T) {
	res, _ := fullResults(t)
	dir := t.TempDir()
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	files := []string{"results.json", "report.md", "rmse.svg", "hist.svg", "groups.svg"}
	first := make(map[string]string)
	for _, f := range files {
		first[f] = read(f)
	}
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if read(f) != first[f] {
			t.Errorf("%s differs between two writes of the same results", f)
		}
		if strings.HasSuffix(f, ".svg") {
			parseSVG(t, f, read(f))
		}
	}
	// Without groups, groups.svg goes (a stale one too).
	for k := range res.Predictors {
		res.Predictors[k].PerGroup = nil
	}
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "groups.svg")); !os.IsNotExist(err) {
		t.Errorf("stale groups.svg: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		t.Errorf("dir holds %v", ents)
	}
}

// node is a parsed XML element.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []node     `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *node) num(t *testing.T, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return v
}

// find returns the elements under n (n included) of the given class, in
// document order.
func (n *node) find(class string) []*node {
	var out []*node
	if n.attr("class") == class {
		out = append(out, n)
	}
	for k := range n.Children {
		out = append(out, n.Children[k].find(class)...)
	}
	return out
}

// title returns the text of n's <title> child.
func (n *node) title() string {
	for _, c := range n.Children {
		if c.XMLName.Local == "title" {
			return c.Text
		}
	}
	return ""
}

// parseSVG checks that s is one well-formed SVG element with finite
// numbers and returns its tree.
func parseSVG(t *testing.T, name, s string) *node {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(s))
	var root node
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("%s is not valid XML: %v", name, err)
	}
	if _, err := dec.Token(); err == nil || err.Error() != "EOF" {
		// Only whitespace may follow the root element.
		for err == nil {
			var tok xml.Token
			tok, err = dec.Token()
			if cd, ok := tok.(xml.CharData); tok != nil && (!ok || strings.TrimSpace(string(cd)) != "") {
				t.Fatalf("%s: content after the root element", name)
			}
		}
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("%s: root %v", name, root.XMLName)
	}
	checkNumbers(t, name, &root)
	return &root
}

// checkNumbers fails when a coordinate attribute is not a finite number.
func checkNumbers(t *testing.T, name string, n *node) {
	t.Helper()
	for _, a := range n.Attrs {
		switch a.Name.Local {
		case "x", "y", "cx", "cy", "r", "x1", "x2", "y1", "y2", "width", "height":
			if v, err := strconv.ParseFloat(a.Value, 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%s: <%s %s=%q>", name, n.XMLName.Local, a.Name.Local, a.Value)
			}
		case "d", "transform", "viewBox":
			if strings.Contains(a.Value, "NaN") || strings.Contains(a.Value, "Inf") {
				t.Errorf("%s: <%s %s=%q>", name, n.XMLName.Local, a.Name.Local, a.Value)
			}
		}
	}
	for k := range n.Children {
		checkNumbers(t, name, &n.Children[k])
	}
}

// axis fits the linear map from data values to pixels through the tick
// lines (data-value, coordinate attr).
func axis(t *testing.T, ticks []*node, attr string) func(float64) float64 {
	t.Helper()
	if len(ticks) < 2 {
		t.Fatalf("%d ticks", len(ticks))
	}
	a, b := ticks[0], ticks[len(ticks)-1]
	va, vb := a.num(t, "data-value"), b.num(t, "data-value")
	pa, pb := a.num(t, attr), b.num(t, attr)
	return func(v float64) float64 { return pa + (v-va)/(vb-va)*(pb-pa) }
}

func near(a, b float64) bool { return math.Abs(a-b) <= 0.2 }

func TestRMSEChart(t *testing.T) {
	res, _ := fullResults(t)
	var b bytes.Buffer
	if err := res.WriteRMSEChart(&b); err != nil {
		t.Fatal(err)
	}
	root := parseSVG(t, "rmse.svg", b.String())
	rows := root.find("row")
	if len(rows) != len(res.Predictors) {
		t.Fatalf("%d rows for %d predictors", len(rows), len(res.Predictors))
	}
	px := axis(t, root.find("tick"), "x1")
	colours := make(map[string]string)
	for k, row := range rows {
		p := res.Predictors[k]
		if !strings.HasPrefix(row.title(), p.Name+" (") {
			t.Errorf("row %d is %q, want %s (table order)", k, row.title(), p.Name)
		}
		dots, ci := row.find("dot"), row.find("ci")
		if p.Name == "mute" { // no valid answer: no dot, no interval
			if len(dots)+len(ci) != 0 {
				t.Errorf("mute drawn")
			}
			continue
		}
		if len(dots) != 1 || len(ci) != 1 {
			t.Fatalf("%s: %d dots, %d error bars", p.Name, len(dots), len(ci))
		}
		if x := dots[0].num(t, "cx"); !near(x, px(float64(p.RMSE))) {
			t.Errorf("%s: dot at %v, RMSE %v maps to %v", p.Name, x, p.RMSE, px(float64(p.RMSE)))
		}
		lo, hi := ci[0].num(t, "x1"), ci[0].num(t, "x2")
		if !near(lo, px(float64(p.CI.RMSE.Lo))) || !near(hi, px(float64(p.CI.RMSE.Hi))) || !(lo < hi) {
			t.Errorf("%s: error bar [%v, %v], CI [%v, %v] maps to [%v, %v]", p.Name, lo, hi, p.CI.RMSE.Lo, p.CI.RMSE.Hi, px(float64(p.CI.RMSE.Lo)), px(float64(p.CI.RMSE.Hi)))
		}
		colours[p.Name] = dots[0].attr("fill")
	}
	if colours["bias"] != colours["svd"] || colours["bias"] == colours[agentName] || colours["oracle"] == colours["bias"] || colours["oracle"] == colours[agentName] {
		t.Errorf("kinds not told apart by colour: %v", colours)
	}
	if ref := root.find("ref"); len(ref) != 1 || !near(ref[0].num(t, "x1"), px(float64(res.Predictors[1].RMSE))) {
		t.Errorf("reference line %v, bias RMSE at %v", ref, px(float64(res.Predictors[1].RMSE)))
	}
	if fl := root.find("floor"); len(fl) != 1 || !near(fl[0].num(t, "x1"), px(float64(res.Predictors[6].RMSE))) {
		t.Error("no noise floor line at the oracle's RMSE")
	}
	if !strings.Contains(b.String(), "agent &lt;K=4&gt; | &#34;x&#34; &amp; y") {
		t.Error("the agent's name is not escaped")
	}

	// Without bootstrap, oracle or reference: dots only.
	res.Options.Bootstrap, res.Options.Reference = -1, "none"
	res.Predictors = res.Predictors[:1]
	res.Predictors[0].CI = eval.BootstrapCI{}
	res.Predictors[0].VsReference = nil
	b.Reset()
	if err := res.WriteRMSEChart(&b); err != nil {
		t.Fatal(err)
	}
	root = parseSVG(t, "rmse.svg", b.String())
	if len(root.find("dot")) != 1 || len(root.find("ci"))+len(root.find("ref"))+len(root.find("floor")) != 0 {
		t.Errorf("chart without intervals or references:\n%s", b.String())
	}
}

func TestHistogramChart(t *testing.T) {
	res, _ := fullResults(t)
	var b bytes.Buffer
	if err := res.WriteHistogramChart(&b); err != nil {
		t.Fatal(err)
	}
	root := parseSVG(t, "hist.svg", b.String())
	panels := root.find("panel")
	if len(panels) != len(res.Predictors) {
		t.Fatalf("%d panels for %d predictors", len(panels), len(res.Predictors))
	}
	// Bar heights are proportional to the shares: each set sums to the
	// same height for a share of 1.
	shareOf := func(bars []*node) []float64 {
		var sum float64
		h := make([]float64, len(bars))
		for k, r := range bars {
			h[k] = r.num(t, "height")
			sum += h[k]
		}
		for k := range h {
			h[k] /= sum
		}
		return h
	}
	for k, panel := range panels {
		p := res.Predictors[k]
		truth, pred := panel.find("truth"), panel.find("pred")
		if len(truth) != 5 {
			t.Fatalf("%s: %d truth bars", p.Name, len(truth))
		}
		if p.Name == "mute" {
			if len(pred) != 0 {
				t.Errorf("mute has %d predicted bars", len(pred))
			}
			continue
		}
		if len(pred) != 5 {
			t.Fatalf("%s: %d predicted bars", p.Name, len(pred))
		}
		for _, set := range []struct {
			bars   []*node
			counts []int
		}{{truth, p.Histogram.True}, {pred, p.Histogram.Pred}} {
			var n int
			for _, c := range set.counts {
				n += c
			}
			for v, s := range shareOf(set.bars) {
				if want := float64(set.counts[v]) / float64(n); math.Abs(s-want) > 0.01 {
					t.Errorf("%s: bar %d share %.3f, want %.3f", p.Name, v, s, want)
				}
			}
		}
	}
	// No predictors: still a valid SVG.
	b.Reset()
	if err := (&eval.Results{}).WriteHistogramChart(&b); err != nil {
		t.Fatal(err)
	}
	parseSVG(t, "hist.svg", b.String())
}

func TestGroupChart(t *testing.T) {
	res, _ := fullResults(t)
	// Only the agent and the oracle keep their groups.
	for k := range res.Predictors {
		if k != 4 && k != 6 {
			res.Predictors[k].PerGroup = nil
		}
	}
	var b bytes.Buffer
	if err := res.WriteGroupChart(&b); err != nil {
		t.Fatal(err)
	}
	root := parseSVG(t, "groups.svg", b.String())
	series, legend := root.find("series"), root.find("legend")
	if len(series) != 2 || len(legend) != 2 {
		t.Fatalf("%d series, %d legend entries; want 2", len(series), len(legend))
	}
	py := axis(t, root.find("ytick"), "y1")
	px := axis(t, root.find("xtick"), "x1")
	for k, s := range series {
		p := res.Predictors[[]int{4, 6}[k]]
		pts := s.find("pt")
		if len(pts) != len(p.PerGroup) {
			t.Fatalf("%s: %d points for %d groups", p.Name, len(pts), len(p.PerGroup))
		}
		for i, pt := range pts {
			g := p.PerGroup[i]
			if !strings.Contains(pt.title(), g.Group+": RMSE") {
				t.Errorf("point %d of %s titled %q", i, p.Name, pt.title())
			}
			if pt.XMLName.Local == "circle" { // the first series' marker
				if x, y := pt.num(t, "cx"), pt.num(t, "cy"); math.Abs(x-px(float64(g.Users))) > 6.2 || !near(y, py(float64(g.RMSE))) {
					t.Errorf("%s %s at (%v, %v), want (%v, %v)", p.Name, g.Group, x, y, px(float64(g.Users)), py(float64(g.RMSE)))
				}
			}
		}
	}
	if !strings.Contains(b.String(), "agent &lt;K=4&gt;") {
		t.Error("the agent's name is not escaped")
	}
}

// FuzzChartText feeds arbitrary names, group labels and descriptions to the
// charts and the report: the charts stay well-formed XML and the main table
// keeps its shape.
func FuzzChartText(f *testing.F) {
	f.Add("svd", "persona-1", "a LoRA")
	f.Add("<script>alert(1)</script>", "]]>&amp;", "\x00\x1b[31m\xff\xfe")
	f.Add("a|b\nc", "g\"'", "`code` *x* _y_")
	f.Fuzz(func(t *testing.T, name, group, desc string) {
		h := eval.CompareHistograms(dataset.FiveStars, []float64{1, 2, 5}, []float64{1, 3, 5})
		res := &eval.Results{Dataset: name, Scale: dataset.FiveStars, Options: eval.Options{Bootstrap: 10, Level: 0.95},
			Predictors: []eval.PredictorResult{{
				Name: name, N: 3, Valid: 3, RMSE: 0.8, MAE: 0.5, Histogram: h,
				CI:       eval.BootstrapCI{Resamples: 10, RMSE: eval.Interval{Lo: 0.7, Hi: 0.9}},
				PerGroup: []eval.GroupMetric{{Group: group, Users: 2, Rows: 3, RMSE: 0.8, MAE: 0.5}},
				Info:     eval.PredictorInfo{Kind: desc, Description: desc},
			}},
			Sections: []eval.Section{{Title: name, Markdown: desc}},
		}
		for _, w := range []func(*bytes.Buffer) error{
			func(b *bytes.Buffer) error { return res.WriteRMSEChart(b) },
			func(b *bytes.Buffer) error { return res.WriteHistogramChart(b) },
			func(b *bytes.Buffer) error { return res.WriteGroupChart(b) },
		} {
			var b bytes.Buffer
			if err := w(&b); err != nil {
				t.Fatal(err)
			}
			parseSVG(t, "chart", b.String())
		}
		var md bytes.Buffer
		if err := res.WriteMarkdown(&md); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(md.String(), "\n")
		head := indexPrefix(lines, "| model | RMSE |")
		if head < 0 || cells(lines[head+2]) != cells(lines[head]) {
			t.Errorf("name %q broke the table:\n%s", name, md.String())
		}
		var js bytes.Buffer
		if err := res.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(js.Bytes(), new(eval.Results)); err != nil {
			t.Fatal(err)
		}
	})
}

// fitDescriber knows its training time only once fitted.
type fitDescriber struct{ fitted bool }

func (*fitDescriber) Name() string { return "late" }
func (f *fitDescriber) Fit(context.Context, *dataset.Dataset, []int32) error {
	f.fitted = true
	return nil
}
func (*fitDescriber) Predict(u, i int32) float64 { return 3 }
func (f *fitDescriber) Describe() eval.PredictorInfo {
	if !f.fitted {
		return eval.PredictorInfo{}
	}
	return eval.PredictorInfo{Kind: eval.KindAgent, TrainSeconds: 2}
}

func TestDescribeAfterFit(t *testing.T) {
	d := smallWorld(7, false)
	res, err := eval.Evaluate(context.Background(), d, perUserSplit(d, false), []eval.Predictor{&fitDescriber{}}, eval.Options{Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Predictors[0].Info; got.Kind != eval.KindAgent || got.TrainSeconds != 2 {
		t.Errorf("info %+v: Describe not called after Fit", got)
	}
	if res.Predictors[0].PerGroup != nil {
		t.Error("per-group metrics without groups")
	}
}

func TestHistogramChartContinuousScale(t *testing.T) {
	sc := dataset.Scale{Min: 0, Max: 1}
	res := &eval.Results{Scale: sc, Predictors: []eval.PredictorResult{
		{Name: "a", Histogram: eval.CompareHistograms(sc, []float64{0.05, 0.5, 0.95, 0.97}, []float64{0.1, 0.2, 0.3, 0.99})},
	}}
	var b bytes.Buffer
	if err := res.WriteHistogramChart(&b); err != nil {
		t.Fatal(err)
	}
	root := parseSVG(t, "hist.svg", b.String())
	if n, m := len(root.find("truth")), len(root.find("pred")); n != 10 || m != 10 {
		t.Errorf("%d truth and %d predicted bars, want 10 bins each", n, m)
	}
}
