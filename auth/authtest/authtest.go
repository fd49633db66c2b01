package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	jwtlib "github.com/golang-jwt/jwt/v5"
)

// Paths served by the issuer, relative to its URL.
const (
	DiscoveryPath     = "/.well-known/openid-configuration"
	JWKSPath          = "/jwks"
	IntrospectionPath = "/introspect"
	// TokenPath mints tokens over HTTP when EnableTokenEndpoint was called (demos only).
	TokenPath = "/token"
)

// Key is one signing key of the issuer.
type Key struct {
	// ID is the key ID (kid) put in token headers and in the JWK Set.
	ID string
	// Algorithm is the JWS algorithm (RS256, ES256, EdDSA, ...).
	Algorithm string
	// Signer is the private key.
	Signer crypto.Signer
}

// Issuer is an in-process identity provider. Create it with New or Start.
type Issuer struct {
	url string
	alg string

	mu       sync.Mutex
	keys     []*Key // the last one signs
	seq      int
	opaque   map[string]map[string]any
	clientID string
	secret   string
	cacheCtl string
	down     bool
	tokenEP  bool
	delay    time.Duration
	now      func() time.Time

	jwksFetches      atomic.Int64
	discoveryFetches atomic.Int64
	introspections   atomic.Int64
}

// New returns an issuer whose URL (the "iss" claim and the base of its endpoints) is issuerURL, with
// one signing key for alg: RS256/384/512 and PS256/384/512 (RSA 2048), ES256/384/512 (P-256/384/521)
// or EdDSA (Ed25519). The introspection endpoint accepts client "client" with secret "secret".
func New(issuerURL, alg string) (*Issuer, error) {
	iss := &Issuer{url: strings.TrimSuffix(issuerURL, "/"), alg: alg, opaque: map[string]map[string]any{},
		clientID: "client", secret: "secret", now: time.Now}
	if _, err := iss.Rotate(); err != nil {
		return nil, err
	}
	return iss, nil
}

// Start serves a new issuer for alg on a loopback httptest server that is closed in t.Cleanup.
func Start(t testing.TB, alg string) *Issuer {
	t.Helper()
	iss, srv, err := NewServer(alg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return iss
}

// NewServer serves a new issuer for alg on a loopback httptest server (plain http; the issuer URL
// is the server's URL). The caller closes the server.
func NewServer(alg string) (*Issuer, *httptest.Server, error) {
	srv := httptest.NewUnstartedServer(nil)
	iss, err := New("http://"+srv.Listener.Addr().String(), alg)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	srv.Config.Handler = iss
	srv.Start()
	return iss, srv, nil
}

// URL returns the issuer URL (the "iss" claim).
func (iss *Issuer) URL() string { return iss.url }

// JWKSURL returns the URL of the JWK Set.
func (iss *Issuer) JWKSURL() string { return iss.url + JWKSPath }

// IntrospectionURL returns the URL of the introspection endpoint.
func (iss *Issuer) IntrospectionURL() string { return iss.url + IntrospectionPath }

// generate creates a private key for alg.
func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("authtest: unsupported algorithm %q", alg)
}

// Rotate adds a new signing key (same algorithm) and makes it the one that signs; older keys stay
// in the JWK Set until RemoveKey. It returns the new key.
func (iss *Issuer) Rotate() (*Key, error) {
	signer, err := generate(iss.alg)
	if err != nil {
		return nil, err
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.seq++
	k := &Key{ID: fmt.Sprintf("key-%d", iss.seq), Algorithm: iss.alg, Signer: signer}
	iss.keys = append(iss.keys, k)
	return k, nil
}

// RemoveKey removes a key from the JWK Set (and from signing, if it was the current key and others
// remain). It reports whether the key existed.
func (iss *Issuer) RemoveKey(kid string) bool {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	for i, k := range iss.keys {
		if k.ID == kid {
			iss.keys = append(iss.keys[:i:i], iss.keys[i+1:]...)
			return true
		}
	}
	return false
}

// CurrentKey returns the key that signs new tokens (nil when all were removed).
func (iss *Issuer) CurrentKey() *Key {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	if len(iss.keys) == 0 {
		return nil
	}
	return iss.keys[len(iss.keys)-1]
}

// SetDown makes every endpoint answer 503 (true) or serve normally (false).
func (iss *Issuer) SetDown(down bool) { iss.mu.Lock(); iss.down = down; iss.mu.Unlock() }

// SetDelay delays every response by d (a slow IdP); the delay ends early if the client goes away.
func (iss *Issuer) SetDelay(d time.Duration) { iss.mu.Lock(); iss.delay = d; iss.mu.Unlock() }

// SetCacheControl sets the Cache-Control header of JWK Set responses ("" for none, the default).
func (iss *Issuer) SetCacheControl(v string) { iss.mu.Lock(); iss.cacheCtl = v; iss.mu.Unlock() }

// EnableTokenEndpoint makes the issuer mint tokens for anyone at TokenPath: POST (or GET) with
// form or query fields sub (required), aud, roles (comma-separated), scope (space-separated), tier
// and ttl (seconds, default 3600); the answer is {"access_token", "token_type": "Bearer",
// "expires_in"}. Meant for demos driven by curl; never expose it beyond loopback.
func (iss *Issuer) EnableTokenEndpoint() { iss.mu.Lock(); iss.tokenEP = true; iss.mu.Unlock() }

// SetClient sets the client credentials the introspection endpoint accepts (HTTP Basic).
func (iss *Issuer) SetClient(id, secret string) {
	iss.mu.Lock()
	iss.clientID, iss.secret = id, secret
	iss.mu.Unlock()
}

// SetClock sets the issuer's time source for iat/exp defaults and introspection. Default time.Now.
func (iss *Issuer) SetClock(now func() time.Time) { iss.mu.Lock(); iss.now = now; iss.mu.Unlock() }

// JWKSFetches returns how many times the JWK Set was served.
func (iss *Issuer) JWKSFetches() int64 { return iss.jwksFetches.Load() }

// DiscoveryFetches returns how many times the discovery document was served.
func (iss *Issuer) DiscoveryFetches() int64 { return iss.discoveryFetches.Load() }

// Introspections returns how many introspection requests were answered.
func (iss *Issuer) Introspections() int64 { return iss.introspections.Load() }

// withDefaults returns claims with iss, iat and exp (one hour) added when absent.
func (iss *Issuer) withDefaults(claims map[string]any) jwtlib.MapClaims {
	iss.mu.Lock()
	now := iss.now()
	iss.mu.Unlock()
	c := jwtlib.MapClaims{"iss": iss.url, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	maps.Copy(c, claims)
	return c
}

// Mint signs a JWT with the current key. iss, iat and exp (one hour) are added unless claims set
// them; claims with a nil value are removed (Mint(map[string]any{"exp": nil}) has no exp).
func (iss *Issuer) Mint(claims map[string]any) (string, error) {
	return iss.MintWithHeader(nil, claims)
}

// MintWithHeader is Mint with extra or overriding JOSE header fields (a different "kid", "typ", ...;
// a nil value removes a field). The header has "typ": "JWT" unless overridden: {"typ": "at+jwt"}
// mints an RFC 9068 access token, {"typ": nil} an untyped one.
func (iss *Issuer) MintWithHeader(header, claims map[string]any) (string, error) {
	k := iss.CurrentKey()
	if k == nil {
		return "", errors.New("authtest: no signing key")
	}
	c := iss.withDefaults(claims)
	maps.DeleteFunc(c, func(_ string, v any) bool { return v == nil })
	t := jwtlib.NewWithClaims(jwtlib.GetSigningMethod(k.Algorithm), c)
	t.Header["kid"] = k.ID
	maps.Copy(t.Header, header)
	maps.DeleteFunc(t.Header, func(_ string, v any) bool { return v == nil })
	return t.SignedString(k.Signer)
}

// Token is Mint that fails t on error.
func (iss *Issuer) Token(t testing.TB, claims map[string]any) string {
	t.Helper()
	s, err := iss.Mint(claims)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// MintOpaque returns a random opaque token that the introspection endpoint reports as active with
// the given claims (iss, iat and exp added and nil values removed as for Mint, "active" set to
// true): MintOpaque(map[string]any{"sub": "a", "iss": nil}) is answered without iss.
func (iss *Issuer) MintOpaque(claims map[string]any) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	c := iss.withDefaults(claims)
	maps.DeleteFunc(c, func(_ string, v any) bool { return v == nil })
	c["active"] = true
	iss.mu.Lock()
	iss.opaque[tok] = c
	iss.mu.Unlock()
	return tok
}

// RevokeOpaque makes the introspection endpoint report tok as inactive.
func (iss *Issuer) RevokeOpaque(tok string) { iss.mu.Lock(); delete(iss.opaque, tok); iss.mu.Unlock() }

// JWKS returns the JWK Set document of the current keys (public parts only).
func (iss *Issuer) JWKS() ([]byte, error) {
	iss.mu.Lock()
	keys := append([]*Key(nil), iss.keys...)
	iss.mu.Unlock()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.Signer.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			ALG: jwkset.ALG(k.Algorithm), KID: k.ID, USE: jwkset.UseSig}})
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	return json.Marshal(set)
}

// ServeHTTP serves discovery, the JWK Set and introspection.
func (iss *Issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	iss.mu.Lock()
	down, delay, cc, tokenEP := iss.down, iss.delay, iss.cacheCtl, iss.tokenEP
	iss.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case DiscoveryPath:
		iss.discoveryFetches.Add(1)
		writeJSON(w, map[string]any{
			"issuer": iss.url, "jwks_uri": iss.JWKSURL(), "introspection_endpoint": iss.IntrospectionURL(),
			"id_token_signing_alg_values_supported": []string{iss.alg},
		})
	case JWKSPath:
		iss.jwksFetches.Add(1)
		b, err := iss.JWKS()
		if err != nil {
			http.Error(w, "jwks", http.StatusInternalServerError)
			return
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	case IntrospectionPath:
		iss.introspect(w, r)
	case TokenPath:
		if !tokenEP {
			http.NotFound(w, r)
			return
		}
		iss.token(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (iss *Issuer) introspect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	id, secret, ok := r.BasicAuth()
	iss.mu.Lock()
	wantID, wantSecret := iss.clientID, iss.secret
	iss.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare([]byte(id), []byte(wantID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(wantSecret)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="introspection"`)
		http.Error(w, "client authentication failed", http.StatusUnauthorized)
		return
	}
	iss.introspections.Add(1)
	tok := r.PostFormValue("token")
	iss.mu.Lock()
	c, found := iss.opaque[tok]
	now := iss.now()
	iss.mu.Unlock()
	if exp, ok := unix(c["exp"]); found && ok && now.Unix() >= exp {
		found = false
	}
	if !found {
		writeJSON(w, map[string]any{"active": false})
		return
	}
	writeJSON(w, c)
}

func (iss *Issuer) token(w http.ResponseWriter, r *http.Request) {
	sub := r.FormValue("sub")
	if sub == "" {
		http.Error(w, "sub is required", http.StatusBadRequest)
		return
	}
	ttl := time.Hour
	if v := r.FormValue("ttl"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 86400 {
			http.Error(w, "ttl must be 1..86400 seconds", http.StatusBadRequest)
			return
		}
		ttl = time.Duration(n) * time.Second
	}
	iss.mu.Lock()
	now := iss.now()
	iss.mu.Unlock()
	claims := map[string]any{"sub": sub, "exp": now.Add(ttl).Unix()}
	for _, f := range []string{"aud", "scope", "tier"} {
		if v := r.FormValue(f); v != "" {
			claims[f] = v
		}
	}
	if v := r.FormValue("roles"); v != "" {
		claims["roles"] = strings.Split(v, ",")
	}
	tok, err := iss.Mint(claims)
	if err != nil {
		http.Error(w, "mint failed", http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds())})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// unix reads a NumericDate claim given as any Go number.
func unix(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	case time.Time:
		return n.Unix(), true
	}
	return 0, false
}
