package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// extractor finds a token in a request: Authorization: Bearer, and optionally a cookie and a query
// parameter. More than one token (two headers, header and cookie, ...) is an error, never a choice.
type extractor struct {
	bearer bool
	cookie string
	query  string
	max    int
}

func newExtractor(c *config) (extractor, error) {
	e := extractor{bearer: !c.noBearer, cookie: c.cookie, query: c.query, max: c.maxTokenSize}
	if !e.bearer && e.cookie == "" && e.query == "" {
		return e, fmt.Errorf("auth: WithoutBearer needs FromCookie or FromQuery")
	}
	return e, nil
}

// bearerToken returns the token of a single "Authorization: Bearer <token>" header (scheme
// case-insensitive), "" when there is no bearer authorization, and ErrAmbiguous for several
// Authorization headers.
func bearerToken(h http.Header) (string, error) {
	vs := h["Authorization"]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", ErrAmbiguous
	}
	v := vs[0]
	const scheme = "bearer"
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", nil // another scheme (Basic, ...): not ours
	}
	rest := v[len(scheme):]
	if rest == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		return "", nil // "BearerX": another scheme name
	}
	tok := trimSpace(rest)
	if tok == "" {
		return "", fmt.Errorf("%w: empty bearer token", ErrMalformed)
	}
	return tok, nil
}

// trimSpace trims spaces and tabs.
func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// checkSingle rejects a token value that holds separators (two tokens in one header). It runs on a
// cache miss only: a cached token was checked when it was verified, and a value with separators
// can never hit the cache. IndexByte is vectorized; ContainsAny walks byte by byte.
func checkSingle(tok string) error {
	if strings.IndexByte(tok, ' ') >= 0 || strings.IndexByte(tok, '\t') >= 0 || strings.IndexByte(tok, ',') >= 0 {
		return fmt.Errorf("%w: token with spaces or commas", ErrAmbiguous)
	}
	return nil
}

// token returns the single token carried by r, ErrNoCredentials when there is none. Callers run
// checkSingle on it before trusting it beyond a cache lookup.
func (e *extractor) token(r *http.Request) (string, error) {
	var tok string
	n := 0
	if e.bearer {
		if v := r.Header["Authorization"]; len(v) == 1 && len(v[0]) > e.max+len("Bearer ")+8 {
			return "", ErrTooLarge // checked before any other work on the value
		}
		t, err := bearerToken(r.Header)
		if err != nil {
			return "", err
		}
		if t != "" {
			tok, n = t, n+1
		}
	}
	if e.cookie != "" {
		cs := r.CookiesNamed(e.cookie)
		if len(cs) > 1 {
			return "", fmt.Errorf("%w: repeated cookie", ErrAmbiguous)
		}
		if len(cs) == 1 && cs[0].Value != "" {
			tok, n = cs[0].Value, n+1
		}
	}
	// The raw-query pre-check skips parsing for requests that cannot carry the parameter; a name
	// may be percent-encoded (%61ccess_token), so any escape also forces the parse.
	if e.query != "" && r.URL != nil && (strings.Contains(r.URL.RawQuery, e.query) || strings.IndexByte(r.URL.RawQuery, '%') >= 0) {
		vs := r.URL.Query()[e.query]
		if len(vs) > 1 {
			return "", fmt.Errorf("%w: repeated query parameter", ErrAmbiguous)
		}
		if len(vs) == 1 && vs[0] != "" {
			tok, n = vs[0], n+1
		}
	}
	switch {
	case n == 0:
		return "", ErrNoCredentials
	case n > 1:
		return "", ErrAmbiguous
	case len(tok) > e.max:
		return "", ErrTooLarge
	}
	return tok, nil
}
