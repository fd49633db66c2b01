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

// cookieValue finds the first cookie-pair starting with prefix ("name=") in the Cookie header
// lines and returns its value.
func cookieValue(lines []string, prefix string) string {
	for _, line := range lines {
		for line != "" {
			for line != "" && (line[0] == ' ' || line[0] == '\t') {
				line = line[1:]
			}
			if strings.HasPrefix(line, prefix) {
				v := line[len(prefix):]
				if k := strings.IndexByte(v, ';'); k >= 0 {
					v = v[:k]
				}
				for v != "" && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
					v = v[:len(v)-1]
				}
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v
			}
			k := strings.IndexByte(line, ';')
			if k < 0 {
				break
			}
			line = line[k+1:]
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
