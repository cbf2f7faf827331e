//go:build !unix

package slm

import "time"

// cpuTime is unknown here; benchmarks then omit per-CPU-second rates.
func cpuTime() time.Duration { return 0 }
