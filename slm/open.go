package slm

import (
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/usersim/usersim/slm/gguf"
	"github.com/usersim/usersim/slm/tokenizer"
)

// LoadModel reads a model from a GGUF file or a Hugging Face directory
// (config.json and *.safetensors), without its tokenizer. Weights are
// copied into memory: float32, or quantized blocks for the types with a
// kernel (Q8_0, Q4_0, Q4_K, Q6_K); F16, BF16 and other types are converted
// to float32.
func LoadModel(path string) (*Model, error) { return LoadModelWith(path, LoadOptions{}) }

// LoadModelWith is LoadModel with options.
func LoadModelWith(path string, o LoadOptions) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if st.IsDir() {
		m, err := loadHFDir(path, o)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", path, err)
		}
		return m, nil
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m, err := loadGGUF(f, o)
	if err != nil || !o.Mmap {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	if o.Mmap {
		m.closer = f
	}
	return m, nil
}

// Load reads a model and its tokenizer from a GGUF file (tokenizer from the
// tokenizer.ggml.* metadata) or a Hugging Face directory (tokenizer.json or
// tokenizer.model, with tokenizer_config.json and generation_config.json).
func Load(path string) (*Model, *tokenizer.Tokenizer, error) { return LoadWith(path, LoadOptions{}) }

// LoadWith is Load with options.
func LoadWith(path string, o LoadOptions) (*Model, *tokenizer.Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	if st.IsDir() {
		m, err := LoadModelWith(path, o)
		if err != nil {
			return nil, nil, err
		}
		tok, err := tokenizer.FromHFDir(path)
		if err != nil {
			m.Close()
			return nil, nil, fmt.Errorf("load %s: tokenizer: %w", path, err)
		}
		return m, tok, nil
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	m, err := loadGGUF(f, o)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	v, err := ggufVocab(f)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: tokenizer: %w", path, err)
	}
	tok, err := tokenizer.FromGGUFVocab(v)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: tokenizer: %w", path, err)
	}
	if o.Mmap {
		m.closer, keep = f, true
	}
	return m, tok, nil
}

// ggufVocab reads the tokenizer.ggml.* metadata.
func ggufVocab(f *gguf.File) (tokenizer.GGUFVocab, error) {
	v := tokenizer.GGUFVocab{BOS: -1, EOS: -1, UNK: -1, PAD: -1}
	var err error
	if v.Model, err = f.String("tokenizer.ggml.model"); err != nil {
		return v, err
	}
	if v.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		return v, err
	}
	optional := func(err error) error {
		if errors.Is(err, gguf.ErrNotFound) {
			return nil
		}
		return err
	}
	if v.Pre, err = f.String("tokenizer.ggml.pre"); optional(err) != nil {
		return v, err
	}
	if v.Scores, err = f.Float32s("tokenizer.ggml.scores"); optional(err) != nil {
		return v, err
	}
	if v.Types, err = f.Int32s("tokenizer.ggml.token_type"); optional(err) != nil {
		return v, err
	}
	if v.Merges, err = f.Strings("tokenizer.ggml.merges"); optional(err) != nil {
		return v, err
	}
	for key, dst := range map[string]*int{"bos": &v.BOS, "eos": &v.EOS, "unknown": &v.UNK, "padding": &v.PAD} {
		id, err := f.Uint("tokenizer.ggml." + key + "_token_id")
		switch {
		case err == nil && id < math.MaxInt32:
			*dst = int(id)
		case err != nil && optional(err) != nil:
			return v, err
		}
	}
	var eog []int
	for _, key := range []string{"eot", "eom"} {
		if id, err := f.Uint("tokenizer.ggml." + key + "_token_id"); err == nil && id < math.MaxInt32 {
			eog = append(eog, int(id))
		}
	}
	v.EOG = eog
	// llama.cpp's defaults: BOS added for SentencePiece vocabularies.
	v.AddBOS = v.Model == "llama"
	if b, err := f.Bool("tokenizer.ggml.add_bos_token"); err == nil {
		v.AddBOS = b
	} else if optional(err) != nil {
		return v, err
	}
	if b, err := f.Bool("tokenizer.ggml.add_eos_token"); err == nil {
		v.AddEOS = b
	} else if optional(err) != nil {
		return v, err
	}
	if b, err := f.Bool("tokenizer.ggml.add_space_prefix"); err == nil {
		v.AddSpacePrefix = &b
	} else if optional(err) != nil {
		return v, err
	}
	if b, err := f.Bool("tokenizer.ggml.remove_extra_whitespaces"); err == nil {
		v.RemoveExtraWhitespaces = b
	} else if optional(err) != nil {
		return v, err
	}
	return v, nil
}
