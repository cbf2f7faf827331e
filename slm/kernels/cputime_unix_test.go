//go:build unix

package kernels

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user+system) this process has used. The
// benchmarks report flops per CPU-second besides flops per wall-second:
// on a machine shared with other jobs the first is much less noisy.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
