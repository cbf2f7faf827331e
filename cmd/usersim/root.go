package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each subcommand lives in its own file
// and is added here.
func newRootCmd() *cobra.Command {
	var (
		verbose bool
		config  string
	)
	root := &cobra.Command{
		Use:           "usersim",
		Short:         "Build LLM user agents for recommender systems",
		Long:          "usersim distils users' rating histories into memories, groups users into personas,\nfine-tunes one LoRA adapter per persona on a small language model, and evaluates\nthe resulting agents against classic recommender baselines.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if config != "" {
				if err := applyConfig(cmd, config); err != nil {
					return err
				}
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
			return nil
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug messages to stderr")
	root.PersistentFlags().StringVar(&config, "config", "", "experiment config file (YAML): flag values, shared at the top level or per command in sections such as \"eval baselines\"; the command line wins")
	// Subcommands (one file each):
	root.AddCommand(newDataCmd())
	root.AddCommand(newEvalCmd())
	root.AddCommand(newModelCmd())
	root.AddCommand(newPersonasCmd())
	root.AddCommand(newDistillCmd())
	root.AddCommand(newServeCmd())
	root.AddCommand(newRunCmd())
	return root
}
