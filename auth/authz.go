package auth

import (
	"net/http"
	"strings"

	"github.com/gatewaykit/gatewaykit"
)

// Policy is an authorization rule over the authenticated identity and the request (RBAC, ABAC,
// ownership). It is only called with a non-nil, authenticated identity. Policies must be safe for
// concurrent use and must not modify the request or the identity (which may be shared between
// requests). The policies and combinators of this package are safe for concurrent use when the
// policies they combine are; they copy their arguments, so later changes to a caller's slice have
// no effect.
type Policy func(id *gatewaykit.Identity, r *http.Request) bool

// AnyRole allows identities that have at least one of roles (exact match). AnyRole() allows nobody.
func AnyRole(roles ...string) Policy {
	roles = append([]string(nil), roles...)
	return func(id *gatewaykit.Identity, _ *http.Request) bool {
		for _, role := range roles {
			if id.HasRole(role) {
				return true
			}
		}
		return false
	}
}

// AllScopes allows identities that have every one of scopes (exact match). AllScopes() allows every
// authenticated identity.
func AllScopes(scopes ...string) Policy {
	scopes = append([]string(nil), scopes...)
	return func(id *gatewaykit.Identity, _ *http.Request) bool {
		for _, s := range scopes {
			if !id.HasScope(s) {
				return false
			}
		}
		return true
	}
}

// Owner allows the identity whose subject equals the request's path value param (a Go 1.22
// ServeMux wildcard such as {user_id}), or one having any of bypassRoles (typically "admin"). An
// empty or missing path value allows nobody but the bypass roles, so the middleware must run inside
// the mux route (mux.Handle("GET /users/{user_id}", RequireOwner("user_id", "admin")(h))).
func Owner(param string, bypassRoles ...string) Policy {
	bypass := AnyRole(bypassRoles...)
	return func(id *gatewaykit.Identity, r *http.Request) bool {
		if v := r.PathValue(param); v != "" && v == id.Subject {
			return true
		}
		return bypass(id, r)
	}
}

// Any allows when at least one policy allows (evaluated in order, stops at the first). Any() with no
// policy allows nobody.
func Any(ps ...Policy) Policy {
	ps = append([]Policy(nil), ps...)
	return func(id *gatewaykit.Identity, r *http.Request) bool {
		for _, p := range ps {
			if p(id, r) {
				return true
			}
		}
		return false
	}
}

// All allows when every policy allows (evaluated in order, stops at the first refusal). All() with
// no policy allows every authenticated identity.
func All(ps ...Policy) Policy {
	ps = append([]Policy(nil), ps...)
	return func(id *gatewaykit.Identity, r *http.Request) bool {
		for _, p := range ps {
			if !p(id, r) {
				return false
			}
		}
		return true
	}
}

// Authorize returns a middleware that lets a request through when p allows its identity. Without
// an authenticated identity in the context (no authentication middleware ran before, or it was
// Optional and the caller is anonymous) it answers 401; when p refuses, 403. Rejections go to h
// (nil means gatewaykit.WriteProblem). A nil p refuses everything. The 401 carries
// WWW-Authenticate: Bearer, the 403 no challenge. The middleware is safe for concurrent use when p
// is; it runs after an authentication middleware (JWT.Wrap, APIKeys.Wrap, ...), normally inside the
// ServeMux route so that path values are set.
func Authorize(p Policy, h gatewaykit.ErrorHandler) gatewaykit.Middleware {
	return authorize(p, "insufficient permissions", nil, h)
}

func authorize(p Policy, detail string, hdr http.Header, h gatewaykit.ErrorHandler) gatewaykit.Middleware {
	onError := h.Or()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := gatewaykit.IdentityFrom(r.Context())
			if !ok || id.Anonymous() {
				onError(w, r, problemFor(ErrNoCredentials))
				return
			}
			if p == nil || !p(id, r) {
				pr := forbidden(detail)
				if hdr != nil {
					pr.Header = hdr.Clone()
				}
				onError(w, r, pr)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Require is Authorize with the default error handler (gatewaykit.WriteProblem). Safe for
// concurrent use when p is.
func Require(p Policy) gatewaykit.Middleware { return Authorize(p, nil) }

// RequireRole allows identities having at least one of roles (exact, case-sensitive match); 401
// without an identity, 403 "insufficient role" otherwise, written by gatewaykit.WriteProblem (use
// Authorize(AnyRole(...), h) for another handler). Safe for concurrent use.
func RequireRole(roles ...string) gatewaykit.Middleware {
	return authorize(AnyRole(roles...), "insufficient role", nil, nil)
}

// RequireScope allows identities having all of scopes; a refusal (403 "insufficient scope")
// carries WWW-Authenticate: Bearer error="insufficient_scope", scope="<scopes>" (RFC 6750), so the
// scope names must not contain '"' or a backslash. Safe for concurrent use.
func RequireScope(scopes ...string) gatewaykit.Middleware {
	hdr := http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="` + strings.Join(scopes, " ") + `"`}}
	return authorize(AllScopes(scopes...), "insufficient scope", hdr, nil)
}

// RequireAny allows when at least one policy allows (see Any; 401 without identity, 403
// otherwise). Safe for concurrent use when the policies are.
func RequireAny(ps ...Policy) gatewaykit.Middleware { return Require(Any(ps...)) }

// RequireAll allows when every policy allows (see All; 401 without identity, 403 otherwise). Safe
// for concurrent use when the policies are.
func RequireAll(ps ...Policy) gatewaykit.Middleware { return Require(All(ps...)) }

// RequireOwner allows the owner of the resource named by the path value param, or bypassRoles (see
// Owner); 403 "not the owner of this resource" otherwise. Safe for concurrent use.
func RequireOwner(param string, bypassRoles ...string) gatewaykit.Middleware {
	return authorize(Owner(param, bypassRoles...), "not the owner of this resource", nil, nil)
}
