package discovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatewaykit/gatewaykit/internal/retrybudget"
)

// RetryPolicy configures retries on other instances: when an attempt fails before any response
// header arrived (connection refused or reset, the connection closed before the response, a dial
// that timed out, an error from a WithTransport round tripper such as an open circuit breaker),
// the Proxy sends the request to another instance of the same routing group that it has not tried
// yet (the balancer's choice when it offers one within three picks, otherwise a random untried
// one), up to MaxRetries times. Instances sharing a tried instance's host:port count as tried.
//
// A request is retried only when it is safe to send twice: an idempotent method (GET, HEAD,
// OPTIONS, TRACE, PUT, DELETE) or an Idempotency-Key header with a non-empty value, and a body
// that can be replayed: no body, Request.GetBody, or a declared Content-Length of at most
// MaxReplayBody bytes, which the Proxy reads into memory before the first attempt (one buffer of
// that size per such request, and only when the routing group has another instance). Bodies of
// unknown length (chunked) or over the limit stream to the first instance and are never retried.
//
// Never retried: a response that arrived (whatever its status: 5xx responses are a circuit
// breaker's business, see WithTransport), a request whose context is done (the client went away
// or its deadline expired), a timeout once the request was sent (for example the transport's
// response-header timeout, or a WithTransport round tripper's own timeout), a request whose body
// the client failed to send.
//
// Every failed attempt counts against its instance for passive health, as without retries. The
// retry budget keeps retries from multiplying the load of an outage: over the last 10 seconds
// (ten one-second slots on the Proxy's Clock), retries may not exceed
// BudgetRatio * requests + BudgetMinPerSecond * 10, where requests counts every request the Proxy
// forwarded (retries excluded). A retry the budget refuses leaves the request with the failed
// attempt's error. The budget is per Proxy, shared by its instances.
//
// A RetryPolicy is a plain value, copied by WithRetry.
type RetryPolicy struct {
	// MaxRetries is how many more instances a failed request may be sent to, 0..10. 0 turns
	// retries off (the other fields are then ignored).
	MaxRetries int
	// BudgetRatio is the share of requests that may be retries, [0, 10]; 0.2 allows one retry
	// per five requests over the budget window.
	BudgetRatio float64
	// BudgetMinPerSecond is the retry rate always allowed regardless of traffic, 0..100000 per
	// second, averaged over the 10-second window (so 3 allows a burst of 30 when idle).
	// BudgetRatio and BudgetMinPerSecond may not both be 0.
	BudgetMinPerSecond int
	// MaxReplayBody is the largest request body, in bytes, that is buffered so the request can
	// be retried, 0..64 MiB; 0 retries only requests without a body (or with Request.GetBody).
	MaxReplayBody int64
}

// DefaultRetryPolicy returns the default retry policy: one retry on another instance, a budget of
// 20% of requests plus 3 per second over 10 seconds, bodies up to 64 KiB buffered for replay.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 1, BudgetRatio: 0.2, BudgetMinPerSecond: 3, MaxReplayBody: 64 << 10}
}

const maxRetries = 10

func (rp RetryPolicy) validate() error {
	switch {
	case rp.MaxRetries < 0 || rp.MaxRetries > maxRetries:
		return fmt.Errorf("discovery: RetryPolicy.MaxRetries %d out of range 0..%d", rp.MaxRetries, maxRetries)
	case rp.MaxRetries == 0:
		return nil
	case math.IsNaN(rp.BudgetRatio) || rp.BudgetRatio < 0 || rp.BudgetRatio > 10:
		return fmt.Errorf("discovery: RetryPolicy.BudgetRatio %v out of range [0, 10]", rp.BudgetRatio)
	case rp.BudgetMinPerSecond < 0 || rp.BudgetMinPerSecond > 100_000:
		return fmt.Errorf("discovery: RetryPolicy.BudgetMinPerSecond %d out of range 0..100000", rp.BudgetMinPerSecond)
	case rp.BudgetRatio == 0 && rp.BudgetMinPerSecond == 0:
		return errors.New("discovery: RetryPolicy budget allows no retry (BudgetRatio and BudgetMinPerSecond are 0; use MaxRetries 0 to disable retries)")
	case rp.MaxReplayBody < 0 || rp.MaxReplayBody > 64<<20:
		return fmt.Errorf("discovery: RetryPolicy.MaxReplayBody %d out of range 0..64MiB", rp.MaxReplayBody)
	}
	return nil
}

// idempotencyKeyHeader marks a request of any method as safe to send twice.
const idempotencyKeyHeader = "Idempotency-Key"

// replayable reports whether r may be sent twice: an idempotent method (RFC 9110 section 9.2.2)
// or an Idempotency-Key header.
func replayable(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	v := r.Header[idempotencyKeyHeader]
	return len(v) > 0 && v[0] != ""
}

// retryable reports whether a failed attempt may be retried elsewhere: the request context is
// live, and the error is not a timeout or cancellation, except the transport's own dial error
// (a dial that timed out sent nothing).
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if oe, ok := err.(*net.OpError); ok && oe.Op == "dial" {
		// Straight from the transport's dialer: nothing was sent, even when the dialer's own
		// timeout expired. (Wrapped, as by a breaker's timeout, it is that timeout's error.)
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

// attemptTransport is the RoundTripper of an endpoint's ReverseProxy when retries are on: it
// sends the first attempt to its endpoint and retries on others.
type attemptTransport struct{ e *Endpoint }

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	e := t.e
	p := e.proxy
	p.budget.request(p.budgetNow())
	if !replayable(req) {
		return p.transport.RoundTrip(req)
	}
	if req.Body != nil && req.Body != http.NoBody {
		return p.roundTripBody(e, req)
	}
	resp, err := p.transport.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	return p.retry(e, req, nil, err)
}

// roundTripBody sends a replayable request with a body: replayed through GetBody, or buffered
// when its declared length is within MaxReplayBody and another instance could take a retry.
func (p *Proxy) roundTripBody(e *Endpoint, req *http.Request) (*http.Response, error) {
	again := req.GetBody
	if again == nil {
		n := req.ContentLength
		if n <= 0 || n > p.retryPolicy.MaxReplayBody || len(p.table.Load().group(req, p.route).eps) < 2 {
			return p.transport.RoundTrip(req) // streamed, sent once
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(req.Body, buf); err != nil {
			// The client's body failed or was shorter than its Content-Length: its fault, not the
			// instance's (upstreamError answers 400/413 through clientFault).
			if cb, ok := req.Body.(*clientBody); ok {
				cb.failed.Store(true)
			}
			return nil, err
		}
		again = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
		first := *req
		first.Body, _ = again()
		first.GetBody = again // lets http.Transport replay it on a stale keep-alive connection too
		req = &first
	}
	resp, err := p.transport.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	return p.retry(e, req, again, err)
}

// retry handles the failure err of the first attempt of req, sent to first: it sends req to other
// instances while the policy, the budget and the group allow. body produces the body of each
// retry (nil: the request has none).
//
// The request's in-flight count belongs to the instance being tried; ServeHTTP releases it on
// first, so it moves back to first when the request ends (when the retried response's body is
// closed, at once for an upgrade, or before returning an error).
func (p *Proxy) retry(first *Endpoint, req *http.Request, body func() (io.ReadCloser, error), err error) (*http.Response, error) {
	ctx := req.Context()
	if _, bad := clientFault(req); bad {
		return nil, err // the client's body failed (sent through GetBody's first body): its answer is 400/413
	}
	var buf [maxRetries + 1]*Endpoint
	tried := append(buf[:0], first)
	cur, curReq := first, req
	for len(tried) <= p.retryPolicy.MaxRetries && retryable(ctx, err) {
		next := p.pickOther(req, tried)
		if next == nil {
			p.m.retries.Add(ctx, 1, p.m.retryNoInstance...)
			break
		}
		if !p.budget.tryRetry(p.budgetNow()) {
			p.m.retries.Add(ctx, 1, p.m.retryBudget...)
			if p.logLimit.allow() {
				p.logger.Warn("discovery: retry budget exhausted", "service", p.service, "instance", cur.hostport)
			}
			break
		}
		a := *req
		if body != nil {
			b, berr := body()
			if berr != nil {
				break
			}
			a.Body = b
		}
		u := *req.URL
		u.Host = next.hostport
		a.URL = &u

		p.failure(cur) // every failed attempt counts; the last one in upstreamError
		p.m.retries.Add(ctx, 1, p.m.retryRetried...)
		if p.logger.Enabled(ctx, slog.LevelDebug) {
			p.logger.DebugContext(ctx, "discovery: retrying on another instance", "service", p.service,
				"instance", cur.hostport, "next", next.hostport, "attempt", len(tried)+1, "error", err)
		}
		cur.inflight.Add(-1)
		next.inflight.Add(1)
		p.m.picks.Add(ctx, 1, next.pickOpts...)
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.AddEvent("gatewaykit.discovery.retry", trace.WithAttributes(
				attribute.String("gatewaykit.discovery.failed_instance", cur.hostport), attribute.Int("gatewaykit.discovery.attempt", len(tried)+1)))
			span.SetAttributes(next.spanAttrs[1], attribute.Int("gatewaykit.discovery.attempts", len(tried)+1))
		}
		tried = append(tried, next)
		cur, curReq = next, &a

		var resp *http.Response
		resp, err = p.transport.RoundTrip(curReq)
		if err == nil {
			rb := &retriedBody{rc: resp.Body, e: cur, first: first}
			if rb.rc == nil {
				rb.rc = http.NoBody
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// ReverseProxy does not close an upgrade's body on all its error paths, and the
				// tunnel lives inside ServeHTTP: it is counted against first.
				rb.settle()
			}
			resp.Body = rb
			return resp, nil
		}
	}
	if cur == first {
		return nil, err
	}
	cur.inflight.Add(-1)
	first.inflight.Add(1)
	return nil, &retriedError{err: err, e: cur, req: curReq, attempts: len(tried)}
}

// pickOther picks an admitted endpoint of req's routing group whose host:port is not in tried:
// the balancer's pick when it offers one within three picks, else the first untried one from a
// random offset. It returns nil when the group has no untried endpoint, or the picker returns nil.
func (p *Proxy) pickOther(req *http.Request, tried []*Endpoint) *Endpoint {
	g := p.table.Load().group(req, p.route)
	if g.picker == nil {
		return nil
	}
	for range 3 {
		e := g.picker.Pick(req)
		if e == nil {
			return nil
		}
		if e.proxy == p && !triedAddr(tried, e) {
			return e
		}
	}
	off := rand.IntN(len(g.eps))
	for i := range g.eps {
		if e := g.eps[(off+i)%len(g.eps)]; !triedAddr(tried, e) {
			return e
		}
	}
	return nil
}

func triedAddr(tried []*Endpoint, e *Endpoint) bool {
	for _, t := range tried {
		if t == e || t.hostport == e.hostport {
			return true
		}
	}
	return false
}

// retriedError is the failure of a request whose retries failed too: the last attempt's error,
// instance and request.
type retriedError struct {
	err      error
	e        *Endpoint
	req      *http.Request
	attempts int
}

func (r *retriedError) Error() string { return r.err.Error() }
func (r *retriedError) Unwrap() error { return r.err }

// retriedBody is the body of a response from a retry's instance. modifyResponse reads the
// instance from it; closing it moves the request's in-flight count back to the first instance.
// It is writable when the underlying body is (an upgrade's connection).
type retriedBody struct {
	rc      io.ReadCloser
	e       *Endpoint
	first   *Endpoint
	settled atomic.Bool
}

func (b *retriedBody) Read(p []byte) (int, error) { return b.rc.Read(p) }

func (b *retriedBody) Write(p []byte) (int, error) {
	if w, ok := b.rc.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("discovery: response body is not writable")
}

func (b *retriedBody) Close() error {
	err := b.rc.Close()
	b.settle()
	return err
}

func (b *retriedBody) settle() {
	if b.settled.CompareAndSwap(false, true) {
		b.e.inflight.Add(-1)
		b.first.inflight.Add(1)
	}
}

// budgetNow returns the retry budget's time: nanoseconds since the proxy was built, read from the
// monotonic clock alone when the clock is the system's (half the cost of time.Now).
func (p *Proxy) budgetNow() int64 {
	if p.sysClock {
		return int64(time.Since(p.epoch))
	}
	return int64(p.clock.Now().Sub(p.epoch))
}

// retryBudget is the Proxy's retry budget with its policy's ratio and floor (see retrybudget).
type retryBudget struct {
	ratio, floor float64
	b            retrybudget.Budget
}

func newRetryBudget(rp RetryPolicy) retryBudget {
	return retryBudget{ratio: rp.BudgetRatio, floor: float64(rp.BudgetMinPerSecond) * retrybudget.Slots}
}

// request records one request at now (nanoseconds, see budgetNow).
func (b *retryBudget) request(now int64) { b.b.Request(now) }

// tryRetry reserves one retry at now (nanoseconds, see budgetNow) if the budget allows it.
func (b *retryBudget) tryRetry(now int64) bool { return b.b.TryRetry(now, b.ratio, b.floor) }
