package transcode

import (
	"errors"
	"fmt"
	"log/slog"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/gatewaykit/gatewaykit"
)

// DefaultMaxBodyBytes is the default largest request body accepted (4 MiB, gRPC's default largest
// message).
const DefaultMaxBodyBytes = 4 << 20

// Default metadata keys the gateway sets itself. Clients can never set them: allow-listing a header
// with one of these names is refused at construction.
const (
	DefaultSubjectKey   = "x-user-id"
	DefaultRolesKey     = "x-user-roles"
	DefaultTierKey      = "x-user-tier"
	DefaultRequestIDKey = "x-request-id"
)

// Option configures New and NewDynamic. Options are validated when the Transcoder is built.
type Option func(*config) error

type config struct {
	dialOpts       []grpc.DialOption
	conns          map[string]*grpc.ClientConn // user-owned, by target
	static         []registration
	serviceTargets map[string]string
	services       map[string]bool // nil: all

	forward      []forwardHeader
	subjectKey   string
	rolesKey     string
	tierKey      string
	requestIDKey string

	respHeaders  map[string]string // metadata key -> canonical HTTP header
	respTrailers map[string]string

	timeout         time.Duration
	maxBody         int64
	useProtoNames   bool
	emitUnpopulated bool
	discardUnknown  bool

	errorHandler  gatewaykit.ErrorHandler
	gatewayErrors bool
	exposeMessage bool

	meterProvider  metric.MeterProvider
	tracing        bool
	tracerProvider trace.TracerProvider
	propagator     propagation.TextMapPropagator
	logger         *slog.Logger
}

type forwardHeader struct {
	canon string // canonical HTTP header name
	key   string // gRPC metadata key (lower case)
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		conns:          map[string]*grpc.ClientConn{},
		serviceTargets: map[string]string{},
		subjectKey:     DefaultSubjectKey,
		rolesKey:       DefaultRolesKey,
		tierKey:        DefaultTierKey,
		requestIDKey:   DefaultRequestIDKey,
		respHeaders:    map[string]string{},
		respTrailers:   map[string]string{},
		maxBody:        DefaultMaxBodyBytes,
		tracing:        true,
	}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("transcode: nil option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	reserved := c.reservedKeys()
	for _, f := range c.forward {
		if reserved[f.key] {
			return nil, fmt.Errorf("transcode: header %q is reserved for metadata the gateway sets itself", f.canon)
		}
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.propagator == nil {
		c.propagator = otel.GetTextMapPropagator()
	}
	// The propagator's own keys come from the gateway's span, never from the client (the W3C
	// ones are refused by ForwardHeaders whatever the propagator).
	fields := c.propagator.Fields()
	for _, field := range fields {
		for _, f := range c.forward {
			if strings.EqualFold(field, f.key) {
				return nil, fmt.Errorf("transcode: header %q is set by the trace-context propagator and cannot be forwarded", f.canon)
			}
		}
	}
	// Nor may the gateway's own metadata carry a trace-context key: the injected context is
	// appended, so the backend would read the request ID (the client's X-Request-ID, perhaps) or
	// an identity value as its parent instead. Refused with tracing off too, as by ForwardHeaders.
	for _, k := range [...]struct{ what, key string }{
		{"subject", c.subjectKey}, {"roles", c.rolesKey}, {"tier", c.tierKey}, {"request ID", c.requestIDKey},
	} {
		if k.key == "" {
			continue
		}
		if traceHeaders[k.key] || slices.ContainsFunc(fields, func(f string) bool { return strings.EqualFold(f, k.key) }) {
			return nil, fmt.Errorf("transcode: %s metadata key %q is a trace-context key: the backend receives the gateway's trace context there", k.what, k.key)
		}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.errorHandler = c.errorHandler.Or()
	return c, nil
}

func (c *config) reservedKeys() map[string]bool {
	m := map[string]bool{}
	for _, k := range []string{c.subjectKey, c.rolesKey, c.tierKey, c.requestIDKey} {
		if k != "" {
			m[k] = true
		}
	}
	return m
}

// validMetadataKey reports whether k is a gRPC metadata key the gateway may set: lower-case
// [0-9a-z-_.], not a reserved "grpc-" key, not a pseudo-header, not binary ("-bin").
func validMetadataKey(k string) bool {
	if k == "" || strings.HasPrefix(k, "grpc-") || strings.HasSuffix(k, "-bin") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// hop-by-hop and transport headers that must never become metadata.
var refusedHeaders = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "transfer-encoding": true,
	"upgrade": true, "te": true, "trailer": true, "host": true, "content-length": true,
	"content-type": true, "user-agent": true,
}

func metadataKey(what, key string, field func(*config) *string) Option {
	return func(c *config) error {
		if key != "" && !validMetadataKey(key) {
			return fmt.Errorf("transcode: %s metadata key %q is not a valid lower-case gRPC metadata key", what, key)
		}
		*field(c) = key
		return nil
	}
}

// WithDialOptions sets the options used to dial every backend target the Transcoder connects to
// itself. There is no default transport security: without grpc.WithTransportCredentials (for example
// insecure.NewCredentials() for a loopback backend) construction fails, so plaintext is always an
// explicit choice. With tracing on (WithTracing), the Transcoder's client interceptors come first in
// the chain, so interceptors chained here (grpc.WithChainUnaryInterceptor,
// grpc.WithChainStreamInterceptor) run inside the client span; one set with
// grpc.WithUnaryInterceptor or grpc.WithStreamInterceptor runs outside it, since gRPC puts that one
// ahead of every chained interceptor.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) error {
		c.dialOpts = append(c.dialOpts, opts...)
		return nil
	}
}

// WithClientConn makes the Transcoder use conn for target instead of dialing it. The Transcoder
// never closes a connection it was given. Use it to share a connection, or to reach targets through a
// custom resolver (a discovery adapter registered with grpc.WithResolvers on conn).
func WithClientConn(target string, conn *grpc.ClientConn) Option {
	return func(c *config) error {
		if target == "" || conn == nil {
			return errors.New("transcode: WithClientConn needs a target and a connection")
		}
		c.conns[target] = conn
		return nil
	}
}

// ForwardHeaders allow-lists request headers that are forwarded to the backend as gRPC metadata
// under their lower-case names. No header is forwarded by default: not Authorization, not Cookie,
// not X-Forwarded-For. Names used by the gateway's own metadata (identity, request ID), hop-by-hop
// and transport headers, "grpc-" names and binary ("-bin") names are refused, and so are the
// trace-context headers (traceparent, tracestate, baggage, and every key of the configured
// propagator): the backend gets the gateway's trace context, never the client's. Values that are
// not printable ASCII are dropped.
func ForwardHeaders(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			key := strings.ToLower(n)
			if traceHeaders[key] {
				return fmt.Errorf("transcode: header %q cannot be forwarded: the backend receives the gateway's trace context", n)
			}
			if !validMetadataKey(key) || refusedHeaders[key] {
				return fmt.Errorf("transcode: header %q cannot be forwarded as gRPC metadata", n)
			}
			c.forward = append(c.forward, forwardHeader{canon: textproto.CanonicalMIMEHeaderKey(n), key: key})
		}
		return nil
	}
}

// SubjectKey sets the metadata key carrying gatewaykit.Identity.Subject (default "x-user-id"; ""
// disables it). Set only when the request context holds a non-anonymous identity. This key, and
// those of RolesKey, TierKey and RequestIDKey, cannot be a trace-context key (traceparent,
// tracestate, baggage or a key of the propagator): construction fails.
func SubjectKey(key string) Option {
	return metadataKey("subject", key, func(c *config) *string { return &c.subjectKey })
}

// RolesKey sets the metadata key carrying the identity's roles, one metadata value per role
// (default "x-user-roles"; "" disables it).
func RolesKey(key string) Option {
	return metadataKey("roles", key, func(c *config) *string { return &c.rolesKey })
}

// TierKey sets the metadata key carrying the identity's tier (default "x-user-tier"; "" disables it).
func TierKey(key string) Option {
	return metadataKey("tier", key, func(c *config) *string { return &c.tierKey })
}

// RequestIDKey sets the metadata key carrying gatewaykit.RequestIDFrom (default "x-request-id"; ""
// disables it).
func RequestIDKey(key string) Option {
	return metadataKey("request ID", key, func(c *config) *string { return &c.requestIDKey })
}

func responseMapping(what string, dst map[string]string, keys []string) error {
	for _, k := range keys {
		key := strings.ToLower(k)
		if !validMetadataKey(key) || refusedHeaders[key] {
			return fmt.Errorf("transcode: %s metadata key %q cannot become an HTTP header", what, k)
		}
		dst[key] = textproto.CanonicalMIMEHeaderKey(key)
	}
	return nil
}

// ResponseHeaders allow-lists response header metadata keys copied to HTTP response headers (same
// name, canonical case). None by default.
func ResponseHeaders(keys ...string) Option {
	return func(c *config) error { return responseMapping("response header", c.respHeaders, keys) }
}

// ResponseTrailers allow-lists response trailer metadata keys copied to HTTP trailers, sent when the
// client announced "TE: trailers" (as grpc-gateway does). None by default.
func ResponseTrailers(keys ...string) Option {
	return func(c *config) error { return responseMapping("response trailer", c.respTrailers, keys) }
}

// Timeout bounds every gRPC call (default: none; the call ends with the request context, so a
// deadline set by an outer middleware or the client going away is honoured). Must be positive.
func Timeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("transcode: timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// MaxBodyBytes sets the largest request body accepted (default 4 MiB); larger bodies are answered
// with 413 before any call is made. Must be positive.
func MaxBodyBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("transcode: max body bytes %d must be positive", n)
		}
		c.maxBody = n
		return nil
	}
}

// UseProtoNames writes JSON field names as in the .proto file (snake_case) instead of the default
// lowerCamelCase. Requests are accepted in both forms either way.
func UseProtoNames() Option {
	return func(c *config) error { c.useProtoNames = true; return nil }
}

// EmitUnpopulated writes fields that hold their zero value (default: omitted, as protojson does).
func EmitUnpopulated() Option {
	return func(c *config) error { c.emitUnpopulated = true; return nil }
}

// DiscardUnknownFields ignores JSON body fields and query parameters the method's request message
// does not have. By default they are rejected with 400, so a client's typo is not silently ignored.
func DiscardUnknownFields() Option {
	return func(c *config) error { c.discardUnknown = true; return nil }
}

// WithErrorHandler replaces the problem writer for rejected and failed requests (default
// gatewaykit.WriteProblem).
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("transcode: nil error handler")
		}
		c.errorHandler = h
		return nil
	}
}

// GatewayErrors writes gRPC errors in grpc-gateway's JSON shape ({"code":5,"message":"...",
// "details":[]}, Content-Type application/json) instead of RFC 9457 problems, for clients written
// against grpc-gateway. Status details are never copied. Rejections that happen before a call (body
// too large, no such route) stay problems.
func GatewayErrors() Option {
	return func(c *config) error { c.gatewayErrors = true; return nil }
}

// ExposeStatusMessages copies the backend's gRPC status message (at most 1 KiB of valid UTF-8) into
// error responses. By default a fixed text per code is sent, because a status message may hold
// internal detail. In static mode grpc-gateway reports its own request-decoding failures as
// INVALID_ARGUMENT statuses, so their text is exposed too; dynamic mode's are always fixed texts.
func ExposeStatusMessages() Option {
	return func(c *config) error { c.exposeMessage = true; return nil }
}

// WithMeterProvider sets the meter provider (default otel.GetMeterProvider() at construction).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("transcode: nil meter provider")
		}
		c.meterProvider = mp
		return nil
	}
}

// WithTracing turns the client span and trace-context injection of every gRPC call on or off
// (default on). Off, the connections the Transcoder dials get no interceptor at all, so tracing
// costs nothing, and the backend receives no trace context. Turn it off when the connections are
// instrumented another way (WithDialOptions), or each call gets two spans.
func WithTracing(enabled bool) Option {
	return func(c *config) error { c.tracing = enabled; return nil }
}

// WithTracerProvider sets the tracer provider of the client spans (default otel.GetTracerProvider()
// at construction, which follows a global provider installed later).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return errors.New("transcode: nil tracer provider")
		}
		c.tracerProvider = tp
		return nil
	}
}

// WithPropagator sets the propagator that injects the client span's context into the outgoing
// gRPC metadata (default otel.GetTextMapPropagator() at construction, which follows a global
// propagator installed later; the global default propagates nothing). The propagator's keys cannot
// be allow-listed with ForwardHeaders.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return errors.New("transcode: nil propagator")
		}
		c.propagator = p
		return nil
	}
}

// WithLogger sets the logger for start-up warnings (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("transcode: nil logger")
		}
		c.logger = l
		return nil
	}
}
