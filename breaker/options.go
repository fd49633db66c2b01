package breaker

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/textproto"
	"slices"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/net/http/httpguts"
)

// Option configures New. Options are applied in order; the first error is returned by New.
type Option func(*config) error

// Clock tells the time. It drives the recovery ramp, Retry-After values and the retry budget.
// gobreaker itself (the rolling failure window and the open timeout) always uses real time.
// Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// FailureFunc decides whether one upstream attempt counts as a failure against its breaker.
// status is the response status (0 when there is none); err is the transport error, a
// *TimeoutError (matching ErrTimeout) when the upstream timeout expired, or ErrPanic when the
// wrapped handler panicked. Client cancellations never reach it: they never count.
// It must be safe for concurrent use and fast: it runs on every request.
type FailureFunc func(status int, err error) bool

// ErrPanic is what a FailureFunc sees when the handler wrapped by Wrap panicked. The panic is
// re-raised after the breaker recorded the outcome.
var ErrPanic = errors.New("breaker: handler panicked")

// DefaultFailure is the default FailureFunc: every error (transport errors, timeouts, panics) and
// every 5xx status except 501 Not Implemented is a failure.
func DefaultFailure(status int, err error) bool {
	return err != nil || (status >= 500 && status != http.StatusNotImplemented)
}

// Defaults of New.
const (
	DefaultFailures       = 5                      // TripAfter count
	DefaultWindow         = 10 * time.Second       // rolling window of the trip conditions
	DefaultOpenTimeout    = 30 * time.Second       // OpenTimeout
	DefaultHalfOpenProbes = 1                      // HalfOpenProbes
	DefaultRampStep       = 10 * time.Second       // RecoveryRamp step (shares 0.1, 0.5)
	DefaultMaxUpstreams   = 1024                   // MaxUpstreams
	DefaultIdleTimeout    = 10 * time.Minute       // IdleTimeout
	DefaultName           = "default"              // WithName: Wrap's key without WithKey
	DefaultRetryBase      = 25 * time.Millisecond  // RetryBackoff base
	DefaultRetryMaxDelay  = 250 * time.Millisecond // RetryBackoff max
	DefaultRetryRatio     = 0.2                    // RetryBudget ratio
	DefaultRetryFloor     = 10                     // RetryBudget floor per 10 s
	DefaultMaxReplayBody  = 64 << 10               // MaxReplayBody, bytes
	maxRetries            = 10
)

// defaultRampShares are the admitted shares of the recovery ramp after the half-open probe
// closed the breaker (10%, then 50%, then everything).
func defaultRampShares() []float64 { return []float64{0.1, 0.5} }

type config struct {
	name         string
	key          func(*http.Request) string
	consecutive  int
	window       time.Duration
	windowSet    bool
	ratio        float64
	ratioMin     int
	openTimeout  time.Duration
	probes       int
	rampStep     time.Duration
	rampShares   []float64
	maxUpstreams int
	idleTimeout  time.Duration
	failure      FailureFunc

	timeout        time.Duration
	deadlineHeader string

	retries       int
	retryOn       [600]bool
	retryOnSet    bool
	retryBase     time.Duration
	retryMax      time.Duration
	retryRatio    float64
	retryFloor    int
	maxReplayBody int64

	fallback     http.Handler
	errorHandler gatewaykit.ErrorHandler
	clock        Clock
	meter        metric.MeterProvider
	logger       *slog.Logger
}

func (c *config) setWindow(d time.Duration) error {
	if d <= 0 || d > time.Hour {
		return fmt.Errorf("breaker: window %v out of range (0, 1h]", d)
	}
	if c.windowSet && c.window != d {
		return fmt.Errorf("breaker: window set twice (%v and %v)", c.window, d)
	}
	c.window, c.windowSet = d, true
	return nil
}

// TripAfter opens the breaker after n consecutive failures within a rolling window (default:
// TripAfter(5, 10*time.Second) when neither TripAfter nor TripRatio is given). n is 1..10000;
// window is (0, 1h] and is shared with TripRatio (see WithWindow).
func TripAfter(n int, window time.Duration) Option {
	return func(c *config) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("breaker: TripAfter count %d out of range 1..10000", n)
		}
		c.consecutive = n
		return c.setWindow(window)
	}
}

// TripRatio opens the breaker when at least ratio of the attempts that completed in the rolling
// window failed, once at least minRequests completed there. ratio is (0, 1]; minRequests is
// 1..1000000. It combines with TripAfter: either condition trips. Without TripAfter, only the ratio
// trips.
func TripRatio(ratio float64, minRequests int) Option {
	return func(c *config) error {
		if !(ratio > 0 && ratio <= 1) {
			return fmt.Errorf("breaker: TripRatio ratio %v out of range (0, 1]", ratio)
		}
		if minRequests < 1 || minRequests > 1_000_000 {
			return fmt.Errorf("breaker: TripRatio minimum requests %d out of range 1..1000000", minRequests)
		}
		c.ratio, c.ratioMin = ratio, minRequests
		return nil
	}
}

// WithWindow sets the rolling window over which failures are counted (default 10s, in ten
// buckets). TripAfter sets it too; setting two different windows is an error.
func WithWindow(d time.Duration) Option {
	return func(c *config) error { return c.setWindow(d) }
}

// OpenTimeout sets how long an open breaker rejects requests before it lets half-open probes
// through (default 30s). d is (0, 24h].
func OpenTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > 24*time.Hour {
			return fmt.Errorf("breaker: open timeout %v out of range (0, 24h]", d)
		}
		c.openTimeout = d
		return nil
	}
}

// HalfOpenProbes sets how many probe requests a half-open breaker admits (in total, while it
// stays half-open; the others are rejected with Retry-After 1s), all of which must succeed to
// close it; one failure reopens it (default 1). n is 1..1000.
func HalfOpenProbes(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1000 {
			return fmt.Errorf("breaker: half-open probes %d out of range 1..1000", n)
		}
		c.probes = n
		return nil
	}
}

// RecoveryRamp sets the gradual recovery after a half-open breaker closes: for each share in turn,
// during step, the breaker admits that share of the requests (deterministically: with 0.1, the
// first of every ten) and rejects the others as if open; then everything is admitted. Shares must
// be strictly increasing within (0, 1). The default is RecoveryRamp(10*time.Second, 0.1, 0.5), so a
// recovering upstream sees 1 probe, then 10%, 50% and 100% of the traffic. RecoveryRamp(0)
// disables the ramp. step is at most 1h.
func RecoveryRamp(step time.Duration, shares ...float64) Option {
	return func(c *config) error {
		if step == 0 {
			if len(shares) != 0 {
				return errors.New("breaker: RecoveryRamp(0) disables the ramp and takes no shares")
			}
			c.rampStep, c.rampShares = 0, nil
			return nil
		}
		if step < 0 || step > time.Hour {
			return fmt.Errorf("breaker: recovery ramp step %v out of range (0, 1h]", step)
		}
		if len(shares) == 0 || len(shares) > 100 {
			return errors.New("breaker: RecoveryRamp needs 1..100 shares")
		}
		prev := 0.0
		for _, s := range shares {
			if !(s > prev && s < 1) {
				return fmt.Errorf("breaker: recovery ramp shares %v must be strictly increasing within (0, 1)", shares)
			}
			prev = s
		}
		c.rampStep, c.rampShares = step, slices.Clone(shares)
		return nil
	}
}

// MaxUpstreams bounds the number of breakers (one per key) kept at once (default 1024, range
// 1..1000000). When a new key arrives at the bound, the breaker idle the longest is evicted,
// closed ones first; an evicted key starts again as a fresh closed breaker.
func MaxUpstreams(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1_000_000 {
			return fmt.Errorf("breaker: max upstreams %d out of range 1..1000000", n)
		}
		c.maxUpstreams = n
		return nil
	}
}

// IdleTimeout drops the breaker of a key unused for at least d (and at most 2d), so that
// upstreams that went away (instances removed from discovery) leave the set and the state gauge
// (default 10 minutes; 0 keeps breakers until MaxUpstreams evicts them; at most 24h). An open
// breaker is kept until its open timeout passed. Idle breakers are dropped while the set is
// used (a new key, a metric collection), on the injectable clock.
func IdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > 24*time.Hour {
			return fmt.Errorf("breaker: idle timeout %v out of range [0, 24h]", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithName sets the key of the single breaker used by Wrap when no WithKey is given (default
// "default"). It is the "upstream" attribute of that breaker's metrics. Use one Breaker, or one
// name, per upstream service.
func WithName(name string) Option {
	return func(c *config) error {
		if name == "" || len(name) > 256 {
			return errors.New("breaker: name must be 1..256 bytes")
		}
		c.name = name
		return nil
	}
}

// WithKey sets the function that names the upstream of a request; each distinct key has its own
// breaker. Keys become the "upstream" metric attribute, so they must come from a small set the
// gateway controls (host:port of instances, route names), never from client input. An empty key
// means the name (see WithName). Default: for Transport, the request URL's host (host:port); for
// Wrap, the name. fn must be safe for concurrent use.
func WithKey(fn func(*http.Request) string) Option {
	return func(c *config) error {
		if fn == nil {
			return errors.New("breaker: key function is nil")
		}
		c.key = fn
		return nil
	}
}

// PerHost keys breakers by the request URL's host (host:port), falling back to the Host header
// when the URL has none. It is the Transport's default; with Wrap, only use it behind a proxy
// that rewrote r.URL, because the Host header of an incoming request is client input.
func PerHost() Option { return WithKey(hostKey) }

func hostKey(r *http.Request) string {
	if r.URL != nil && r.URL.Host != "" {
		return r.URL.Host
	}
	return r.Host
}

// WithFailure replaces the classification of attempts (default DefaultFailure).
func WithFailure(fn FailureFunc) Option {
	return func(c *config) error {
		if fn == nil {
			return errors.New("breaker: failure function is nil")
		}
		c.failure = fn
		return nil
	}
}

// Timeout sets the per-request upstream timeout (default none), covering every attempt,
// backoff and, for the Transport, reading the response body. The deadline is set on the
// request context, so it propagates to the upstream call (the transport cancels the connection)
// and to any code downstream; see also DeadlineHeader. When it expires Wrap answers 504 (if nothing
// was written yet) and the Transport returns a *TimeoutError. Wrapped handlers must honour their
// request context (httputil.ReverseProxy and http.Client do). d is (0, 1h].
func Timeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > time.Hour {
			return fmt.Errorf("breaker: timeout %v out of range (0, 1h]", d)
		}
		c.timeout = d
		return nil
	}
}

// DeadlineHeader makes the breaker tell the upstream its remaining time: the named request header
// is set to the milliseconds left before the request context's deadline (when there is one), like
// gRPC's grpc-timeout. Default: no header. The Transport clones the request to set it.
func DeadlineHeader(name string) Option {
	return func(c *config) error {
		if !validHeaderName(name) {
			return fmt.Errorf("breaker: deadline header %q is not a valid header name", name)
		}
		c.deadlineHeader = textproto.CanonicalMIMEHeaderKey(name)
		return nil
	}
}

func validHeaderName(s string) bool { return len(s) <= 128 && httpguts.ValidHeaderFieldName(s) }

// Retries enables up to n retries per request (default 0: no retries; n is 0..10). A request is
// retried only when it is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any method with an
// Idempotency-Key header), only after a connection error or a status listed by RetryOn, only
// while the retry budget allows (see RetryBudget), only before any part of the response reached the
// caller, and only when its body can be replayed (Request.GetBody, or buffered up to
// MaxReplayBody). Timeouts and client cancellations are never retried. Each attempt passes through
// the breaker.
func Retries(n int) Option {
	return func(c *config) error {
		if n < 0 || n > maxRetries {
			return fmt.Errorf("breaker: retries %d out of range 0..%d", n, maxRetries)
		}
		c.retries = n
		return nil
	}
}

// RetryOn sets the response statuses that are retried (default 502, 503, 504). Statuses are
// 400..599. With Wrap, a reverse proxy reports connection errors as 502, so keep 502 listed to
// retry them.
func RetryOn(statuses ...int) Option {
	return func(c *config) error {
		var set [600]bool
		for _, s := range statuses {
			if s < 400 || s > 599 {
				return fmt.Errorf("breaker: retry status %d out of range 400..599", s)
			}
			set[s] = true
		}
		c.retryOn, c.retryOnSet = set, true
		return nil
	}
}

// RetryBackoff sets the delay before retry k (k from 1): a random duration in [d/2, d] with
// d = min(max, base * 2^(k-1)) (default 25ms and 250ms). base is (0, max]; max is at most 1 minute.
// A retry whose delay would pass the request deadline is not attempted.
func RetryBackoff(base, max time.Duration) Option {
	return func(c *config) error {
		if base <= 0 || base > max || max > time.Minute {
			return fmt.Errorf("breaker: retry backoff base %v, max %v: need 0 < base <= max <= 1m", base, max)
		}
		c.retryBase, c.retryMax = base, max
		return nil
	}
}

// RetryBudget bounds retries per upstream over a rolling 10-second window to
// floor + ratio * (requests in the window), so retries cannot multiply the load on a failing
// upstream (default ratio 0.2, floor 10). ratio is [0, 10]; floor is 0..1000000.
func RetryBudget(ratio float64, floor int) Option {
	return func(c *config) error {
		if !(ratio >= 0 && ratio <= 10) || math.IsNaN(ratio) {
			return fmt.Errorf("breaker: retry budget ratio %v out of range [0, 10]", ratio)
		}
		if floor < 0 || floor > 1_000_000 {
			return fmt.Errorf("breaker: retry budget floor %d out of range 0..1000000", floor)
		}
		c.retryRatio, c.retryFloor = ratio, floor
		return nil
	}
}

// MaxReplayBody sets how many bytes of a request body are buffered so that the request can be
// retried (default 64 KiB, range 0..64 MiB). A longer body is streamed and its request not
// retried; 0 disables buffering. A request with Request.GetBody (client requests built by
// http.NewRequest) is replayed through it, without buffering.
func MaxReplayBody(n int64) Option {
	return func(c *config) error {
		if n < 0 || n > 64<<20 {
			return fmt.Errorf("breaker: max replay body %d out of range 0..64MiB", n)
		}
		c.maxReplayBody = n
		return nil
	}
}

// WithFallback makes Wrap serve rejected requests (breaker open, half-open or recovering) with h
// instead of a 503 problem: a cached or static response. The rejection is available to h through
// RejectionFrom. Default: none.
func WithFallback(h http.Handler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("breaker: fallback handler is nil")
		}
		c.fallback = h
		return nil
	}
}

// WithErrorHandler replaces the writer of Wrap's problem responses (503 rejected, 504 timeout);
// default gatewaykit.WriteProblem. The problem carries Retry-After in its Header when rejecting.
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("breaker: error handler is nil")
		}
		c.errorHandler = h
		return nil
	}
}

// WithClock replaces the clock of the recovery ramp, Retry-After and the retry budget (default:
// real time). gobreaker's window and open timeout always run on real time.
func WithClock(clk Clock) Option {
	return func(c *config) error {
		if clk == nil {
			return errors.New("breaker: clock is nil")
		}
		c.clock = clk
		return nil
	}
}

// WithMeterProvider sets the meter provider (default: otel.GetMeterProvider() at New).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("breaker: meter provider is nil")
		}
		c.meter = mp
		return nil
	}
}

// WithLogger sets the logger of state changes (default slog.Default() at New).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("breaker: logger is nil")
		}
		c.logger = l
		return nil
	}
}
