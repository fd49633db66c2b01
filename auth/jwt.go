package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/otel"

	"github.com/gatewaykit/gatewaykit"
)

// JWT authenticates requests carrying a signed JSON Web Token (RFC 7519), verified with
// github.com/golang-jwt/jwt/v5 against keys from a static set, a JWKS URL or OIDC discovery. A
// verified token is cached (bounded, keyed by a hash of the token, never past its exp), so a
// repeated token costs a map lookup rather than a signature check. It is safe for concurrent use;
// call Close to stop the JWKS refresh.
type JWT struct {
	g         *gate
	ext       extractor
	parser    *jwtlib.Parser
	hmac      []byte
	static    *keySet
	remote    *remoteKeys
	cache     *resultCache[*gatewaykit.Identity]
	claims    claimMapper
	require   []string
	typ       typPolicy
	closers   []func()
	closeOnce sync.Once

	testHookBeforeCache func() // tests only: runs after verification, before caching
}

// NewJWT returns the JWT method. It needs WithAlgorithms and exactly one key source: WithOIDC,
// WithJWKS, WithKey/WithKeySetJSON or WithHMACSecret. With a remote source the first fetch happens
// here (bounded by the fetch timeout); if the IdP is down it is retried in the background and
// tokens are rejected with ErrUnknownKey until keys arrive.
//
// Defaults: token from Authorization: Bearer, at most 8 KiB; "typ" absent, "JWT" or "at+jwt"
// (WithAllowedTypes); exp required; leeway 30 s; iss and aud checked when configured (WithOIDC
// configures iss); roles from "roles", scopes from "scope" then "scp", tier from "tier";
// verification cache of 10000 entries, at most 1 h each; JWKS refresh every hour or at the IdP's
// max-age, unknown-kid refresh at most every 30 s; https required.
func NewJWT(opts ...Option) (*JWT, error) {
	c, err := apply("NewJWT", sMiddleware|sJWT, opts)
	if err != nil {
		return nil, err
	}
	if err := checkJWTConfig(c); err != nil {
		return nil, err
	}
	j := &JWT{hmac: c.hmacSecret, claims: newClaimMapper(c), require: c.requiredClaims, typ: defaultTypPolicy()}
	if c.typesSet {
		j.typ = c.types
	}
	if j.ext, err = newExtractor(c); err != nil {
		return nil, err
	}
	if j.g, err = newGate(c, "jwt"); err != nil {
		return nil, err
	}
	popts := []jwtlib.ParserOption{
		jwtlib.WithValidMethods(c.algorithms), jwtlib.WithLeeway(c.leeway), jwtlib.WithTimeFunc(c.clock),
		jwtlib.WithIssuedAt(), jwtlib.WithExpirationRequired(), jwtlib.WithStrictDecoding(),
	}
	if c.issuer != "" {
		popts = append(popts, jwtlib.WithIssuer(c.issuer))
	}
	if len(c.audiences) > 0 {
		popts = append(popts, jwtlib.WithAudience(c.audiences...))
	}
	j.parser = jwtlib.NewParser(popts...)
	if len(c.staticKeys) > 0 || len(c.jwksJSON) > 0 {
		var keys []*verKey
		for _, k := range c.staticKeys {
			keys = append(keys, &verKey{kid: k.kid, alg: k.alg, key: k.key})
		}
		for _, doc := range c.jwksJSON {
			ks, _, err := parseJWKS(doc)
			if err != nil {
				return nil, fmt.Errorf("auth: WithKeySetJSON: %w", err)
			}
			keys = append(keys, ks...)
		}
		j.static = newKeySet(keys)
	}
	if !c.noCache {
		if j.cache, err = newResultCache[*gatewaykit.Identity](c.cacheSize, c.cacheMaxTTL, c.clock); err != nil {
			return nil, fmt.Errorf("auth: NewJWT: cache: %w", err)
		}
		j.closers = append(j.closers, j.cache.close)
	}
	if c.jwksURL != "" || c.oidcIssuer != "" {
		mp := c.meter
		if mp == nil {
			mp = otel.GetMeterProvider()
		}
		client, closeIdle := newHTTPClient(c)
		var onRemoved func()
		if j.cache != nil {
			onRemoved = j.cache.clear
		}
		if j.remote, err = newRemoteKeys(c, client, mp, onRemoved); err != nil {
			closeIdle()
			j.Close()
			return nil, fmt.Errorf("auth: NewJWT: %w", err)
		}
		j.closers = append(j.closers, j.remote.close, closeIdle)
	}
	return j, nil
}

func checkJWTConfig(c *config) error {
	if len(c.algorithms) == 0 {
		return errors.New("auth: NewJWT: WithAlgorithms is required")
	}
	sources := 0
	for _, set := range []bool{c.oidcIssuer != "", c.jwksURL != "", len(c.staticKeys)+len(c.jwksJSON) > 0, c.hmacSecret != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return errors.New("auth: NewJWT: exactly one key source is required: WithOIDC, WithJWKS, WithKey/WithKeySetJSON or WithHMACSecret")
	}
	hs := slices.ContainsFunc(c.algorithms, func(a string) bool { return slices.Contains(hmacAlgs, a) })
	pk := slices.ContainsFunc(c.algorithms, func(a string) bool { return slices.Contains(publicKeyAlgs, a) })
	switch {
	case hs && pk:
		return errors.New("auth: NewJWT: HS* algorithms cannot be mixed with public-key algorithms")
	case hs && c.hmacSecret == nil:
		return errors.New("auth: NewJWT: HS* algorithms need WithHMACSecret")
	case pk && c.hmacSecret != nil:
		return errors.New("auth: NewJWT: WithHMACSecret needs HS* algorithms")
	}
	for _, k := range c.staticKeys {
		if k.alg != "" && !slices.Contains(c.algorithms, k.alg) {
			return fmt.Errorf("auth: NewJWT: key %q has algorithm %s, not in WithAlgorithms", k.kid, k.alg)
		}
	}
	if c.issuer != "" && c.oidcIssuer != "" && c.issuer != c.oidcIssuer {
		return errors.New("auth: NewJWT: WithIssuer differs from the WithOIDC issuer")
	}
	for _, u := range []string{c.oidcIssuer, c.jwksURL} {
		if u == "" {
			continue
		}
		if err := checkURL(u, c.allowInsecure); err != nil {
			return fmt.Errorf("auth: NewJWT: %w", err)
		}
	}
	if c.oidcIssuer != "" {
		c.issuer = c.oidcIssuer
	}
	return nil
}

// Close stops the JWKS refresh and the cache's clean-up goroutine. Authenticate keeps working with
// the last keys (without refreshes). Close is idempotent and safe for concurrent use.
func (j *JWT) Close() error {
	j.closeOnce.Do(func() {
		for _, f := range j.closers {
			f()
		}
	})
	return nil
}

// Wrap returns next behind JWT authentication. The method value is a gatewaykit.Middleware.
func (j *JWT) Wrap(next http.Handler) http.Handler { return j.g.wrap(j, next) }

// Authenticate implements Authenticator. The Identity has Method "jwt", the subject from "sub"
// (required), roles, scopes and tier from the configured claims, and all claims in Claims. A cached
// token returns the same *Identity for every request: treat it as read-only. Besides the checks
// listed at NewJWT, a token is rejected with ErrTokenType when its "typ" header is not allowed
// (WithAllowedTypes), and with ErrMalformed when its header has "crit" or a "typ" that is not a
// string, when header or claims repeat a member name, or when exp, nbf or iat is not a number in
// [0, year 9999]. Safe for concurrent use, also after Close.
func (j *JWT) Authenticate(r *http.Request) (*gatewaykit.Identity, error) {
	tok, err := j.ext.token(r)
	if err != nil {
		return nil, err
	}
	if j.cache != nil {
		if id, ok := j.cache.get(tok); ok {
			return id, nil
		}
	}
	return j.verify(r.Context(), tok)
}

// verify checks a token the cache does not know.
func (j *JWT) verify(ctx context.Context, tok string) (*gatewaykit.Identity, error) {
	if err := checkSingle(tok); err != nil {
		return nil, err
	}
	switch strings.Count(tok, ".") {
	case 2:
	case 0:
		return nil, fmt.Errorf("%w: not a JWT: %w", ErrMalformed, errDeclined)
	default:
		return nil, fmt.Errorf("%w: wrong number of segments", ErrMalformed)
	}
	var removals uint64 // read before the key lookup: see the cache write below
	if j.remote != nil {
		removals = j.remote.removals.Load()
	}
	claims := jwtlib.MapClaims{}
	called := false
	_, err := j.parser.ParseWithClaims(tok, claims, func(t *jwtlib.Token) (any, error) {
		called = true
		return j.keyFor(ctx, t)
	})
	if err != nil {
		return nil, classifyJWT(err, called)
	}
	// After the signature: forged and junk tokens do not pay for the walk (~7 us), a valid token
	// pays it once before it is cached.
	if err := checkUniqueMembers(tok); err != nil {
		return nil, err
	}
	if err := checkDates(claims); err != nil {
		return nil, err
	}
	for _, name := range j.require {
		if _, ok := claims[name]; !ok {
			return nil, fmt.Errorf("%w: %s", ErrMissingClaim, name)
		}
	}
	id, err := j.claims.identity(claims, "jwt")
	if err != nil {
		return nil, err
	}
	if j.testHookBeforeCache != nil {
		j.testHookBeforeCache()
	}
	if j.cache != nil {
		if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
			j.cache.set(tok, id, exp.Time)
			// A refresh that dropped a key between our lookup and this write has already cleared
			// the cache; the key used may be the dropped one, so take the entry out again. The
			// request itself succeeds: its key was current when it was looked up.
			if j.remote != nil && j.remote.removals.Load() != removals {
				j.cache.delete(tok)
			}
		}
	}
	return id, nil
}

// checkUniqueMembers rejects a token whose header or claims repeat a member name in any object.
// encoding/json keeps the last duplicate while other parsers keep the first, so a duplicate is a
// way to make the gateway and an upstream (or the IdP's audit log) read different claims from
// one signed token (RFC 8259 section 4, RFC 7515 section 5.2 step 4). Undecodable segments are
// left to golang-jwt, which rejects them.
func checkUniqueMembers(tok string) error {
	h, rest, _ := strings.Cut(tok, ".")
	c, _, _ := strings.Cut(rest, ".")
	for _, seg := range [2]string{h, c} {
		doc, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil {
			return nil
		}
		if err := uniqueMembers(doc); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	return nil
}

// uniqueMembers walks a JSON document and fails on an object that repeats a member name. It walks
// iteratively (a JSON bomb costs a slice of frames, no deep recursion).
func uniqueMembers(doc []byte) error {
	type frame struct {
		keys    map[string]struct{} // nil for an array
		wantKey bool
	}
	var stack []frame
	dec := json.NewDecoder(bytes.NewReader(doc))
	for {
		tk, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if d, ok := tk.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			k, _ := tk.(string)
			if _, dup := top.keys[k]; dup {
				return fmt.Errorf("duplicate member %q", k)
			}
			top.keys[k] = struct{}{}
			top.wantKey = false
			continue
		}
		if top != nil && top.keys != nil {
			top.wantKey = true // this token is (or opens) the member's value
		}
		switch tk {
		case json.Delim('{'):
			stack = append(stack, frame{keys: map[string]struct{}{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// maxNumericDate is 9999-12-31T23:59:59Z: golang-jwt converts a NumericDate with int64(float64),
// which overflows (platform-dependently) beyond about 9.2e18, so that an absurd nbf turned into a
// date in the distant past and an absurd exp, on some platforms, into one in the distant future.
const maxNumericDate = 253402300799

// checkDates rejects exp, nbf and iat values that are present but not numbers in [0, year 9999].
func checkDates(claims map[string]any) error {
	for _, name := range [...]string{"exp", "nbf", "iat"} {
		raw, present := claims[name]
		if !present {
			continue
		}
		if v, ok := raw.(float64); !ok || v < 0 || v > maxNumericDate {
			return fmt.Errorf("%w: %s is not a date in range", ErrMalformed, name)
		}
	}
	return nil
}

// keyFor is the golang-jwt Keyfunc: the HMAC secret for HS*, otherwise a key whose kty, curve and
// alg fit the token's alg, refreshing the JWKS once (single-flight, cooldown) on an unknown kid.
func (j *JWT) keyFor(ctx context.Context, t *jwtlib.Token) (any, error) {
	// RFC 7515 section 4.1.11: a recipient must reject a token whose "crit" names extensions it
	// does not understand; this package understands none (b64=false, for one, changes what the
	// signature covers).
	if _, ok := t.Header["crit"]; ok {
		return nil, fmt.Errorf("%w: unsupported critical header", ErrMalformed)
	}
	// Explicit typing (RFC 8725 section 3.11), before any key lookup: a JWT of another kind does
	// not get to trigger an unknown-kid JWKS refresh.
	if err := j.typ.check(t.Header); err != nil {
		return nil, err
	}
	alg := t.Method.Alg()
	if slices.Contains(hmacAlgs, alg) {
		if j.hmac == nil {
			return nil, ErrAlgorithm
		}
		return j.hmac, nil
	}
	kidV, hasKID := t.Header["kid"]
	kid, ok := kidV.(string)
	if hasKID && !ok {
		return nil, fmt.Errorf("%w: kid is not a string", ErrMalformed)
	}
	set := j.static
	if j.remote != nil {
		set = j.remote.keys()
	}
	key, found, err := set.lookup(alg, kid, hasKID)
	if err != nil || found {
		return key, err
	}
	if j.remote != nil {
		// Join or start a refresh (at most one per cooldown), then look again: even when this call
		// was refused by the cooldown, a fetch that just finished may have brought the key.
		_ = j.remote.refresh(ctx, false)
		key, found, err = j.remote.keys().lookup(alg, kid, hasKID)
		if err != nil || found {
			return key, err
		}
	}
	return nil, ErrUnknownKey
}

// classifyJWT maps a golang-jwt error to this package's sentinels, keeping the cause.
func classifyJWT(err error, keyfuncCalled bool) error {
	for _, own := range []error{ErrUnknownKey, ErrAlgorithm, ErrTokenType, ErrMalformed} {
		if errors.Is(err, own) {
			return err
		}
	}
	var class error
	switch {
	case errors.Is(err, jwtlib.ErrTokenMalformed):
		class = ErrMalformed
	case errors.Is(err, jwtlib.ErrTokenSignatureInvalid) && !keyfuncCalled:
		class = ErrAlgorithm // rejected by the allow-list before any key was chosen
	case errors.Is(err, jwtlib.ErrTokenSignatureInvalid), errors.Is(err, jwtlib.ErrTokenUnverifiable):
		class = ErrSignature
	case errors.Is(err, jwtlib.ErrTokenExpired):
		class = ErrExpired
	case errors.Is(err, jwtlib.ErrTokenNotValidYet), errors.Is(err, jwtlib.ErrTokenUsedBeforeIssued):
		class = ErrNotYetValid
	case errors.Is(err, jwtlib.ErrTokenInvalidIssuer):
		class = ErrIssuer
	case errors.Is(err, jwtlib.ErrTokenInvalidAudience):
		class = ErrAudience
	case errors.Is(err, jwtlib.ErrTokenRequiredClaimMissing):
		class = ErrMissingClaim
	default:
		class = ErrMalformed
	}
	return fmt.Errorf("%w: %w", class, err)
}

// ---- JWT options ----

// WithAlgorithms sets the allow-list of signature algorithms (required): RS256/384/512,
// PS256/384/512, ES256/384/512, EdDSA, or HS256/384/512 with WithHMACSecret (never both families).
// "none" is never accepted. Applies to NewJWT.
func WithAlgorithms(algs ...string) Option {
	return opt("WithAlgorithms", sJWT, func(c *config) error {
		if len(algs) == 0 {
			return errors.New("no algorithm")
		}
		for _, a := range algs {
			if !slices.Contains(publicKeyAlgs, a) && !slices.Contains(hmacAlgs, a) {
				return fmt.Errorf("unsupported algorithm %q", a)
			}
		}
		c.algorithms = slices.Compact(slices.Sorted(slices.Values(algs)))
		return nil
	})
}

// WithKey adds a static verification key with its key ID (matched against the token's kid; "" for
// tokens without kid) and algorithm ("" accepts any allowed algorithm that fits the key type). key
// is an *rsa.PublicKey (at least 2048 bits), *ecdsa.PublicKey (P-256/384/521) or ed25519.PublicKey;
// a private key's public half is used. Applies to NewJWT.
func WithKey(kid, alg string, key any) Option {
	return opt("WithKey", sJWT, func(c *config) error {
		pub, err := checkPublicKey(key)
		if err != nil {
			return err
		}
		if alg != "" && !keyFits(alg, pub) {
			return fmt.Errorf("key type %T does not fit algorithm %q", pub, alg)
		}
		c.staticKeys = append(c.staticKeys, staticKey{kid: kid, alg: alg, key: pub})
		return nil
	})
}

// WithKeySetJSON adds the signature keys of a JWK Set document (RFC 7517) as static keys: keys with
// a "use" other than "sig", a "key_ops" without "verify", symmetric keys and keys too weak or of
// another algorithm are skipped (the same rules apply to fetched JWKS); a document without any
// usable key is an error. Applies to NewJWT.
func WithKeySetJSON(doc []byte) Option {
	return opt("WithKeySetJSON", sJWT, func(c *config) error {
		if _, _, err := parseJWKS(doc); err != nil {
			return err
		}
		c.jwksJSON = append(c.jwksJSON, append([]byte(nil), doc...))
		return nil
	})
}

// WithHMACSecret verifies HS256/384/512 tokens with a shared secret of at least 32 bytes. Applies to
// NewJWT.
func WithHMACSecret(secret []byte) Option {
	return opt("WithHMACSecret", sJWT, func(c *config) error {
		if len(secret) < 32 {
			return errors.New("secret shorter than 32 bytes")
		}
		c.hmacSecret = append([]byte(nil), secret...)
		return nil
	})
}

// WithJWKS fetches verification keys from a JWK Set URL (https unless AllowInsecureHTTP). Applies to
// NewJWT.
func WithJWKS(url string) Option {
	return opt("WithJWKS", sJWT, func(c *config) error {
		c.jwksURL = url
		return checkURL(url, true) // the scheme is checked at the end, when AllowInsecureHTTP is known
	})
}

// WithOIDC discovers the JWKS URL from <issuer>/.well-known/openid-configuration (whose "issuer"
// must equal issuer) and requires iss == issuer in tokens. Applies to NewJWT.
func WithOIDC(issuer string) Option {
	return opt("WithOIDC", sJWT, func(c *config) error {
		c.oidcIssuer = issuer
		return checkURL(issuer, true)
	})
}

// WithIssuer requires the iss claim to equal iss (a missing iss is ErrMissingClaim, another value
// ErrIssuer). For NewIntrospection it is the "iss" member of the introspection answer (RFC 7662),
// compared exactly; an answer without a string iss is rejected. Default: not checked (NewJWT with
// WithOIDC checks the OIDC issuer). Applies to NewJWT and NewIntrospection.
func WithIssuer(iss string) Option {
	return opt("WithIssuer", sToken, func(c *config) error {
		if iss == "" {
			return errors.New("empty issuer")
		}
		c.issuer = iss
		return nil
	})
}

// WithAudience requires the aud claim (a string or an array of strings) to contain at least one of
// auds, compared exactly (a missing or empty aud is ErrMissingClaim, no match ErrAudience). For
// NewIntrospection it is the "aud" member of the introspection answer (RFC 7662); an aud of
// another JSON type is ErrMalformed. Default: not checked. Applies to NewJWT and NewIntrospection.
func WithAudience(auds ...string) Option {
	return opt("WithAudience", sToken, func(c *config) error {
		if len(auds) == 0 || containsEmpty(auds) {
			return errors.New("empty audience")
		}
		c.audiences = append([]string(nil), auds...)
		return nil
	})
}

// WithLeeway sets the clock skew tolerated on exp, nbf and iat, between 0 and 5 minutes. Default
// 30 s. Applies to NewJWT.
func WithLeeway(d time.Duration) Option {
	return opt("WithLeeway", sJWT, func(c *config) error {
		if d < 0 || d > 5*time.Minute {
			return fmt.Errorf("leeway %v out of range [0, 5m]", d)
		}
		c.leeway = d
		return nil
	})
}

// WithRequiredClaims rejects tokens lacking any of the named claims (exp and sub are always
// required). Applies to NewJWT.
func WithRequiredClaims(names ...string) Option {
	return opt("WithRequiredClaims", sJWT, func(c *config) error {
		if containsEmpty(names) {
			return errors.New("empty claim name")
		}
		c.requiredClaims = append(c.requiredClaims, names...)
		return nil
	})
}

// WithUnknownKIDCooldown sets the minimum time between JWKS fetches triggered by unknown key IDs;
// it is also the lower bound of the background refresh interval. Default 30 s. Applies to NewJWT.
func WithUnknownKIDCooldown(d time.Duration) Option {
	return opt("WithUnknownKIDCooldown", sJWT, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("cooldown %v must be positive", d)
		}
		c.cooldown = d
		return nil
	})
}

// WithJWKSRefreshInterval sets the background JWKS refresh interval used when the IdP sends no
// Cache-Control max-age. Default 1 h. Applies to NewJWT.
func WithJWKSRefreshInterval(d time.Duration) Option {
	return opt("WithJWKSRefreshInterval", sJWT, func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("interval %v must be positive", d)
		}
		c.refreshInterval = d
		return nil
	})
}
