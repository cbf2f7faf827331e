package serve

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/usersim/usersim/agent"
)

// DefaultBatchPrompts is the most prompts a BatchBackend merges into one
// Score call when BatchBackend's max is 0.
const DefaultBatchPrompts = 64

// ErrClosed is the error of a call to a closed BatchBackend.
var ErrClosed = errors.New("serve: backend closed")

// BatchBackend is an agent.Backend that merges the Score calls of concurrent
// requests into one call of the backend it wraps, so that the agents of
// different users and personas are scored together in one forward pass over
// the shared base (an agent.Local batches prompts of any adapters). Calls
// that arrive while a merged call runs wait and join the next one; calls
// with different candidates are never merged. Generate is passed through.
type BatchBackend struct {
	inner agent.Backend
	max   int
	reqs  chan *scoreCall
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	slots chan struct{} // one per merged call running

	calls   atomic.Int64 // merged calls made
	waiting atomic.Int64 // calls waiting to be taken by the loop (for tests)
}

type scoreCall struct {
	ctx        context.Context
	prompts    []agent.Prompt
	candidates []string
	res        chan scoreResult // buffered: the loop never blocks on it
}

type scoreResult struct {
	lp  [][]float64
	err error
}

// NewBatchBackend wraps inner; max bounds the prompts of one merged call (0:
// DefaultBatchPrompts; a single larger call still runs, alone) and parallel
// the merged calls running at once (0: GOMAXPROCS). Close stops it.
func NewBatchBackend(inner agent.Backend, max, parallel int) *BatchBackend {
	if max <= 0 {
		max = DefaultBatchPrompts
	}
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	b := &BatchBackend{inner: inner, max: max, reqs: make(chan *scoreCall), done: make(chan struct{}), slots: make(chan struct{}, parallel)}
	b.wg.Add(1)
	go b.loop()
	return b
}

// Close stops merging: later calls fail with ErrClosed. It waits for the
// running merged calls.
func (b *BatchBackend) Close() error {
	b.once.Do(func() { close(b.done) })
	b.wg.Wait()
	return nil
}

// Generate implements agent.Backend.
func (b *BatchBackend) Generate(ctx context.Context, p agent.Prompt, opt agent.GenerateOptions) (string, error) {
	return b.inner.Generate(ctx, p, opt)
}

// Score implements agent.Backend.
func (b *BatchBackend) Score(ctx context.Context, prompts []agent.Prompt, candidates []string) ([][]float64, error) {
	if len(prompts) == 0 {
		return nil, nil
	}
	c := &scoreCall{ctx: ctx, prompts: prompts, candidates: candidates, res: make(chan scoreResult, 1)}
	b.waiting.Add(1)
	select {
	case b.reqs <- c:
		b.waiting.Add(-1)
	case <-ctx.Done():
		b.waiting.Add(-1)
		return nil, ctx.Err()
	case <-b.done:
		b.waiting.Add(-1)
		return nil, ErrClosed
	}
	select {
	case r := <-c.res:
		return r.lp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// loop waits for a free slot, takes the first waiting call and every other
// waiting call with the same candidates (up to max prompts), starts them as
// one call, and repeats.
func (b *BatchBackend) loop() {
	defer b.wg.Done()
	var backlog []*scoreCall
	for {
		// Wait for a free slot first: calls arriving meanwhile queue up
		// and are merged.
		select {
		case b.slots <- struct{}{}:
		case <-b.done:
			return
		}
		var first *scoreCall
		if len(backlog) > 0 {
			first, backlog = backlog[0], backlog[1:]
		} else {
			select {
			case first = <-b.reqs:
			case <-b.done:
				<-b.slots
				return
			}
		}
		group, n := []*scoreCall{first}, len(first.prompts)
		fits := func(c *scoreCall) bool {
			return n+len(c.prompts) <= b.max && slices.Equal(c.candidates, first.candidates)
		}
		rest := backlog[:0]
		for _, c := range backlog {
			if fits(c) {
				group, n = append(group, c), n+len(c.prompts)
			} else {
				rest = append(rest, c)
			}
		}
		backlog = rest
	drain:
		for n < b.max {
			select {
			case c := <-b.reqs:
				if fits(c) {
					group, n = append(group, c), n+len(c.prompts)
				} else {
					backlog = append(backlog, c)
				}
			default:
				break drain
			}
		}
		b.wg.Add(1)
		go func() {
			defer func() { <-b.slots; b.wg.Done() }()
			b.run(group)
		}()
	}
}

// run scores a group's prompts in one call of the inner backend, under a
// context that ends when every member's has.
func (b *BatchBackend) run(group []*scoreCall) {
	live := group[:0:0]
	for _, c := range group {
		if err := c.ctx.Err(); err != nil {
			c.res <- scoreResult{err: err}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	left.Store(int64(len(live)))
	var prompts []agent.Prompt
	for _, c := range live {
		stop := context.AfterFunc(c.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
		prompts = append(prompts, c.prompts...)
	}
	b.calls.Add(1)
	lp, err := b.score(ctx, prompts, live[0].candidates)
	if err == nil && len(lp) != len(prompts) {
		err = fmt.Errorf("serve: backend scored %d of %d prompts", len(lp), len(prompts))
	}
	off := 0
	for _, c := range live {
		if err != nil {
			c.res <- scoreResult{err: err}
			continue
		}
		c.res <- scoreResult{lp: lp[off : off+len(c.prompts) : off+len(c.prompts)]}
		off += len(c.prompts)
	}
}

// score calls the inner backend; a panic fails the merged call only.
func (b *BatchBackend) score(ctx context.Context, prompts []agent.Prompt, candidates []string) (lp [][]float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("serve: backend panic: %v", r)
		}
	}()
	return b.inner.Score(ctx, prompts, candidates)
}
