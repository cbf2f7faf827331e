package slm

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestConfigFromHFGolden(t *testing.T) {
	want := map[string]Config{
		"llama": {Arch: "llama", Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 128, Vocab: 32000,
			NormEps: 1e-6, RopeTheta: 1e4, RopeDim: 16, BOS: 1, EOS: []int{2}, MaxContext: 2048},
		"qwen2": {Arch: "qwen2", Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 128, Vocab: 512,
			NormEps: 1e-6, RopeTheta: 1e6, RopeDim: 16, QKVBias: true, TiedEmbeddings: true, BOS: 511, EOS: []int{511}, MaxContext: 32768},
		"phi3": {Arch: "phi3", Hidden: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 128, Vocab: 32000,
			NormEps: 1e-5, RopeTheta: 1e4, RopeDim: 16, FusedQKV: true, FusedGateUp: true, SlidingWindow: 2047,
			BOS: 1, EOS: []int{2}, MaxContext: 4096},
	}
	for name, w := range want {
		data, err := os.ReadFile(filepath.Join(sharedDir(t, "golden", "hf", name), "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := ConfigFromHF(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !configEqual(*c, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, *c, w)
		}
		// HFConfigJSON round-trips.
		out, err := c.HFConfigJSON()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ConfigFromHF(out)
		if err != nil || !configEqual(*c2, *c) {
			t.Errorf("%s: HFConfigJSON round trip: %+v, %v", name, c2, err)
		}
	}
}

func configEqual(a, b Config) bool { return reflect.DeepEqual(a, b) }

func TestConfigFromGGUFStories(t *testing.T) {
	m := loadStories(t)
	w := Config{Arch: "llama", Hidden: 64, Layers: 5, Heads: 8, KVHeads: 4, HeadDim: 8, FFN: 172, Vocab: 512,
		NormEps: 1e-5, RopeTheta: 1e4, RopeDim: 8, RopeStyle: RopeInterleaved, BOS: 1, EOS: []int{2}, MaxContext: 2048}
	if !configEqual(m.Config, w) {
		t.Errorf("got %+v\nwant %+v", m.Config, w)
	}
}

// TestRopeScaling checks the Llama 3.1 and Phi-3 (longrope) scalings
// parsed from their config.json forms.
func TestRopeScaling(t *testing.T) {
	llama31 := `{"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
	  "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "rms_norm_eps": 1e-5,
	  "rope_theta": 500000.0, "max_position_embeddings": 131072, "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
	  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}}`
	c, err := ConfigFromHF([]byte(llama31))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.EOS) != 3 || c.BOS != 128000 || c.HeadDim != 128 {
		t.Errorf("ids/head dim: %+v", c)
	}
	plain := *c
	plain.RopeScaling = RopeScaling{}
	base, _ := plain.invFreqs(false)
	got, mul := c.invFreqs(false)
	if mul != 1 {
		t.Errorf("llama3 multiplier %g", mul)
	}
	for i := range base {
		wavelen := 2 * math.Pi / base[i]
		switch {
		case wavelen < 8192/4.0: // high frequencies unchanged
			if got[i] != base[i] {
				t.Errorf("pair %d (wavelength %g): %g, want unchanged %g", i, wavelen, got[i], base[i])
			}
		case wavelen > 8192/1.0: // low frequencies divided by the factor
			if math.Abs(got[i]-base[i]/8) > 1e-18 {
				t.Errorf("pair %d (wavelength %g): %g, want %g", i, wavelen, got[i], base[i]/8)
			}
		default: // smoothly in between
			if !(got[i] < base[i] && got[i] > base[i]/8) {
				t.Errorf("pair %d (wavelength %g): %g not between %g and %g", i, wavelen, got[i], base[i]/8, base[i])
			}
		}
	}

	short := make([]float64, 48)
	long := make([]float64, 48)
	for i := range short {
		short[i], long[i] = 1+float64(i)/100, 1+float64(i)
	}
	phi := &Config{Arch: "phi3", Hidden: 3072, Layers: 1, Heads: 32, KVHeads: 32, HeadDim: 96, FFN: 8192, Vocab: 32064,
		NormEps: 1e-5, RopeTheta: 1e4, RopeDim: 96, MaxContext: 131072,
		RopeScaling: RopeScaling{Type: "longrope", ShortFactor: short, LongFactor: long, OriginalContext: 4096}}
	if err := phi.Validate(); err != nil {
		t.Fatal(err)
	}
	plain = *phi
	plain.RopeScaling = RopeScaling{}
	base, _ = plain.invFreqs(false)
	s, mulS := phi.invFreqs(false)
	l, _ := phi.invFreqs(true)
	wantMul := math.Sqrt(1 + math.Log(32)/math.Log(4096))
	if math.Abs(mulS-wantMul) > 1e-15 {
		t.Errorf("longrope multiplier %g, want %g", mulS, wantMul)
	}
	for i := range base {
		if math.Abs(s[i]-base[i]/short[i]) > 1e-18 || math.Abs(l[i]-base[i]/long[i]) > 1e-18 {
			t.Errorf("pair %d: short %g long %g, base %g", i, s[i], l[i], base[i])
		}
	}
	phi.RopeScaling.LongFactor = long[:10]
	if err := phi.Validate(); err == nil {
		t.Error("longrope with 10 long factors: no error")
	}
}

// FuzzConfigFromHF checks that no config.json makes ConfigFromHF panic, and
// that every accepted config validates and round-trips.
func FuzzConfigFromHF(f *testing.F) {
	for _, name := range []string{"llama", "qwen2", "phi3"} {
		if data, err := os.ReadFile(filepath.Join("..", "..", "shared", "golden", "hf", name, "config.json")); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 4, "vocab_size": 3, "rope_scaling": {"rope_type": "longrope", "short_factor": [1, 2], "long_factor": [1, 2]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ConfigFromHF(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config does not validate: %v", err)
		}
		c.invFreqs(false)
		c.invFreqs(true)
		if _, err := c.HFConfigJSON(); err != nil {
			t.Fatalf("HFConfigJSON: %v", err)
		}
	})
}
