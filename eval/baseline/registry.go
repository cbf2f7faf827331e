package baseline

import (
	"fmt"
	"strings"
)

// Names lists the baselines New knows, cheapest first.
func Names() []string {
	return []string{"normal", "global-mean", "user-mean", "item-mean", "bias", "svd", "svdpp", "item-knn"}
}

// New returns the baseline called name with Surprise's default settings and
// the given seed (used by normal, svd and svdpp). Names are those of Names;
// "mf" is accepted for "svd" and "svd++" for "svdpp".
func New(name string, seed int64) (Predictor, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "normal", "normalpredictor", "random":
		return NewNormal(seed), nil
	case "global-mean", "global", "mean":
		return NewGlobalMean(), nil
	case "user-mean":
		return NewUserMean(), nil
	case "item-mean":
		return NewItemMean(), nil
	case "bias", "baseline", "baselineonly":
		return NewBias(), nil
	case "svd", "mf":
		return NewSVD(seed), nil
	case "svdpp", "svd++":
		return NewSVDpp(seed), nil
	case "item-knn", "knn", "knnbaseline":
		return NewKNNBaseline(), nil
	}
	return nil, fmt.Errorf("unknown baseline %q (known: %s)", name, strings.Join(Names(), ", "))
}
