package auth_test

import (
	"net/http"
	"testing"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// FuzzJWTAuthenticate: no Authorization header value makes the JWT method panic or accept a
// token the issuer did not sign.
func FuzzJWTAuthenticate(f *testing.F) {
	iss, err := authtest.New("https://idp.example", "ES256")
	if err != nil {
		f.Fatal(err)
	}
	jwks, err := iss.JWKS()
	if err != nil {
		f.Fatal(err)
	}
	j, err := auth.NewJWT(auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"), auth.WithIssuer(iss.URL()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = j.Close() })
	good, err := iss.Mint(map[string]any{"sub": "a"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"Bearer " + good, "Bearer " + good + "x", "bearer a.b.c", "Bearer e30.e30.", "Bearer ....",
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "Basic Zm9v"} {
		f.Add(s)
	}
	for _, typ := range []any{"at+jwt", "application/AT+JWT", "logout+jwt", "", 7, nil} { // typ header seeds
		tok, err := iss.MintWithHeader(map[string]any{"typ": typ}, map[string]any{"sub": "a"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add("Bearer " + tok)
	}
	f.Fuzz(func(t *testing.T, authz string) {
		r, _ := http.NewRequest(http.MethodGet, "http://gw/", nil)
		r.Header.Set("Authorization", authz)
		id, err := j.Authenticate(r)
		if err == nil && (id == nil || id.Subject != "a") {
			t.Fatalf("accepted %q as %+v", authz, id)
		}
	})
}

// FuzzAPIKeyHeader: no X-API-Key value panics or authenticates without a created key.
func FuzzAPIKeyHeader(f *testing.F) {
	keys, err := auth.NewAPIKeys(auth.MemoryKeyStore(), auth.APIKeyFromBearer())
	if err != nil {
		f.Fatal(err)
	}
	f.Add("gk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("", "Bearer gk_x")
	f.Add("x", "Bearer a.b.c")
	f.Fuzz(func(t *testing.T, key, authz string) {
		r, _ := http.NewRequest(http.MethodGet, "http://gw/", nil)
		r.Header.Set("X-API-Key", key)
		r.Header.Set("Authorization", authz)
		if id, err := keys.Authenticate(r); err == nil {
			t.Fatalf("accepted %+v", id)
		}
	})
}
