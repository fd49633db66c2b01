package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gatewaykit/gatewaykit"
)

// Introspection authenticates opaque bearer tokens with an OAuth 2.0 token introspection endpoint
// (RFC 7662): a client-authenticated POST per unknown token, "active": true required, and the
// answer's "iss", "aud" and "token_type" checked when WithIssuer, WithAudience or
// WithAllowedTokenTypes is set. Active results are cached until the token's exp (or the cache's
// maximum TTL); rejected ones (inactive, wrong issuer, audience or type, malformed) briefly, with
// their failure class. Endpoint errors, timeouts and unreadable answers fail closed (503, never let
// through, never cached). It is safe for concurrent use; call Close to stop the cache's clean-up
// goroutines.
type Introspection struct {
	g        *gate
	ext      extractor
	endpoint string
	client   *http.Client
	id       string
	secret   string
	timeout  time.Duration
	clock    func() time.Time
	claims   claimMapper
	issuer   string   // "" when not checked
	auds     []string // nil when not checked
	types    []string // accepted token_type values; nil when not checked
	cache    *resultCache[*gatewaykit.Identity]
	negative *resultCache[error] // the rejection of an answer, by class
	negTTL   time.Duration
	flight   singleflight.Group

	closers   []func()
	closeOnce sync.Once
}

// NewIntrospection returns the introspection method for endpoint (https unless AllowInsecureHTTP).
// WithClientCredentials is required. Defaults: token from Authorization: Bearer (8 KiB max), 5 s
// per call, active results cached up to 1 h (10000 entries), rejected ones 5 s, roles/scopes/tier
// from "roles", "scope", "tier"; the subject is "sub", or "client_id" when there is no sub; iss,
// aud and token_type not checked (WithIssuer, WithAudience, WithAllowedTokenTypes).
func NewIntrospection(endpoint string, opts ...Option) (*Introspection, error) {
	c, err := apply("NewIntrospection", sMiddleware|sIntrospect, opts)
	if err != nil {
		return nil, err
	}
	if err := checkURL(endpoint, c.allowInsecure); err != nil {
		return nil, fmt.Errorf("auth: NewIntrospection: %w", err)
	}
	if c.clientID == "" {
		return nil, errors.New("auth: NewIntrospection: WithClientCredentials is required")
	}
	in := &Introspection{endpoint: endpoint, id: c.clientID, secret: c.clientSecret, timeout: c.fetchTimeout,
		clock: c.clock, claims: newClaimMapper(c), negTTL: c.negativeTTL, issuer: c.issuer, auds: c.audiences,
		types: c.tokenTypes}
	if in.ext, err = newExtractor(c); err != nil {
		return nil, err
	}
	if in.g, err = newGate(c, "introspection"); err != nil {
		return nil, err
	}
	var closeIdle func()
	in.client, closeIdle = newHTTPClient(c)
	in.closers = append(in.closers, closeIdle)
	if !c.noCache {
		if in.cache, err = newResultCache[*gatewaykit.Identity](c.cacheSize, c.cacheMaxTTL, c.clock); err != nil {
			return nil, fmt.Errorf("auth: NewIntrospection: cache: %w", err)
		}
		if in.negative, err = newResultCache[error](c.cacheSize, c.negativeTTL, c.clock); err != nil {
			in.cache.close()
			return nil, fmt.Errorf("auth: NewIntrospection: cache: %w", err)
		}
		in.closers = append(in.closers, in.cache.close, in.negative.close)
	}
	return in, nil
}

// Close stops the caches' clean-up goroutines and closes idle connections. Idempotent and safe for
// concurrent use; Authenticate keeps working afterwards.
func (in *Introspection) Close() error {
	in.closeOnce.Do(func() {
		for _, f := range in.closers {
			f()
		}
	})
	return nil
}

// Wrap returns next behind introspection. The method value is a gatewaykit.Middleware.
func (in *Introspection) Wrap(next http.Handler) http.Handler { return in.g.wrap(in, next) }

// Authenticate implements Authenticator. The Identity has Method "introspection" and the
// introspection response as Claims; a cached result returns the same *Identity for every request
// (treat it as read-only). An answer without "active": true is ErrInvalidCredential; one whose
// exp, nbf or iat is not a number in [0, year 9999], or whose iss, aud or token_type has the wrong
// JSON type, ErrMalformed; a missing iss or aud (when configured) ErrMissingClaim, another iss
// ErrIssuer, an aud without a configured audience ErrAudience, a missing or other token_type
// ErrTokenType; an expired token ErrExpired; any endpoint failure ErrUnavailable (503). Every
// rejection of an answer but ErrNotYetValid is cached for the negative TTL and repeated with its
// class without asking the endpoint again. Safe for concurrent use.
func (in *Introspection) Authenticate(r *http.Request) (*gatewaykit.Identity, error) {
	tok, err := in.ext.token(r)
	if err != nil {
		return nil, err
	}
	if in.cache != nil {
		if id, ok := in.cache.get(tok); ok {
			return id, nil
		}
		if rejected, ok := in.negative.get(tok); ok {
			return nil, fmt.Errorf("%w (cached)", rejected)
		}
	}
	if err := checkSingle(tok); err != nil {
		return nil, err
	}
	// Concurrent requests with the same unknown token share one introspection call, detached from
	// the first caller's cancellation so that its departure does not fail the others.
	v, err, _ := in.flight.Do(tok, func() (any, error) {
		return in.introspect(context.WithoutCancel(r.Context()), tok)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	id, exp, err := in.accept(maps.Clone(v.(map[string]any))) // accept may add "sub"
	if err != nil {
		// The answer will not change before the negative TTL ends (an expired token stays expired);
		// a not-yet-valid one may become valid within it, so it is asked again.
		if in.negative != nil && !errors.Is(err, ErrNotYetValid) {
			in.negative.set(tok, err, time.Time{})
		}
		return nil, err
	}
	if in.cache != nil {
		in.cache.set(tok, id, exp)
	}
	return id, nil
}

// accept checks an introspection answer and maps it to an Identity, returning the token's exp
// (zero when the answer has none).
func (in *Introspection) accept(claims map[string]any) (*gatewaykit.Identity, time.Time, error) {
	if active, _ := claims["active"].(bool); !active {
		return nil, time.Time{}, fmt.Errorf("%w: inactive token", ErrInvalidCredential)
	}
	if err := checkDates(claims); err != nil {
		return nil, time.Time{}, err
	}
	if err := in.checkIssuerAudience(claims); err != nil {
		return nil, time.Time{}, err
	}
	if err := in.checkTokenType(claims); err != nil {
		return nil, time.Time{}, err
	}
	var exp time.Time
	if v, ok := claims["exp"].(float64); ok {
		exp = time.Unix(int64(v), 0)
		if !in.clock().Before(exp) {
			return nil, time.Time{}, ErrExpired
		}
	}
	if v, ok := claims["nbf"].(float64); ok && in.clock().Before(time.Unix(int64(v), 0)) {
		return nil, time.Time{}, ErrNotYetValid
	}
	switch sub, present := claims["sub"]; {
	case !present || sub == nil: // RFC 7662: sub is optional; a client-credentials token has none
		if cid, ok := claims["client_id"].(string); ok {
			claims["sub"] = cid
		}
	case !isString(sub): // never replace a malformed sub with the client's identity
		return nil, time.Time{}, fmt.Errorf("%w: sub is not a string", ErrMalformed)
	}
	id, err := in.claims.identity(claims, "introspection")
	if err != nil {
		return nil, time.Time{}, err
	}
	return id, exp, nil
}

// checkIssuerAudience applies WithIssuer and WithAudience to an answer, with the classes of the
// JWT method: absent (or null, or empty) is ErrMissingClaim, a value of the wrong JSON type
// ErrMalformed, another value ErrIssuer or ErrAudience.
func (in *Introspection) checkIssuerAudience(claims map[string]any) error {
	if in.issuer != "" {
		switch iss := claims["iss"].(type) {
		case nil:
			return fmt.Errorf("%w: iss", ErrMissingClaim)
		case string:
			if iss == "" {
				return fmt.Errorf("%w: iss", ErrMissingClaim)
			}
			if iss != in.issuer {
				return ErrIssuer
			}
		default:
			return fmt.Errorf("%w: iss is not a string", ErrMalformed)
		}
	}
	if len(in.auds) == 0 {
		return nil
	}
	var auds []any
	switch aud := claims["aud"].(type) {
	case nil:
	case string:
		if aud != "" {
			auds = []any{aud}
		}
	case []any:
		auds = aud
	default:
		return fmt.Errorf("%w: aud is not a string or an array", ErrMalformed)
	}
	if len(auds) == 0 || len(auds) == 1 && auds[0] == "" { // as golang-jwt for a JWT's aud
		return fmt.Errorf("%w: aud", ErrMissingClaim)
	}
	found := false
	for _, a := range auds {
		s, ok := a.(string)
		if !ok {
			return fmt.Errorf("%w: aud holds a %T", ErrMalformed, a)
		}
		found = found || slices.Contains(in.auds, s)
	}
	if !found {
		return ErrAudience
	}
	return nil
}

// checkTokenType applies WithAllowedTokenTypes to an answer.
func (in *Introspection) checkTokenType(claims map[string]any) error {
	if in.types == nil {
		return nil
	}
	v, present := claims["token_type"]
	if !present || v == nil {
		return fmt.Errorf("%w: no token_type", ErrTokenType)
	}
	tt, ok := v.(string)
	if !ok {
		return fmt.Errorf("%w: token_type is not a string", ErrMalformed)
	}
	for _, t := range in.types {
		if strings.EqualFold(tt, t) {
			return nil
		}
	}
	return fmt.Errorf("%w: token_type not allowed", ErrTokenType)
}

// introspect performs the RFC 7662 request.
func (in *Introspection) introspect(ctx context.Context, tok string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.id), url.QueryEscape(in.secret)) // RFC 6749 section 2.3.1
	body, _, err := doJSON(in.client, req)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil || claims == nil {
		return nil, fmt.Errorf("malformed response: %v", err)
	}
	return claims, nil
}

// WithClientCredentials sets the client ID and secret sent with HTTP Basic authentication to the
// introspection endpoint. Required. Applies to NewIntrospection.
func WithClientCredentials(id, secret string) Option {
	return opt("WithClientCredentials", sIntrospect, func(c *config) error {
		if id == "" {
			return errors.New("empty client ID")
		}
		c.clientID, c.clientSecret = id, secret
		return nil
	})
}

// WithNegativeTTL sets how long a rejected answer is cached with its error: inactive, wrong iss,
// aud or token_type, malformed, expired (not-yet-valid answers and endpoint failures are never
// cached). Default 5 s. Applies to NewIntrospection.
func WithNegativeTTL(d time.Duration) Option {
	return opt("WithNegativeTTL", sIntrospect, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("ttl %v must be positive", d)
		}
		c.negativeTTL = d
		return nil
	})
}

// WithAllowedTokenTypes requires the introspection answer's "token_type" (RFC 7662 section 2.2,
// e.g. "Bearer" or "DPoP") to be one of types, compared case-insensitively (RFC 6749 section 5.1);
// an answer without token_type is rejected (ErrTokenType). Default: not checked (many IdPs omit
// it). Applies to NewIntrospection.
func WithAllowedTokenTypes(types ...string) Option {
	return opt("WithAllowedTokenTypes", sIntrospect, func(c *config) error {
		if len(types) == 0 {
			return errors.New("no token type")
		}
		for _, t := range types {
			if t == "" || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				return fmt.Errorf("invalid token type %q", t)
			}
		}
		c.tokenTypes = append([]string(nil), types...)
		return nil
	})
}

func isString(v any) bool { _, ok := v.(string); return ok }
