package train

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// WriteSVG draws the loss curve as a self-contained SVG: the training loss
// per step (thin), its exponential moving average (when there are more than
// 20 steps), the held-out loss with its best point marked, axes with ticks,
// and a legend. The loss axis is logarithmic when the losses span more than
// a factor of 50 (a curve going to near zero), linear otherwise.
func WriteSVG(w io.Writer, r *Result) error {
	const (
		width, height = 760, 440
		left, right   = 70, 20
		top, bottom   = 36, 50
	)
	pw, ph := float64(width-left-right), float64(height-top-bottom)
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(bw, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(bw, `<text x="%d" y="22" font-size="15" font-weight="bold">Loss</text>`+"\n", left)

	// Extent.
	maxStep := 1
	lo, hi := math.Inf(1), math.Inf(-1)
	see := func(v float64) {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	for _, t := range r.Train {
		maxStep = max(maxStep, t.Step)
		see(t.Loss)
	}
	for _, e := range r.Eval {
		maxStep = max(maxStep, e.Step)
		see(e.Loss)
	}
	if math.IsInf(lo, 1) {
		fmt.Fprintf(bw, `<text x="%d" y="%d">no data</text></svg>`+"\n", width/2-30, height/2)
		return bw.Flush()
	}
	logY := lo > 0 && hi/lo > 50
	var yt []float64
	var ylo, yhi float64
	if logY {
		ylo, yhi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		for e := ylo; e <= yhi; e++ {
			yt = append(yt, math.Pow(10, e))
		}
	} else {
		if hi == lo {
			lo, hi = lo-0.5, hi+0.5
		}
		yt = niceTicks(min(lo, 0), hi, 6)
		if lo < 0 {
			yt = niceTicks(lo, hi, 6)
		}
		ylo, yhi = yt[0], yt[len(yt)-1]
	}
	xt := niceTicks(0, float64(maxStep), 8)
	xhi := xt[len(xt)-1]
	px := func(step float64) float64 { return float64(left) + step/xhi*pw }
	py := func(v float64) float64 {
		if logY {
			v = math.Log10(max(v, 1e-300))
		}
		return float64(top) + (yhi-v)/(yhi-ylo)*ph
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

	// Grid and axes.
	for _, v := range yt {
		y := py(v)
		fmt.Fprintf(bw, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#e5e5e5"/>`+"\n", left, f(y), width-right, f(y))
		fmt.Fprintf(bw, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", left-6, f(y+4), tickLabel(v))
	}
	for _, v := range xt {
		x := px(v)
		fmt.Fprintf(bw, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="#e5e5e5"/>`+"\n", f(x), top, f(x), height-bottom)
		fmt.Fprintf(bw, `<text x="%s" y="%d" text-anchor="middle">%s</text>`+"\n", f(x), height-bottom+16, tickLabel(v))
	}
	fmt.Fprintf(bw, `<rect x="%d" y="%d" width="%s" height="%s" fill="none" stroke="#444"/>`+"\n", left, top, f(pw), f(ph))
	fmt.Fprintf(bw, `<text x="%s" y="%d" text-anchor="middle">step</text>`+"\n", f(float64(left)+pw/2), height-12)
	ylabel := "loss (per token)"
	if logY {
		ylabel += ", log scale"
	}
	fmt.Fprintf(bw, `<text transform="translate(16 %s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", f(float64(top)+ph/2), html.EscapeString(ylabel))

	poly := func(xs, ys []float64, style string) {
		if len(xs) == 0 {
			return
		}
		fmt.Fprintf(bw, `<polyline fill="none" %s points="`, style)
		for i := range xs {
			if i > 0 {
				bw.WriteByte(' ')
			}
			fmt.Fprintf(bw, "%s,%s", f(px(xs[i])), f(py(ys[i])))
		}
		bw.WriteString(`"/>` + "\n")
	}
	var xs, ys, es []float64
	ema := math.NaN()
	for _, t := range r.Train {
		xs, ys = append(xs, float64(t.Step)), append(ys, t.Loss)
		v := t.Loss
		if logY { // average on the scale drawn, or large early losses dominate
			v = math.Log(max(v, 1e-300))
		}
		if math.IsNaN(ema) {
			ema = v
		} else {
			ema = 0.9*ema + 0.1*v
		}
		if logY {
			es = append(es, math.Exp(ema))
		} else {
			es = append(es, ema)
		}
	}
	legend := [][2]string{}
	if len(xs) > 20 {
		poly(xs, ys, `stroke="#9ecae1" stroke-width="1"`)
		poly(xs, es, `stroke="#08519c" stroke-width="2"`)
		legend = append(legend, [2]string{"#9ecae1", "train"}, [2]string{"#08519c", "train (EMA 0.9)"})
	} else {
		poly(xs, ys, `stroke="#08519c" stroke-width="2"`)
		legend = append(legend, [2]string{"#08519c", "train"})
	}
	if len(r.Eval) > 0 {
		var ex, ey []float64
		for _, e := range r.Eval {
			ex, ey = append(ex, float64(e.Step)), append(ey, e.Loss)
		}
		poly(ex, ey, `stroke="#e6550d" stroke-width="2"`)
		for i := range ex {
			fmt.Fprintf(bw, `<circle cx="%s" cy="%s" r="3" fill="#e6550d"/>`+"\n", f(px(ex[i])), f(py(ey[i])))
		}
		legend = append(legend, [2]string{"#e6550d", "held-out"})
		if r.BestStep > 0 {
			x, y := px(float64(r.BestStep)), py(r.BestLoss)
			fmt.Fprintf(bw, `<circle cx="%s" cy="%s" r="6" fill="none" stroke="#a63603" stroke-width="2"/>`+"\n", f(x), f(y))
			anchor, dx := "start", 8.0
			if x > float64(left)+pw*0.75 {
				anchor, dx = "end", -8
			}
			fmt.Fprintf(bw, `<text x="%s" y="%s" fill="#a63603" text-anchor="%s">best %s @ step %d</text>`+"\n", f(x+dx), f(y-10), anchor, tickLabel(r.BestLoss), r.BestStep)
		}
	}
	for i, l := range legend {
		x := width - right - 170
		y := top + 14 + 18*i
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x, y-4, x+22, y-4, l[0])
		fmt.Fprintf(bw, `<text x="%d" y="%d">%s</text>`+"\n", x+28, y, html.EscapeString(l[1]))
	}
	bw.WriteString("</svg>\n")
	return bw.Flush()
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	start := math.Floor(lo/step) * step
	var ticks []float64
	for v := start; v < hi+step*0.999; v += step {
		ticks = append(ticks, math.Round(v/step)*step)
	}
	if len(ticks) < 2 {
		ticks = append(ticks, start+step)
	}
	return ticks
}

func tickLabel(v float64) string {
	if v != 0 && (math.Abs(v) < 1e-3 || math.Abs(v) >= 1e6) {
		s := strconv.FormatFloat(v, 'e', 0, 64) // 1e-04
		s = strings.Replace(s, "e-0", "e-", 1)
		return strings.Replace(s, "e+0", "e+", 1)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
