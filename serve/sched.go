package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/usersim/usersim/slm"
	"github.com/usersim/usersim/slm/lora"
	"github.com/usersim/usersim/slm/sample"
	"github.com/usersim/usersim/slm/tokenizer"
)

// Finish reasons, as OpenAI names them.
const (
	finishStop   = "stop"
	finishLength = "length"
)

// errShutdown ends the jobs that are queued or running when the server closes.
var errShutdown = errors.New("the server is shutting down")

// job is one generation request on its way through the scheduler.
type job struct {
	ctx       context.Context
	adapter   *lora.Adapter
	prompt    []int
	maxTokens int
	sample    sample.Options
	stops     []string
	topN      int  // top alternatives per token (logprobs)
	logprobs  bool // report the chosen tokens' log-probabilities
	events    chan event
	enqueued  time.Time

	// Scheduler state.
	cache   *slm.Cache
	sampler *sample.Sampler
	stop    *sample.StopMatcher
	dec     *tokenizer.StreamDecoder
	history []int
	feed    []int // tokens of the next Forward
	ntok    int
}

// tokenInfo is a generated token with its log-probabilities.
type tokenInfo struct {
	id      int
	logprob float64
	top     []idLogprob
}

type idLogprob struct {
	id      int
	logprob float64
}

// event is what the scheduler sends a request's handler: a generated token
// and the text now safe to show, or the end.
type event struct {
	text   string
	tok    *tokenInfo // nil on the final event
	done   bool
	finish string // with done
	ntok   int    // with done: completion tokens
	err    error  // with done: the generation failed
}

// send never blocks: events is sized for every event a job can produce.
func (j *job) send(ev event) {
	select {
	case j.events <- ev:
	default:
	}
}

func (j *job) fail(err error) { j.send(event{done: true, err: err, ntok: j.ntok}) }

// scheduler runs continuous batching: it advances every running job by one
// token per Forward, and lets queued jobs join (with their prefill) at each
// step boundary, up to maxBatch sequences.
type scheduler struct {
	model    Model
	tok      *tokenizer.Tokenizer
	maxBatch int
	// prefillBudget bounds the prompt tokens admitted in one step.
	prefillBudget int
	queue         chan *job
	metrics       *metrics
	quit          chan struct{}
	done          chan struct{}
	ctx           context.Context
}

func (s *scheduler) run() {
	defer close(s.done)
	var running []*job
	var waiting *job // taken from the queue, admitted at the next step
	defer func() {
		for _, j := range running {
			j.fail(errShutdown)
		}
		if waiting != nil {
			waiting.fail(errShutdown)
		}
		for {
			select {
			case j := <-s.queue:
				j.fail(errShutdown)
			default:
				return
			}
		}
	}()
	for {
		if len(running) == 0 && waiting == nil {
			select {
			case j := <-s.queue:
				waiting = j
			case <-s.quit:
				return
			}
		}
		// Admit queued jobs up to the batch size, and up to prefillBudget
		// prompt tokens per step (always at least one job), so that long
		// prompts do not stall the running decodes for long.
		prefill := 0
	fill:
		for len(running) < s.maxBatch {
			j := waiting
			if j != nil {
				waiting = nil
			} else {
				select {
				case j = <-s.queue:
				default:
					break fill
				}
			}
			if prefill > 0 && prefill+len(j.prompt) > s.prefillBudget {
				waiting = j
				break
			}
			n := len(running)
			if running = s.admit(running, j); len(running) > n {
				prefill += len(j.prompt)
			}
		}
		select {
		case <-s.quit:
			return
		default:
		}
		// Jobs whose client left or whose time ran out free their slots.
		live := running[:0]
		for _, j := range running {
			if err := j.ctx.Err(); err != nil {
				s.metrics.cancelled.Add(1)
				j.fail(err)
				continue
			}
			live = append(live, j)
		}
		running = live
		s.metrics.running.Store(int64(len(running)))
		s.metrics.queued.Store(int64(len(s.queue)))
		if len(running) == 0 {
			continue
		}
		batch := make([]slm.Sequence, len(running))
		for i, j := range running {
			batch[i] = slm.Sequence{Cache: j.cache, Tokens: j.feed, Logits: slm.LogitsLast}
		}
		s.metrics.batchSize.observe(float64(len(batch)))
		out, err := s.forward(batch)
		if err == nil && len(out) != len(batch) {
			err = fmt.Errorf("forward returned %d sequences for %d", len(out), len(batch))
		}
		if err != nil {
			for _, j := range running {
				j.fail(fmt.Errorf("forward: %w", err))
			}
			running = running[:0]
			continue
		}
		live = running[:0]
		for i, j := range running {
			if len(out[i]) != 1 {
				j.fail(fmt.Errorf("forward returned %d rows of logits, want 1", len(out[i])))
				continue
			}
			if !s.step(j, out[i][0]) {
				live = append(live, j)
			}
		}
		running = live
		s.metrics.running.Store(int64(len(running)))
	}
}

// forward runs one batch, turning a panic in the model into an error so
// that one bad batch fails its requests, not the server.
func (s *scheduler) forward(batch []slm.Sequence) (out [][][]float32, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in the model: %v", p)
		}
	}()
	return s.model.Forward(s.ctx, batch)
}

// admit sets up a queued job's cache, sampler and decoder, or drops it when
// its request has already ended.
func (s *scheduler) admit(running []*job, j *job) []*job {
	if err := j.ctx.Err(); err != nil {
		s.metrics.cancelled.Add(1)
		j.fail(err)
		return running
	}
	s.metrics.queueWait.observe(time.Since(j.enqueued).Seconds())
	j.cache = s.model.NewAdapterCache(j.adapter)
	j.sampler = sample.NewSampler(j.sample)
	j.stop = sample.NewStopMatcher(j.stops...)
	j.dec = s.tok.NewStreamDecoder()
	// Prime the decoder with the prompt, so that the first generated piece
	// is decoded in context, as package generate does.
	for _, id := range j.prompt {
		j.dec.Push(id)
	}
	j.history = append(make([]int, 0, len(j.prompt)+j.maxTokens), j.prompt...)
	j.feed = j.prompt
	return append(running, j)
}

// step samples j's next token from logits and sends its events. It reports
// whether the job has finished.
func (s *scheduler) step(j *job, logits []float32) (done bool) {
	id := j.sampler.Sample(logits, j.history)
	if id < 0 {
		j.fail(errors.New("the model returned no logits"))
		return true
	}
	if s.tok.IsEOS(id) {
		s.finish(j, finishStop)
		return true
	}
	j.ntok++
	s.metrics.tokens.Add(1)
	j.history = append(j.history, id)
	ti := &tokenInfo{id: id}
	if j.logprobs || j.topN > 0 {
		ti.logprob, ti.top = logprobsOf(logits, id, j.topN)
	}
	emit, stopped := j.stop.Push(j.dec.Push(id))
	j.send(event{text: emit, tok: ti})
	switch {
	case stopped:
		j.send(event{done: true, finish: finishStop, ntok: j.ntok})
		return true
	case j.ntok >= j.maxTokens:
		s.finish(j, finishLength)
		return true
	}
	j.feed = []int{id}
	return false
}

// finish releases what the decoder and the stop matcher held back and sends
// the final event.
func (s *scheduler) finish(j *job, reason string) {
	emit, stopped := j.stop.Push(j.dec.Flush())
	if stopped {
		reason = finishStop
	} else {
		emit += j.stop.Flush()
	}
	j.send(event{done: true, text: emit, finish: reason, ntok: j.ntok})
}

// logprobsOf returns the log-softmax of logits at id and the n most likely
// tokens with theirs (the model's own distribution, before temperature or
// top-p, as OpenAI and vLLM report it).
func logprobsOf(logits []float32, id, n int) (float64, []idLogprob) {
	maxv := math.Inf(-1)
	for _, v := range logits {
		if x := float64(v); x > maxv {
			maxv = x
		}
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxv)
	}
	lse := maxv + math.Log(sum)
	lp := func(i int) float64 { return float64(logits[i]) - lse }
	if n <= 0 {
		return lp(id), nil
	}
	n = min(n, len(logits))
	// Partial selection of the n largest: n is at most 20.
	top := make([]idLogprob, 0, n+1)
	for i, v := range logits {
		if len(top) == n && v <= logits[top[n-1].id] {
			continue
		}
		k := sort.Search(len(top), func(k int) bool { return logits[top[k].id] < v })
		top = append(top, idLogprob{})
		copy(top[k+1:], top[k:])
		top[k] = idLogprob{id: i}
		if len(top) > n {
			top = top[:n]
		}
	}
	for k := range top {
		top[k].logprob = lp(top[k].id)
	}
	return lp(id), top
}
