package breaker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Transport returns an http.RoundTripper that sends requests through base (nil means
// http.DefaultTransport) guarded by one breaker per upstream: by default the request URL's
// host:port, so one Transport inside a reverse proxy keeps a breaker per instance.
//
// A RoundTripper cannot write responses, so rejections and timeouts are errors: a rejected request
// returns an *OpenError (errors.Is(err, ErrOpen)) without reaching base, and an expired Timeout
// returns a *TimeoutError (errors.Is(err, ErrTimeout)). Use ProxyErrorHandler (or ProblemFor in
// your own handler) as httputil.ReverseProxy.ErrorHandler to answer them with 503 + Retry-After
// and 504 problems.
//
// The outcome of an attempt is decided when the response header arrives (status) or the
// transport fails; errors while the caller reads the body do not count. With Timeout, the
// deadline covers the body too: the context is released when the body is closed or read to EOF.
// Retries happen only before RoundTrip returns a response, so never after the caller saw one.
// The RoundTripper is safe for concurrent use and forwards CloseIdleConnections to base.
func (b *Breaker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	key := b.cfg.key
	if key == nil {
		key = hostKey
	}
	return &transport{b: b, base: base, key: key}
}

type transport struct {
	b    *Breaker
	base http.RoundTripper
	key  func(*http.Request) string
}

// CloseIdleConnections closes the idle connections of base, when it has the method.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := t.b
	e := b.entry(t.key(req))
	parent := req.Context()
	ctx := parent
	var cancel context.CancelFunc
	if b.cfg.timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, b.cfg.timeout)
		req = req.WithContext(ctx)
	}
	if b.cfg.deadlineHeader != "" {
		if _, ok := ctx.Deadline(); ok || req.Header[b.cfg.deadlineHeader] != nil {
			req = req.Clone(ctx)
			setDeadlineHeader(ctx, req.Header, b.cfg.deadlineHeader)
		}
	}
	retries := 0
	var again func() (io.ReadCloser, error)
	if b.cfg.retries > 0 {
		e.budget.Request(b.cfg.clock.Now().UnixNano())
		if idempotent(req) {
			first, ag := replayBody(req.Body, req.GetBody, b.cfg.maxReplayBody)
			if first != req.Body {
				req = shallowCopy(req)
				req.Body = first
				req.GetBody = ag
			}
			if ag != nil {
				retries, again = b.cfg.retries, ag
			}
		}
	}
	fail := func(err error) (*http.Response, error) {
		if cancel != nil {
			cancel()
		}
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if oe := e.admit(b); oe != nil {
			rejectedEvent(ctx, e, oe)
			closeBody(req)
			return fail(oe)
		}
		var resp *http.Response
		var rtErr error
		_, err := e.cb.Execute(func() (struct{}, error) {
			resp, rtErr = t.base.RoundTrip(req)
			return struct{}{}, t.verdict(resp, rtErr, e, ctx, parent)
		})
		if isRejection(err) {
			oe := e.rejected(b, err)
			rejectedEvent(ctx, e, oe)
			closeBody(req)
			return fail(oe)
		}
		if rtErr != nil {
			if timedOut(ctx, parent) {
				b.tel.timedOut(ctx, e)
				return fail(&TimeoutError{Upstream: e.key, Timeout: b.cfg.timeout, Err: rtErr})
			}
			if attempt < retries && connectionError(rtErr) {
				if d, ok := b.allowRetry(e, ctx, attempt+1); ok {
					if body, err := again(); err == nil {
						if err := t.wait(ctx, parent, e, d, body); err != nil {
							return fail(err)
						}
						req = withBody(req, body)
						continue
					}
				}
			}
			return fail(rtErr)
		}
		if attempt < retries && resp.StatusCode < len(b.cfg.retryOn) && resp.StatusCode >= 0 && b.cfg.retryOn[resp.StatusCode] {
			if d, ok := b.allowRetry(e, ctx, attempt+1); ok {
				if body, err := again(); err == nil { // else keep the response we have
					drain(resp.Body)
					if err := t.wait(ctx, parent, e, d, body); err != nil {
						return fail(err)
					}
					req = withBody(req, body)
					continue
				}
			}
		}
		if cancel != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// An upgraded connection's body must stay an io.ReadWriteCloser; its context is
			// released when the timer fires.
			resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		}
		return resp, nil
	}
}

// wait sleeps the backoff d before a retry. When the request context ends first it closes body
// and returns the error to give the caller: a *TimeoutError, or the context's error.
func (t *transport) wait(ctx, parent context.Context, e *entry, d time.Duration, body io.ReadCloser) error {
	if sleep(ctx, d) {
		return nil
	}
	if body != nil {
		_ = body.Close()
	}
	if timedOut(ctx, parent) {
		t.b.tel.timedOut(ctx, e)
		return &TimeoutError{Upstream: e.key, Timeout: t.b.cfg.timeout, Err: ctx.Err()}
	}
	return ctx.Err()
}

// withBody returns a shallow copy of r with another body.
func withBody(r *http.Request, body io.ReadCloser) *http.Request {
	c := shallowCopy(r)
	c.Body = body
	return c
}

func (t *transport) verdict(resp *http.Response, err error, e *entry, ctx, parent context.Context) error {
	if err != nil && timedOut(ctx, parent) {
		err = &TimeoutError{Upstream: e.key, Timeout: t.b.cfg.timeout, Err: err}
	}
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	return t.b.verdict(status, err, parent)
}

// timedOut reports whether the attempt context's deadline expired while the caller's did not
// get canceled.
func timedOut(ctx, parent context.Context) bool {
	return errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(parent.Err(), context.Canceled)
}

func shallowCopy(r *http.Request) *http.Request {
	c := *r
	return &c
}

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// drain reads a little of a discarded response body so the connection can be reused, then closes it.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	_ = body.Close()
}

// cancelBody releases the timeout context when the response body is closed or fully read.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err == io.EOF {
		c.once.Do(c.cancel)
	}
	return n, err
}

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(c.cancel)
	return err
}
