package discovery

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gatewaykit/gatewaykit"
)

// Option configures NewProxy, NewStatic or NewConsul. Each option's doc says which constructors
// accept it and its default; passing an option to another constructor, or a nil Option, is a
// construction error. Options are applied in order at construction only (a later option of the
// same kind wins, except StripPrefix/ReplacePrefix, which may be given once).
type Option func(*config) error

// Clock tells the time. Proxies use it for outlier ejection and the retry budget, the Consul
// resolver for staleness.
// Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

type kind uint8

const (
	kindProxy kind = 1 << iota
	kindStatic
	kindConsul
)

func (k kind) String() string {
	switch k {
	case kindProxy:
		return "NewProxy"
	case kindStatic:
		return "NewStatic"
	case kindConsul:
		return "NewConsul"
	}
	return "this constructor"
}

type config struct {
	kind kind

	logger *slog.Logger
	meter  metric.MeterProvider
	clock  Clock

	// proxy
	balancer      Balancer
	transport     http.RoundTripper
	rewriteFrom   string
	rewriteTo     string
	rewriteSet    bool
	clientIP      *gatewaykit.ClientIPResolver
	errHandler    gatewaykit.ErrorHandler
	errMapper     func(error) *gatewaykit.Problem
	retryAfter    time.Duration
	flushInterval time.Duration
	preserveHost  bool
	scheme        string
	passive       PassiveHealth
	retry         RetryPolicy
	route         *headerRoute

	// static
	check *HealthCheck

	// consul
	datacenter string
	token      string
	tags       []string
	waitTime   time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
}

func (c *config) apply(opts []Option) error {
	for _, o := range opts {
		if o == nil {
			return errors.New("discovery: nil option")
		}
		if err := o(c); err != nil {
			return err
		}
	}
	return nil
}

func only(c *config, name string, k kind) error {
	if c.kind&k == 0 {
		return fmt.Errorf("discovery: option %s does not apply to %s", name, c.kind)
	}
	return nil
}

// WithLogger sets the logger (default slog.Default()). Accepted by every constructor. Failures
// that could repeat per request or per retry are logged at most once per second.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("discovery: WithLogger: logger is nil")
		}
		c.logger = l
		return nil
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider (default otel.GetMeterProvider() at
// construction). Accepted by every constructor.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("discovery: WithMeterProvider: provider is nil")
		}
		c.meter = mp
		return nil
	}
}

// WithClock sets the clock (default the system clock). NewProxy uses it for outlier ejection and
// readmission and for the retry budget's window, NewConsul for staleness. Accepted by NewProxy
// and NewConsul.
func WithClock(clk Clock) Option {
	return func(c *config) error {
		if err := only(c, "WithClock", kindProxy|kindConsul); err != nil {
			return err
		}
		if clk == nil {
			return errors.New("discovery: WithClock: clock is nil")
		}
		c.clock = clk
		return nil
	}
}

// WithBalancer sets the load balancer (default RoundRobin()). NewProxy only.
func WithBalancer(b Balancer) Option {
	return func(c *config) error {
		if err := only(c, "WithBalancer", kindProxy); err != nil {
			return err
		}
		if b == nil {
			return errors.New("discovery: WithBalancer: balancer is nil")
		}
		if v, ok := b.(interface{ validate() error }); ok {
			if err := v.validate(); err != nil {
				return err
			}
		}
		c.balancer = b
		return nil
	}
}

// WithTransport sets the RoundTripper that reaches instances (default: a tuned http.Transport,
// see DefaultTransport, owned and closed by the Proxy). Use it to slot in a circuit breaker's
// transport. A supplied transport is not closed by Proxy.Close. NewProxy only.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *config) error {
		if err := only(c, "WithTransport", kindProxy); err != nil {
			return err
		}
		if rt == nil {
			return errors.New("discovery: WithTransport: transport is nil")
		}
		c.transport = rt
		return nil
	}
}

// StripPrefix removes prefix (for example "/api") from the request path before forwarding:
// "/api/orders/7" goes upstream as "/orders/7" and "/api" as "/". Paths that do not start with the
// prefix at a segment boundary are forwarded unchanged; segment boundaries are those of the path as
// sent ("/api%2Fx" is one segment). Requests whose path has "." or ".." segments are answered 400,
// so a rewritten path cannot escape the prefix once the upstream resolves them. The prefix must
// start with "/" and hold only unreserved URL characters and "/". NewProxy only; exclusive with
// ReplacePrefix.
func StripPrefix(prefix string) Option {
	return ReplacePrefix(prefix, "")
}

// ReplacePrefix replaces the path prefix from with to: ReplacePrefix("/api/v1", "/v1") forwards
// "/api/v1/orders" as "/v1/orders". Both must be empty or start with "/", hold only unreserved URL
// characters and "/", and from must not be "/" alone. Paths that do not start with from at a
// segment boundary are forwarded unchanged, and paths with dot segments are answered 400, as with
// StripPrefix. Unlike StripPrefix with an empty to, a non-empty to
// costs one allocation per request. NewProxy only.
func ReplacePrefix(from, to string) Option {
	return func(c *config) error {
		if err := only(c, "StripPrefix/ReplacePrefix", kindProxy); err != nil {
			return err
		}
		if c.rewriteSet {
			return errors.New("discovery: StripPrefix/ReplacePrefix given twice")
		}
		from = strings.TrimSuffix(from, "/")
		to = strings.TrimSuffix(to, "/")
		if from == "" {
			return errors.New("discovery: path prefix to replace is empty or \"/\"")
		}
		for _, p := range []string{from, to} {
			if p != "" && !validPathPrefix(p) {
				return fmt.Errorf("discovery: path prefix %q must start with / and hold only unreserved characters", p)
			}
		}
		c.rewriteFrom, c.rewriteTo, c.rewriteSet = from, to, true
		return nil
	}
}

func validPathPrefix(p string) bool {
	if p[0] != '/' || strings.Contains(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		ch := p[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case ch == '-', ch == '.', ch == '_', ch == '~', ch == '/':
		default:
			return false
		}
	}
	return !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}

// WithClientIPResolver sets the trusted-proxy rules for forwarding headers (default nil: trust
// nobody). When the TCP peer is a trusted proxy, the incoming X-Forwarded-For chain is kept and the
// peer appended, and X-Forwarded-Host/Proto, the other X-Forwarded-* headers (Port, Prefix...),
// Forwarded and X-Real-IP are passed on. Otherwise all of them are dropped and X-Forwarded-For/
// Host/Proto are replaced by the proxy's own view (peer address, Host, TLS). NewProxy only.
func WithClientIPResolver(r *gatewaykit.ClientIPResolver) Option {
	return func(c *config) error {
		if err := only(c, "WithClientIPResolver", kindProxy); err != nil {
			return err
		}
		c.clientIP = r
		return nil
	}
}

// WithErrorHandler sets how the proxy's own failures are written (default gatewaykit.WriteProblem):
// 503 no healthy instance (with Retry-After), 502 upstream failed, 504 upstream timed out, 400/413
// client at fault, or what the WithErrorMapper function returned. For failures of the forward
// itself the handler receives httputil.ReverseProxy's outbound request (URL and Host already
// rewritten for the instance, the last one tried when the request was retried; same context as
// the inbound request, so request IDs and cancellation carry over), and the problem's Err is that
// attempt's error. h must be safe for concurrent use. NewProxy only.
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if err := only(c, "WithErrorHandler", kindProxy); err != nil {
			return err
		}
		if h == nil {
			return errors.New("discovery: WithErrorHandler: handler is nil")
		}
		c.errHandler = h
		return nil
	}
}

// WithErrorMapper lets the user turn an upstream error into a problem, for example a circuit
// breaker's "open" sentinel into a 503 with Retry-After. fn returns nil to fall back to the default
// mapping (timeouts 504, anything else 502). The problem's Detail reaches the client: keep it safe.
// fn may return the same *Problem for many requests: the proxy never modifies it (it hands the
// error handler a copy with Err set to the upstream error). fn must be safe for concurrent use.
// NewProxy only.
func WithErrorMapper(fn func(error) *gatewaykit.Problem) Option {
	return func(c *config) error {
		if err := only(c, "WithErrorMapper", kindProxy); err != nil {
			return err
		}
		if fn == nil {
			return errors.New("discovery: WithErrorMapper: function is nil")
		}
		c.errMapper = fn
		return nil
	}
}

// WithRetryAfter sets the Retry-After sent with 503 "no healthy instance" (default 1s, rounded up
// to whole seconds). NewProxy only.
func WithRetryAfter(d time.Duration) Option {
	return func(c *config) error {
		if err := only(c, "WithRetryAfter", kindProxy); err != nil {
			return err
		}
		if d <= 0 || d > 24*time.Hour {
			return fmt.Errorf("discovery: WithRetryAfter: %v out of range (0, 24h]", d)
		}
		c.retryAfter = d
		return nil
	}
}

// WithFlushInterval sets httputil.ReverseProxy.FlushInterval (default 0: no periodic flush).
// Server-sent events and responses of unknown length are always flushed immediately; -1 flushes
// every write. NewProxy only.
func WithFlushInterval(d time.Duration) Option {
	return func(c *config) error {
		if err := only(c, "WithFlushInterval", kindProxy); err != nil {
			return err
		}
		if d < -1 {
			return fmt.Errorf("discovery: WithFlushInterval: %v is negative (only -1 is allowed)", d)
		}
		c.flushInterval = d
		return nil
	}
}

// PreserveHost forwards the client's Host header (default: the instance's host:port). NewProxy only.
func PreserveHost() Option {
	return func(c *config) error {
		if err := only(c, "PreserveHost", kindProxy); err != nil {
			return err
		}
		c.preserveHost = true
		return nil
	}
}

// WithScheme sets the scheme used to reach instances, "http" (default) or "https". NewProxy only.
func WithScheme(scheme string) Option {
	return func(c *config) error {
		if err := only(c, "WithScheme", kindProxy); err != nil {
			return err
		}
		if scheme != "http" && scheme != "https" {
			return fmt.Errorf("discovery: WithScheme: %q is neither http nor https", scheme)
		}
		c.scheme = scheme
		return nil
	}
}

// WithPassiveHealth configures outlier ejection (default DefaultPassiveHealth); every field must
// be set (see PassiveHealth's validation in the field docs). NewProxy only.
func WithPassiveHealth(ph PassiveHealth) Option {
	return func(c *config) error {
		if err := only(c, "WithPassiveHealth", kindProxy); err != nil {
			return err
		}
		if err := ph.validate(); err != nil {
			return err
		}
		c.passive = ph
		return nil
	}
}

// WithoutPassiveHealth disables outlier ejection (enabled by default, see DefaultPassiveHealth).
// NewProxy only.
func WithoutPassiveHealth() Option {
	return func(c *config) error {
		if err := only(c, "WithoutPassiveHealth", kindProxy); err != nil {
			return err
		}
		c.passive = PassiveHealth{}
		return nil
	}
}

// WithRetry configures retries on other instances after a connection failure (default
// DefaultRetryPolicy: one retry, budget 20% of requests + 3/s, bodies up to 64 KiB); every field
// must be set (see RetryPolicy's field docs), or MaxRetries 0 turns retries off. NewProxy only.
func WithRetry(rp RetryPolicy) Option {
	return func(c *config) error {
		if err := only(c, "WithRetry", kindProxy); err != nil {
			return err
		}
		if err := rp.validate(); err != nil {
			return err
		}
		c.retry = rp
		return nil
	}
}

// WithoutRetry turns retries on other instances off (on by default, see DefaultRetryPolicy): a
// failed attempt is answered 502/504 at once. NewProxy only.
func WithoutRetry() Option {
	return func(c *config) error {
		if err := only(c, "WithoutRetry", kindProxy); err != nil {
			return err
		}
		c.retry = RetryPolicy{}
		return nil
	}
}

// Fallback says where RouteByHeader sends requests without the header or with a value no
// instance is tagged with. Build one with FallbackAll, FallbackTag or FallbackReject; the zero
// value is invalid (RouteByHeader refuses it). A Fallback is an immutable value.
type Fallback struct {
	mode fallbackMode
	tag  string
}

type fallbackMode uint8

const (
	fallbackAll fallbackMode = iota + 1
	fallbackTag
	fallbackReject
)

// FallbackAll routes to all healthy instances.
func FallbackAll() Fallback { return Fallback{mode: fallbackAll} }

// FallbackTag routes to the healthy instances tagged tag (503 when there are none).
func FallbackTag(tag string) Fallback { return Fallback{mode: fallbackTag, tag: tag} }

// FallbackReject answers 503 (no healthy instance).
func FallbackReject() Fallback { return Fallback{mode: fallbackReject} }

type headerRoute struct {
	header   string
	fallback Fallback
	allowed  map[string]bool // nil: any tag
}

// RouteByHeader selects instances by a request header matched against instance tags: with
// RouteByHeader("X-Service-Version", FallbackTag("v1"), "v1", "v2"), "X-Service-Version: v2" goes
// to the instances tagged v2, and requests without the header, with a value outside the allowed
// list, or naming a tag no healthy instance has, go to the instances tagged v1. Only the first
// header value is used; matching is exact.
//
// The header comes from the client. With no allowed values, any tag of any instance can be
// selected (including tags such as "primary" or "canary" you may not mean to expose): list the
// allowed values, or have an earlier middleware set or remove the header. NewProxy only.
func RouteByHeader(header string, fallback Fallback, allowed ...string) Option {
	return func(c *config) error {
		if err := only(c, "RouteByHeader", kindProxy); err != nil {
			return err
		}
		if header == "" || strings.ContainsAny(header, " \t\r\n:") {
			return fmt.Errorf("discovery: RouteByHeader: %q is not a valid header name", header)
		}
		if fallback.mode == 0 || (fallback.mode == fallbackTag && fallback.tag == "") {
			return errors.New("discovery: RouteByHeader: invalid fallback (use FallbackAll, FallbackTag with a tag, or FallbackReject)")
		}
		r := &headerRoute{header: textproto.CanonicalMIMEHeaderKey(header), fallback: fallback}
		if len(allowed) > 0 {
			r.allowed = make(map[string]bool, len(allowed))
			for _, a := range allowed {
				if a == "" {
					return errors.New("discovery: RouteByHeader: empty allowed value")
				}
				r.allowed[a] = true
			}
		}
		c.route = r
		return nil
	}
}

// WithHealthCheck enables active HTTP health checks of static instances (default: none, every
// instance is always reported). Zero fields of hc take the defaults documented on HealthCheck.
// NewStatic only.
func WithHealthCheck(hc HealthCheck) Option {
	return func(c *config) error {
		if err := only(c, "WithHealthCheck", kindStatic); err != nil {
			return err
		}
		if err := hc.validate(); err != nil {
			return err
		}
		c.check = &hc
		return nil
	}
}

// WithDatacenter queries the given Consul datacenter (default: the agent's). NewConsul only.
func WithDatacenter(dc string) Option {
	return func(c *config) error {
		if err := only(c, "WithDatacenter", kindConsul); err != nil {
			return err
		}
		if dc == "" {
			return errors.New("discovery: WithDatacenter: datacenter is empty")
		}
		c.datacenter = dc
		return nil
	}
}

// WithToken sets the Consul ACL token for queries (default: the client's token). NewConsul only.
func WithToken(token string) Option {
	return func(c *config) error {
		if err := only(c, "WithToken", kindConsul); err != nil {
			return err
		}
		if token == "" {
			return errors.New("discovery: WithToken: token is empty")
		}
		c.token = token
		return nil
	}
}

// WithTags keeps only instances carrying all the given tags (filtered by Consul; default: no
// filter). NewConsul only.
func WithTags(tags ...string) Option {
	return func(c *config) error {
		if err := only(c, "WithTags", kindConsul); err != nil {
			return err
		}
		for _, t := range tags {
			if t == "" {
				return errors.New("discovery: WithTags: empty tag")
			}
		}
		c.tags = append([]string(nil), tags...)
		return nil
	}
}

// WithWaitTime sets how long a Consul blocking query waits for a change (default 5m, at most
// 10m, Consul's own limit). NewConsul only.
func WithWaitTime(d time.Duration) Option {
	return func(c *config) error {
		if err := only(c, "WithWaitTime", kindConsul); err != nil {
			return err
		}
		if d < time.Second || d > 10*time.Minute {
			return fmt.Errorf("discovery: WithWaitTime: %v out of range [1s, 10m]", d)
		}
		c.waitTime = d
		return nil
	}
}

// WithBackoff sets the retry back-off after a failed Consul query: it starts at min, doubles per
// failure up to max, with jitter (default 250ms to 30s). NewConsul only.
func WithBackoff(min, max time.Duration) Option {
	return func(c *config) error {
		if err := only(c, "WithBackoff", kindConsul); err != nil {
			return err
		}
		if min <= 0 || max < min {
			return fmt.Errorf("discovery: WithBackoff: need 0 < min <= max, got %v, %v", min, max)
		}
		c.backoffMin, c.backoffMax = min, max
		return nil
	}
}
