package train

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/usersim/usersim/internal/atomicfile"
)

// The loss curve files Train writes to Config.OutDir.
const (
	CurveCSV  = "loss.csv"
	CurveJSON = "loss.json"
	CurveSVG  = "loss.svg"
)

func (c *Config) writeCurves(st *state) error {
	if c.OutDir == "" {
		return nil
	}
	r := &Result{Steps: st.Step, Train: st.Train, Eval: st.Eval, BestStep: st.BestStep, BestLoss: st.BestLoss}
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return fmt.Errorf("train: loss curve: %w", err)
	}
	for _, f := range []struct {
		name  string
		write func(io.Writer, *Result) error
	}{{CurveCSV, WriteCSV}, {CurveJSON, WriteJSON}, {CurveSVG, WriteSVG}} {
		err := atomicfile.Write(filepath.Join(c.OutDir, f.name), 0o644, func(w io.Writer) error { return f.write(w, r) })
		if err != nil {
			return fmt.Errorf("train: loss curve: %w", err)
		}
	}
	return nil
}

// WriteCSV writes the curve as CSV: step, lr, loss, grad_norm, tokens,
// tokens_per_sec, eval_loss (empty where the step was not evaluated).
func WriteCSV(w io.Writer, r *Result) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"step", "lr", "loss", "grad_norm", "tokens", "tokens_per_sec", "eval_loss"})
	evals := map[int]float64{}
	for _, e := range r.Eval {
		evals[e.Step] = e.Loss
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, t := range r.Train {
		ev := ""
		if e, ok := evals[t.Step]; ok {
			ev = f(e)
		}
		cw.Write([]string{strconv.Itoa(t.Step), f(t.LR), f(t.Loss), f(t.GradNorm), strconv.Itoa(t.Tokens), f(t.TokensPerSec), ev})
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the Result as indented JSON (infinite and NaN values,
// which JSON lacks, as null).
func WriteJSON(w io.Writer, r *Result) error {
	c := *r
	if math.IsInf(c.BestLoss, 0) || math.IsNaN(c.BestLoss) {
		c.BestLoss = 0
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}
