package llm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy says how a Client retries transient failures: HTTP 408, 409,
// 429 and 5xx answers, per-attempt timeouts, refused or reset connections.
// The wait before retry n (0-based) is drawn uniformly from
// [0, min(MaxDelay, BaseDelay·2ⁿ)] ("full jitter"), unless the server said
// how long to wait (Retry-After in seconds or as an HTTP date, or OpenAI's
// retry-after-ms), which is then honoured. A wait that would outlast the
// context's deadline ends the retries at once.
type RetryPolicy struct {
	// MaxAttempts is the number of tries including the first; 0 means 6,
	// 1 disables retries.
	MaxAttempts int
	// BaseDelay is the backoff scale; 0 means 500 ms.
	BaseDelay time.Duration
	// MaxDelay caps one computed backoff; 0 means 30 s.
	MaxDelay time.Duration
	// MaxRetryAfter caps a wait the server asks for; a longer one is an
	// error. 0 means 5 minutes.
	MaxRetryAfter time.Duration
	// Timeout bounds one attempt (connect, wait, read the whole answer);
	// 0 means 10 minutes, negative means none. Streaming requests are
	// bounded by their context only.
	Timeout time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 6
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = 5 * time.Minute
	}
	if p.Timeout == 0 {
		p.Timeout = 10 * time.Minute
	}
	return p
}

// backoff returns the jittered wait before retry n.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay
	for i := 0; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// retryable reports whether err (from one attempt whose parent context is
// still live) is worth another try.
func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Temporary()
	}
	var ne *netError
	return errors.As(err, &ne)
}

// retry runs attempt until it succeeds, fails permanently, runs out of
// attempts or ctx ends. Each attempt gets a context bounded by the policy's
// Timeout when perAttempt is set.
func (c *Client) retry(ctx context.Context, path string, attempt func(context.Context) error, perAttempt bool) error {
	p := c.Retry.withDefaults()
	for n := 0; ; n++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if perAttempt && p.Timeout > 0 {
			actx, cancel = context.WithTimeout(ctx, p.Timeout)
		}
		err := attempt(actx)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("llm: POST %s: %w", path, context.Cause(ctx))
		}
		if timedOut {
			err = &netError{fmt.Errorf("attempt timed out after %v: %w", p.Timeout, err)}
		}
		if !retryable(err) {
			return fmt.Errorf("llm: %w", err)
		}
		if n+1 >= p.MaxAttempts {
			return fmt.Errorf("llm: POST %s: giving up after %d attempts: %w", path, n+1, err)
		}
		wait := p.backoff(n)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > p.MaxRetryAfter {
				return fmt.Errorf("llm: server asks to retry after %v (more than %v): %w", apiErr.RetryAfter, p.MaxRetryAfter, err)
			}
			wait = apiErr.RetryAfter
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return fmt.Errorf("llm: POST %s: next retry in %v would pass the deadline: %w", path, wait.Round(time.Millisecond), err)
		}
		c.logger().Warn("llm: retrying", "path", path, "attempt", n+1, "wait", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("llm: POST %s: %w (last error: %v)", path, context.Cause(ctx), err)
		}
	}
}

// parseRetryAfter reads retry-after-ms (milliseconds, OpenAI) or
// Retry-After (delay seconds or an HTTP date); 0 when absent or invalid.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
