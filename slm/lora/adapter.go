package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/usersim/usersim/train"
)

// Base is what an adapter needs to know of its base model: the number of
// layers and the shapes of the projections. slm derives it from its Config.
type Base struct {
	Layers int
	Hidden int // model width: input of q, k, v, gate, up; output of o, down
	QDim   int // heads × head dim: output of q, input of o
	KVDim  int // kv heads × head dim: output of k and v
	FFN    int // MLP inner width: output of gate and up, input of down
	// FusedQKV and FusedGateUp select Phi-3's fused projections.
	FusedQKV, FusedGateUp bool
}

// Module is one projection kind of a transformer block.
type Module int

// The projections, in PEFT's usual order. A base has either Q, K, V or QKV,
// and either Gate, Up or GateUp.
const (
	Q Module = iota
	K
	V
	O
	Gate
	Up
	Down
	QKV
	GateUp
	NumModules
)

var moduleNames = [NumModules]string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj, QKVProj, GateUpProj}

// String returns PEFT's name for the module ("q_proj", ...).
func (m Module) String() string {
	if m >= 0 && m < NumModules {
		return moduleNames[m]
	}
	return fmt.Sprintf("Module(%d)", int(m))
}

// ParseModule returns the module named name ("q_proj", ...).
func ParseModule(name string) (Module, bool) {
	i := slices.Index(moduleNames[:], name)
	return Module(i), i >= 0
}

// Modules lists the projections a base has, in order.
func (b Base) Modules() []Module {
	var ms []Module
	if b.FusedQKV {
		ms = append(ms, QKV)
	} else {
		ms = append(ms, Q, K, V)
	}
	ms = append(ms, O)
	if b.FusedGateUp {
		ms = append(ms, GateUp)
	} else {
		ms = append(ms, Gate, Up)
	}
	return append(ms, Down)
}

// Dims returns a module's output and input widths.
func (b Base) Dims(m Module) (out, in int) {
	switch m {
	case Q:
		return b.QDim, b.Hidden
	case K, V:
		return b.KVDim, b.Hidden
	case QKV:
		return b.QDim + 2*b.KVDim, b.Hidden
	case O:
		return b.Hidden, b.QDim
	case Gate, Up:
		return b.FFN, b.Hidden
	case GateUp:
		return 2 * b.FFN, b.Hidden
	case Down:
		return b.Hidden, b.FFN
	}
	return 0, 0
}

// Validate checks the dimensions.
func (b Base) Validate() error {
	if b.Layers <= 0 || b.Hidden <= 0 || b.QDim <= 0 || b.KVDim <= 0 || b.FFN <= 0 {
		return fmt.Errorf("lora base: dimensions must be positive (%+v)", b)
	}
	return nil
}

// ModuleName is the module's name in the Hugging Face model
// ("model.layers.3.self_attn.q_proj").
func ModuleName(layer int, m Module) string {
	block := "self_attn"
	switch m {
	case Gate, Up, Down, GateUp:
		block = "mlp"
	}
	return fmt.Sprintf("model.layers.%d.%s.%s", layer, block, m)
}

// TensorNames returns PEFT's names of a module's A and B matrices in
// adapter_model.safetensors.
func TensorNames(layer int, m Module) (a, b string) {
	p := "base_model.model." + ModuleName(layer, m)
	return p + ".lora_A.weight", p + ".lora_B.weight"
}

// Pair is the adapter of one projection: y += Scale·(x·Aᵀ)·Bᵀ.
type Pair struct {
	Layer  int
	Module Module
	// Out, In and R are the dimensions: A is R×In, B is Out×R, row-major.
	Out, In, R int
	Scale      float32
	A, B       []float32
	// GA and GB are the gradients of A and B; nil until Adapter.Params.
	GA, GB []float32
}

// Name is the module's Hugging Face name (see ModuleName).
func (p *Pair) Name() string { return ModuleName(p.Layer, p.Module) }

// Adapter is a LoRA adapter: a Pair per adapted projection of each layer.
type Adapter struct {
	Config Config
	Base   Base
	pairs  [][NumModules]*Pair // per layer
}

// New returns a new adapter for base, initialised as PEFT does
// (see Init), with random numbers from seed: the same seed gives the same
// matrices. It is an error when cfg targets none of base's projections.
func New(cfg Config, base Base, seed uint64) (*Adapter, error) {
	a, err := newAdapter(cfg, base)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6f7261)) // "lora"
	for _, p := range a.Pairs() {
		switch cfg.Init {
		case InitDefault:
			kaimingUniform(p.A, p.In, rng)
		case InitGaussian:
			std := 1 / float64(p.R)
			for i := range p.A {
				p.A[i] = float32(rng.NormFloat64() * std)
			}
		case InitNone:
			kaimingUniform(p.A, p.In, rng)
			kaimingUniform(p.B, p.R, rng)
		}
	}
	return a, nil
}

// kaimingUniform fills w as torch.nn.init.kaiming_uniform_(w, a=√5) does for a
// weight with fan_in columns: gain √(2/(1+a²)) = √(1/3), bound
// √3·gain/√fan_in = 1/√fan_in, uniform in [-bound, bound).
func kaimingUniform(w []float32, fanIn int, rng *rand.Rand) {
	bound := 1 / math.Sqrt(float64(fanIn))
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
}

// newAdapter allocates zero matrices for every targeted projection.
func newAdapter(cfg Config, base Base) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := base.Validate(); err != nil {
		return nil, err
	}
	a := &Adapter{Config: cfg, Base: base, pairs: make([][NumModules]*Pair, base.Layers)}
	n := 0
	for l := 0; l < base.Layers; l++ {
		for _, m := range base.Modules() {
			name := ModuleName(l, m)
			if !cfg.Targets(name, m.String(), l) {
				continue
			}
			out, in := base.Dims(m)
			r, _ := cfg.RankAlpha(name)
			a.pairs[l][m] = &Pair{
				Layer: l, Module: m, Out: out, In: in, R: r,
				Scale: float32(cfg.Scale(name)),
				A:     make([]float32, r*in), B: make([]float32, out*r),
			}
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("lora: target_modules %q match no projection of the base (%v)", cfg.TargetModules, base.Modules())
	}
	return a, nil
}

// Pair returns the adapter of a layer's projection, or nil when that
// projection is not adapted.
func (a *Adapter) Pair(layer int, m Module) *Pair {
	if layer < 0 || layer >= len(a.pairs) || m < 0 || m >= NumModules {
		return nil
	}
	return a.pairs[layer][m]
}

// Pairs returns every pair, by layer and then module.
func (a *Adapter) Pairs() []*Pair {
	var ps []*Pair
	for l := range a.pairs {
		for _, p := range a.pairs[l] {
			if p != nil {
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// NumParams is the number of adapter weights.
func (a *Adapter) NumParams() int {
	n := 0
	for _, p := range a.Pairs() {
		n += len(p.A) + len(p.B)
	}
	return n
}

// Params returns the trainable matrices for package train, named by their
// PEFT tensor names, allocating the gradient buffers GA and GB on first use.
func (a *Adapter) Params() []*train.Param {
	var ps []*train.Param
	for _, p := range a.Pairs() {
		if p.GA == nil {
			p.GA = make([]float32, len(p.A))
			p.GB = make([]float32, len(p.B))
		}
		na, nb := TensorNames(p.Layer, p.Module)
		ps = append(ps, &train.Param{Name: na, W: p.A, G: p.GA}, &train.Param{Name: nb, W: p.B, G: p.GB})
	}
	return ps
}

// Clone returns a deep copy of the adapter's weights (gradients are not
// copied), for example to start persona adapters from a shared one.
func (a *Adapter) Clone() *Adapter {
	c := &Adapter{Config: a.Config, Base: a.Base, pairs: make([][NumModules]*Pair, len(a.pairs))}
	for l := range a.pairs {
		for m, p := range a.pairs[l] {
			if p != nil {
				q := *p
				q.A, q.B, q.GA, q.GB = slices.Clone(p.A), slices.Clone(p.B), nil, nil
				c.pairs[l][m] = &q
			}
		}
	}
	return c
}
