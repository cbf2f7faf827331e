package dataset

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Names lists the datasets Load and Fetch know, in order of size.
var Names = []string{"ml-100k", "ml-1m", "ml-latest-small", "ml-10m", "ml-20m", "ml-25m", "ml-latest"}

// Load loads the named MovieLens release from dir, the directory holding that
// release's own files (e.g. the unzipped ml-1m/ with movies.dat and
// ratings.dat). The dataset's Name is set to name.
func Load(ctx context.Context, name, dir string) (*Dataset, error) {
	var (
		d   *Dataset
		err error
	)
	switch name {
	case "ml-1m":
		d, err = loadML1M(ctx, dir, FiveStars)
	case "ml-10m":
		d, err = loadML1M(ctx, dir, HalfStarsFive)
	case "ml-100k":
		d, err = loadML100K(ctx, dir)
	case "ml-latest-small", "ml-latest", "ml-20m", "ml-25m":
		d, err = loadMLLatest(ctx, dir)
	default:
		return nil, fmt.Errorf("unknown dataset %q (known: %s)", name, strings.Join(Names, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("load %s from %s: %w", name, dir, err)
	}
	d.Name = name
	return d, nil
}

// Known reports whether Load knows the dataset name.
func Known(name string) bool { return slices.Contains(Names, name) }
