package gatewaykit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
)

// RequestIDHeader is the default header that carries request IDs.
const RequestIDHeader = "X-Request-ID"

// DefaultRequestIDMaxLen is the default longest incoming request ID that is kept.
const DefaultRequestIDMaxLen = 128

type requestIDKey struct{}

// WithRequestID returns a copy of ctx carrying the request ID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request ID stored in ctx by the RequestID middleware or WithRequestID,
// or "" when there is none.
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestIDOption configures NewRequestID.
type RequestIDOption func(*requestIDConfig) error

type requestIDConfig struct {
	header   string
	maxLen   int
	trust    bool
	generate func() string
}

// RequestIDHeaderName sets the header that carries the ID (default X-Request-ID).
func RequestIDHeaderName(name string) RequestIDOption {
	return func(c *requestIDConfig) error {
		if name == "" || !validToken(name) {
			return fmt.Errorf("gatewaykit: request ID header %q is not a valid header name", name)
		}
		c.header = textproto.CanonicalMIMEHeaderKey(name)
		return nil
	}
}

// RequestIDMaxLen sets the longest incoming ID that is kept (default 128, at most 1024). Longer
// IDs are replaced by a generated one.
func RequestIDMaxLen(n int) RequestIDOption {
	return func(c *requestIDConfig) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("gatewaykit: request ID max length %d out of range 1..1024", n)
		}
		c.maxLen = n
		return nil
	}
}

// RequestIDIgnoreIncoming makes the middleware always generate a new ID, ignoring the client's
// (default: a well-formed incoming ID is kept, which lets IDs span services).
func RequestIDIgnoreIncoming() RequestIDOption {
	return func(c *requestIDConfig) error { c.trust = false; return nil }
}

// RequestIDGenerator replaces the generator (default: 128 random bits as 32 lowercase hex
// characters). It must be safe for concurrent use and return well-formed IDs.
func RequestIDGenerator(gen func() string) RequestIDOption {
	return func(c *requestIDConfig) error {
		if gen == nil {
			return errors.New("gatewaykit: request ID generator is nil")
		}
		c.generate = gen
		return nil
	}
}

// NewRequestID returns a middleware that gives every request an ID. A well-formed incoming ID
// (1 to max length characters from [A-Za-z0-9._:+=/-]) is kept; a missing, malformed or overlong
// one is replaced by a generated ID. The ID is stored in the request context (RequestIDFrom), set
// on the request header (so proxies and aggregate parts forward it upstream) and on the response.
// The middleware is safe for concurrent use.
func NewRequestID(opts ...RequestIDOption) (Middleware, error) {
	c := requestIDConfig{header: textproto.CanonicalMIMEHeaderKey(RequestIDHeader), maxLen: DefaultRequestIDMaxLen, trust: true, generate: NewRandomID}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var id string
			if vs := r.Header[c.header]; c.trust && len(vs) == 1 && ValidRequestID(vs[0], c.maxLen) {
				id = vs[0]
			} else {
				id = c.generate()
				r.Header[c.header] = []string{id}
			}
			w.Header()[c.header] = r.Header[c.header]
			next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
		})
	}, nil
}

// RequestID is the request ID middleware with default settings (see NewRequestID).
func RequestID(next http.Handler) http.Handler {
	mw, _ := NewRequestID()
	return mw(next)
}

// ValidRequestID reports whether id is 1..maxLen characters from [A-Za-z0-9._:+=/-].
func ValidRequestID(id string, maxLen int) bool {
	if id == "" || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '=', c == '/':
		default:
			return false
		}
	}
	return true
}

// NewRandomID returns 128 random bits as 32 lowercase hex characters. Safe for concurrent use.
func NewRandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == ':' || c == '(' || c == ')' || c == ',' || c == '"' || c == '/' ||
			c == '[' || c == ']' || c == '?' || c == '=' || c == '{' || c == '}' || c == ';' || c == '\\' || c == '<' || c == '>' || c == '@' {
			return false
		}
	}
	return true
}
