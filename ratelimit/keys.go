package ratelimit

import (
	"net/http"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// KeyFunc derives a rule's counter key from a request. An empty key is handled by the rule's
// EmptyKey policy. Implementations must be safe for concurrent use and must not modify r.
type KeyFunc func(r *http.Request) string

// ByClientIP keys by the client address as resolved by res (nil: the TCP peer; forwarding headers
// are trusted only from res's proxies). IPv6 clients are keyed by their /64 prefix, since one
// subscriber usually holds a whole /64 and could otherwise rotate addresses to escape the limit.
// The key is empty when the peer address is not an IP (some in-memory transports).
func ByClientIP(res *gatewaykit.ClientIPResolver) KeyFunc { return ByClientIPPrefix(res, 32, 64) }

// ByClientIPPrefix keys by the client address masked to v4bits (0..32) for IPv4 and v6bits
// (0..128) for IPv6. Out-of-range values are clamped.
func ByClientIPPrefix(res *gatewaykit.ClientIPResolver, v4bits, v6bits int) KeyFunc {
	v4bits, v6bits = min(max(v4bits, 0), 32), min(max(v6bits, 0), 128)
	return func(r *http.Request) string {
		a := res.ClientIP(r)
		if !a.IsValid() {
			return ""
		}
		bits := v6bits
		if a.Is4() {
			bits = v4bits
		}
		if bits < a.BitLen() {
			p, err := a.Prefix(bits)
			if err != nil {
				return ""
			}
			return p.String()
		}
		return a.String()
	}
}

// ByHeader keys by the first value of the named request header (empty when absent). Only use it
// for headers a trusted component sets (an API gateway key header that auth validated, for
// instance): clients can put anything in a header, so keying by a raw client header lets them
// pick a fresh bucket per request.
func ByHeader(name string) KeyFunc {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) string {
		if vs := r.Header[name]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
}

// ByIdentity keys by a value of the authenticated identity (see gatewaykit.IdentityFrom), chosen
// by f: for example func(id *gatewaykit.Identity) string { return id.Subject }. Requests without
// an identity get the empty key. f is never called with nil.
func ByIdentity(f func(*gatewaykit.Identity) string) KeyFunc {
	return func(r *http.Request) string {
		id, ok := gatewaykit.IdentityFrom(r.Context())
		if !ok {
			return ""
		}
		return f(id)
	}
}

// BySubject keys by the authenticated identity's Subject (empty for anonymous requests).
func BySubject() KeyFunc {
	return ByIdentity(func(id *gatewaykit.Identity) string { return id.Subject })
}

// ByRoute keys by the ServeMux pattern that matched the request (r.Pattern, such as
// "GET /api/orders/{id}"), so a route's limit is shared by all its paths. r.Pattern is set by
// http.ServeMux before it calls the route's handler: wrap the route's handler, not the mux.
// Empty when no pattern matched.
func ByRoute() KeyFunc { return func(r *http.Request) string { return r.Pattern } }

// ByMethod keys by the request method.
func ByMethod() KeyFunc { return func(r *http.Request) string { return r.Method } }

// Constant keys every request by s: one counter shared by all requests (a per-service limit).
// s may be empty only if the rule's EmptyKey policy is EmptyKeyShared; prefer a name.
func Constant(s string) KeyFunc { return func(*http.Request) string { return s } }

// Composite joins the keys of fns with a separator byte (0x1f) that key parts should not contain.
// If any part is empty the composite key is empty, so the rule's EmptyKey policy applies rather
// than a half key.
func Composite(fns ...KeyFunc) KeyFunc {
	fns = append([]KeyFunc(nil), fns...)
	return func(r *http.Request) string {
		var b strings.Builder
		for i, f := range fns {
			k := f(r)
			if k == "" {
				return ""
			}
			if i > 0 {
				b.WriteByte(0x1f)
			}
			b.WriteString(k)
		}
		return b.String()
	}
}
