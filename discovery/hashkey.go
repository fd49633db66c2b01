package discovery

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// HeaderKey returns a HashKey reading the first value of the named request header.
func HeaderKey(name string) HashKey {
	name = textproto.CanonicalMIMEHeaderKey(name)
	return func(r *http.Request) string {
		if v := r.Header[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// CookieKey returns a HashKey reading the named cookie (the first one when repeated), without
// allocating. Surrounding double quotes are removed.
func CookieKey(name string) HashKey {
	return func(r *http.Request) string { return cookieValue(r.Header["Cookie"], name) }
}

func cookieValue(lines []string, name string) string {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// IdentityKey returns a HashKey reading the subject of the caller's gatewaykit.Identity (set by
// an authentication middleware), or "" for anonymous requests.
func IdentityKey() HashKey {
	return func(r *http.Request) string {
		if id, ok := gatewaykit.IdentityFrom(r.Context()); ok {
			return id.Subject
		}
		return ""
	}
}
