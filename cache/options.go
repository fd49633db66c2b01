package cache

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// Defaults.
const (
	// DefaultMaxEntryBytes is the largest body stored by default (1 MiB).
	DefaultMaxEntryBytes = 1 << 20
	// DefaultStoreTimeout bounds each call of a non-local store (50 ms).
	DefaultStoreTimeout = 50 * time.Millisecond
	// DefaultRevalidateTimeout bounds a background revalidation (30 s).
	DefaultRevalidateTimeout = 30 * time.Second
)

// defaultStatuses are the response statuses cached by default.
var defaultStatuses = [...]int{200, 203, 204, 300, 301, 404, 410}

// Option configures New. Options are applied in order; a later option overrides an earlier one.
type Option func(*config) error

type config struct {
	ttl, maxTTL, swr  time.Duration
	perIdentity       bool
	shareCredentialed bool
	stripSetCookie    bool
	queryAll          bool
	query             []string // sorted, when !queryAll
	headers           []string // canonical, sorted
	statuses          [1000]bool
	maxEntry          int
	store             Store
	storeTimeout      time.Duration
	revalidateTimeout time.Duration
	revalWindow       time.Duration // with revalWindowSet; else the entry's freshness lifetime
	revalWindowSet    bool
	invalidates       func(*http.Request) []string
	now               func() time.Time
	logger            *slog.Logger
	mp                metric.MeterProvider
}

// TTL sets how long a response stays fresh when the upstream says nothing about it (no
// Cache-Control max-age or s-maxage, no Expires). Default 0: such responses are not stored.
// Upstream directives take precedence (cap them with MaxTTL).
func TTL(d time.Duration) Option {
	return positive("TTL", d, func(c *config) *time.Duration { return &c.ttl })
}

// MaxTTL caps the freshness lifetime of any response, including one the upstream set with
// max-age, s-maxage or Expires. Default: no cap.
func MaxTTL(d time.Duration) Option {
	return positive("MaxTTL", d, func(c *config) *time.Duration { return &c.maxTTL })
}

// StaleWhileRevalidate lets the cache serve an expired entry for up to d after it stops being
// fresh (X-Cache: STALE) while one background request refreshes it. An upstream
// stale-while-revalidate=N directive overrides d for its response; must-revalidate and
// proxy-revalidate forbid stale serving. Default: off.
func StaleWhileRevalidate(d time.Duration) Option {
	return positive("StaleWhileRevalidate", d, func(c *config) *time.Duration { return &c.swr })
}

// RevalidateTimeout bounds a background revalidation started by StaleWhileRevalidate. Default
// DefaultRevalidateTimeout.
func RevalidateTimeout(d time.Duration) Option {
	return positive("RevalidateTimeout", d, func(c *config) *time.Duration { return &c.revalidateTimeout })
}

// RevalidateWindow sets how long a 200 response with a validator (ETag or Last-Modified) is kept
// after it may no longer be served (past its freshness and any stale-while-revalidate window), so
// that the next request for it revalidates it upstream with a conditional request (If-None-Match
// and If-Modified-Since; RFC 9111 §4.3) instead of fetching it again: a 304 Not Modified refreshes
// the stored entry's header and freshness and the client gets the stored body (X-Cache:
// REVALIDATED), any other answer replaces it as on a miss. The window also lets a response that is
// stale on arrival (max-age=0 with an ETag) be stored for revalidation. Retained entries count
// against the store's bound like any other (the memory store may evict them first). Default: the
// entry's own freshness lifetime (a max-age=60 response is kept 60 s more); 0 keeps nothing past
// its servable life (a conditional request is then only sent by a stale-while-revalidate
// background refresh). A negative d is an error.
func RevalidateWindow(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("cache: RevalidateWindow must not be negative, got %v", d)
		}
		c.revalWindow, c.revalWindowSet = d, true
		return nil
	}
}

// PerIdentity keys entries by the caller's identity (gatewaykit.IdentityFrom: authentication
// method, "iss" claim and subject), so a response produced for one user is only ever served to
// that user.
// Requests without an identity share the anonymous entries, unless they carry credentials
// (Authorization, Proxy-Authorization or Cookie), which are then not cached at all since the
// cache cannot tell who they belong to. With PerIdentity, responses marked Cache-Control: private
// may be stored for their user. Default: off, and then requests with an identity or credentials
// bypass the cache (see ShareCredentialed).
func PerIdentity() Option {
	return func(c *config) error {
		c.perIdentity = true
		return nil
	}
}

// ShareCredentialed declares that responses do not depend on who is asking, so requests with an
// identity or credentials (Authorization, Proxy-Authorization, Cookie) may be served from and
// stored in the shared entries. With PerIdentity, it only applies to credentialed requests that
// carry no identity. Anonymous requests may then receive a response fetched with someone's
// credentials, which is exactly what this option declares harmless. Default: off (such requests
// bypass the cache: fail closed).
func ShareCredentialed() Option {
	return func(c *config) error {
		c.shareCredentialed = true
		return nil
	}
}

// StripSetCookie makes responses with Set-Cookie cacheable: the requester that caused the fetch
// receives its cookies, the stored copy has no Set-Cookie, and later hits send none. Default: off,
// responses with Set-Cookie are never stored.
func StripSetCookie() Option {
	return func(c *config) error {
		c.stripSetCookie = true
		return nil
	}
}

// Query limits the query parameters that are part of the cache key to names (matched exactly, in
// any order). Other parameters are ignored: requests that differ only in them share an entry.
// Default: every parameter is part of the key, sorted, so parameter order does not matter.
func Query(names ...string) Option {
	return func(c *config) error {
		if len(names) == 0 {
			return errors.New("cache: Query needs at least one name (use IgnoreQuery for none)")
		}
		if slices.Contains(names, "") {
			return errors.New("cache: Query: empty parameter name")
		}
		c.queryAll = false
		c.query = slices.Compact(slices.Sorted(slices.Values(names)))
		return nil
	}
}

// IgnoreQuery leaves the query string out of the cache key entirely.
func IgnoreQuery() Option {
	return func(c *config) error {
		c.queryAll = false
		c.query = nil
		return nil
	}
}

// KeyHeaders adds the values of the named request headers to the cache key, for headers that
// change the response but that the upstream does not list in Vary. Default: none.
func KeyHeaders(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if !validToken(n) {
				return fmt.Errorf("cache: KeyHeaders: invalid header name %q", n)
			}
			c.headers = append(c.headers, http.CanonicalHeaderKey(n))
		}
		c.headers = slices.Compact(slices.Sorted(slices.Values(c.headers)))
		return nil
	}
}

// Statuses replaces the cacheable response statuses (200..599; 206 and 304 cannot be cached).
// Default: 200, 203, 204, 300, 301, 404 and 410.
func Statuses(codes ...int) Option {
	return func(c *config) error {
		if len(codes) == 0 {
			return errors.New("cache: Statuses needs at least one status")
		}
		c.statuses = [1000]bool{}
		for _, s := range codes {
			if s < 200 || s > 599 || s == http.StatusPartialContent || s == http.StatusNotModified {
				return fmt.Errorf("cache: Statuses: status %d cannot be cached", s)
			}
			c.statuses[s] = true
		}
		return nil
	}
}

// MaxEntryBytes sets the largest response body stored. Bigger responses are streamed to the
// client and not stored. Default DefaultMaxEntryBytes.
func MaxEntryBytes(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("cache: MaxEntryBytes must be positive, got %d", n)
		}
		c.maxEntry = n
		return nil
	}
}

// WithStore sets where entries live. Default: a MemoryStore of DefaultMemoryBytes. The Cache's
// Close closes the store when it has a Close() error method, so give each Cache its own
// MemoryStore, or close a shared one yourself after the caches.
func WithStore(s Store) Option {
	return func(c *config) error {
		if s == nil {
			return errors.New("cache: WithStore: store is nil")
		}
		if se, ok := s.(storeErr); ok && se.configErr() != nil {
			return se.configErr()
		}
		c.store = s
		return nil
	}
}

// StoreTimeout bounds each store call (not for the in-process memory store). A lookup that fails
// or times out makes the request bypass the cache; an invalidation that does leaves the entries
// until they expire, and the request keeps its response. Default DefaultStoreTimeout.
func StoreTimeout(d time.Duration) Option {
	return positive("StoreTimeout", d, func(c *config) *time.Duration { return &c.storeTimeout })
}

// Invalidates adds paths to invalidate when an unsafe request (see Cache.InvalidateOnSuccess)
// succeeds, beyond its own path and the same-host paths in its response's Location and
// Content-Location: for resources whose responses show what the request changed, such as a
// dashboard listing the orders that POST /api/orders creates. fn is called once per successful
// unsafe request, on the request's goroutine; it returns absolute paths ("/api/dashboard"; a query
// is ignored, since every query of the path is invalidated) in the form requests use, escaped as
// in a URL. A path that is not absolute is skipped and logged. Default: none.
func Invalidates(fn func(r *http.Request) []string) Option {
	return func(c *config) error {
		if fn == nil {
			return errors.New("cache: Invalidates: nil function")
		}
		c.invalidates = fn
		return nil
	}
}

// WithClock sets the time source for freshness decisions (TTL, Age, stale windows). Default
// time.Now. The memory store's own reclamation of expired entries uses real time; an entry is
// never served past its freshness by the injected clock either way.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("cache: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithLogger sets the logger for store failures (rate-limited). Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("cache: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider. Default otel.GetMeterProvider() at
// construction.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("cache: WithMeterProvider: nil provider")
		}
		c.mp = mp
		return nil
	}
}

// positive is an option setting the duration field to d, which must be positive.
func positive(name string, d time.Duration, field func(*config) *time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("cache: %s must be positive, got %v", name, d)
		}
		*field(c) = d
		return nil
	}
}
