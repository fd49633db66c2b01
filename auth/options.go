package auth

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/gatewaykit/gatewaykit"
)

// Option configures NewJWT, NewAPIKeys, NewIntrospection or NewMiddleware. Each option says which
// constructors accept it; a constructor given an option that does not apply to it returns an error
// rather than ignoring it. Options only run inside a constructor; an Option value may be reused for
// several constructors (also concurrently), and later options override earlier ones.
type Option func(*config) error

// scope is the set of constructors an option applies to.
type scope uint16

const (
	sMiddleware scope = 1 << iota // every constructor and NewMiddleware
	sJWT
	sAPIKey
	sIntrospect
	sClock  = sJWT | sAPIKey | sIntrospect
	sToken  = sJWT | sIntrospect
	sHTTP   = sJWT | sIntrospect
	sCache  = sJWT | sIntrospect
	sClaims = sJWT | sIntrospect
)

type seenOption struct {
	name  string
	scope scope
}

// config is shared by every constructor; each reads the fields of its own options.
type config struct {
	seen []seenOption

	// middleware
	onError      gatewaykit.ErrorHandler
	optional     bool
	headerPrefix string
	headers      []upstreamHeader
	headersSet   bool
	logger       *slog.Logger
	meter        metric.MeterProvider
	clock        func() time.Time

	// token extraction
	noBearer     bool
	cookie       string
	query        string
	maxTokenSize int

	// caches
	cacheSize   int
	cacheMaxTTL time.Duration
	noCache     bool

	// remote fetches
	httpClient    *http.Client
	fetchTimeout  time.Duration
	allowInsecure bool

	// claims
	rolesClaim  string
	scopeClaims []string
	tierClaim   string

	// JWT
	algorithms      []string
	staticKeys      []staticKey
	jwksJSON        [][]byte
	hmacSecret      []byte
	jwksURL         string
	oidcIssuer      string
	issuer          string
	audiences       []string
	leeway          time.Duration
	requiredClaims  []string
	types           typPolicy
	typesSet        bool
	cooldown        time.Duration
	refreshInterval time.Duration

	// API keys
	apiKeyHeader     string
	apiKeyFromBearer bool
	storeTimeout     time.Duration

	// introspection
	clientID     string
	clientSecret string
	negativeTTL  time.Duration
	tokenTypes   []string
}

type staticKey struct {
	kid string
	alg string
	key crypto.PublicKey
}

func opt(name string, s scope, f func(*config) error) Option {
	return func(c *config) error {
		c.seen = append(c.seen, seenOption{name, s})
		if err := f(c); err != nil {
			return fmt.Errorf("auth: %s: %w", name, err)
		}
		return nil
	}
}

func defaultConfig() *config {
	return &config{
		headerPrefix:    "X-User-",
		logger:          slog.Default(),
		clock:           time.Now,
		maxTokenSize:    8 << 10,
		cacheSize:       10_000,
		cacheMaxTTL:     time.Hour,
		fetchTimeout:    5 * time.Second,
		rolesClaim:      "roles",
		scopeClaims:     []string{"scope", "scp"},
		tierClaim:       "tier",
		leeway:          30 * time.Second,
		cooldown:        30 * time.Second,
		refreshInterval: time.Hour,
		apiKeyHeader:    "X-Api-Key",
		negativeTTL:     5 * time.Second,
		storeTimeout:    time.Second,
	}
}

// apply runs opts on a default config and rejects options that do not apply to the constructor.
func apply(ctor string, allowed scope, opts []Option) (*config, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("auth: %s: nil option", ctor)
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	for _, s := range c.seen {
		if s.scope&allowed == 0 {
			return nil, fmt.Errorf("auth: %s does not apply to %s", s.name, ctor)
		}
	}
	return c, nil
}

// ---- middleware options (every constructor and NewMiddleware) ----

// WithErrorHandler replaces the rejection writer (default gatewaykit.WriteProblem). The problem it
// receives carries the status (401, 403 or 503), a detail naming the failure class and, for 401, the
// WWW-Authenticate header in Problem.Header. Applies to every constructor.
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return opt("WithErrorHandler", sMiddleware, func(c *config) error {
		if h == nil {
			return errors.New("nil handler")
		}
		c.onError = h
		return nil
	})
}

// Optional lets requests without any credential through, anonymously (no Identity in the context).
// A credential that is present but invalid is still rejected. Client-sent identity headers are
// removed in both cases. Default: credentials required. Applies to every constructor.
func Optional() Option {
	return opt("Optional", sMiddleware, func(c *config) error { c.optional = true; return nil })
}

// HeaderFunc renders one upstream header from an authenticated identity. An empty result, or one
// holding control characters, omits the header. It is called concurrently, once per authenticated
// request, and must not modify the identity (which may be shared between requests).
type HeaderFunc func(id *gatewaykit.Identity) string

type upstreamHeader struct {
	name  string
	value HeaderFunc
}

// WithUpstreamHeaders replaces the identity headers sent upstream. Every request header whose name
// starts with prefix (case-insensitive), and every header named in m, is deleted from the request
// before authentication, always, including for anonymous requests; then, for an authenticated
// caller, each header of m is set from the identity. The default is prefix "X-User-" with X-User-ID
// (the subject) and X-User-Roles (roles joined by ","; a role that is empty, holds a comma or has
// leading or trailing white space is left out of the header, not of the Identity). An empty prefix deletes only the named
// headers. A value holding control characters (from a hostile claim) is not sent. Applies to every
// constructor.
func WithUpstreamHeaders(prefix string, m map[string]HeaderFunc) Option {
	return opt("WithUpstreamHeaders", sMiddleware, func(c *config) error {
		c.headerPrefix = textproto.CanonicalMIMEHeaderKey(prefix)
		if prefix != "" && strings.ContainsAny(prefix, " \t\r\n:") {
			return fmt.Errorf("invalid header prefix %q", prefix)
		}
		c.headers = c.headers[:0]
		for name, f := range m {
			if name == "" || strings.ContainsAny(name, " \t\r\n:") || f == nil {
				return fmt.Errorf("invalid header %q or nil func", name)
			}
			c.headers = append(c.headers, upstreamHeader{textproto.CanonicalMIMEHeaderKey(name), f})
		}
		c.headersSet = true
		return nil
	})
}

// WithLogger sets the logger for operational events (JWKS refresh failures, store errors). Default
// slog.Default(). Per-request failures are not logged, only counted. Applies to every constructor.
func WithLogger(l *slog.Logger) Option {
	return opt("WithLogger", sMiddleware, func(c *config) error {
		if l == nil {
			return errors.New("nil logger")
		}
		c.logger = l
		return nil
	})
}

// WithMeterProvider sets the OpenTelemetry meter provider. Default otel.GetMeterProvider() at
// construction. Applies to every constructor.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return opt("WithMeterProvider", sMiddleware, func(c *config) error {
		if mp == nil {
			return errors.New("nil meter provider")
		}
		c.meter = mp
		return nil
	})
}

// WithClock sets the time source for exp/nbf/iat checks, key expiry, cache lifetimes and the JWKS
// refresh cooldown. Default time.Now. Applies to NewJWT, NewAPIKeys and NewIntrospection.
func WithClock(now func() time.Time) Option {
	return opt("WithClock", sClock, func(c *config) error {
		if now == nil {
			return errors.New("nil clock")
		}
		c.clock = now
		return nil
	})
}

// ---- token extraction (NewJWT, NewIntrospection) ----

// FromCookie also accepts the token from the named cookie. A request that carries the token in more
// than one place (header and cookie) is rejected with ErrAmbiguous. Applies to NewJWT and
// NewIntrospection.
func FromCookie(name string) Option {
	return opt("FromCookie", sToken, func(c *config) error {
		if name == "" || !validToken(name) {
			return fmt.Errorf("invalid cookie name %q", name)
		}
		c.cookie = name
		return nil
	})
}

// FromQuery also accepts the token from the named query parameter (discouraged: URLs end up in
// logs). Ambiguity is rejected as for FromCookie. Applies to NewJWT and NewIntrospection.
func FromQuery(param string) Option {
	return opt("FromQuery", sToken, func(c *config) error {
		if param == "" {
			return errors.New("empty parameter name")
		}
		c.query = param
		return nil
	})
}

// WithoutBearer stops reading the Authorization: Bearer header (then FromCookie or FromQuery is
// required). Applies to NewJWT and NewIntrospection.
func WithoutBearer() Option {
	return opt("WithoutBearer", sToken, func(c *config) error { c.noBearer = true; return nil })
}

// WithMaxTokenSize caps the token length in bytes, checked before any parsing. Default 8 KiB.
// Applies to NewJWT and NewIntrospection.
func WithMaxTokenSize(n int) Option {
	return opt("WithMaxTokenSize", sToken, func(c *config) error {
		if n < 16 || n > 1<<20 {
			return fmt.Errorf("size %d out of range [16, 1 MiB]", n)
		}
		c.maxTokenSize = n
		return nil
	})
}

// ---- caches (NewJWT, NewIntrospection) ----

// WithCacheSize bounds the verification (JWT) or introspection result cache, in entries. Default
// 10000. Applies to NewJWT and NewIntrospection.
func WithCacheSize(n int) Option {
	return opt("WithCacheSize", sCache, func(c *config) error {
		if n < 1 {
			return fmt.Errorf("size %d must be positive", n)
		}
		c.cacheSize = n
		return nil
	})
}

// WithCacheMaxTTL caps how long a result stays cached; entries never outlive the token's exp
// either. Default 1 hour. Applies to NewJWT and NewIntrospection.
func WithCacheMaxTTL(d time.Duration) Option {
	return opt("WithCacheMaxTTL", sCache, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("ttl %v must be positive", d)
		}
		c.cacheMaxTTL = d
		return nil
	})
}

// WithoutCache verifies (or introspects) every request. Applies to NewJWT and NewIntrospection.
func WithoutCache() Option {
	return opt("WithoutCache", sCache, func(c *config) error { c.noCache = true; return nil })
}

// ---- remote fetches (NewJWT with JWKS or OIDC, NewIntrospection) ----

// WithHTTPClient sets the client for JWKS, discovery and introspection requests. Default: a client
// with the fetch timeout that refuses redirects to plain http unless AllowInsecureHTTP. The given
// client is not modified: a copy is used whose redirect policy refuses plain http (unless
// AllowInsecureHTTP) before applying the client's own CheckRedirect; the fetch timeout still
// bounds each request. Applies to NewJWT and NewIntrospection.
func WithHTTPClient(hc *http.Client) Option {
	return opt("WithHTTPClient", sHTTP, func(c *config) error {
		if hc == nil {
			return errors.New("nil client")
		}
		c.httpClient = hc
		return nil
	})
}

// WithFetchTimeout bounds each JWKS, discovery or introspection request. Default 5 s. Applies to
// NewJWT and NewIntrospection.
func WithFetchTimeout(d time.Duration) Option {
	return opt("WithFetchTimeout", sHTTP, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("timeout %v must be positive", d)
		}
		c.fetchTimeout = d
		return nil
	})
}

// AllowInsecureHTTP permits http:// URLs for the issuer, JWKS and introspection endpoints. Default:
// https is required. Meant for loopback demo IdPs and tests. Applies to NewJWT and NewIntrospection.
func AllowInsecureHTTP() Option {
	return opt("AllowInsecureHTTP", sHTTP, func(c *config) error { c.allowInsecure = true; return nil })
}

// ---- claims (NewJWT, NewIntrospection) ----

// WithRolesClaim names the claim holding roles (an array of strings or a space/comma separated
// string). A dotted name walks nested objects ("realm_access.roles"). Default "roles". Applies to
// NewJWT and NewIntrospection.
func WithRolesClaim(name string) Option {
	return opt("WithRolesClaim", sClaims, func(c *config) error {
		if name == "" {
			return errors.New("empty claim name")
		}
		c.rolesClaim = name
		return nil
	})
}

// WithScopeClaims names the claims holding scopes, tried in order (a space-separated string or an
// array). Default "scope" then "scp". Applies to NewJWT and NewIntrospection.
func WithScopeClaims(names ...string) Option {
	return opt("WithScopeClaims", sClaims, func(c *config) error {
		if len(names) == 0 || containsEmpty(names) {
			return errors.New("empty claim name")
		}
		c.scopeClaims = append([]string(nil), names...)
		return nil
	})
}

// WithTierClaim names the claim holding the caller's tier (a string). Default "tier". Applies to
// NewJWT and NewIntrospection.
func WithTierClaim(name string) Option {
	return opt("WithTierClaim", sClaims, func(c *config) error {
		if name == "" {
			return errors.New("empty claim name")
		}
		c.tierClaim = name
		return nil
	})
}

func containsEmpty(ss []string) bool {
	for _, s := range ss {
		if s == "" {
			return true
		}
	}
	return false
}

// checkURL validates an endpoint URL and enforces https unless insecure is allowed.
func checkURL(raw string, allowInsecure bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", raw, err)
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("URL %q has no host", raw)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowInsecure:
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("URL %q is not https (use AllowInsecureHTTP to permit it)", raw)
	default:
		return fmt.Errorf("URL %q: unsupported scheme %q", raw, u.Scheme)
	}
}

// validToken reports whether s is an RFC 7230 token (header and cookie names).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, b) >= 0 {
			return false
		}
	}
	return true
}
