package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// An experiment config file is YAML. Top-level scalar keys are flag names and
// apply to every command that has such a flag; a top-level mapping whose key
// is a command path ("eval baselines", "distill", "data split") applies only
// to that command and overrides the top-level values. A flag given on the
// command line always wins over the file.
//
//	dataset: ml-100k
//	data-dir: ../shared/data/ml-100k
//	seed: 7
//	eval baselines:
//	  protocol: paper
//	  out: results/
//	  baselines: [bias, svd, svdpp]
//
// A list becomes a comma-separated value, as repeated or slice flags take it.

// applyConfig reads path and sets the flags of cmd that the command line left
// unset. Keys that match no flag of cmd are errors when they sit in cmd's own
// section (a typo there would silently do nothing) and are ignored at the top
// level (those are shared by many commands).
func applyConfig(cmd *cobra.Command, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file sets nothing
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	own := commandPath(cmd)
	values := map[string]string{}
	var section map[string]yaml.Node
	for key, node := range doc {
		if node.Kind == yaml.MappingNode {
			if normaliseSection(key) != own {
				continue
			}
			if err := node.Decode(&section); err != nil {
				return fmt.Errorf("config %s: section %q: %w", path, key, err)
			}
			continue
		}
		v, err := nodeValue(node)
		if err != nil {
			return fmt.Errorf("config %s:%d: key %q: %w", path, node.Line, key, err)
		}
		if cmd.Flags().Lookup(key) != nil {
			values[key] = v
		}
	}
	for key, node := range section {
		if node.Kind == yaml.MappingNode {
			return fmt.Errorf("config %s:%d: section %q: key %q: nested sections are not allowed", path, node.Line, own, key)
		}
		if cmd.Flags().Lookup(key) == nil {
			return fmt.Errorf("config %s:%d: section %q: %q is not a flag of %q (see --help)", path, node.Line, own, key, own)
		}
		v, err := nodeValue(node)
		if err != nil {
			return fmt.Errorf("config %s:%d: key %q: %w", path, node.Line, key, err)
		}
		values[key] = v
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, name := range keys {
		f := cmd.Flags().Lookup(name)
		if f.Changed || name == "config" {
			continue
		}
		if err := setFlag(cmd.Flags(), f, values[name]); err != nil {
			return fmt.Errorf("config %s: flag --%s: %w", path, name, err)
		}
	}
	return nil
}

// setFlag sets f from a config value. Slice flags take a comma-separated list;
// pflag appends to slices on each Set, so they are replaced whole.
func setFlag(fs *pflag.FlagSet, f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		var items []string
		if v != "" {
			items = strings.Split(v, ",")
		}
		return sv.Replace(items)
	}
	// Set marks the flag Changed: a value from the file is the user's explicit
	// choice, as on the command line.
	return fs.Set(f.Name, v)
}

// commandPath is cmd's path without the root's name: "eval baselines".
func commandPath(cmd *cobra.Command) string {
	p := cmd.CommandPath()
	if i := strings.IndexByte(p, ' '); i >= 0 {
		return p[i+1:]
	}
	return ""
}

func normaliseSection(key string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(key, ".", " ")), " ")
}

// nodeValue turns a scalar or a list of scalars into a flag value string.
func nodeValue(n yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("a list may hold only plain values")
			}
			parts = append(parts, c.Value)
		}
		return strings.Join(parts, ","), nil
	default:
		return "", errors.New("want a value or a list of values")
	}
}
