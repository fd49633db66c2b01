package gatewaykit

import (
	"context"
	"net/http"
	"slices"
)

// Middleware wraps an http.Handler with one gateway concern. It is an alias, not a new type, so any
// func(http.Handler) http.Handler from the standard library, chi, alice or a user's own code is a
// Middleware, and every concern's Wrap method value is one.
type Middleware = func(http.Handler) http.Handler

// Chain composes middlewares into one. The first listed runs outermost: Chain(a, b, c)(h) serves a
// request through a, then b, then c, then h. Nil entries are skipped. Chain() returns a middleware
// that returns its handler unchanged. The result is safe for concurrent use if its parts are.
func Chain(mws ...Middleware) Middleware {
	mws = slices.DeleteFunc(slices.Clone(mws), func(m Middleware) bool { return m == nil })
	return func(next http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			next = mws[i](next)
		}
		return next
	}
}

// Identity is who made a request, as established by an authentication method (package auth writes
// it, other concerns read it). Treat an Identity in a context as read-only: it may be shared by
// concurrent readers. The zero value is an anonymous caller.
type Identity struct {
	// Subject is the stable caller identifier (JWT "sub", an API key's owner, ...). Empty when anonymous.
	Subject string
	// Roles are the caller's roles, used by RBAC rules.
	Roles []string
	// Scopes are OAuth2 scopes granted to the credential.
	Scopes []string
	// Tier is the caller's plan ("free", "premium", ...), used to select rate limits. May be empty.
	Tier string
	// Method names how the caller authenticated: "jwt", "apikey", "introspection", "session", ...
	Method string
	// Claims holds the raw claims of the credential (JWT claims, introspection response, key metadata).
	// May be nil.
	Claims map[string]any
}

// Anonymous reports whether the identity has no subject (nil or zero Identity).
func (id *Identity) Anonymous() bool { return id == nil || id.Subject == "" }

// HasRole reports whether the identity carries the role (exact, case-sensitive match). A nil
// Identity has no roles.
func (id *Identity) HasRole(role string) bool {
	return id != nil && slices.Contains(id.Roles, role)
}

// HasScope reports whether the identity carries the scope (exact match). A nil Identity has no scopes.
func (id *Identity) HasScope(scope string) bool {
	return id != nil && slices.Contains(id.Scopes, scope)
}

type identityKey struct{}

// WithIdentity returns a copy of ctx carrying id. A nil id removes nothing: IdentityFrom then
// reports no identity.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity stored by WithIdentity, and false when there is none.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
