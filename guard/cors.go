package guard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// DefaultCORSMaxAge is how long browsers may cache a preflight answer by default.
const DefaultCORSMaxAge = 10 * time.Minute

// AllowMethods sets the methods allowed cross-origin (default GET, HEAD, POST). Applies to NewCORS.
func AllowMethods(methods ...string) Option {
	return func(c *config) error {
		if err := c.applies("AllowMethods", kindCORS); err != nil {
			return err
		}
		for _, m := range methods {
			if err := validHeader(m, ""); err != nil || m == "*" {
				return fmt.Errorf("guard: AllowMethods: %q is not a method", m)
			}
		}
		c.methods = append(c.methods, methods...)
		return nil
	}
}

// AllowHeaders sets the request headers allowed cross-origin (default Authorization,
// Content-Type). "*" allows any header; it is refused with AllowCredentials. Applies to NewCORS.
func AllowHeaders(headers ...string) Option {
	return func(c *config) error {
		if err := c.applies("AllowHeaders", kindCORS); err != nil {
			return err
		}
		for _, h := range headers {
			if h != "*" {
				if err := validHeader(h, ""); err != nil {
					return fmt.Errorf("guard: AllowHeaders: %w", err)
				}
			}
		}
		c.allowHeaders = append(c.allowHeaders, headers...)
		return nil
	}
}

// ExposeHeaders sets the response headers scripts may read (default none beyond the safelisted
// ones). Applies to NewCORS.
func ExposeHeaders(headers ...string) Option {
	return func(c *config) error {
		if err := c.applies("ExposeHeaders", kindCORS); err != nil {
			return err
		}
		for _, h := range headers {
			if err := validHeader(h, ""); err != nil {
				return fmt.Errorf("guard: ExposeHeaders: %w", err)
			}
		}
		c.expose = append(c.expose, headers...)
		return nil
	}
}

// AllowCredentials lets browsers send cookies and HTTP authentication cross-origin
// (Access-Control-Allow-Credentials: true; default off). It is refused with the "*" origin.
// Applies to NewCORS.
func AllowCredentials() Option {
	return func(c *config) error {
		if err := c.applies("AllowCredentials", kindCORS); err != nil {
			return err
		}
		c.credentials = true
		return nil
	}
}

// MaxAge sets how long a browser may cache a preflight answer (default 10 minutes; 0 sends
// Access-Control-Max-Age: 0, disabling the cache; at most 24 hours). Applies to NewCORS.
func MaxAge(d time.Duration) Option {
	return func(c *config) error {
		if err := c.applies("MaxAge", kindCORS); err != nil {
			return err
		}
		if d < 0 || d > 24*time.Hour {
			return fmt.Errorf("guard: MaxAge: %v is not in [0, 24h]", d)
		}
		c.maxAge = &d
		return nil
	}
}

// CORS answers cross-origin preflights and marks allowed cross-origin responses. See NewCORS.
// It is immutable and safe for concurrent use.
type CORS struct {
	any         bool                // the "*" origin
	origins     map[string][]string // allowed origin -> pre-built Access-Control-Allow-Origin value
	methods     []string
	headers     []string // lowercase
	anyHeader   bool
	credentials bool
	onErr       gatewaykit.ErrorHandler
	m           rejections
	rOrigin     reason
	rMethod     reason
	rHeader     reason

	// Pre-built header values, shared by all responses (capacity == length).
	vMethods, vHeaders, vExpose, vMaxAge, vTrue, vStar []string
	vVary, vVaryPreflight                              []string
}

// NewCORS returns the CORS middleware for an explicit list of allowed origins, each
// "scheme://host[:port]" exactly as browsers send it in Origin ("https://shop.example.com",
// "http://localhost:5173"), or the single entry "*" for any origin (refused with
// AllowCredentials: a wildcard never comes with credentials).
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here with 204,
// Access-Control-Allow-Origin (the request's origin, or "*"), -Allow-Methods, -Allow-Headers,
// -Max-Age and -Allow-Credentials when enabled, and never reaches the wrapped handler; a
// preflight from an origin not on the list, or asking for a method or header not allowed, gets
// a 403 problem. Other requests always reach the handler; those from an allowed origin get
// Access-Control-Allow-Origin, -Allow-Credentials and -Expose-Headers. Every response carries
// Vary: Origin (unless the origin is "*" without credentials), so caches never serve one origin's
// answer to another.
//
// Options: AllowMethods, AllowHeaders, ExposeHeaders, AllowCredentials, MaxAge,
// WithErrorHandler, WithMeterProvider.
func NewCORS(origins []string, opts ...Option) (*CORS, error) {
	c, err := newConfig(kindCORS, opts)
	if err != nil {
		return nil, err
	}
	if len(origins) == 0 {
		return nil, errors.New("guard: NewCORS: no origins")
	}
	s := &CORS{origins: make(map[string][]string, len(origins)), credentials: c.credentials, onErr: c.onErr,
		rOrigin: newReason("cors", "origin"), rMethod: newReason("cors", "method"), rHeader: newReason("cors", "header")}
	for _, o := range origins {
		if o == "*" {
			s.any = true
			continue
		}
		norm, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		s.origins[norm] = []string{norm}
	}
	if s.any && len(s.origins) > 0 {
		return nil, errors.New(`guard: NewCORS: "*" must be the only origin`)
	}
	if s.any && c.credentials {
		return nil, errors.New(`guard: NewCORS: the "*" origin cannot be used with AllowCredentials; list the origins`)
	}
	s.methods = c.methods
	if len(s.methods) == 0 {
		s.methods = []string{http.MethodGet, http.MethodHead, http.MethodPost}
	}
	hdrs := c.allowHeaders
	if len(hdrs) == 0 {
		hdrs = []string{"Authorization", "Content-Type"}
	}
	for _, h := range hdrs {
		if h == "*" {
			if c.credentials {
				return nil, errors.New(`guard: NewCORS: AllowHeaders("*") cannot be used with AllowCredentials`)
			}
			s.anyHeader = true
			continue
		}
		s.headers = append(s.headers, strings.ToLower(h))
	}
	maxAge := DefaultCORSMaxAge
	if c.maxAge != nil {
		maxAge = *c.maxAge
	}
	one := func(v string) []string { return []string{v} }
	s.vMethods = one(strings.Join(s.methods, ", "))
	s.vHeaders = one(strings.Join(hdrs, ", "))
	if len(c.expose) > 0 {
		s.vExpose = one(strings.Join(c.expose, ", "))
	}
	s.vMaxAge = one(strconv.FormatInt(int64(maxAge/time.Second), 10))
	s.vTrue, s.vStar = one("true"), one("*")
	s.vVary = one("Origin")
	s.vVaryPreflight = one("Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	if s.m, err = newRejections(c.meter); err != nil {
		return nil, err
	}
	return s, nil
}

// parseOrigin checks an allowed origin and returns it lowercased.
func parseOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	bad := err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#")
	if bad {
		return "", fmt.Errorf("guard: NewCORS: origin %q is not scheme://host[:port] (http or https)", o)
	}
	return strings.ToLower(o), nil
}

func (s *CORS) allowed(origin string) bool {
	return s.any || s.origins[origin] != nil
}

// Wrap returns next behind the CORS policy.
func (s *CORS) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := first1(r.Header["Origin"])
		h := w.Header()
		if r.Method == http.MethodOptions && origin != "" && first1(r.Header["Access-Control-Request-Method"]) != "" {
			s.preflight(w, r, h, origin)
			return
		}
		if !s.any || s.credentials {
			addVary(h, s.vVary)
		}
		if origin != "" && s.allowed(origin) {
			s.allowOrigin(h, origin)
			if s.vExpose != nil {
				h["Access-Control-Expose-Headers"] = s.vExpose
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *CORS) allowOrigin(h http.Header, origin string) {
	if s.any {
		h["Access-Control-Allow-Origin"] = s.vStar
	} else {
		h["Access-Control-Allow-Origin"] = s.origins[origin]
	}
	if s.credentials {
		h["Access-Control-Allow-Credentials"] = s.vTrue
	}
}

func (s *CORS) preflight(w http.ResponseWriter, r *http.Request, h http.Header, origin string) {
	addVary(h, s.vVaryPreflight)
	if !s.allowed(origin) {
		s.reject(w, r, s.rOrigin, "This origin is not allowed.")
		return
	}
	method := r.Header.Get("Access-Control-Request-Method")
	if !slices.Contains(s.methods, method) && method != http.MethodGet && method != http.MethodHead && method != http.MethodPost {
		s.reject(w, r, s.rMethod, "This method is not allowed cross-origin.")
		return
	}
	requested := strings.Join(r.Header.Values("Access-Control-Request-Headers"), ",")
	if !s.anyHeader && !s.headersAllowed(requested) {
		s.reject(w, r, s.rHeader, "A requested header is not allowed cross-origin.")
		return
	}
	s.allowOrigin(h, origin)
	h["Access-Control-Allow-Methods"] = s.vMethods
	if s.anyHeader && requested != "" {
		h.Set("Access-Control-Allow-Headers", requested)
	} else {
		h["Access-Control-Allow-Headers"] = s.vHeaders
	}
	h["Access-Control-Max-Age"] = s.vMaxAge
	w.WriteHeader(http.StatusNoContent)
}

// headersAllowed reports whether every comma-separated name in list is allowed.
func (s *CORS) headersAllowed(list string) bool {
	for list != "" {
		var name string
		name, list, _ = strings.Cut(list, ",")
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.ContainsFunc(s.headers, func(h string) bool { return strings.EqualFold(h, name) }) {
			return false
		}
	}
	return true
}

func (s *CORS) reject(w http.ResponseWriter, r *http.Request, why reason, detail string) {
	s.m.add(r.Context(), why)
	s.onErr(w, r, gatewaykit.NewProblem(http.StatusForbidden, detail))
}

// addVary adds the values to Vary without writing into a shared slice.
func addVary(h http.Header, v []string) {
	if old, ok := h["Vary"]; ok {
		h["Vary"] = append(old[:len(old):len(old)], v...)
		return
	}
	h["Vary"] = v
}

// first1 returns the first value of a header, read without canonicalizing the name.
func first1(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
