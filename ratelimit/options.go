package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gatewaykit/gatewaykit"
)

// Option configures New.
type Option func(*config) error

type failPolicy uint8

const (
	failUnset failPolicy = iota
	failOpen
	failClosed
)

// Headers selects which rate-limit response headers are sent (on admitted and rejected requests).
type Headers uint8

const (
	// HeadersNone sends no rate-limit headers (Retry-After is still sent on 429).
	HeadersNone Headers = 0
	// HeadersLegacy sends X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset (Unix
	// time in seconds when the quota is fully restored, the GitHub convention).
	HeadersLegacy Headers = 1 << iota
	// HeadersIETF sends RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers):
	// `RateLimit-Policy: "user";q=100;w=60` and `RateLimit: "user";r=42;t=17`.
	HeadersIETF
	// HeadersBoth sends both families. It is the default.
	HeadersBoth = HeadersLegacy | HeadersIETF
)

type config struct {
	store        Store
	fail         failPolicy
	timeout      time.Duration
	now          func() time.Time
	headers      Headers
	errorHandler gatewaykit.ErrorHandler
	meter        metric.MeterProvider
	logger       *slog.Logger
	logEvery     time.Duration
	maxKeyLen    int
}

// WithStore sets the counter store (default: a private NewMemoryStore with default settings). A
// store other than *MemoryStore can fail, so New then requires FailOpen or FailClosed.
//
// Limiters sharing a store share the counters of rules with the same Name, Algorithm and key: give
// every route's limiter a rule {Name: "user", Key: BySubject()} and a user's 100/min is counted
// across all routes, while rules named per service ("service-orders") stay apart.
func WithStore(s Store) Option {
	return func(c *config) error {
		if s == nil {
			return errors.New("ratelimit: WithStore: store is nil")
		}
		c.store = s
		return nil
	}
}

// FailOpen admits requests when the store fails or does not answer within the store timeout. Pick
// it when availability matters more than the limit (the limit protects capacity, not security).
// Every such decision is counted (outcome "fail_open") and logged at most once per log interval.
func FailOpen() Option {
	return func(c *config) error {
		if c.fail == failClosed {
			return errors.New("ratelimit: FailOpen and FailClosed are mutually exclusive")
		}
		c.fail = failOpen
		return nil
	}
}

// FailClosed rejects requests (503 with Retry-After: 1) when the store fails or does not answer
// within the store timeout. Pick it when the limit is a security control (login attempts, costly
// endpoints). Counted (outcome "fail_closed") and logged at most once per log interval.
func FailClosed() Option {
	return func(c *config) error {
		if c.fail == failOpen {
			return errors.New("ratelimit: FailOpen and FailClosed are mutually exclusive")
		}
		c.fail = failClosed
		return nil
	}
}

// WithStoreTimeout bounds each store decision (default 100ms; 1ms..30s). Past it the failure
// policy applies. Not applied to *MemoryStore, which never blocks on I/O.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Millisecond || d > 30*time.Second {
			return fmt.Errorf("ratelimit: store timeout %v out of range 1ms..30s", d)
		}
		c.timeout = d
		return nil
	}
}

// WithClock sets the clock (default time.Now). The in-memory store decides with it; the Redis
// store uses the Redis server's clock and only the X-RateLimit-Reset header uses this one.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("ratelimit: WithClock: clock is nil")
		}
		c.now = now
		return nil
	}
}

// WithHeaders selects the rate-limit headers (default HeadersBoth).
func WithHeaders(h Headers) Option {
	return func(c *config) error {
		if h&^HeadersBoth != 0 {
			return fmt.Errorf("ratelimit: unknown headers selection %d", h)
		}
		c.headers = h
		return nil
	}
}

// WithErrorHandler replaces the writer of rejections (default gatewaykit.WriteProblem). The
// Problem carries Retry-After and the rate-limit headers in its Header.
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("ratelimit: WithErrorHandler: handler is nil")
		}
		c.errorHandler = h
		return nil
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider (default otel.GetMeterProvider() at New).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("ratelimit: WithMeterProvider: provider is nil")
		}
		c.meter = mp
		return nil
	}
}

// WithLogger sets the logger for store failures (default slog.Default() at New).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("ratelimit: WithLogger: logger is nil")
		}
		c.logger = l
		return nil
	}
}

// WithLogInterval sets how often store failures are logged at most (default 10s; at least 1ms).
// Failures in between are counted and reported with the next log line.
func WithLogInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Millisecond {
			return fmt.Errorf("ratelimit: log interval %v below 1ms", d)
		}
		c.logEvery = d
		return nil
	}
}

// WithMaxKeyLen sets the longest key stored as is (default 128 bytes, 16..4096). Longer keys are
// replaced by a 128-bit SHA-256 digest, so a client cannot make the store hold huge keys.
func WithMaxKeyLen(n int) Option {
	return func(c *config) error {
		if n < 16 || n > 4096 {
			return fmt.Errorf("ratelimit: max key length %d out of range 16..4096", n)
		}
		c.maxKeyLen = n
		return nil
	}
}
