package raft

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/usersim/usersim/slm/tokenizer"
)

//go:embed templates/*.tmpl
var builtin embed.FS

// Template file names. Each variant renders "{variant}_system.tmpl" and
// "{variant}_user.tmpl"; movie.tmpl defines the shared blocks "movie",
// "memories" and "task".
const (
	SharedTemplate = "movie.tmpl"
	systemSuffix   = "_system.tmpl"
	userSuffix     = "_user.tmpl"
)

// Variant names a prompt: the paper's, or usersim's default agent prompt.
type Variant string

// Variants.
const (
	// VariantPaper is the paper's rating prompt (DESIGN.md §1).
	VariantPaper Variant = "paper"
	// VariantDefault is the paper's prompt plus a collaborative anchor line
	// (PromptData.Anchor, when the caller gives an estimator) and the key
	// facts next to the answer slot (PromptData.KeyFacts).
	VariantDefault Variant = "default"
)

// Templates is a parsed, validated set of prompt templates for one variant.
type Templates struct {
	variant Variant
	set     *template.Template
	files   map[string]string // template name → where it came from
}

// Variant returns the variant the templates render.
func (t *Templates) Variant() Variant { return t.variant }

// Source returns where each template came from ("builtin" or a path),
// sorted by name, for logs and cache keys.
func (t *Templates) Source() []string {
	names := make([]string, 0, len(t.files))
	for n := range t.files {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + "=" + t.files[n]
	}
	return out
}

// LoadTemplates parses the built-in templates of variant v and, when dir is
// not empty, every *.tmpl file in dir on top of them: a file with the same
// name as a built-in one (paper_user.tmpl, movie.tmpl, ...) replaces it, and
// a block it defines replaces the built-in block of that name. The set is
// then validated by rendering sample data, so a template that refers to a
// field PromptData lacks is an error here, naming the file, not later.
func LoadTemplates(v Variant, dir string) (*Templates, error) {
	if v == "" {
		v = VariantPaper
	}
	sys, usr := string(v)+systemSuffix, string(v)+userSuffix
	t := &Templates{variant: v, set: template.New("").Option("missingkey=error").Funcs(funcs), files: map[string]string{}}
	entries, err := fs.ReadDir(builtin, "templates")
	if err != nil {
		return nil, fmt.Errorf("raft: read built-in templates: %w", err)
	}
	for _, e := range entries {
		b, err := builtin.ReadFile("templates/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("raft: read built-in template %s: %w", e.Name(), err)
		}
		if err := t.parse(e.Name(), "builtin", b); err != nil {
			return nil, err
		}
	}
	if dir != "" {
		paths, err := filepath.Glob(filepath.Join(dir, "*.tmpl"))
		if err != nil {
			return nil, fmt.Errorf("raft: templates in %s: %w", dir, err)
		}
		if len(paths) == 0 {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("raft: template directory: %w", err)
			}
			return nil, fmt.Errorf("raft: template directory %s has no *.tmpl file", dir)
		}
		sort.Strings(paths)
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("raft: read template: %w", err)
			}
			if err := t.parse(filepath.Base(p), p, b); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range []string{sys, usr, "memories"} {
		if t.set.Lookup(n) == nil {
			return nil, fmt.Errorf("raft: variant %q has no template %s", v, n)
		}
	}
	for _, d := range sampleData() {
		if _, _, err := t.render(d); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Templates) parse(name, from string, text []byte) error {
	if _, err := t.set.New(name).Parse(string(text)); err != nil {
		return fmt.Errorf("raft: parse template %s: %w", from, err)
	}
	t.files[name] = from
	return nil
}

// Render renders the system and user texts of a prompt.
func (t *Templates) Render(d *PromptData) (system, user string, err error) {
	return t.render(d)
}

func (t *Templates) render(d *PromptData) (string, string, error) {
	var out [2]string
	for i, suffix := range []string{systemSuffix, userSuffix} {
		name := string(t.variant) + suffix
		var buf bytes.Buffer
		if err := t.set.ExecuteTemplate(&buf, name, d); err != nil {
			var ee template.ExecError
			if errors.As(err, &ee) {
				return "", "", fmt.Errorf("raft: render template %s (%s): %w", name, t.files[name], err)
			}
			return "", "", fmt.Errorf("raft: render template %s: %w", name, err)
		}
		out[i] = strings.TrimRight(buf.String(), "\n")
	}
	return out[0], out[1], nil
}

// funcs are the template functions: "bucket" writes a number as the single
// token the compact tokenizer keeps for it (tokenizer.BucketNumber, e.g.
// {{bucket .Anchor}} → "<3.7>", tenths of a star), so that the base reads a
// number as one symbol rather than as three digits.
var funcs = template.FuncMap{
	"bucket": func(x float64) string { return tokenizer.BucketNumber(x, AnchorStep) },
}

// AnchorStep is the resolution of the numbers the default variant writes
// with "bucket"; NumberBuckets are the tokens a tokenizer needs for them.
const AnchorStep = 0.1

// NumberBuckets is the bucket range of the default variant's numbers: every
// tenth of a star from 0 to 5.
var NumberBuckets = tokenizer.BucketRange{Min: 0, Max: 5, Step: AnchorStep}

// sampleData covers every branch the built-in templates take, so that
// validation reaches each field reference.
func sampleData() []*PromptData {
	item := ItemData{Title: "Sample", Year: 2000, Genres: "Drama", Average: 3.5, HasAverage: true}
	full := &PromptData{
		Profile:   "I like samples.",
		UserMean:  3.5,
		UseMemory: true,
		Memories:  []MemoryData{{Item: item, Rating: "4", Reason: "it is a sample"}},
		Target:    item,
		Scale:     scaleData(fiveStars),
		Anchor:    3.5, HasAnchor: true, KeyFacts: true,
	}
	bare := &PromptData{UseMemory: true, Target: ItemData{Title: "Bare"}, Scale: scaleData(halfStars)}
	noMem := &PromptData{Target: item, Scale: scaleData(fiveStars)}
	return []*PromptData{full, bare, noMem}
}

// block renders one named template or block, trailing newlines trimmed.
func (t *Templates) block(name string, d *PromptData) (string, error) {
	var buf bytes.Buffer
	if err := t.set.ExecuteTemplate(&buf, name, d); err != nil {
		return "", fmt.Errorf("raft: render %s: %w", name, err)
	}
	return strings.TrimRight(buf.String(), "\n"), nil
}
