package baseline

import (
	"context"
	"math"
	"testing"

	"github.com/usersim/usersim/dataset"
)

// TestSVDppMatchesLiteralSurprise checks the lazy y_j update against a
// literal transcription of Surprise's SVD++ loop (recompute the implicit sum
// and update every y_j for each rating), from the same initial values and
// visiting order.
func TestSVDppMatchesLiteralSurprise(t *testing.T) {
	w := newWorld(11, 40, 30, 2, 0.4, 0.3, 0.5, 0.3)
	d := w.d
	train := allRows(d)
	m := NewSVDpp(3)
	m.Epochs = 4
	if err := m.Fit(context.Background(), d, train); err != nil {
		t.Fatal(err)
	}

	// Reference.
	ts, _ := newTrainSet(d, train)
	rng := newRNG(3)
	k := m.Factors
	pu := normalSlice(rng, ts.nUsers*k, 0, 0.1)
	qi := normalSlice(rng, ts.nItems*k, 0, 0.1)
	yj := normalSlice(rng, ts.nItems*k, 0, 0.1)
	bu := make([]float64, ts.nUsers)
	bi := make([]float64, ts.nItems)
	order := sgdOrder(d, train, rng)
	lr, reg := m.LR, m.Reg
	impl := make([]float64, k)
	for range m.Epochs {
		for _, row := range order {
			u, i, r := d.Ratings.User[row], d.Ratings.Item[row], float64(d.Ratings.Value[row])
			iu := ts.uItem[ts.uPtr[u]:ts.uPtr[u+1]]
			sq := math.Sqrt(float64(len(iu)))
			clear(impl)
			for _, j := range iu {
				for f := range k {
					impl[f] += yj[int(j)*k+f] / sq
				}
			}
			dt := 0.0
			for f := range k {
				dt += qi[int(i)*k+f] * (pu[int(u)*k+f] + impl[f])
			}
			e := r - (ts.mean + bu[u] + bi[i] + dt)
			bu[u] += lr * (e - reg*bu[u])
			bi[i] += lr * (e - reg*bi[i])
			for f := range k {
				puf, qif := pu[int(u)*k+f], qi[int(i)*k+f]
				pu[int(u)*k+f] += lr * (e*qif - reg*puf)
				qi[int(i)*k+f] += lr * (e*(puf+impl[f]) - reg*qif)
				for _, j := range iu {
					yj[int(j)*k+f] += lr * (e*qif/sq - reg*yj[int(j)*k+f])
				}
			}
		}
	}
	maxDiff := func(a, b []float64) float64 {
		var m float64
		for x := range a {
			m = math.Max(m, math.Abs(a[x]-b[x]))
		}
		return m
	}
	for _, c := range []struct {
		name string
		a, b []float64
	}{{"bu", m.bu, bu}, {"bi", m.bi, bi}, {"pu", m.pu, pu}, {"qi", m.qi, qi}, {"yj", m.yj, yj}} {
		if dd := maxDiff(c.a, c.b); dd > 1e-10 {
			t.Errorf("%s differs from the literal algorithm by %g", c.name, dd)
		}
	}
}

// TestPearsonBaselineMatchesPairwise checks the row-wise similarity against
// the pairwise definition computed directly for every item pair.
func TestPearsonBaselineMatchesPairwise(t *testing.T) {
	w := newWorld(12, 50, 25, 2, 0.4, 0.3, 0.5, 0.3)
	d := w.d
	m := NewKNNBaseline()
	m.Shrinkage = 10
	if err := m.Fit(context.Background(), d, allRows(d)); err != nil {
		t.Fatal(err)
	}
	ts := m.b.t
	n := ts.nItems
	// deviation d_ui for every (u, i) rated, by dense lookup.
	dev := make(map[[2]int32]float64)
	for u := range ts.nUsers {
		for p := ts.uPtr[u]; p < ts.uPtr[u+1]; p++ {
			i := ts.uItem[p]
			dev[[2]int32{int32(u), i}] = float64(ts.uVal[p]) - (ts.mean + m.b.bu[u] + m.b.bi[i])
		}
	}
	var checked int
	for i := range n {
		for j := range n {
			var prods, sqi, sqj float64
			var freq int
			for u := range ts.nUsers {
				di, ok1 := dev[[2]int32{int32(u), int32(i)}]
				dj, ok2 := dev[[2]int32{int32(u), int32(j)}]
				if ok1 && ok2 {
					freq++
					prods += di * dj
					sqi += di * di
					sqj += dj * dj
				}
			}
			want := 0.0
			switch {
			case i == j:
				want = 1
			case freq >= 2 && sqi*sqj > 0:
				want = prods / math.Sqrt(sqi*sqj) * float64(freq-1) / (float64(freq-1) + m.Shrinkage)
			}
			got := float64(m.sim[i*n+j])
			if math.Abs(got-want) > 1e-5 {
				t.Fatalf("sim(%d,%d) = %v, want %v (common users %d)", i, j, got, want, freq)
			}
			if want != 0 && i != j {
				checked++
			}
		}
	}
	if checked < n {
		t.Fatalf("only %d non-trivial similarities checked", checked)
	}
}

// TestKNNPredictHandComputed checks the neighbour aggregation on a case
// where the neighbours are known: only positive similarities, top K.
func TestKNNPredictHandComputed(t *testing.T) {
	w := newWorld(13, 60, 20, 2, 0.6, 0.3, 0.6, 0.3)
	d := w.d
	m := NewKNNBaseline()
	m.K = 3
	var train []int32
	for row := range d.Ratings.Len() {
		if !(d.Ratings.User[row] == 0 && d.Ratings.Item[row] == 0) {
			train = append(train, int32(row))
		}
	}
	if err := m.Fit(context.Background(), d, train); err != nil {
		t.Fatal(err)
	}
	ts := m.b.t
	n := ts.nItems
	type nb struct{ s, dev float64 }
	var cands []nb
	for p := ts.uPtr[0]; p < ts.uPtr[1]; p++ {
		j := ts.uItem[p]
		s := float64(m.sim[0*n+int(j)])
		if s > 0 {
			cands = append(cands, nb{s, float64(ts.uVal[p]) - (ts.mean + m.b.bu[0] + m.b.bi[j])})
		}
	}
	// top 3 by selection
	var num, den float64
	used := make([]bool, len(cands))
	for range min(3, len(cands)) {
		best := -1
		for c := range cands {
			if !used[c] && (best < 0 || cands[c].s > cands[best].s) {
				best = c
			}
		}
		used[best] = true
		num += cands[best].s * cands[best].dev
		den += cands[best].s
	}
	if len(cands) == 0 {
		t.Fatal("user 0 has no positively similar items; change the world")
	}
	want := clampTo(d.Scale, ts.mean+m.b.bu[0]+m.b.bi[0]+num/den)
	if got := m.Predict(0, 0); math.Abs(got-want) > 1e-6 {
		t.Errorf("Predict(0,0) = %v, want %v", got, want)
	}
}

// refSVD64 is the SVD training loop with float64 factors, a literal
// transcription of Surprise's: the reference for the float32 SVD's accuracy
// and speed. It returns the RMSE on test.
func refSVD64(d *dataset.Dataset, train, test []int32, m *SVD) float64 {
	ts, _ := newTrainSet(d, train)
	rng := newRNG(m.Seed)
	k := m.Factors
	pu := normalSlice(rng, ts.nUsers*k, m.InitMean, m.InitStd)
	qi := normalSlice(rng, ts.nItems*k, m.InitMean, m.InitStd)
	bu := make([]float64, ts.nUsers)
	bi := make([]float64, ts.nItems)
	users, items, vals := gather(d, sgdOrder(d, train, rng))
	lr, reg := m.LR, m.Reg
	for range m.Epochs {
		for n, u := range users {
			i := items[n]
			p := pu[int(u)*k : int(u)*k+k]
			q := qi[int(i)*k : int(i)*k+k]
			e := float64(vals[n]) - (ts.mean + bu[u] + bi[i] + dot(p, q))
			bu[u] += lr * (e - reg*bu[u])
			bi[i] += lr * (e - reg*bi[i])
			for f, pf := range p {
				qf := q[f]
				p[f] = pf + lr*(e*qf-reg*pf)
				q[f] = qf + lr*(e*pf-reg*qf)
			}
		}
	}
	var s float64
	for _, row := range test {
		u, i := d.Ratings.User[row], d.Ratings.Item[row]
		est := ts.mean
		if ts.knownUser(u) {
			est += bu[u]
		}
		if ts.knownItem(i) {
			est += bi[i]
		}
		if ts.knownUser(u) && ts.knownItem(i) {
			est += dot(pu[int(u)*k:int(u)*k+k], qi[int(i)*k:int(i)*k+k])
		}
		e := clampTo(d.Scale, est) - float64(d.Ratings.Value[row])
		s += e * e
	}
	return math.Sqrt(s / float64(len(test)))
}

func TestSVDFloat32MatchesFloat64Reference(t *testing.T) {
	w := newWorld(14, 300, 200, 3, 0.2, 0.3, 0.5, 0.5)
	train, test := holdout(w.d, 0.2, 2)
	m := NewSVD(5)
	if err := m.Fit(context.Background(), w.d, train); err != nil {
		t.Fatal(err)
	}
	got, want := rmseOn(m, w.d, test), refSVD64(w.d, train, test, m)
	if math.Abs(got-want) > 1e-3 {
		t.Errorf("float32 SVD RMSE %.5f, float64 reference %.5f", got, want)
	}
}

func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	f := 0
	for ; f+4 <= len(a); f += 4 {
		s0 += a[f] * b[f]
		s1 += a[f+1] * b[f+1]
		s2 += a[f+2] * b[f+2]
		s3 += a[f+3] * b[f+3]
	}
	for ; f < len(a); f++ {
		s0 += a[f] * b[f]
	}
	return (s0 + s1) + (s2 + s3)
}
