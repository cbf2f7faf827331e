package slm

import (
	"fmt"
	"os"

	"github.com/usersim/usersim/slm/gguf"
)

// LoadModel reads a model from a GGUF file or a Hugging Face directory
// (config.json and *.safetensors), without its tokenizer. Weights are
// copied into memory: float32, or quantized blocks for the types with a
// kernel (Q8_0, Q4_0, Q4_K, Q6_K); F16, BF16 and other types are converted
// to float32.
func LoadModel(path string) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st.IsDir() {
		m, err := loadHFDir(path)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		return m, nil
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer f.Close()
	m, err := loadGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return m, nil
}
