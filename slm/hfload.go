package slm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/usersim/usersim/slm/safetensors"
)

// stTensors is what the loader needs of a safetensors file or directory.
type stTensors interface {
	Tensor(name string) (safetensors.TensorInfo, bool)
	Names() []string
}

type stSource struct{ s stTensors }

func (s stSource) tensor(name string) (rawTensor, bool, error) {
	t, ok := s.s.Tensor(name)
	if !ok {
		return rawTensor{}, false, nil
	}
	return rawTensor{Shape: t.Shape, DType: t.DType, Data: t.Data}, true, nil
}

func (s stSource) names() []string { return s.s.Names() }

// hfIgnored reports the tensors of HF checkpoints that carry no weights
// (rotary caches of older exports), and lm_head when the output is tied.
func hfIgnored(cfg *Config) func(string) bool {
	return func(name string) bool {
		if strings.HasSuffix(name, ".rotary_emb.inv_freq") {
			return true
		}
		return cfg.TiedEmbeddings && name == "lm_head.weight"
	}
}

// loadHFDir reads config.json and the safetensors weights (model.safetensors
// or the shards of model.safetensors.index.json) of a Hugging Face
// directory.
func loadHFDir(dir string, o LoadOptions) (*Model, error) {
	set, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	m, err := loadHF(filepath.Join(dir, "config.json"), set, o)
	if err != nil || !o.Mmap {
		set.Close()
		return m, err
	}
	m.closer = set
	return m, nil
}

// LoadHF reads a model from a Hugging Face config.json and one safetensors
// file (for checkpoints that keep several weight files side by side).
func LoadHF(configPath, safetensorsPath string) (*Model, error) {
	f, err := safetensors.Open(safetensorsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := loadHF(configPath, f, LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", safetensorsPath, err)
	}
	return m, nil
}

func loadHF(configPath string, st stTensors, o LoadOptions) (*Model, error) {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFromHF(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configPath, err)
	}
	m := &Model{Config: *cfg}
	if err := m.loadWeights(stSource{st}, formatHF, hfIgnored(cfg), o); err != nil {
		return nil, err
	}
	return m, nil
}
