package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// loginAgainst returns a Login for an authtest issuer whose discovery document also names
// authorization and token endpoints.
func loginAgainst(t *testing.T, verifierOpts ...Option) (*Login, *authtest.Issuer) {
	t.Helper()
	var idp *authtest.Issuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == authtest.DiscoveryPath {
			_ = json.NewEncoder(w).Encode(map[string]any{
				"issuer": idp.URL(), "jwks_uri": idp.JWKSURL(),
				"authorization_endpoint": idp.URL() + "/authorize", "token_endpoint": idp.URL() + "/token",
			})
			return
		}
		idp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var err error
	if idp, err = authtest.New(srv.URL, "RS256"); err != nil {
		t.Fatal(err)
	}
	key := sha256.Sum256([]byte("k"))
	l, err := NewLogin(srv.URL, "gateway", "https://gw.example/cb", WithSessionKeys(key[:]),
		LoginVerifierOptions(append([]Option{AllowInsecureHTTP(), WithoutCache()}, verifierOpts...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, idp
}

// errOtherKey stands for "ErrSignature or ErrUnknownKey" (depending on whether the kids collide).
var errOtherKey = errors.New("signed by another key")

func TestVerifyIDToken(t *testing.T) {
	l, idp := loginAgainst(t)
	other, err := authtest.New(idp.URL(), "RS256") // same issuer URL, another key
	if err != nil {
		t.Fatal(err)
	}
	base := func() map[string]any { return map[string]any{"sub": "alice", "aud": "gateway", "nonce": "n1"} }
	with := func(k string, v any) map[string]any { c := base(); c[k] = v; return c }
	tests := []struct {
		name        string
		claims      map[string]any
		header      map[string]any // JOSE header fields for MintWithHeader
		signer      *authtest.Issuer
		nonce, sub  string
		noToken     bool
		want        error // nil means accepted
		wantNoClaim bool
	}{
		{name: "valid", claims: base(), nonce: "n1"},
		{name: "wrong issuer", claims: with("iss", "https://evil.example"), nonce: "n1", want: ErrIssuer},
		{name: "wrong audience", claims: with("aud", "other"), nonce: "n1", want: ErrAudience},
		{name: "several audiences without azp", claims: with("aud", []string{"gateway", "other"}), nonce: "n1", want: ErrAudience},
		{name: "several audiences with azp", claims: func() map[string]any {
			c := with("aud", []string{"gateway", "other"})
			c["azp"] = "gateway"
			return c
		}(), nonce: "n1"},
		{name: "wrong nonce", claims: base(), nonce: "n2", want: errNonce},
		{name: "no nonce", claims: with("nonce", nil), nonce: "n1", want: errNonce},
		{name: "expired", claims: with("exp", time.Now().Add(-time.Hour).Unix()), nonce: "n1", want: ErrExpired},
		{name: "no exp", claims: with("exp", nil), nonce: "n1", want: ErrMissingClaim},
		{name: "other key", claims: base(), signer: other, nonce: "n1", want: errOtherKey},
		{name: "no ID token at login", noToken: true, nonce: "n1", want: ErrMissingClaim},
		{name: "no ID token at refresh", noToken: true, sub: "alice", wantNoClaim: true},
		{name: "subject changed at refresh", claims: with("sub", "mallory"), sub: "alice", want: ErrInvalidCredential},
		{name: "refresh keeps subject", claims: with("nonce", nil), sub: "alice"},
		// ID tokens carry "JWT" or no typ; an access token (at+jwt) or a logout token signed by the
		// same keys is not an ID token.
		{name: "typ absent", claims: base(), header: map[string]any{"typ": nil}, nonce: "n1"},
		{name: "typ jwt", claims: base(), header: map[string]any{"typ": "jwt"}, nonce: "n1"},
		{name: "typ application/JWT", claims: base(), header: map[string]any{"typ": "application/JWT"}, nonce: "n1"},
		{name: "typ at+jwt", claims: base(), header: map[string]any{"typ": "at+jwt"}, nonce: "n1", want: ErrTokenType},
		{name: "typ logout+jwt", claims: base(), header: map[string]any{"typ": "logout+jwt"}, nonce: "n1", want: ErrTokenType},
		{name: "typ number", claims: base(), header: map[string]any{"typ": 1}, nonce: "n1", want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := &oauth2.Token{AccessToken: "at"}
			if !tt.noToken {
				signer := idp
				if tt.signer != nil {
					signer = tt.signer
				}
				raw, err := signer.MintWithHeader(tt.header, tt.claims)
				if err != nil {
					t.Fatal(err)
				}
				tok = tok.WithExtra(map[string]any{"id_token": raw})
			}
			claims, err := l.verifyIDToken(context.Background(), tok, tt.nonce, tt.sub)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("rejected: %v", err)
			case tt.want == errOtherKey && (errors.Is(err, ErrSignature) || errors.Is(err, ErrUnknownKey)):
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("error %v, want %v", err, tt.want)
			case tt.want == nil && !tt.wantNoClaim && claims["sub"] == nil:
				t.Fatalf("claims %v", claims)
			case tt.wantNoClaim && claims != nil:
				t.Fatalf("claims %v without an ID token", claims)
			}
		})
	}
}

// TestVerifyIDTokenAllowedTypes: WithAllowedTypes passed with LoginVerifierOptions replaces the ID
// token's default typ policy.
func TestVerifyIDTokenAllowedTypes(t *testing.T) {
	l, idp := loginAgainst(t, WithAllowedTypes("id_token+jwt"))
	for typ, want := range map[any]error{"id_token+jwt": nil, "JWT": ErrTokenType, nil: ErrTokenType} {
		raw, err := idp.MintWithHeader(map[string]any{"typ": typ}, map[string]any{"sub": "alice", "aud": "gateway", "nonce": "n1"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = l.verifyIDToken(context.Background(), (&oauth2.Token{AccessToken: "at"}).WithExtra(map[string]any{"id_token": raw}), "n1", "")
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("typ %v: %v, want %v", typ, err, want)
		}
	}
}

func TestServeLoginRequest(t *testing.T) {
	l, idp := loginAgainst(t)
	l2, err := NewLogin(idp.URL(), "gateway", "https://gw.example/cb", WithSessionKeys(make([]byte, 32)),
		WithAuthParams(map[string]string{"prompt": "login"}), WithScopes("profile"),
		LoginVerifierOptions(AllowInsecureHTTP()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l2.Close() })
	for _, lg := range []*Login{l, l2} {
		w := httptest.NewRecorder()
		lg.ServeLogin(w, httptest.NewRequest(http.MethodGet, "/auth/login?return_to=//evil", nil))
		resp := w.Result()
		loc, err := resp.Location()
		if err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		q := loc.Query()
		if q.Get("response_type") != "code" || q.Get("client_id") != "gateway" || q.Get("redirect_uri") != "https://gw.example/cb" ||
			q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) != 43 || len(q.Get("nonce")) != 43 {
			t.Fatalf("authorization request: %v", q)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatal("login redirect is cacheable")
		}
		cs := resp.Cookies()
		if len(cs) != 1 {
			t.Fatalf("%d cookies", len(cs))
		}
		c := cs[0]
		if c.Name != "__Host-gk_login_"+q.Get("state")[:16] || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
			c.Path != "/" || c.Domain != "" || c.MaxAge != 600 {
			t.Fatalf("login-state cookie: %+v", c)
		}
		// The state cookie keeps the verifier and nonce sealed: neither is readable in it.
		pt, err := lg.sealer.open(c.Value, adLoginState)
		if err != nil {
			t.Fatal(err)
		}
		var st loginState
		if err := json.Unmarshal(pt, &st); err != nil || st.Return != "/" || st.Nonce != q.Get("nonce") ||
			oauth2.S256ChallengeFromVerifier(st.Verifier) != q.Get("code_challenge") {
			t.Fatalf("login state %+v %v", st, err)
		}
		if lg == l2 && (q.Get("prompt") != "login" || q.Get("scope") != "openid profile") {
			t.Fatalf("auth params / scopes: %v", q)
		}
		if lg == l && q.Get("scope") != "openid offline_access" {
			t.Fatalf("default scopes: %q", q.Get("scope"))
		}
	}
}
