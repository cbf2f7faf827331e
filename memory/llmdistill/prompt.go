package llmdistill

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/usersim/usersim/internal/atomicfile"
	"github.com/usersim/usersim/memory"
)

//go:embed prompts/*.tmpl
var embedded embed.FS

// Prompt template files. A Config.PromptDir may hold any of them; those it
// holds replace the embedded ones.
const (
	SystemTemplate    = "system.tmpl"    // the system message (data: SystemData)
	BatchTemplate     = "batch.tmpl"     // one batch of ratings (data: BatchData)
	RepairTemplate    = "repair.tmpl"    // after an invalid answer (data: RepairData)
	TruncatedTemplate = "truncated.tmpl" // after an answer cut off at max_tokens (data: BatchData)
)

var templateNames = []string{SystemTemplate, BatchTemplate, RepairTemplate, TruncatedTemplate}

// SystemData is what the system template sees.
type SystemData struct {
	ScaleMin, ScaleMax string
}

// ItemLine is one rated item of a batch as the prompts show it. Avg and
// NumRatings come from the training split only.
type ItemLine struct {
	ID         string
	Title      string // display title ("The Matrix")
	Year       int    // 0 when unknown
	Genres     string // "Action|Sci-Fi" written "Action, Sci-Fi"; "unknown" when none
	Avg        float64
	NumRatings int
	Rating     string // as the scale writes it: "4", "3.5"
}

// BatchData is what the batch and truncation templates see.
type BatchData struct {
	User      string
	First     bool   // no profile yet
	Profile   string // the profile after the previous batch
	Read      int    // ratings read before this batch
	Number    int    // 1-based batch number
	Batches   int    // batches in the user's history
	Items     []ItemLine
	Traits    memory.Traits
	HasTraits bool
	MaxWords  int
}

// RepairData is what the repair template sees.
type RepairData struct {
	BatchData
	Errors []string // what was wrong with the answer
}

// prompts holds the parsed templates and a hash of their text.
type prompts struct {
	t    map[string]*template.Template
	hash string
}

// loadPrompts parses the embedded templates, each replaced by the file of
// the same name in dir when dir is not empty and holds one.
func loadPrompts(dir string) (*prompts, error) {
	p := &prompts{t: map[string]*template.Template{}}
	h := sha256.New()
	for _, name := range templateNames {
		text, err := embedded.ReadFile("prompts/" + name)
		if err != nil {
			return nil, err
		}
		src := "embedded " + name
		if dir != "" {
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			switch {
			case err == nil:
				text, src = b, path
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("prompt template: %w", err)
			}
		}
		t, err := template.New(name).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("prompt template %s: %w", src, err)
		}
		p.t[name] = t
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(text))
		h.Write(text)
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("prompt directory: %w", err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmpl") && p.t[e.Name()] == nil {
				return nil, fmt.Errorf("prompt directory %s: unknown template %s (want one of %s)", dir, e.Name(), strings.Join(templateNames, ", "))
			}
		}
	}
	p.hash = hex.EncodeToString(h.Sum(nil))[:16]
	return p, nil
}

func (p *prompts) render(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := p.t[name].Execute(&b, data); err != nil {
		return "", fmt.Errorf("prompt template %s: %w", name, err)
	}
	return strings.TrimSpace(b.String()), nil
}

// WriteDefaultPrompts writes the embedded templates into dir, as a starting
// point for a user's own (then passed as Config.PromptDir).
func WriteDefaultPrompts(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range templateNames {
		b, err := embedded.ReadFile("prompts/" + name)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
