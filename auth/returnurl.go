package auth

import (
	"fmt"
	"net/url"
	"strings"
)

// maxReturnURL caps the length of a return URL.
const maxReturnURL = 2048

// returnURLs validates where a browser may be sent after login or logout: a same-origin path
// ("/orders?page=2"), or an absolute http(s) URL whose origin is in the allow-list. Everything else
// (protocol-relative "//evil", backslash tricks, userinfo, other schemes, control characters, other
// origins) is refused, so the login endpoints cannot be used as open redirects.
type returnURLs struct {
	origins map[string]bool // "https://app.example.com" (scheme://host[:port], lower case)
}

func newReturnURLs(origins []string) (returnURLs, error) {
	v := returnURLs{origins: make(map[string]bool, len(origins))}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return v, fmt.Errorf("origin %q is not scheme://host[:port]", o)
		}
		v.origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	return v, nil
}

// check returns the normalized return URL and whether raw is allowed.
func (v returnURLs) check(raw string) (string, bool) {
	if raw == "" || len(raw) > maxReturnURL {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if b := raw[i]; b < 0x21 || b == 0x7f || b == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if u.Scheme == "" && u.Host == "" {
		// Same origin: an absolute path that a browser cannot read as protocol-relative.
		if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.HasPrefix(u.Path, "//") {
			return "", false
		}
		return u.String(), true
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", false
	}
	if !v.origins[strings.ToLower(u.Scheme+"://"+u.Host)] {
		return "", false
	}
	return u.String(), true
}
