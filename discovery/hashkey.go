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
	prefix := name + "="
	return func(r *http.Request) string { return cookieValue(r.Header["Cookie"], prefix) }
}

// cookieValue finds "name=" (prefix) at the start of a cookie-pair in the Cookie header lines.
func cookieValue(lines []string, prefix string) string {
	for _, line := range lines {
		for off := 0; off < len(line); {
			i := strings.Index(line[off:], prefix)
			if i < 0 {
				break
			}
			i += off
			j := i - 1
			for j >= 0 && (line[j] == ' ' || line[j] == '\t') {
				j--
			}
			if j < 0 || line[j] == ';' { // at a pair boundary, not inside another name or value
				v := line[i+len(prefix):]
				if k := strings.IndexByte(v, ';'); k >= 0 {
					v = v[:k]
				}
				v = strings.TrimRight(v, " \t")
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v
			}
			off = i + len(prefix)
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
