package auth

import (
	"errors"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatewaykit/gatewaykit"
)

const instrumentationName = "github.com/gatewaykit/gatewaykit/auth"

// Authenticator is one authentication method: it establishes who made a request from the request's
// credentials. *JWT, *APIKeys, *Introspection and the result of First implement it. Implementations
// must be safe for concurrent use and must not modify the request.
type Authenticator interface {
	// Authenticate returns the caller's identity, or an error wrapping ErrNoCredentials when the
	// request carries no credential for this method, or another sentinel of this package (ErrExpired,
	// ErrInvalidCredential, ErrUnavailable, ...) when the credential is not accepted. The returned
	// Identity may be shared between requests and must be treated as read-only.
	Authenticate(r *http.Request) (*gatewaykit.Identity, error)
}

// gate is the middleware part shared by every method: header hygiene, rejection, metrics.
type gate struct {
	onError  gatewaykit.ErrorHandler
	optional bool
	prefix   string
	headers  []upstreamHeader

	decisions metric.Int64Counter
	okAttrs   []metric.AddOption // slices, so that Add(ctx, 1, opts...) does not allocate
	anonAttrs []metric.AddOption
	rejAttrs  map[error][]metric.AddOption
	methodKV  attribute.KeyValue
}

func defaultHeaders() []upstreamHeader {
	return []upstreamHeader{
		{"X-User-Id", func(id *gatewaykit.Identity) string { return id.Subject }},
		{"X-User-Roles", rolesHeader},
	}
}

// rolesHeader joins the roles with ",", leaving out any role that a reader splitting on commas
// and trimming spaces would not get back intact (empty, holding a comma, or with leading or
// trailing white space): a role named "x,admin" must not reach the upstream as role "admin".
func rolesHeader(id *gatewaykit.Identity) string {
	n := 0
	for _, r := range id.Roles {
		if safeListItem(r) {
			n++
		}
	}
	if n == len(id.Roles) {
		return strings.Join(id.Roles, ",")
	}
	safe := make([]string, 0, n)
	for _, r := range id.Roles {
		if safeListItem(r) {
			safe = append(safe, r)
		}
	}
	return strings.Join(safe, ",")
}

func safeListItem(s string) bool {
	return s != "" && trimSpace(s) == s && strings.IndexByte(s, ',') < 0
}

func newGate(c *config, method string) (*gate, error) {
	g := &gate{onError: c.onError.Or(), optional: c.optional, prefix: c.headerPrefix, headers: c.headers}
	if !c.headersSet {
		g.headers = defaultHeaders()
	}
	mp := c.meter
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	var err error
	g.decisions, err = mp.Meter(instrumentationName).Int64Counter("gatewaykit.auth.decisions",
		metric.WithUnit("{request}"),
		metric.WithDescription("Authentication decisions by method, outcome and failure class."))
	if err != nil {
		return nil, err
	}
	g.methodKV = attribute.String("auth.method", method)
	set := func(outcome, reason string) []metric.AddOption {
		return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(g.methodKV,
			attribute.String("auth.outcome", outcome), attribute.String("auth.reason", reason)))}
	}
	g.okAttrs, g.anonAttrs = set("ok", ""), set("anonymous", "")
	g.rejAttrs = make(map[error][]metric.AddOption, len(classes))
	for _, cl := range classes {
		g.rejAttrs[cl] = set("rejected", detailOf(cl))
	}
	return g, nil
}

// strip deletes every client-sent header of the identity family: names starting with the prefix
// and the configured names, compared case-insensitively (a hand-built or earlier-modified header
// map may hold non-canonical keys that Header.Get would not see but a proxy would forward).
func (g *gate) strip(h http.Header) {
	for k := range h {
		if g.prefix != "" && len(k) >= len(g.prefix) && strings.EqualFold(k[:len(g.prefix)], g.prefix) {
			delete(h, k)
			continue
		}
		for _, uh := range g.headers {
			if len(k) == len(uh.name) && strings.EqualFold(k, uh.name) {
				delete(h, k)
				break
			}
		}
	}
}

func (g *gate) wrap(a Authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header == nil { // only hand-built requests; servers always set it
			r.Header = make(http.Header)
		}
		g.strip(r.Header)
		id, err := a.Authenticate(r)
		if err == nil && id == nil { // a custom Authenticator that found nothing
			err = ErrNoCredentials
		}
		ctx := r.Context()
		if err != nil {
			if g.optional && errors.Is(err, ErrNoCredentials) {
				g.decisions.Add(ctx, 1, g.anonAttrs...)
				next.ServeHTTP(w, r)
				return
			}
			cl := classOf(err)
			g.decisions.Add(ctx, 1, g.rejAttrs[cl]...)
			if span := trace.SpanFromContext(ctx); span.IsRecording() {
				span.SetAttributes(g.methodKV, attribute.String("auth.reason", detailOf(cl)))
			}
			g.onError(w, r, problemFor(err))
			return
		}
		// One backing array for all header values; each header gets a full-capacity slice of it,
		// so an append by a later handler copies instead of writing into its neighbour.
		vals := make([]string, len(g.headers))
		for i, uh := range g.headers {
			if vals[i] = uh.value(id); vals[i] != "" && validHeaderValue(vals[i]) {
				r.Header[uh.name] = vals[i : i+1 : i+1]
			}
		}
		g.decisions.Add(ctx, 1, g.okAttrs...)
		if span := trace.SpanFromContext(ctx); span.IsRecording() {
			span.SetAttributes(g.methodKV, attribute.String("auth.method.used", id.Method))
		}
		next.ServeHTTP(w, r.WithContext(gatewaykit.WithIdentity(ctx, id)))
	})
}

// Gate is the authentication middleware around any Authenticator, with its own middleware options.
// It is safe for concurrent use.
type Gate struct {
	a Authenticator
	g *gate
}

// NewMiddleware returns the authentication middleware for a (typically the result of First) with
// the middleware options: WithErrorHandler, Optional, WithUpstreamHeaders, WithLogger,
// WithMeterProvider. Requests whose credential a accepts reach next with the Identity in their
// context (gatewaykit.IdentityFrom); the others are rejected with 401 (or 503 when a dependency
// failed).
func NewMiddleware(a Authenticator, opts ...Option) (*Gate, error) {
	if a == nil {
		return nil, errors.New("auth: NewMiddleware: nil authenticator")
	}
	c, err := apply("NewMiddleware", sMiddleware, opts)
	if err != nil {
		return nil, err
	}
	g, err := newGate(c, methodLabel(a))
	if err != nil {
		return nil, err
	}
	return &Gate{a: a, g: g}, nil
}

// methodLabel is the auth.method metric attribute for an authenticator of this package, "custom"
// for others.
func methodLabel(a Authenticator) string {
	switch a.(type) {
	case *JWT:
		return "jwt"
	case *APIKeys:
		return "apikey"
	case *Introspection:
		return "introspection"
	case *Combined:
		return "first"
	case *Login:
		return "session"
	}
	return "custom"
}

// Wrap returns next behind authentication. The method value is a gatewaykit.Middleware.
func (m *Gate) Wrap(next http.Handler) http.Handler { return m.g.wrap(m.a, next) }

// Combined tries several authentication methods in a defined order. Create it with First.
// It is safe for concurrent use.
type Combined struct {
	methods []Authenticator
	g       *gate
}

// First combines methods: the first one that finds its credential in the request decides (accepts
// or rejects); a method that finds none (ErrNoCredentials), or a JWT method that sees an opaque
// bearer token, passes the request to the next. So First(jwt, keys) accepts a JWT bearer token or
// an API key, and a bad JWT is rejected without consulting the API keys. When no method finds a
// credential the result is ErrNoCredentials. Nil methods are skipped.
//
// Its Wrap uses the default middleware settings (required credentials, X-User-* headers,
// WriteProblem); for others use NewMiddleware(First(...), opts...).
func First(methods ...Authenticator) *Combined {
	ms := make([]Authenticator, 0, len(methods))
	for _, m := range methods {
		if m != nil {
			ms = append(ms, m)
		}
	}
	c := defaultConfig()
	g, err := newGate(c, "first")
	if err != nil { // the global meter provider refused an instrument: fall back to a no-op meter
		c.meter = noop.NewMeterProvider()
		g, _ = newGate(c, "first")
	}
	return &Combined{methods: ms, g: g}
}

// Authenticate implements Authenticator (see First).
func (c *Combined) Authenticate(r *http.Request) (*gatewaykit.Identity, error) {
	var declined error
	for _, m := range c.methods {
		id, err := m.Authenticate(r)
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, errDeclined):
			if declined == nil {
				declined = err
			}
		case errors.Is(err, ErrNoCredentials):
		default:
			return nil, err
		}
	}
	if declined != nil {
		return nil, declined
	}
	return nil, ErrNoCredentials
}

// Wrap returns next behind the combined authentication. The method value is a gatewaykit.Middleware.
func (c *Combined) Wrap(next http.Handler) http.Handler { return c.g.wrap(c, next) }

// validHeaderValue reports whether v may be sent as a header value (no control characters other
// than tab). A claim that would break the upstream request is dropped rather than forwarded.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
