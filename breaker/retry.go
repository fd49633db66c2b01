package breaker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"
)

// IdempotencyKeyHeader marks a request of any method as safe to retry.
const IdempotencyKeyHeader = "Idempotency-Key"

// idempotent reports whether r may be sent twice: an idempotent method (RFC 9110 section 9.2.2)
// or an Idempotency-Key header.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return len(r.Header[IdempotencyKeyHeader]) > 0 && r.Header[IdempotencyKeyHeader][0] != ""
}

// connectionError reports whether a transport error is worth a retry: anything but a timeout or
// a cancellation (the request never produced a response).
func connectionError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// backoff returns the jittered delay before retry k (k >= 1): uniform in [d/2, d] with
// d = min(max, base*2^(k-1)).
func (c *config) backoff(k int) time.Duration {
	d := c.retryMax
	if k <= 30 && c.retryBase<<(k-1) < d && c.retryBase<<(k-1) > 0 {
		d = c.retryBase << (k - 1)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx is done; it reports whether the full delay passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// fitsDeadline reports whether a retry after delay d still leaves time before ctx's deadline.
func fitsDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > d
}

// setDeadlineHeader writes the remaining milliseconds before ctx's deadline into h[name], and
// removes any value the client sent when ctx has no deadline: the header is the gateway's word.
func setDeadlineHeader(ctx context.Context, h http.Header, name string) {
	dl, ok := ctx.Deadline()
	if !ok {
		delete(h, name)
		return
	}
	ms := time.Until(dl).Milliseconds()
	if ms < 1 {
		ms = 1
	}
	h[name] = []string{strconv.FormatInt(ms, 10)}
}

// replayBody prepares a request body for retries. It returns the body of the first attempt and a
// function producing the body of later attempts; again is nil when the body cannot be replayed
// (too long to buffer, or a read error), in which case first streams the whole original body.
func replayBody(body io.ReadCloser, getBody func() (io.ReadCloser, error), limit int64) (first io.ReadCloser, again func() (io.ReadCloser, error)) {
	if body == nil || body == http.NoBody {
		return body, func() (io.ReadCloser, error) { return body, nil }
	}
	if getBody != nil {
		return body, getBody
	}
	if limit <= 0 {
		return body, nil
	}
	buf, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return readCloser{io.MultiReader(bytes.NewReader(buf), errReader{err}), body}, nil
	}
	if int64(len(buf)) > limit {
		return readCloser{io.MultiReader(bytes.NewReader(buf), body), body}, nil
	}
	_ = body.Close()
	again = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	first, _ = again()
	return first, again
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// allowRetry checks attempts, the deadline and the budget for retry number k (k >= 1) and returns
// the backoff to wait before it.
func (b *Breaker) allowRetry(e *entry, ctx context.Context, k int) (time.Duration, bool) {
	d := b.cfg.backoff(k)
	if !fitsDeadline(ctx, d) {
		return 0, false
	}
	ok := e.budget.TryRetry(b.cfg.clock.Now().UnixNano(), b.cfg.retryRatio, float64(b.cfg.retryFloor))
	b.tel.retry(ctx, e, ok, k)
	return d, ok
}
