package guard

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// Default security headers of NewSecurityHeaders, for an API that serves no HTML.
const (
	DefaultContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'"
	DefaultReferrerPolicy        = "no-referrer"
	DefaultHSTS                  = "max-age=63072000; includeSubDomains" // two years
)

type headerValue struct{ name, value string }

func validHeader(name, value string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n:()<>@,;\\\"/[]?={}") {
		return fmt.Errorf("guard: %q is not a valid header name", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return fmt.Errorf("guard: header %s: value contains a line break or NUL", name)
	}
	return nil
}

// SecurityHeader sets a response header of NewSecurityHeaders, replacing its default; an empty
// value removes the header (SecurityHeader("Content-Security-Policy", "") sends none). Any header
// may be added this way ("Permissions-Policy", "Cross-Origin-Opener-Policy", ...); for
// Strict-Transport-Security use HSTS. Applies to NewSecurityHeaders.
func SecurityHeader(name, value string) Option {
	return func(c *config) error {
		if err := c.applies("SecurityHeader", kindHeaders); err != nil {
			return err
		}
		if err := validHeader(name, value); err != nil {
			return err
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if name == "Strict-Transport-Security" {
			return errors.New("guard: SecurityHeader: use HSTS for Strict-Transport-Security")
		}
		c.headers = append(c.headers, headerValue{name, value})
		return nil
	}
}

// HSTS sets the Strict-Transport-Security value (default "max-age=63072000; includeSubDomains");
// "" disables it. It is only ever sent on HTTPS: a TLS connection, or X-Forwarded-Proto: https
// from a proxy trusted by the WithClientIP resolver. Applies to NewSecurityHeaders.
func HSTS(value string) Option {
	return func(c *config) error {
		if err := c.applies("HSTS", kindHeaders); err != nil {
			return err
		}
		if err := validHeader("Strict-Transport-Security", value); err != nil {
			return err
		}
		c.hsts = &value
		return nil
	}
}

// SecurityHeaders adds security response headers. See NewSecurityHeaders. It is immutable and
// safe for concurrent use.
type SecurityHeaders struct {
	set  []headerValues
	hsts []string
	ips  *gatewaykit.ClientIPResolver
}

type headerValues struct {
	name  string
	value []string // shared by all responses; capacity == length, so Add never writes into it
}

// NewSecurityHeaders returns a middleware that sets, before the wrapped handler runs:
//
//	Content-Security-Policy: default-src 'none'; frame-ancestors 'none'
//	X-Content-Type-Options: nosniff
//	Referrer-Policy: no-referrer
//	Strict-Transport-Security: max-age=63072000; includeSubDomains   (HTTPS only)
//
// Each is overridable with SecurityHeader (and HSTS), and a handler may replace any of them for
// its own responses with Header().Set. A proxied upstream that sends the same header adds a
// second value (httputil.ReverseProxy copies with Add); browsers then apply the stricter CSP.
// Strict-Transport-Security goes only on TLS connections or when a peer trusted by the
// WithClientIP resolver sends X-Forwarded-Proto: https; a client cannot turn it on by sending
// the header itself.
//
// Options: SecurityHeader, HSTS, WithClientIP, WithMeterProvider.
func NewSecurityHeaders(opts ...Option) (*SecurityHeaders, error) {
	c, err := newConfig(kindHeaders, opts)
	if err != nil {
		return nil, err
	}
	vals := []headerValue{
		{"Content-Security-Policy", DefaultContentSecurityPolicy},
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", DefaultReferrerPolicy},
	}
	vals = append(vals, c.headers...)
	s := &SecurityHeaders{ips: c.ips}
	index := map[string]int{}
	for _, v := range vals {
		i, ok := index[v.name]
		if !ok {
			i = len(s.set)
			index[v.name] = i
			s.set = append(s.set, headerValues{name: v.name})
		}
		s.set[i].value = []string{v.value}
	}
	s.set = deleteEmpty(s.set)
	hsts := DefaultHSTS
	if c.hsts != nil {
		hsts = *c.hsts
	}
	if hsts != "" {
		s.hsts = []string{hsts}
	}
	return s, nil
}

func deleteEmpty(set []headerValues) []headerValues {
	out := set[:0]
	for _, v := range set {
		if v.value[0] != "" {
			out = append(out, v)
		}
	}
	return out
}

// Wrap returns next with the security headers added to its responses.
func (s *SecurityHeaders) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, v := range s.set {
			h[v.name] = v.value
		}
		if s.hsts != nil && s.https(r) {
			h["Strict-Transport-Security"] = s.hsts
		}
		next.ServeHTTP(w, r)
	})
}

// https reports whether the client reached the gateway over HTTPS.
func (s *SecurityHeaders) https(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if s.ips == nil {
		return false
	}
	protos := r.Header.Values("X-Forwarded-Proto")
	if len(protos) == 0 {
		return false
	}
	// The last entry is the one the trusted peer wrote; earlier ones may come from the client.
	proto := protos[len(protos)-1]
	peer, ok := gatewaykit.ParseHostAddr(r.RemoteAddr)
	if !ok || !s.ips.Trusted(peer) {
		return false
	}
	if i := strings.LastIndexByte(proto, ','); i >= 0 {
		proto = proto[i+1:]
	}
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}
