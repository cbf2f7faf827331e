package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/usersim/usersim/dataset"
	"github.com/usersim/usersim/dataset/synth"
)

// dataSource is the flag set every command that reads data shares:
// --dataset NAME and --data-dir DIR.
type dataSource struct {
	Name string
	Dir  string
}

// addFlags registers --dataset and --data-dir on fs.
func (s *dataSource) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.Name, "dataset", "synthetic",
		"dataset: synthetic, "+strings.Join(dataset.Names, ", "))
	fs.StringVar(&s.Dir, "data-dir", "",
		"directory holding the dataset's own files (e.g. an unzipped ml-1m/); default: generate the synthetic world, or download MovieLens into the user cache")
}

// load loads the dataset the flags name.
func (s *dataSource) load(ctx context.Context) (*dataset.Dataset, error) {
	return loadData(ctx, s.Name, s.Dir)
}

// loadData loads dataset name. "synthetic" reads a world written by
// `usersim data synth` from dir, or generates the default world when dir is
// empty. A MovieLens name reads dir, or when dir is empty downloads the
// release into the cache (once) and reads it from there.
func loadData(ctx context.Context, name, dir string) (*dataset.Dataset, error) {
	switch {
	case name == "synthetic":
		var (
			w   *synth.World
			err error
		)
		if dir != "" {
			w, err = synth.Load(dir)
		} else {
			w, err = synth.Generate(synth.DefaultConfig())
		}
		if err != nil {
			return nil, err
		}
		return w.Dataset, nil
	case !dataset.Known(name):
		return nil, fmt.Errorf("unknown dataset %q (known: synthetic, %s)", name, strings.Join(dataset.Names, ", "))
	case dir == "":
		var err error
		if dir, err = fetchData(ctx, name, dataset.FetchOptions{}); err != nil {
			return nil, err
		}
	}
	return dataset.Load(ctx, name, dir)
}

// fetchData downloads a release with a progress bar on a terminal.
func fetchData(ctx context.Context, name string, opt dataset.FetchOptions) (string, error) {
	var bar *progressbar.ProgressBar
	if term.IsTerminal(int(os.Stderr.Fd())) {
		opt.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.DefaultBytes(total, "downloading "+name)
			} else if total > 0 && total != bar.GetMax64() {
				bar.ChangeMax64(total)
			}
			bar.Set64(done)
		}
	}
	slog.Info("fetching dataset", "name", name)
	dir, err := dataset.Fetch(ctx, name, opt)
	if bar != nil {
		if err == nil {
			bar.Finish()
		} else {
			bar.Exit()
		}
	}
	return dir, err
}
