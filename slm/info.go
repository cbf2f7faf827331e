package slm

import (
	"fmt"
	"sort"
	"strings"

	"github.com/usersim/usersim/slm/tensor"
)

// Info summarises a loaded model for `usersim model info`.
type Info struct {
	Arch            string     `json:"arch"`
	Params          int64      `json:"params"` // weights (a tied embedding counted once)
	Layers          int        `json:"layers"`
	Hidden          int        `json:"hidden"`
	Heads           int        `json:"heads"`
	KVHeads         int        `json:"kv_heads"`
	HeadDim         int        `json:"head_dim"`
	FFN             int        `json:"ffn"`
	Vocab           int        `json:"vocab"`
	Context         int        `json:"context"`
	Tied            bool       `json:"tied_embeddings"`
	RopeStyle       string     `json:"rope_style"`
	RopeTheta       float64    `json:"rope_theta"`
	RopeScale       string     `json:"rope_scaling,omitempty"`
	DTypes          []DTypeUse `json:"dtypes"`
	Bytes           int64      `json:"bytes"`              // weight memory in this process
	KVBytesPerToken int64      `json:"kv_bytes_per_token"` // KV cache memory per position
}

// DTypeUse is how many tensors, parameters and bytes one element type holds.
type DTypeUse struct {
	DType   string `json:"dtype"`
	Tensors int    `json:"tensors"`
	Params  int64  `json:"params"`
	Bytes   int64  `json:"bytes"`
}

// Info describes m: architecture, parameter count, weight types and memory.
func (m *Model) Info() Info {
	c := &m.Config
	in := Info{Arch: c.Arch, Layers: c.Layers, Hidden: c.Hidden, Heads: c.Heads, KVHeads: c.KVHeads,
		HeadDim: c.HeadDim, FFN: c.FFN, Vocab: c.Vocab, Context: c.MaxContext, Tied: c.TiedEmbeddings,
		RopeStyle: c.RopeStyle.String(), RopeTheta: c.RopeTheta, RopeScale: c.RopeScaling.Type,
		KVBytesPerToken: int64(c.Layers) * 2 * int64(c.KVDim()) * 4}
	use := map[tensor.DType]*DTypeUse{}
	add := func(d tensor.DType, params, bytes int64) {
		u := use[d]
		if u == nil {
			u = &DTypeUse{DType: d.String()}
			use[d] = u
		}
		u.Tensors++
		u.Params += params
		u.Bytes += bytes
		in.Params += params
		in.Bytes += bytes
	}
	specs, _ := m.specs()
	for _, s := range specs {
		if s.Linear != nil {
			l := s.Linear
			add(l.DType, int64(l.Out)*int64(l.In), int64(len(l.W))*4+int64(len(l.Q)))
		} else {
			add(tensor.F32, int64(len(*s.Vec)), int64(len(*s.Vec))*4)
		}
	}
	for _, u := range use {
		in.DTypes = append(in.DTypes, *u)
	}
	sort.Slice(in.DTypes, func(i, j int) bool { return in.DTypes[i].Bytes > in.DTypes[j].Bytes })
	return in
}

// String renders the summary as aligned lines.
func (in Info) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "architecture   %s\n", in.Arch)
	fmt.Fprintf(&b, "parameters     %d (%s)\n", in.Params, human(float64(in.Params), ""))
	fmt.Fprintf(&b, "layers         %d\n", in.Layers)
	fmt.Fprintf(&b, "hidden         %d (ffn %d)\n", in.Hidden, in.FFN)
	fmt.Fprintf(&b, "heads          %d query, %d key/value, head dim %d\n", in.Heads, in.KVHeads, in.HeadDim)
	fmt.Fprintf(&b, "vocabulary     %d\n", in.Vocab)
	fmt.Fprintf(&b, "context        %d\n", in.Context)
	fmt.Fprintf(&b, "tied output    %v\n", in.Tied)
	rope := fmt.Sprintf("%s, theta %g", in.RopeStyle, in.RopeTheta)
	if in.RopeScale != "" {
		rope += ", scaling " + in.RopeScale
	}
	fmt.Fprintf(&b, "rope           %s\n", rope)
	for _, u := range in.DTypes {
		fmt.Fprintf(&b, "dtype %-8s %d tensors, %d params, %s\n", u.DType, u.Tensors, u.Params, human(float64(u.Bytes), "B"))
	}
	fmt.Fprintf(&b, "weight memory  %s\n", human(float64(in.Bytes), "B"))
	fmt.Fprintf(&b, "kv cache       %s per token, %s at full context\n", human(float64(in.KVBytesPerToken), "B"),
		human(float64(in.KVBytesPerToken)*float64(in.Context), "B"))
	return b.String()
}

func human(v float64, unit string) string {
	for _, p := range []struct {
		s string
		f float64
	}{{"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if v >= p.f {
			return fmt.Sprintf("%.2f %s%s", v/p.f, p.s, unit)
		}
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}
