package breaker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

type rejectionKey struct{}

// RejectionFrom returns the rejection that sent a request to the fallback handler (see
// WithFallback), and false when the request was not rejected.
func RejectionFrom(ctx context.Context) (*OpenError, bool) {
	oe, ok := ctx.Value(rejectionKey{}).(*OpenError)
	return oe, ok && oe != nil
}

// Wrap returns next guarded by the breaker of the request's key (by default one breaker, named by
// WithName). A rejected request never reaches next: it gets a 503 problem with Retry-After, or the
// fallback handler. The attempt's outcome is the status next writes (or its panic, or the
// timeout); a request whose client went away is not counted. With Timeout, next runs under a
// context deadline and a request that times out before next wrote its response header gets a 504
// problem. With Retries, a retryable status written by next is held back and next is called again
// (see Retries): nothing of that attempt reaches the client. The handler is safe for concurrent
// use.
func (b *Breaker) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.serve(next, w, r) })
}

func (b *Breaker) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	key := b.cfg.name
	if b.cfg.key != nil {
		key = b.cfg.key(r)
	}
	e := b.entry(key)
	parent := r.Context()
	ctx := parent
	orig := r
	if b.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, b.cfg.timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	if b.cfg.deadlineHeader != "" {
		setDeadlineHeader(ctx, r.Header, b.cfg.deadlineHeader)
	}
	retries := 0
	var again func() (io.ReadCloser, error)
	var saved http.Header // the response headers before next ran, when an attempt may be discarded
	if b.cfg.timeout > 0 {
		saved = w.Header().Clone()
	}
	if b.cfg.retries > 0 {
		e.budget.Request(b.cfg.clock.Now().UnixNano())
		if idempotent(r) {
			first, ag := replayBody(r.Body, r.GetBody, b.cfg.maxReplayBody)
			if first != r.Body {
				if r == orig {
					r = r.WithContext(ctx)
				}
				r.Body = first
			}
			if ag != nil {
				retries, again = b.cfg.retries, ag
				if saved == nil {
					saved = w.Header().Clone()
				}
			}
		}
	}
	for attempt := 0; ; attempt++ {
		if oe := e.admit(b); oe != nil {
			b.rejectRequest(w, r, e, oe)
			return
		}
		// A fresh writer per attempt, never pooled: a buggy handler that writes after returning
		// must not be able to write into another client's response.
		rw := &responseWriter{ResponseWriter: w, b: b, e: e, ctx: ctx}
		if attempt < retries {
			rw.retryK = attempt + 1
		}
		_, err := e.cb.Execute(func() (struct{}, error) { return struct{}{}, b.attempt(next, rw, r, e, parent) })
		if isRejection(err) {
			b.rejectRequest(w, r, e, e.rejected(b, err))
			return
		}
		if rw.panicked != nil {
			panic(rw.panicked)
		}
		retryDelay, timedOut := rw.retryDelay, rw.timedOut
		if retryDelay > 0 || timedOut {
			restoreHeader(w.Header(), saved) // forget what the discarded attempt set
		}
		if retryDelay > 0 {
			if !sleep(ctx, retryDelay) {
				b.finishTimedOut(w, r, e, parent)
				return
			}
			body, err := again()
			if err != nil {
				b.cfg.errorHandler(w, r, gatewaykit.NewProblem(http.StatusBadGateway, detailFailed).WithErr(err))
				return
			}
			if r == orig {
				r = r.WithContext(ctx)
			}
			r.Body = body
			continue
		}
		if timedOut {
			b.finishTimedOut(w, r, e, parent)
		}
		return
	}
}

func restoreHeader(h, saved http.Header) {
	clear(h)
	for k, v := range saved {
		h[k] = v
	}
}

// finishTimedOut answers 504 for a request whose deadline passed before anything was written.
func (b *Breaker) finishTimedOut(w http.ResponseWriter, r *http.Request, e *entry, parent context.Context) {
	if errors.Is(parent.Err(), context.Canceled) {
		return // the client is gone
	}
	b.tel.timedOut(r.Context(), e)
	b.cfg.errorHandler(w, r, gatewaykit.NewProblem(http.StatusGatewayTimeout, detailTimeout).
		WithErr(&TimeoutError{Upstream: e.key, Timeout: b.cfg.timeout, Err: context.DeadlineExceeded}))
}

// attempt runs next once and returns the verdict for gobreaker. A panic is recorded in rw and
// re-raised by serve once the breaker has counted it.
func (b *Breaker) attempt(next http.Handler, rw *responseWriter, r *http.Request, e *entry, parent context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			rw.panicked = p
			err = b.verdict(0, ErrPanic, parent)
		}
	}()
	next.ServeHTTP(rw, r)
	if !rw.wroteHeader {
		if errors.Is(rw.ctx.Err(), context.DeadlineExceeded) {
			rw.timedOut = true
		} else {
			rw.status = http.StatusOK
		}
	}
	if rw.timedOut {
		return b.verdict(0, &TimeoutError{Upstream: e.key, Timeout: b.cfg.timeout, Err: context.DeadlineExceeded}, parent)
	}
	return b.verdict(rw.status, nil, parent)
}

// verdict classifies one attempt for gobreaker: client cancellations are excluded, the rest goes
// through the FailureFunc.
func (b *Breaker) verdict(status int, err error, parent context.Context) error {
	if errors.Is(parent.Err(), context.Canceled) {
		return errExcluded
	}
	if b.cfg.failure(status, err) {
		return errFailure
	}
	return nil
}

func (b *Breaker) rejectRequest(w http.ResponseWriter, r *http.Request, e *entry, oe *OpenError) {
	rejectedEvent(r.Context(), e, oe)
	if b.cfg.fallback != nil {
		b.cfg.fallback.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), rejectionKey{}, oe)))
		return
	}
	b.cfg.errorHandler(w, r, openProblem(oe))
}

// responseWriter observes the status of one attempt. It holds back the response header of an
// attempt that timed out (so that serve can answer 504) or that will be retried (nothing of it
// reaches the client); everything else passes straight through, streaming included.
type responseWriter struct {
	http.ResponseWriter
	b           *Breaker
	e           *entry
	ctx         context.Context
	status      int
	retryK      int // the retry this attempt may trigger (1-based); 0 for none
	retryDelay  time.Duration
	panicked    any
	wroteHeader bool
	discard     bool
	timedOut    bool
}

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		if !w.discard {
			w.ResponseWriter.WriteHeader(code) // let net/http report the superfluous call
		}
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code) // informational: more headers follow
		return
	}
	w.wroteHeader, w.status = true, code
	if code >= 500 && errors.Is(w.ctx.Err(), context.DeadlineExceeded) {
		w.timedOut, w.discard = true, true
		return
	}
	if w.retryK > 0 && code < len(w.b.cfg.retryOn) && code >= 0 && w.b.cfg.retryOn[code] {
		if d, ok := w.b.allowRetry(w.e, w.ctx, w.retryK); ok {
			w.retryDelay, w.discard = max(d, time.Nanosecond), true
			return
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher for handlers that assert it.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.discard {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer (hijacking, deadlines).
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
