package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/usersim/usersim/dataset"
)

// newDataCmd builds `usersim data` and its subcommands.
func newDataCmd() *cobra.Command {
	data := &cobra.Command{
		Use:   "data",
		Short: "Inspect, download and prepare datasets",
	}
	data.AddCommand(newDataStatsCmd())
	data.AddCommand(newDataFetchCmd())
	// More data subcommands (synth, split), one line each:
	data.AddCommand(newDataSynthCmd(), newDataSplitCmd())
	return data
}

func newDataStatsCmd() *cobra.Command {
	var (
		src    dataSource
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Print counts, rating histogram, ratings per user and item, sparsity",
		Example: "  usersim data stats\n" +
			"  usersim data stats --dataset ml-1m --data-dir ../shared/data/ml-1m\n" +
			"  usersim data stats --dataset ml-100k --json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := src.load(cmd.Context())
			if err != nil {
				return err
			}
			s := dataset.ComputeStats(d)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			return s.WriteText(cmd.OutOrStdout())
		},
	}
	src.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func newDataFetchCmd() *cobra.Command {
	var opt dataset.FetchOptions
	cmd := &cobra.Command{
		Use:   "fetch NAME",
		Short: "Download a MovieLens release from GroupLens into the cache and print its directory",
		Long: "fetch downloads {base-url}/NAME.zip, verifies its MD5, unpacks it into the cache\n" +
			"and prints the directory, which --data-dir then accepts. An interrupted download\n" +
			"resumes where it stopped; a cached release is not downloaded again.\n\n" +
			"Known releases: " + fmt.Sprint(dataset.Names),
		Example: "  usersim data fetch ml-1m\n  usersim data stats --dataset ml-1m --data-dir \"$(usersim data fetch ml-1m)\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := fetchData(cmd.Context(), args[0], opt)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opt.CacheDir, "cache-dir", "", "where datasets are unpacked (default: the user cache dir + /usersim/datasets)")
	f.StringVar(&opt.BaseURL, "base-url", dataset.DefaultBaseURL, "where NAME.zip and NAME.zip.md5 are served")
	f.StringVar(&opt.MD5, "md5", "", "expected MD5 of the zip (default: pinned for known releases, else NAME.zip.md5)")
	f.IntVar(&opt.Retries, "retries", 4, "retries after a transient failure")
	f.DurationVar(&opt.Backoff, "backoff", time.Second, "wait before the first retry, doubled each time")
	return cmd
}
