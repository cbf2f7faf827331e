package lora_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersim/usersim/internal/sharedtest"
	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/safetensors"
	"github.com/usersim/usersim/slm/tensor"
)

// baseOf converts an slm.Config into the dimensions an adapter needs.
func baseOf(c *slm.Config) lora.Base {
	return lora.Base{Layers: c.Layers, Hidden: c.Hidden, QDim: c.QDim(), KVDim: c.KVDim(), FFN: c.FFN,
		FusedQKV: c.FusedQKV, FusedGateUp: c.FusedGateUp}
}

func goldenBase(t *testing.T) lora.Base {
	t.Helper()
	data, err := os.ReadFile(sharedtest.Path(t, "golden", "hf", "llama", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := slm.ConfigFromHF(data)
	if err != nil {
		t.Fatal(err)
	}
	return baseOf(c)
}

var tinyBase = lora.Base{Layers: 2, Hidden: 12, QDim: 16, KVDim: 8, FFN: 20}

func TestConfigGoldenRoundTrip(t *testing.T) {
	path := sharedtest.Path(t, "golden", "hf", "llama", "adapter", "adapter_config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lora.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if c.R != 4 || c.Alpha != 8 || c.Dropout != 0 || c.UseRSLoRA || c.BaseModel != "llama" || len(c.TargetModules) != 7 || !c.InferenceMode {
		t.Errorf("parsed %+v", c)
	}
	if s := c.Scale("model.layers.0.self_attn.q_proj"); s != 2 {
		t.Errorf("scale %g, want 2", s)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Errorf("Marshal differs from PEFT's file:\n%s\nwant\n%s", out, data)
	}
}

func TestConfigFields(t *testing.T) {
	c := lora.NewConfig("m", 16, 32, "q_proj", "v_proj")
	c.UseRSLoRA = true
	c.Dropout = 0.05
	c.RankPattern = map[string]int{`layers\.1\.self_attn\.q_proj`: 8}
	c.AlphaPattern = map[string]float64{"v_proj": 4.5}
	c.Init = lora.InitGaussian
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"use_rslora": true`, `"lora_dropout": 0.05`, `"init_lora_weights": "gaussian"`, `"lora_alpha": 32,`, `"v_proj": 4.5`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("missing %s in\n%s", want, data)
		}
	}
	d, err := lora.ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		r     int
		scale float64
	}{
		{"model.layers.0.self_attn.q_proj", 16, 32 / 4.0},
		{"model.layers.1.self_attn.q_proj", 8, 32 / math.Sqrt(8)},
		{"model.layers.1.self_attn.v_proj", 16, 4.5 / 4},
	}
	for _, tt := range tests {
		if r, _ := d.RankAlpha(tt.name); r != tt.r {
			t.Errorf("%s: rank %d, want %d", tt.name, r, tt.r)
		}
		if s := d.Scale(tt.name); math.Abs(s-tt.scale) > 1e-12 {
			t.Errorf("%s: scale %g, want %g", tt.name, s, tt.scale)
		}
	}
	a, err := lora.New(*d, tinyBase, 1)
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Pair(1, lora.Q); p == nil || p.R != 8 || len(p.A) != 8*12 {
		t.Errorf("rank pattern not applied: %+v", p)
	}
	if a.Pair(0, lora.K) != nil || a.Pair(0, lora.Down) != nil {
		t.Error("untargeted modules adapted")
	}
	if n := len(a.Pairs()); n != 4 {
		t.Errorf("%d pairs, want 4", n)
	}
}

func TestConfigErrors(t *testing.T) {
	base := `"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]`
	tests := []struct{ json, want string }{
		{`{` + base + `, "use_dora": true}`, "use_dora"},
		{`{` + base + `, "bias": "all"}`, "bias"},
		{`{` + base + `, "fan_in_fan_out": true}`, "fan_in_fan_out"},
		{`{` + base + `, "modules_to_save": ["lm_head"]}`, "modules_to_save"},
		{`{` + base + `, "init_lora_weights": "pissa"}`, "init_lora_weights"},
		{`{"peft_type": "IA3", "r": 4, "target_modules": ["q_proj"]}`, "peft_type"},
		{`{"peft_type": "LORA", "target_modules": ["q_proj"]}`, "r is missing"},
		{`{"peft_type": "LORA", "r": 0, "target_modules": ["q_proj"]}`, "r 0"},
		{`{"peft_type": "LORA", "r": "x", "target_modules": ["q_proj"]}`, "field r"},
		{`{"peft_type": "LORA", "r": 4, "target_modules": 3}`, "target_modules"},
		{`{"peft_type": "LORA", "r": 4, "target_modules": "(("}`, "target_modules"},
		{`{` + base + `, "rank_pattern": {"q": -1}}`, "rank_pattern"},
		{`{`, "adapter_config.json"},
	}
	for _, tt := range tests {
		_, err := lora.ParseConfig([]byte(tt.json))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one naming %q", tt.json, err, tt.want)
		}
	}
}

func TestTargets(t *testing.T) {
	phi := lora.Base{Layers: 3, Hidden: 8, QDim: 8, KVDim: 4, FFN: 10, FusedQKV: true, FusedGateUp: true}
	tests := []struct {
		name    string
		cfg     lora.Config
		base    lora.Base
		want    int // pairs
		wantErr bool
	}{
		{"all seven", lora.NewConfig("", 2, 4, "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), tinyBase, 14, false},
		{"all-linear", lora.NewConfig("", 2, 4, lora.AllLinear), tinyBase, 14, false},
		{"phi3 fused", lora.NewConfig("", 2, 4, "qkv_proj", "o_proj", "gate_up_proj", "down_proj"), phi, 12, false},
		{"phi3 all-linear", lora.NewConfig("", 2, 4, lora.AllLinear), phi, 12, false},
		{"regex", lora.Config{R: 2, Alpha: 4, TargetRegex: `.*\.layers\.1\..*_proj`}, tinyBase, 7, false},
		{"layers", lora.Config{R: 2, Alpha: 4, TargetModules: []string{"down_proj"}, LayersToTransform: []int{1}}, tinyBase, 1, false},
		{"full name", lora.NewConfig("", 2, 4, "model.layers.0.mlp.up_proj"), tinyBase, 1, false},
		{"none", lora.NewConfig("", 2, 4, "q_proj"), phi, 0, true},
	}
	for _, tt := range tests {
		a, err := lora.New(tt.cfg, tt.base, 0)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: error %v", tt.name, err)
			continue
		}
		if err == nil && len(a.Pairs()) != tt.want {
			t.Errorf("%s: %d pairs, want %d", tt.name, len(a.Pairs()), tt.want)
		}
	}
	a, _ := lora.New(lora.NewConfig("", 2, 4, lora.AllLinear), phi, 0)
	if p := a.Pair(2, lora.QKV); p == nil || p.Out != 8+2*4 || p.In != 8 {
		t.Errorf("qkv pair %+v", p)
	}
	if p := a.Pair(0, lora.GateUp); p == nil || p.Out != 20 || p.In != 8 {
		t.Errorf("gate_up pair %+v", p)
	}
	if na, nb := lora.TensorNames(3, lora.GateUp); na != "base_model.model.model.layers.3.mlp.gate_up_proj.lora_A.weight" || !strings.HasSuffix(nb, "gate_up_proj.lora_B.weight") {
		t.Errorf("names %s %s", na, nb)
	}
}

func TestInit(t *testing.T) {
	cfg := lora.NewConfig("", 4, 8, lora.AllLinear)
	a, err := lora.New(cfg, tinyBase, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := lora.New(cfg, tinyBase, 7)
	c, _ := lora.New(cfg, tinyBase, 8)
	same, differ := true, false
	for i, p := range a.Pairs() {
		bound := float32(1 / math.Sqrt(float64(p.In)))
		var maxAbs float32
		for j, v := range p.A {
			if v < -bound || v >= bound {
				t.Fatalf("%s: A[%d] = %g outside ±%g", p.Name(), j, v, bound)
			}
			maxAbs = max(maxAbs, float32(math.Abs(float64(v))))
			if v != b.Pairs()[i].A[j] {
				same = false
			}
			if v != c.Pairs()[i].A[j] {
				differ = true
			}
		}
		if maxAbs < bound/2 {
			t.Errorf("%s: |A| ≤ %g, far inside the bound %g", p.Name(), maxAbs, bound)
		}
		for _, v := range p.B {
			if v != 0 {
				t.Fatalf("%s: B not zero", p.Name())
			}
		}
	}
	if !same || !differ {
		t.Errorf("same seed same weights %v, other seed differs %v", same, differ)
	}
	// A large matrix: uniform on ±bound has variance bound²/3.
	big := lora.Base{Layers: 1, Hidden: 1000, QDim: 8, KVDim: 8, FFN: 8}
	g, _ := lora.New(lora.NewConfig("", 64, 8, "q_proj"), big, 1)
	var s, s2 float64
	for _, v := range g.Pair(0, lora.Q).A {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	n := float64(64 * 1000)
	if mean, v := s/n, s2/n; math.Abs(mean) > 1e-3 || math.Abs(v-1.0/3000) > 1e-5 {
		t.Errorf("mean %g variance %g, want 0 and %g", mean, v, 1.0/3000)
	}
	cfg.Init = lora.InitGaussian
	gs, _ := lora.New(cfg, big, 1)
	s, s2 = 0, 0
	for _, v := range gs.Pair(0, lora.Q).A {
		s2 += float64(v) * float64(v)
	}
	if v := s2 / float64(4*1000); math.Abs(v-1.0/16) > 0.005 {
		t.Errorf("gaussian variance %g, want 1/16", v)
	}
	cfg.Init = lora.InitNone
	nn, _ := lora.New(cfg, tinyBase, 1)
	nz := false
	for _, v := range nn.Pair(0, lora.Q).B {
		if v != 0 {
			nz = true
		}
		if math.Abs(float64(v)) >= 0.5 { // 1/√r
			t.Fatalf("B element %g outside ±1/√4", v)
		}
	}
	if !nz {
		t.Error("init_lora_weights=false left B zero")
	}
}

func TestLoadGolden(t *testing.T) {
	dir := sharedtest.Path(t, "golden", "hf", "llama", "adapter")
	base := goldenBase(t)
	a, err := lora.Load(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.Pairs()); n != 14 {
		t.Fatalf("%d pairs, want 14", n)
	}
	// Compare a tensor with the file's bytes.
	f, err := safetensors.Open(filepath.Join(dir, lora.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range a.Pairs() {
		if p.Scale != 2 || p.R != 4 {
			t.Errorf("%s: scale %g r %d", p.Name(), p.Scale, p.R)
		}
		na, _ := lora.TensorNames(p.Layer, p.Module)
		ti, _ := f.Tensor(na)
		for i, v := range p.A {
			if math.Float32bits(v) != binary.LittleEndian.Uint32(ti.Data[4*i:]) {
				t.Fatalf("%s[%d] differs from the file", na, i)
			}
		}
	}
	// The wrong base: errors name the tensor.
	wrong := base
	wrong.FFN++
	_, err = lora.Load(dir, wrong)
	if err == nil || !strings.Contains(err.Error(), "layers.0.mlp.gate_proj.lora_B.weight has shape [128 4], want [129 4]") {
		t.Errorf("wrong base: %v", err)
	}
	wrong = base
	wrong.Layers = 1
	_, err = lora.Load(dir, wrong)
	if err == nil || !strings.Contains(err.Error(), "unexpected tensor base_model.model.model.layers.1.") {
		t.Errorf("fewer layers: %v", err)
	}
	wrong = base
	wrong.Layers = 3
	_, err = lora.Load(dir, wrong)
	if err == nil || !strings.Contains(err.Error(), "layers.2.self_attn.q_proj.lora_A.weight is missing") {
		t.Errorf("more layers: %v", err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	cfg := lora.NewConfig("HuggingFaceTB/SmolLM2-135M", 4, 16, lora.AllLinear)
	cfg.Init = lora.InitNone // random B too, so every bit is exercised
	cfg.UseRSLoRA = true
	a, err := lora.New(cfg, tinyBase, 3)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out", "adapter")
	if err := a.Save(dir); err != nil {
		t.Fatal(err)
	}
	b, err := lora.Load(dir, tinyBase)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Pairs()) != len(b.Pairs()) {
		t.Fatal("pair counts differ")
	}
	for i, p := range a.Pairs() {
		q := b.Pairs()[i]
		if p.Name() != q.Name() || p.Scale != q.Scale || !bitsEqual(p.A, q.A) || !bitsEqual(p.B, q.B) {
			t.Fatalf("%s: round trip differs", p.Name())
		}
	}
	// Saving again over the directory gives the same bytes and leaves no
	// temporary directories.
	first := readAll(t, dir)
	b.Pairs()[0].A[0] = 42
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	c, err := lora.Load(dir, tinyBase)
	if err != nil || c.Pairs()[0].A[0] != 42 {
		t.Fatalf("overwrite: %v", err)
	}
	b.Pairs()[0].A[0] = a.Pairs()[0].A[0]
	if err := b.Save(dir); err != nil {
		t.Fatal(err)
	}
	if second := readAll(t, dir); !bytes.Equal(first, second) {
		t.Error("saving the same adapter twice gave different files")
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func readAll(t *testing.T, dir string) []byte {
	var all []byte
	for _, f := range []string{lora.ConfigFile, lora.WeightsFile} {
		d, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, d...)
	}
	return all
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestLoadHalf loads adapters stored as F16 and BF16.
func TestLoadHalf(t *testing.T) {
	cfg := lora.NewConfig("", 2, 4, "q_proj")
	cfg.Init = lora.InitNone
	a, _ := lora.New(cfg, tinyBase, 5)
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
		dir := t.TempDir()
		cj, _ := a.Config.Marshal()
		os.WriteFile(filepath.Join(dir, lora.ConfigFile), cj, 0o644)
		var ts []safetensors.TensorInfo
		want := map[string][]float32{}
		for _, p := range a.Pairs() {
			na, nb := lora.TensorNames(p.Layer, p.Module)
			for _, x := range []struct {
				name string
				w    []float32
				r, c int
			}{{na, p.A, p.R, p.In}, {nb, p.B, p.Out, p.R}} {
				data := make([]byte, 2*len(x.w))
				conv := make([]float32, len(x.w))
				for i, v := range x.w {
					var h uint16
					if dt == tensor.F16 {
						h = tensor.F32ToF16(v)
						conv[i] = tensor.F16ToF32(h)
					} else {
						h = tensor.F32ToBF16(v)
						conv[i] = tensor.BF16ToF32(h)
					}
					binary.LittleEndian.PutUint16(data[2*i:], h)
				}
				want[x.name] = conv
				ts = append(ts, safetensors.TensorInfo{Name: x.name, DType: dt, Shape: []int64{int64(x.r), int64(x.c)}, Data: data})
			}
		}
		if err := safetensors.Write(filepath.Join(dir, lora.WeightsFile), ts, nil); err != nil {
			t.Fatal(err)
		}
		b, err := lora.Load(dir, tinyBase)
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		for _, p := range b.Pairs() {
			na, nb := lora.TensorNames(p.Layer, p.Module)
			if !bitsEqual(p.A, want[na]) || !bitsEqual(p.B, want[nb]) {
				t.Errorf("%v: %s differs", dt, p.Name())
			}
		}
	}
}

func TestSet(t *testing.T) {
	s, err := lora.NewSet(tinyBase)
	if err != nil {
		t.Fatal(err)
	}
	cfg := lora.NewConfig("", 2, 4, "q_proj")
	a, _ := lora.New(cfg, tinyBase, 1)
	b, _ := lora.New(cfg, tinyBase, 2)
	if err := s.Add("alice", a); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("bob", b); err != nil {
		t.Fatal(err)
	}
	other := tinyBase
	other.Hidden = 13
	c, _ := lora.New(cfg, other, 1)
	if err := s.Add("carol", c); !errors.Is(err, lora.ErrBaseMismatch) {
		t.Errorf("mismatched base: %v", err)
	}
	if got, ok := s.Get("bob"); !ok || got != b {
		t.Error("Get bob")
	}
	if n := s.Names(); len(n) != 2 || n[0] != "alice" || n[1] != "bob" {
		t.Errorf("names %v", n)
	}
	s.Remove("alice")
	if _, ok := s.Get("alice"); ok || s.Len() != 1 {
		t.Error("Remove")
	}
	cl := b.Clone()
	cl.Pairs()[0].A[0]++
	if b.Pairs()[0].A[0] == cl.Pairs()[0].A[0] {
		t.Error("Clone shares weights")
	}
	dir := sharedtest.Path(t, "golden", "hf", "llama", "adapter")
	gs, _ := lora.NewSet(goldenBase(t))
	if _, err := gs.LoadDir("golden", dir); err != nil {
		t.Fatal(err)
	}
	if gs.Len() != 1 {
		t.Error("LoadDir did not add")
	}
}
