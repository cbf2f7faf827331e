package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each subcommand lives in its own file
// and is added here.
func newRootCmd() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:           "usersim",
		Short:         "Build LLM user agents for recommender systems",
		Long:          "usersim distils users' rating histories into memories, groups users into personas,\nfine-tunes one LoRA adapter per persona on a small language model, and evaluates\nthe resulting agents against classic recommender baselines.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug messages to stderr")
	// Subcommands (one file each):
	root.AddCommand(newDataCmd())
	root.AddCommand(newEvalCmd())
	root.AddCommand(newModelCmd())
	root.AddCommand(newPersonasCmd())
	root.AddCommand(newDistillCmd())
	return root
}
