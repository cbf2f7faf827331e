package baseline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/usersim/usersim/dataset"
)

// SVD is biased matrix factorisation r̂ = μ + b_u + b_i + q_iᵀp_u trained by
// plain stochastic gradient descent, as Surprise's SVD: biases start at 0,
// factors are drawn from N(InitMean, InitStd²), and each epoch visits every
// training rating once (users in a seeded random order, each user's ratings
// together) with
//
//	e = r − r̂
//	b_u += LR (e − Reg b_u)          b_i += LR (e − Reg b_i)
//	p_u += LR (e q_i − Reg p_u)      q_i += LR (e p_u − Reg q_i)
//
// (p_u and q_i updated from each other's old values). Biases and the error
// are float64; the factors are stored as float32, which halves their memory
// traffic and moves RMSE by less than 0.001 (compare BenchmarkSVDEpochML1M
// with the float64 loop in BenchmarkSVDEpochRef64).
type SVD struct {
	Factors  int     // latent dimensions; default 100
	Epochs   int     // SGD sweeps; default 20
	LR       float64 // learning rate for all parameters; default 0.005
	Reg      float64 // L2 regulariser for all parameters; default 0.02
	InitMean float64 // default 0
	InitStd  float64 // default 0.1
	Seed     int64   // initialisation and visiting order

	// OnEpoch, when set, is called after each epoch (1-based) from Fit's
	// goroutine, e.g. for progress bars.
	OnEpoch func(epoch int)

	t      *trainSet
	bu, bi []float64
	pu, qi []float32 // row-major: pu[u*Factors+f]
}

// NewSVD returns an SVD predictor with Surprise's defaults and the given seed.
func NewSVD(seed int64) *SVD {
	return &SVD{Factors: 100, Epochs: 20, LR: 0.005, Reg: 0.02, InitStd: 0.1, Seed: seed}
}

// Name returns "svd".
func (m *SVD) Name() string { return "svd" }

// Fit trains the model on the training rows. The context is checked between
// epochs.
func (m *SVD) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	t, rng, err := sgdStart("svd", sgdSettings{
		factors: m.Factors, epochs: m.Epochs, lr: m.LR, reg: m.Reg, initStd: m.InitStd, seed: m.Seed,
	}, d, train)
	if err != nil {
		return err
	}
	m.t = nil
	k := m.Factors
	pu := toF32(normalSlice(rng, t.nUsers*k, m.InitMean, m.InitStd))
	qi := toF32(normalSlice(rng, t.nItems*k, m.InitMean, m.InitStd))
	bu := make([]float64, t.nUsers)
	bi := make([]float64, t.nItems)
	order := sgdOrder(d, train, rng)
	users, items, vals := gather(d, order)
	mu, lr, reg := t.mean, m.LR, m.Reg
	for ep := range m.Epochs {
		if err := checkCtx(ctx, "svd", ep); err != nil {
			return err
		}
		for n, u := range users {
			i := items[n]
			p := pu[int(u)*k : int(u)*k+k]
			q := qi[int(i)*k : int(i)*k+k]
			e := float64(vals[n]) - (mu + bu[u] + bi[i] + float64(dot32(p, q)))
			bu[u] += lr * (e - reg*bu[u])
			bi[i] += lr * (e - reg*bi[i])
			sgdStep32(p, q, float32(e), float32(lr), float32(reg))
		}
		if m.OnEpoch != nil {
			m.OnEpoch(ep + 1)
		}
	}
	m.t, m.bu, m.bi, m.pu, m.qi = t, bu, bi, pu, qi
	return nil
}

// Predict returns μ + b_u + b_i + q_iᵀp_u clamped to the scale. For an
// unknown user (item) b_u and p_u (b_i and q_i) are taken as zero.
func (m *SVD) Predict(user, item int32) float64 {
	t := m.t
	if t == nil {
		return math.NaN()
	}
	est, known := t.biasEstimate(m.bu, m.bi, user, item)
	if known {
		k := m.Factors
		est += float64(dot32(m.pu[int(user)*k:int(user)*k+k], m.qi[int(item)*k:int(item)*k+k]))
	}
	return clampTo(t.scale, est)
}

// sgdSettings are the hyperparameters SVD and SVD++ share.
type sgdSettings struct {
	factors, epochs  int
	lr, reg, initStd float64
	seed             int64
}

// sgdStart checks s and builds the training set of the rows, returning it
// with the generator, seeded from s, that draws the initial factors and the
// visiting order. Errors start with name.
func sgdStart(name string, s sgdSettings, d *dataset.Dataset, train []int32) (*trainSet, *rand.Rand, error) {
	if s.factors <= 0 || s.epochs < 0 || s.lr <= 0 || s.reg < 0 || s.initStd < 0 {
		return nil, nil, fmt.Errorf("%s: invalid settings (factors %d, epochs %d, lr %g, reg %g, init std %g)",
			name, s.factors, s.epochs, s.lr, s.reg, s.initStd)
	}
	t, err := newTrainSet(d, train)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, newRNG(s.seed), nil
}

// biasEstimate returns μ + b_u + b_i, a user's or item's bias taken as zero
// when it has no training rating, and whether both have.
func (t *trainSet) biasEstimate(bu, bi []float64, user, item int32) (est float64, known bool) {
	est = t.mean
	ku, ki := t.knownUser(user), t.knownItem(item)
	if ku {
		est += bu[user]
	}
	if ki {
		est += bi[item]
	}
	return est, ku && ki
}

func normalSlice(rng interface{ NormFloat64() float64 }, n int, mean, std float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = mean + std*rng.NormFloat64()
	}
	return v
}

// gather copies the rows' users, items and values into flat slices in the
// given order, so that the SGD loop reads memory sequentially.
func gather(d *dataset.Dataset, rows []int32) (users, items []int32, vals []float32) {
	users = make([]int32, len(rows))
	items = make([]int32, len(rows))
	vals = make([]float32, len(rows))
	r := &d.Ratings
	for n, row := range rows {
		users[n], items[n], vals[n] = r.User[row], r.Item[row], r.Value[row]
	}
	return users, items, vals
}

func toF32(v []float64) []float32 {
	o := make([]float32, len(v))
	for i, x := range v {
		o[i] = float32(x)
	}
	return o
}

// sgdStep32 applies p += lr(e q − reg p), q += lr(e p − reg q) using the
// old values of both, written as p = (1 − lr·reg)p + (lr·e)q.
func sgdStep32(p, q []float32, e, lr, reg float32) {
	q = q[:len(p)]
	keep, le := 1-lr*reg, lr*e
	for f, pf := range p {
		qf := q[f]
		p[f] = keep*pf + le*qf
		q[f] = keep*qf + le*pf
	}
}

func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	f := 0
	for ; f+4 <= len(a); f += 4 {
		x, y := a[f:f+4:f+4], b[f:f+4:f+4]
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
	}
	for ; f < len(a); f++ {
		s0 += a[f] * b[f]
	}
	return (s0 + s1) + (s2 + s3)
}
