package slm

import (
	"sync"

	"github.com/usersim/usersim/slm/kernels"
)

// parallelFor splits [0, n) into up to kernels.Threads() contiguous ranges
// of at least grain items and runs fn on each in its own goroutine (on the
// caller's when there is only one range).
func parallelFor(n, grain int, fn func(lo, hi int)) {
	parts := min(kernels.Threads(), n/max(grain, 1))
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		lo, hi := n*p/parts, n*(p+1)/parts
		if p == parts-1 {
			fn(lo, hi)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
