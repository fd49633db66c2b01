package authtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, u string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestIssuerEndpointsAndRotation(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "ES512", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			iss := authtest.Start(t, alg)
			code, disc := get(t, iss.URL()+authtest.DiscoveryPath)
			if code != 200 || disc["issuer"] != iss.URL() || disc["jwks_uri"] != iss.JWKSURL() {
				t.Fatalf("discovery %d %v", code, disc)
			}
			_, jwks := get(t, iss.JWKSURL())
			if n := len(jwks["keys"].([]any)); n != 1 {
				t.Fatalf("%d keys", n)
			}
			if strings.Contains(mustJSON(jwks), `"d"`) {
				t.Fatal("private key material in the JWKS")
			}
			old := iss.CurrentKey()
			k2, err := iss.Rotate()
			if err != nil {
				t.Fatal(err)
			}
			tok := iss.Token(t, map[string]any{"sub": "a"})
			parsed, err := jwtlib.Parse(tok, func(*jwtlib.Token) (any, error) { return k2.Signer.Public(), nil })
			if err != nil || parsed.Header["kid"] != k2.ID || parsed.Header["alg"] != alg {
				t.Fatalf("minted token: %v %v", err, parsed.Header)
			}
			if !iss.RemoveKey(old.ID) || iss.RemoveKey(old.ID) {
				t.Fatal("RemoveKey")
			}
			_, jwks = get(t, iss.JWKSURL())
			if n := len(jwks["keys"].([]any)); n != 1 || iss.JWKSFetches() != 2 {
				t.Fatalf("%d keys after removal, %d fetches", n, iss.JWKSFetches())
			}
		})
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestIssuerFaultsAndIntrospection(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	iss.SetDown(true)
	if code, _ := get(t, iss.JWKSURL()); code != http.StatusServiceUnavailable {
		t.Fatalf("down: %d", code)
	}
	iss.SetDown(false)
	tok := iss.MintOpaque(map[string]any{"sub": "alice"})
	post := func(user, pass, token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, iss.IntrospectionURL(), strings.NewReader(url.Values{"token": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := post("client", "secret", tok); code != 200 || m["active"] != true || m["sub"] != "alice" {
		t.Fatalf("active: %d %v", code, m)
	}
	if code, _ := post("client", "wrong", tok); code != http.StatusUnauthorized {
		t.Fatalf("bad client: %d", code)
	}
	iss.RevokeOpaque(tok)
	if _, m := post("client", "secret", tok); m["active"] != false {
		t.Fatalf("revoked: %v", m)
	}
}

func TestTokenEndpoint(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	if code, _ := get(t, iss.URL()+authtest.TokenPath+"?sub=a"); code != http.StatusNotFound {
		t.Fatalf("token endpoint served without EnableTokenEndpoint: %d", code)
	}
	iss.EnableTokenEndpoint()
	if code, _ := get(t, iss.URL()+authtest.TokenPath); code != http.StatusBadRequest {
		t.Fatalf("no sub: %d", code)
	}
	code, m := get(t, iss.URL()+authtest.TokenPath+"?sub=alice&roles=admin,ops&aud=api&ttl=60")
	if code != 200 || m["token_type"] != "Bearer" {
		t.Fatalf("%d %v", code, m)
	}
	claims := jwtlib.MapClaims{}
	_, err := jwtlib.ParseWithClaims(m["access_token"].(string), claims, func(*jwtlib.Token) (any, error) {
		return iss.CurrentKey().Signer.Public(), nil
	})
	if err != nil || claims["sub"] != "alice" || claims["aud"] != "api" || len(claims["roles"].([]any)) != 2 {
		t.Fatalf("claims %v err %v", claims, err)
	}
}
