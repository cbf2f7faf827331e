package train

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is a terminal progress bar, or nothing when the output is not a
// terminal.
type progress struct {
	bar *progressbar.ProgressBar
	w   io.Writer
	ema float64
}

func newProgress(c *Config, done int) *progress {
	if c.NoProgress {
		return &progress{}
	}
	w := c.Progress
	if w == nil {
		w = os.Stderr
	}
	if !isTerminal(w) {
		return &progress{}
	}
	bar := progressbar.NewOptions(c.Steps,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("train"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
	)
	bar.Set(done)
	return &progress{bar: bar, w: w}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) update(r Record) {
	if p.bar == nil {
		return
	}
	if p.ema == 0 {
		p.ema = r.Loss
	} else {
		p.ema = 0.9*p.ema + 0.1*r.Loss
	}
	p.bar.Describe(fmt.Sprintf("loss %.4f  %.0f tok/s  lr %.2e", p.ema, r.TokensPerSec, r.LR))
	p.bar.Set(r.Step)
}

func (p *progress) close() {
	if p.bar != nil {
		p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
