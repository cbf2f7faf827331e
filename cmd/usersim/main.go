// Command usersim builds user agents for recommender systems: small language
// models fine-tuned with one LoRA adapter per user persona, that rate and
// choose items the way real users do.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "usersim:", err)
		os.Exit(1)
	}
}
