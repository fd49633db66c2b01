package auth_test

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestJWTValidTokenYieldsIdentityAndHeaders(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	j := newJWT(t, auth.WithOIDC(iss.URL()), auth.WithAudience("api"), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP())
	rec := &recorder{}
	h := j.Wrap(rec)
	tok := iss.Token(t, map[string]any{"sub": "alice", "aud": "api", "roles": []string{"admin", "ops"},
		"scope": "orders:read orders:write", "tier": "premium"})
	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER  "} {
		hdr := http.Header{"Authorization": {scheme + tok}, "X-User-Id": {"mallory"}, "X-User-Admin": {"true"}}
		w := do(t, h, hdr)
		if w.Code != http.StatusOK {
			t.Fatalf("%q: status %d: %s", scheme, w.Code, w.Body)
		}
	}
	id := rec.id.Load()
	if id == nil || id.Subject != "alice" || id.Method != "jwt" || id.Tier != "premium" ||
		strings.Join(id.Roles, ",") != "admin,ops" || strings.Join(id.Scopes, " ") != "orders:read orders:write" {
		t.Fatalf("identity %+v", id)
	}
	hdr := *rec.headers.Load()
	if got := hdr.Get("X-User-Id"); got != "alice" {
		t.Errorf("X-User-ID %q", got)
	}
	if got := hdr.Get("X-User-Roles"); got != "admin,ops" {
		t.Errorf("X-User-Roles %q", got)
	}
	if _, ok := hdr["X-User-Admin"]; ok {
		t.Error("spoofed X-User-Admin reached the upstream")
	}
}

// TestJWTAttackTable: every malicious or invalid token is rejected with the right class and none
// reaches the handler.
func TestJWTAttackTable(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	now := time.Now()
	j := newJWT(t, auth.WithOIDC(iss.URL()), auth.WithAudience("api"), auth.WithAlgorithms("ES256"),
		auth.AllowInsecureHTTP(), auth.WithLeeway(30*time.Second))
	rec := &recorder{}
	h := j.Wrap(rec)
	good := map[string]any{"sub": "alice", "aud": "api"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{"sub": "alice", "aud": "api"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	valid := iss.Token(t, good)
	parts := strings.Split(valid, ".")

	otherIss := authtest.Start(t, "ES256") // same kid "key-1", different key: a forgery
	forged := otherIss.Token(t, map[string]any{"sub": "alice", "aud": "api", "iss": iss.URL()})
	edIss := authtest.Start(t, "EdDSA")
	edTok := edIss.Token(t, map[string]any{"sub": "alice", "aud": "api", "iss": iss.URL()})

	deep := strings.Repeat("[", 2500) + strings.Repeat("]", 2500)
	mint := func(hdr, claims map[string]any) string {
		s, err := iss.MintWithHeader(hdr, claims)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		name  string
		hdr   http.Header
		class error
	}{
		{"alg none", bearer(b64(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."), auth.ErrAlgorithm},
		{"alg none with signature", bearer(b64(`{"alg":"none"}`) + "." + parts[1] + "." + parts[2]), auth.ErrAlgorithm},
		{"HS256 not allowed", bearer(hs256(t, []byte("0123456789abcdef0123456789abcdef"), good, "key-1")), auth.ErrAlgorithm},
		{"stripped signature", bearer(parts[0] + "." + parts[1] + "."), auth.ErrSignature},
		{"forged signature same kid", bearer(forged), auth.ErrSignature},
		{"signature of another token", bearer(parts[0] + "." + b64(`{"sub":"root","aud":"api"}`) + "." + parts[2]), auth.ErrSignature},
		{"wrong kid", bearer(mint(map[string]any{"kid": "nope"}, good)), auth.ErrUnknownKey},
		{"non-string kid", bearer(mint(map[string]any{"kid": 7}, good)), auth.ErrMalformed},
		{"EdDSA token for ES256 verifier", bearer(edTok), auth.ErrAlgorithm},
		{"expired", bearer(iss.Token(t, with("exp", now.Add(-time.Minute).Unix()))), auth.ErrExpired},
		{"no exp", bearer(iss.Token(t, with("exp", nil))), auth.ErrMissingClaim},
		{"nbf in the future", bearer(iss.Token(t, with("nbf", now.Add(time.Hour).Unix()))), auth.ErrNotYetValid},
		{"iat in the future", bearer(iss.Token(t, with("iat", now.Add(time.Hour).Unix()))), auth.ErrNotYetValid},
		{"wrong issuer", bearer(iss.Token(t, with("iss", "https://evil.example"))), auth.ErrIssuer},
		{"no issuer", bearer(iss.Token(t, with("iss", nil))), auth.ErrMissingClaim},
		{"wrong audience", bearer(iss.Token(t, with("aud", "other"))), auth.ErrAudience},
		{"no audience", bearer(iss.Token(t, with("aud", nil))), auth.ErrMissingClaim},
		{"no subject", bearer(iss.Token(t, map[string]any{"aud": "api"})), auth.ErrMissingClaim},
		{"roles not strings", bearer(iss.Token(t, with("roles", []any{1, 2}))), auth.ErrMalformed},
		{"duplicated header", http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, auth.ErrAmbiguous},
		{"two tokens in one header", bearer(valid + " " + valid), auth.ErrAmbiguous},
		{"oversized", bearer(parts[0] + "." + strings.Repeat("A", 9<<10) + "." + parts[2]), auth.ErrTooLarge},
		{"too many segments", bearer(valid + ".AAAA"), auth.ErrMalformed},
		{"JWE-like five segments", bearer("a.b.c.d.e"), auth.ErrMalformed},
		{"two segments", bearer(parts[0] + "." + parts[1]), auth.ErrMalformed},
		{"bad base64 header", bearer("*" + parts[0][1:] + "." + parts[1] + "." + parts[2]), auth.ErrMalformed},
		{"bad base64 claims", bearer(parts[0] + "." + parts[1][:5] + "*" + parts[1][6:] + "." + parts[2]), auth.ErrMalformed},
		{"padded base64", bearer(parts[0] + "=." + parts[1] + "." + parts[2]), auth.ErrMalformed},
		{"JSON bomb in header", bearer(b64(`{"alg":"ES256","kid":"key-1","x":`+deep+`}`) + "." + parts[1] + "." + parts[2]), auth.ErrSignature},
		{"JSON bomb in claims", bearer(parts[0] + "." + b64(`{"sub":"a","x":`+deep+`}`) + "." + parts[2]), auth.ErrSignature},
		{"crit header", bearer(mint(map[string]any{"crit": []string{"b64"}, "b64": false}, good)), auth.ErrMalformed},
		{"nbf beyond year 9999", bearer(iss.Token(t, with("nbf", 1e300))), auth.ErrMalformed},
		{"exp beyond year 9999", bearer(iss.Token(t, with("exp", 1e15))), auth.ErrMalformed},
		{"duplicate claim", bearer(signRaw(t, iss, `{"alg":"ES256","kid":"key-1"}`, rawClaims(iss, `"sub":"alice","sub":"admin"`))), auth.ErrMalformed},
		{"duplicate nested claim", bearer(signRaw(t, iss, `{"alg":"ES256","kid":"key-1"}`, rawClaims(iss, `"sub":"alice","r":{"a":1,"a":2}`))), auth.ErrMalformed},
		{"duplicate header", bearer(signRaw(t, iss, `{"alg":"ES256","kid":"key-1","kid":"key-1"}`, rawClaims(iss, `"sub":"alice"`))), auth.ErrMalformed},
		{"header not JSON", bearer(b64(`not json`) + "." + parts[1] + "." + parts[2]), auth.ErrMalformed},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, auth.ErrMalformed},
		{"no credentials", nil, auth.ErrNoCredentials},
		{"basic scheme only", http.Header{"Authorization": {"Basic YWxpY2U6cHc="}}, auth.ErrNoCredentials},
		{"spoofed identity headers only", http.Header{"X-User-Id": {"admin"}, "X-User-Roles": {"admin"}}, auth.ErrNoCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rec.hits.Load()
			w := do(t, h, tc.hdr)
			var cred string
			if a := tc.hdr.Get("Authorization"); len(a) > 7 {
				cred = a[7:]
			}
			expectRejected(t, w, http.StatusUnauthorized, tc.class, cred)
			if rec.hits.Load() != before {
				t.Fatal("request reached the handler")
			}
		})
	}
	// and the valid token still works (the attacks did not poison anything)
	if w := do(t, h, bearer(valid)); w.Code != http.StatusOK {
		t.Fatalf("valid token: %d %s", w.Code, w.Body)
	}
}

// signRaw signs the exact header and claims JSON with the issuer's current key, for documents
// that a JSON encoder would not produce (duplicate member names).
func signRaw(t *testing.T, iss *authtest.Issuer, header, claims string) string {
	t.Helper()
	k := iss.CurrentKey()
	in := b64(header) + "." + b64(claims)
	sig, err := jwtlib.GetSigningMethod(k.Algorithm).Sign(in, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// rawClaims returns a claims object with iss, aud "api" and a valid exp around the given members.
func rawClaims(iss *authtest.Issuer, members string) string {
	return fmt.Sprintf(`{"iss":%q,"aud":"api","exp":%d,%s}`, iss.URL(), time.Now().Add(time.Hour).Unix(), members)
}

// hs256 signs claims with HMAC-SHA256 using secret (as an attacker would with a public key).
func hs256(t *testing.T, secret []byte, claims map[string]any, kid string) string {
	t.Helper()
	tk := jwtlib.NewWithClaims(jwtlib.SigningMethodHS256, jwtlib.MapClaims(claims))
	tk.Header["kid"] = kid
	s, err := tk.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTAlgorithmConfusion: an HS256 token whose HMAC key is the issuer's RSA public key is
// rejected even when the verifier would accept RS256 from that key.
func TestJWTAlgorithmConfusion(t *testing.T) {
	iss := authtest.Start(t, "RS256")
	j := newJWT(t, auth.WithJWKS(iss.JWKSURL()), auth.WithAlgorithms("RS256"), auth.AllowInsecureHTTP())
	rec := &recorder{}
	h := j.Wrap(rec)
	der, err := x509.MarshalPKIXPublicKey(iss.CurrentKey().Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	pemKey := "-----BEGIN PUBLIC KEY-----\n" + base64.StdEncoding.EncodeToString(der) + "\n-----END PUBLIC KEY-----\n"
	claims := map[string]any{"sub": "root", "exp": time.Now().Add(time.Hour).Unix(), "iss": iss.URL()}
	for _, secret := range [][]byte{der, []byte(pemKey)} {
		w := do(t, h, bearer(hs256(t, secret, claims, iss.CurrentKey().ID)))
		expectRejected(t, w, http.StatusUnauthorized, auth.ErrAlgorithm, "")
	}
	if rec.hits.Load() != 0 {
		t.Fatal("confused token reached the handler")
	}
	if w := do(t, h, bearer(iss.Token(t, map[string]any{"sub": "alice"}))); w.Code != http.StatusOK {
		t.Fatalf("RS256 token: %d", w.Code)
	}
}

func TestJWTAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "PS384", "ES256", "ES384", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss := authtest.Start(t, alg)
			jwks, err := iss.JWKS()
			if err != nil {
				t.Fatal(err)
			}
			j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms(alg), auth.WithIssuer(iss.URL()))
			id, err := j.Authenticate(reqWith(bearer(iss.Token(t, map[string]any{"sub": "bob"}))))
			if err != nil || id.Subject != "bob" {
				t.Fatalf("id %+v err %v", id, err)
			}
		})
	}
}

func reqWith(h http.Header) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://gw/x", nil)
	r.Header = h
	return r
}

func TestJWTHMAC(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	j := newJWT(t, auth.WithHMACSecret(secret), auth.WithAlgorithms("HS256"))
	tok := hs256(t, secret, map[string]any{"sub": "svc", "exp": time.Now().Add(time.Minute).Unix()}, "")
	if id, err := j.Authenticate(reqWith(bearer(tok))); err != nil || id.Subject != "svc" {
		t.Fatalf("id %+v err %v", id, err)
	}
	bad := hs256(t, []byte("another-secret-another-secret-xx"), map[string]any{"sub": "svc", "exp": time.Now().Add(time.Minute).Unix()}, "")
	if _, err := j.Authenticate(reqWith(bearer(bad))); !errors.Is(err, auth.ErrSignature) {
		t.Fatalf("err %v", err)
	}
}

func TestJWTCacheNeverOutlivesExp(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	clock := newFakeClock()
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"), auth.WithLeeway(0), auth.WithClock(clock.Now))
	tok := iss.Token(t, map[string]any{"sub": "a", "exp": clock.Now().Add(10 * time.Second).Unix()})
	for range 3 {
		if _, err := j.Authenticate(reqWith(bearer(tok))); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(11 * time.Second)
	if _, err := j.Authenticate(reqWith(bearer(tok))); !errors.Is(err, auth.ErrExpired) {
		t.Fatalf("after exp: %v", err)
	}
}

func TestJWTCookieAndQuery(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"), auth.FromCookie("session"), auth.FromQuery("access_token"))
	tok := iss.Token(t, map[string]any{"sub": "c"})
	r := reqWith(http.Header{"Cookie": {"session=" + tok}})
	if id, err := j.Authenticate(r); err != nil || id.Subject != "c" {
		t.Fatalf("cookie: %v", err)
	}
	r, _ = http.NewRequest(http.MethodGet, "http://gw/x?access_token="+tok, nil)
	if _, err := j.Authenticate(r); err != nil {
		t.Fatalf("query: %v", err)
	}
	r, _ = http.NewRequest(http.MethodGet, "http://gw/x?access_token="+tok, nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	if _, err := j.Authenticate(r); !errors.Is(err, auth.ErrAmbiguous) {
		t.Fatalf("header+query: %v", err)
	}
	r = reqWith(http.Header{"Cookie": {"session=" + tok + "; session=" + tok}})
	if _, err := j.Authenticate(r); !errors.Is(err, auth.ErrAmbiguous) {
		t.Fatalf("two cookies: %v", err)
	}
	// a percent-encoded parameter name is the same parameter: it must count as a second token
	for _, q := range []string{"%61ccess_token=", "access%5Ftoken="} {
		r, _ = http.NewRequest(http.MethodGet, "http://gw/x?"+q+"other", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		if _, err := j.Authenticate(r); !errors.Is(err, auth.ErrAmbiguous) {
			t.Fatalf("header + %s: %v", q, err)
		}
		r, _ = http.NewRequest(http.MethodGet, "http://gw/x?"+q+tok, nil)
		if id, err := j.Authenticate(r); err != nil || id.Subject != "c" {
			t.Fatalf("%s alone: %v", q, err)
		}
	}
}

func TestNewJWTValidation(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	cases := map[string][]auth.Option{
		"no algorithms":        {auth.WithKeySetJSON(jwks)},
		"no key source":        {auth.WithAlgorithms("ES256")},
		"two key sources":      {auth.WithAlgorithms("ES256"), auth.WithKeySetJSON(jwks), auth.WithJWKS("https://idp/jwks")},
		"alg none":             {auth.WithAlgorithms("none"), auth.WithKeySetJSON(jwks)},
		"HS without secret":    {auth.WithAlgorithms("HS256"), auth.WithKeySetJSON(jwks)},
		"HS mixed":             {auth.WithAlgorithms("HS256", "RS256"), auth.WithHMACSecret(make([]byte, 32))},
		"short secret":         {auth.WithAlgorithms("HS256"), auth.WithHMACSecret([]byte("short"))},
		"http JWKS":            {auth.WithAlgorithms("ES256"), auth.WithJWKS("http://idp/jwks")},
		"http issuer":          {auth.WithAlgorithms("ES256"), auth.WithOIDC("http://idp")},
		"negative leeway":      {auth.WithAlgorithms("ES256"), auth.WithKeySetJSON(jwks), auth.WithLeeway(-1)},
		"empty audience":       {auth.WithAlgorithms("ES256"), auth.WithKeySetJSON(jwks), auth.WithAudience("")},
		"API key option":       {auth.WithAlgorithms("ES256"), auth.WithKeySetJSON(jwks), auth.WithAPIKeyHeader("X-Key")},
		"bad JWKS":             {auth.WithAlgorithms("ES256"), auth.WithKeySetJSON([]byte(`{"keys":[]}`))},
		"key alg not allowed":  {auth.WithAlgorithms("ES256"), auth.WithKey("k", "EdDSA", iss.CurrentKey().Signer)},
		"without any source":   {auth.WithAlgorithms("ES256"), auth.WithKeySetJSON(jwks), auth.WithoutBearer()},
		"nil option":           {nil},
		"issuer mismatch OIDC": {auth.WithAlgorithms("ES256"), auth.WithOIDC("https://a"), auth.WithIssuer("https://b")},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			j, err := auth.NewJWT(opts...)
			if err == nil {
				_ = j.Close()
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}
