// Package auth is the authentication and authorization concern of gatewaykit: it establishes who
// made a request (JWT, API key, OAuth 2.0 token introspection), puts a *gatewaykit.Identity in the
// request context, forwards it upstream as headers, and enforces authorization policies.
//
// # Authentication
//
// Each method has a validating constructor with functional options and a Wrap middleware:
//
//	jwt, err := auth.NewJWT(auth.WithOIDC("https://idp.example"), auth.WithAudience("api"),
//		auth.WithAlgorithms("ES256"))
//	keys, err := auth.NewAPIKeys(auth.RedisKeyStore(rdb))
//	in, err := auth.NewIntrospection("https://idp.example/introspect",
//		auth.WithClientCredentials("gateway", secret))
//	authn := auth.First(jwt, keys) // a JWT bearer token, or else an X-API-Key
//	api := gatewaykit.Chain(authn.Wrap, auth.RequireRole("admin"))(upstream)
//
// JWT verification uses github.com/golang-jwt/jwt/v5 with an explicit algorithm allow-list; "none"
// and algorithm confusion are always rejected, the key's kty/curve/alg/use must fit the token's
// alg, exp is required, nbf/iat are checked with a leeway, iss and aud when configured; the "typ"
// header must be absent, "JWT" or "at+jwt" unless WithAllowedTypes sets another explicit-typing
// policy (RFC 8725 section 3.11), so that logout tokens, security event tokens or DPoP proofs
// signed by the same IdP are not taken for access tokens (ErrTokenType); a "crit" header, a member
// name repeated in header or claims, and dates beyond year 9999 are rejected. Keys come from a
// static set, a JWKS URL or OIDC discovery; the JWKS cache refreshes in the background (honouring
// Cache-Control max-age), refreshes at most once per cooldown on an unknown kid with concurrent
// requests joining one fetch, and keeps the last good set when the IdP is down. Verified tokens are
// cached (bounded, keyed by a keyed hash of the token, never past exp), so a repeated token costs a
// map lookup; an entry is dropped when a JWKS refresh removes a key, also when the refresh races
// the verification that wrote it. API keys are stored as SHA-256 hashes only (memory or Redis
// stores), carry owner, tier, roles, scopes and expiry, and can be revoked and rotated with an
// overlap window; rotation with a window needs a ConditionalKeyStore (the built-in stores are), so
// that a Revoke racing it is never undone. Introspection requires "active": true and checks the answer's iss, aud and
// token_type when WithIssuer, WithAudience or WithAllowedTokenTypes is given; active answers are
// cached until exp, rejected ones for the negative TTL.
//
// # Login at the gateway and the gateway's own tokens
//
// NewLogin runs the OpenID Connect authorization code flow with PKCE for browser-facing
// backends-for-frontends: ServeLogin, ServeCallback and ServeLogout handlers, a session in an
// AES-256-GCM sealed cookie (or a server-side SessionStore, memory or Redis), access tokens
// refreshed once per session before expiry, and Wrap / WrapAPI to protect routes (browsers are
// redirected to the login, API calls get 401). ForwardSessionToken and SessionTokenTransport send
// the user's access token upstream. NewClientCredentials gives the gateway its own token (client
// credentials grant, cached until shortly before expiry) as an http.RoundTripper.
//
// # Upstream headers
//
// Before authenticating, every client-sent header of the identity family (default prefix
// "X-User-") is deleted, always, also for anonymous requests under Optional, whatever the case of
// the header name. After a successful authentication X-User-ID and X-User-Roles are set
// (WithUpstreamHeaders changes the mapping); a value with control characters is not sent, and a
// role that would split into other roles (holding a comma) is left out of X-User-Roles.
//
// Every type of this package is safe for concurrent use once constructed; an Identity returned by
// a method (and put in the context) may be shared between requests and must be treated as
// read-only.
//
// # Rejections
//
// Missing or invalid credentials get 401 problem+json with an RFC 6750 challenge in
// Problem.Header: `Bearer error="invalid_token", error_description="token expired"` (no error code
// when no credential was sent). The detail names the failure class (ErrExpired, ErrAudience, ...)
// and never echoes the credential. A failing dependency (key store, introspection endpoint) gets
// 503: authentication fails closed. Authorization refusals get 403.
//
// # Authorization
//
// RequireRole, RequireScope, RequireAny, RequireAll, RequireOwner and Authorize are
// gatewaykit.Middleware values over Policy functions (RBAC, ABAC predicates over the Identity and
// the request, ownership of a ServeMux path value).
//
// # Telemetry
//
// Metrics (meter "github.com/gatewaykit/gatewaykit/auth"):
//   - gatewaykit.auth.decisions (counter, {request}): attributes auth.method (jwt, apikey,
//     introspection, first, custom), auth.outcome (ok, anonymous, rejected) and auth.reason (the
//     failure class, "" on success).
//   - gatewaykit.auth.jwks.fetches (counter, {fetch}): attribute auth.outcome (ok, error).
//   - gatewaykit.auth.logins (counter, {login}) and gatewaykit.auth.session.refreshes (counter,
//     {refresh}): see Login.
//
// On rejection the current span gets auth.method and auth.reason attributes. Operational failures
// (JWKS refresh) are logged with log/slog; per-request failures are counted, not logged.
//
// Test helpers for users are in package auth/authtest (an in-process OIDC issuer).
package auth
