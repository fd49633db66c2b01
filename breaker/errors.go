package breaker

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// ErrOpen is matched (errors.Is) by every rejection of a request by a breaker: open, half-open with
// all probes in flight, or recovering and outside the admitted share. The concrete error is an
// *OpenError carrying the time after which a retry may succeed.
//
// The Transport returns it from RoundTrip; a reverse proxy's ErrorHandler maps it to 503 with
// Retry-After (see ProblemFor and ProxyErrorHandler).
var ErrOpen = errors.New("breaker: circuit open")

// ErrTimeout is matched (errors.Is) by the error the Transport returns when the per-request
// upstream timeout (see Timeout) expired. The concrete error is a *TimeoutError; a reverse proxy's
// ErrorHandler maps it to 504 (see ProblemFor).
var ErrTimeout = errors.New("breaker: upstream timeout")

// OpenError is the error of a request rejected by a breaker. It matches ErrOpen.
type OpenError struct {
	// Upstream is the breaker key (for the Transport, host:port by default). Never shown to clients
	// by this package.
	Upstream string
	// State is the breaker state that rejected the request: Open, HalfOpen or Recovering.
	State State
	// RetryAfter is how long until the breaker may admit the request: the time until half-open for
	// an open breaker, the time until the next ramp stage when recovering, one second when
	// half-open with every probe in flight. Never negative.
	RetryAfter time.Duration
}

// Error implements error.
func (e *OpenError) Error() string {
	return "breaker: circuit " + e.State.String() + " for upstream " + strconv.Quote(e.Upstream) +
		", retry after " + e.RetryAfter.String()
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// TimeoutError is the error of a request whose upstream timeout (see Timeout) expired. It matches
// ErrTimeout and unwraps to the transport's own error (which matches context.DeadlineExceeded).
type TimeoutError struct {
	// Upstream is the breaker key.
	Upstream string
	// Timeout is the configured per-request upstream timeout.
	Timeout time.Duration
	// Err is the underlying transport error.
	Err error
}

// Error implements error.
func (e *TimeoutError) Error() string {
	return "breaker: upstream " + strconv.Quote(e.Upstream) + " did not answer within " + e.Timeout.String()
}

// Is reports whether target is ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns the underlying transport error.
func (e *TimeoutError) Unwrap() error { return e.Err }

const (
	detailOpen    = "The upstream service is temporarily unavailable. Retry later."
	detailTimeout = "The upstream service did not answer in time."
	detailFailed  = "The upstream service failed."
)

// ProblemFor maps an error from the Transport (or any RoundTripper wrapping it) to the problem a
// gateway should answer: 503 with Retry-After for ErrOpen, 504 for ErrTimeout and
// context.DeadlineExceeded, 502 for anything else. The detail never contains err's text; err is
// kept in Problem.Err for logs. A nil err returns nil. Safe for concurrent use.
func ProblemFor(err error) *gatewaykit.Problem {
	if err == nil {
		return nil
	}
	var oe *OpenError
	switch {
	case errors.As(err, &oe):
		return gatewaykit.NewProblem(http.StatusServiceUnavailable, detailOpen).WithRetryAfter(oe.RetryAfter).WithErr(err)
	case errors.Is(err, ErrOpen):
		return gatewaykit.NewProblem(http.StatusServiceUnavailable, detailOpen).WithRetryAfter(time.Second).WithErr(err)
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return gatewaykit.NewProblem(http.StatusGatewayTimeout, detailTimeout).WithErr(err)
	default:
		return gatewaykit.NewProblem(http.StatusBadGateway, detailFailed).WithErr(err)
	}
}

// ProxyErrorHandler returns a function for httputil.ReverseProxy.ErrorHandler that answers
// transport errors with ProblemFor(err) through eh (nil means gatewaykit.WriteProblem). A request
// whose client went away (its context is canceled) gets a bare 499 (nginx's "client closed
// request", for access logs): nobody is listening.
// Safe for concurrent use.
func ProxyErrorHandler(eh gatewaykit.ErrorHandler) func(http.ResponseWriter, *http.Request, error) {
	eh = eh.Or()
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(r.Context().Err(), context.Canceled) {
			w.WriteHeader(499) // client closed request; never seen by the client
			return
		}
		eh(w, r, ProblemFor(err))
	}
}
