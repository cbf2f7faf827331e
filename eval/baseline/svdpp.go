package baseline

import (
	"context"
	"math"

	"github.com/usersim/usersim/dataset"
)

// SVDpp is SVD++ (Koren 2008), r̂ = μ + b_u + b_i + q_iᵀ(p_u + |I_u|^−½ Σ_{j∈I_u} y_j),
// trained by stochastic gradient descent exactly as Surprise's SVDpp: for
// each training rating, in addition to SVD's updates (with q_i's gradient
// using p_u plus the implicit term),
//
//	y_j += LR (e q_i / √|I_u| − Reg y_j)   for every j ∈ I_u
//
// where I_u is the set of items user u rated in training.
//
// Surprise recomputes the implicit sum and updates every y_j for each
// rating, which costs O(|I_u|·Factors) per rating. Because every y_j of the
// user receives the same affine update, y_j ← a·y_j + c with a = 1 − LR·Reg,
// this implementation keeps the composed map (A, C) while it visits one
// user's ratings and applies it to the y_j once at the end of the user. The
// result is the same arithmetic up to rounding, at O(Factors) per rating plus
// O(|I_u|·Factors) per user and epoch. It relies on visiting each user's
// ratings together, which is Surprise's order too.
type SVDpp struct {
	Factors  int     // default 20
	Epochs   int     // default 20
	LR       float64 // default 0.007
	Reg      float64 // default 0.02
	InitMean float64 // default 0
	InitStd  float64 // default 0.1
	Seed     int64

	// OnEpoch, when set, is called after each epoch (1-based).
	OnEpoch func(epoch int)

	t      *trainSet
	bu, bi []float64
	pu, qi []float64
	yj     []float64
	impl   []float64 // per user: |I_u|^−½ Σ y_j, precomputed after training
}

// NewSVDpp returns an SVD++ predictor with Surprise's defaults.
func NewSVDpp(seed int64) *SVDpp {
	return &SVDpp{Factors: 20, Epochs: 20, LR: 0.007, Reg: 0.02, InitStd: 0.1, Seed: seed}
}

// Name returns "svdpp".
func (m *SVDpp) Name() string { return "svdpp" }

// Fit trains the model on the training rows. The context is checked between
// epochs.
func (m *SVDpp) Fit(ctx context.Context, d *dataset.Dataset, train []int32) error {
	t, rng, err := sgdStart("svdpp", sgdSettings{
		factors: m.Factors, epochs: m.Epochs, lr: m.LR, reg: m.Reg, initStd: m.InitStd, seed: m.Seed,
	}, d, train)
	if err != nil {
		return err
	}
	m.t = nil
	k := m.Factors
	pu := normalSlice(rng, t.nUsers*k, m.InitMean, m.InitStd)
	qi := normalSlice(rng, t.nItems*k, m.InitMean, m.InitStd)
	yj := normalSlice(rng, t.nItems*k, m.InitMean, m.InitStd)
	bu := make([]float64, t.nUsers)
	bi := make([]float64, t.nItems)
	order := sgdOrder(d, train, rng)
	users, items, vals := gather(d, order)
	mu, lr, reg := t.mean, m.LR, m.Reg
	a := 1 - lr*reg
	sum := make([]float64, k)  // current Σ_{j∈I_u} y_j (effective values)
	cAcc := make([]float64, k) // C of the composed map y ← A y₀ + C
	impl := make([]float64, k)
	for ep := range m.Epochs {
		if err := checkCtx(ctx, "svdpp", ep); err != nil {
			return err
		}
		for start := 0; start < len(users); {
			u := users[start]
			end := start + 1
			for end < len(users) && users[end] == u {
				end++
			}
			iu := t.uItem[t.uPtr[u]:t.uPtr[u+1]]
			nIu := float64(len(iu))
			inv := 1 / math.Sqrt(nIu)
			clear(sum)
			for _, j := range iu {
				y := yj[int(j)*k : int(j)*k+k]
				for f := range sum {
					sum[f] += y[f]
				}
			}
			clear(cAcc)
			A := 1.0
			p := pu[int(u)*k : int(u)*k+k]
			for n := start; n < end; n++ {
				i := items[n]
				q := qi[int(i)*k : int(i)*k+k]
				var dt float64
				for f := range impl {
					impl[f] = sum[f] * inv
					dt += q[f] * (p[f] + impl[f])
				}
				e := float64(vals[n]) - (mu + bu[u] + bi[i] + dt)
				bu[u] += lr * (e - reg*bu[u])
				bi[i] += lr * (e - reg*bi[i])
				g := lr * e * inv
				for f := range p {
					pf, qf := p[f], q[f]
					p[f] = pf + lr*(e*qf-reg*pf)
					q[f] = qf + lr*(e*(pf+impl[f])-reg*qf)
					c := g * qf
					cAcc[f] = a*cAcc[f] + c
					sum[f] = a*sum[f] + nIu*c
				}
				A *= a
			}
			for _, j := range iu {
				y := yj[int(j)*k : int(j)*k+k]
				for f := range y {
					y[f] = A*y[f] + cAcc[f]
				}
			}
			start = end
		}
		if m.OnEpoch != nil {
			m.OnEpoch(ep + 1)
		}
	}
	// Precompute each user's implicit term for prediction.
	implAll := make([]float64, t.nUsers*k)
	for u := range t.nUsers {
		iu := t.uItem[t.uPtr[u]:t.uPtr[u+1]]
		if len(iu) == 0 {
			continue
		}
		inv := 1 / math.Sqrt(float64(len(iu)))
		dst := implAll[u*k : u*k+k]
		for _, j := range iu {
			y := yj[int(j)*k : int(j)*k+k]
			for f := range dst {
				dst[f] += y[f]
			}
		}
		for f := range dst {
			dst[f] *= inv
		}
	}
	m.t, m.bu, m.bi, m.pu, m.qi, m.yj, m.impl = t, bu, bi, pu, qi, yj, implAll
	return nil
}

// Predict returns μ + b_u + b_i + q_iᵀ(p_u + |I_u|^−½ Σ y_j) clamped to the
// scale; unknown users or items contribute zero terms as in SVD.
func (m *SVDpp) Predict(user, item int32) float64 {
	t := m.t
	if t == nil {
		return math.NaN()
	}
	est, known := t.biasEstimate(m.bu, m.bi, user, item)
	if known {
		k := m.Factors
		p := m.pu[int(user)*k : int(user)*k+k]
		im := m.impl[int(user)*k : int(user)*k+k]
		q := m.qi[int(item)*k : int(item)*k+k]
		for f := range q {
			est += q[f] * (p[f] + im[f])
		}
	}
	return clampTo(t.scale, est)
}
