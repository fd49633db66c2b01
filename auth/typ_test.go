package auth_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// absent marks a typ header left out of the token (MintWithHeader removes nil fields).
var absent any

// TestJWTExplicitTyping: the "typ" policy (RFC 8725 section 3.11) for the default and for explicit
// WithAllowedTypes lists, with tokens minted by authtest. nil class means accepted.
func TestJWTExplicitTyping(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	// every case's typ header, minted once and verified by each policy
	typs := []struct {
		name string
		typ  any
	}{
		{"absent", absent},
		{"JWT", "JWT"},
		{"jwt", "jwt"},
		{"application/jwt", "application/jwt"},
		{"at+jwt", "at+jwt"},
		{"application/at+JWT", "application/at+JWT"},
		{"AT+JWT", "AT+JWT"},
		{"logout+jwt", "logout+jwt"},
		{"secevent+jwt", "secevent+jwt"},
		{"dpop+jwt", "dpop+jwt"},
		{"token-introspection+jwt", "token-introspection+jwt"},
		{"JOSE", "JOSE"},
		{"text/at+jwt", "text/at+jwt"},   // another top-level type, not application/
		{"application/", "application/"}, // no subtype
		{"at+jwt with parameter", "application/at+jwt; charset=utf-8"},
		{"number", 7},
		{"null", nil}, // present, JSON null (signRaw below)
		{"array", []string{"JWT"}},
		{"empty string", ""},
		// Media types compare case-insensitively in ASCII only: strings.EqualFold would take the
		// Kelvin sign U+212A for "k" and the long s U+017F for "s".
		{"kb+jwt", "kb+jwt"},
		{"Kelvin-sign kb+jwt", "\u212Ab+jwt"},
		{"long-s secevent+jwt", "\u017Fecevent+jwt"},
	}
	accepted := func(names ...string) map[string]error {
		m := map[string]error{}
		for _, tc := range typs {
			switch tc.typ.(type) {
			case string:
				m[tc.name] = auth.ErrTokenType
			default:
				m[tc.name] = auth.ErrMalformed // a typ that is not a string
			}
		}
		m["absent"] = auth.ErrTokenType
		for _, n := range names {
			m[n] = nil
		}
		return m
	}
	policies := []struct {
		name string
		opts []auth.Option
		want map[string]error
	}{
		{"default", nil,
			accepted("absent", "JWT", "jwt", "application/jwt", "at+jwt", "application/at+JWT", "AT+JWT")},
		{"at+jwt required", []auth.Option{auth.WithAllowedTypes("at+jwt")},
			accepted("at+jwt", "application/at+JWT", "AT+JWT")},
		{"application/at+jwt or none", []auth.Option{auth.WithAllowedTypes("application/AT+JWT", auth.NoType)},
			accepted("absent", "at+jwt", "application/at+JWT", "AT+JWT")},
		{"JOSE added", []auth.Option{auth.WithAllowedTypes(auth.NoType, "JWT", "at+jwt", "JOSE")},
			accepted("absent", "JWT", "jwt", "application/jwt", "at+jwt", "application/at+JWT", "AT+JWT", "JOSE")},
		{"text/at+jwt", []auth.Option{auth.WithAllowedTypes("text/AT+JWT")},
			accepted("text/at+jwt")},
		{"kb+jwt, secevent+jwt", []auth.Option{auth.WithAllowedTypes("KB+JWT", "secevent+jwt")},
			accepted("kb+jwt", "secevent+jwt")},
	}
	toks := map[string]string{}
	for _, tc := range typs {
		if tc.name == "null" {
			toks[tc.name] = signRaw(t, iss, `{"alg":"ES256","kid":"key-1","typ":null}`,
				`{"iss":"`+iss.URL()+`","aud":"api","sub":"alice","exp":`+jsonInt(time.Now().Add(time.Hour).Unix())+`}`)
			continue
		}
		tok, err := iss.MintWithHeader(map[string]any{"typ": tc.typ}, map[string]any{"sub": "alice", "aud": "api"})
		if err != nil {
			t.Fatal(err)
		}
		toks[tc.name] = tok
	}
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			j := newJWT(t, append([]auth.Option{auth.WithOIDC(iss.URL()), auth.WithAudience("api"),
				auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP()}, p.opts...)...)
			rec := &recorder{}
			h := j.Wrap(rec)
			for _, tc := range typs {
				want := p.want[tc.name]
				// twice: the second request of an accepted token is a cache hit, a rejected one is
				// rejected again (rejections are not cached)
				for range 2 {
					before := rec.hits.Load()
					w := do(t, h, bearer(toks[tc.name]))
					if want == nil {
						if w.Code != http.StatusOK || rec.hits.Load() != before+1 {
							t.Fatalf("typ %s: status %d %s, want accepted", tc.name, w.Code, w.Body)
						}
						continue
					}
					expectRejected(t, w, http.StatusUnauthorized, want, toks[tc.name])
					if rec.hits.Load() != before {
						t.Fatalf("typ %s reached the handler", tc.name)
					}
				}
			}
		})
	}
}

func jsonInt(n int64) string { return strconv.FormatInt(n, 10) }

// TestJWTTypeCheckedBeforeKeyLookup: a JWT of another kind with an unknown kid is rejected for its
// type without triggering a JWKS refresh, and the check also applies to HMAC verifiers.
func TestJWTTypeCheckedBeforeKeyLookup(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	j := newJWT(t, auth.WithOIDC(iss.URL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP(),
		auth.WithUnknownKIDCooldown(time.Nanosecond))
	fetches := iss.JWKSFetches()
	tok, err := iss.MintWithHeader(map[string]any{"typ": "logout+jwt", "kid": "unknown"}, map[string]any{"sub": "a"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		expectRejected(t, do(t, j.Wrap(&recorder{}), bearer(tok)), http.StatusUnauthorized, auth.ErrTokenType, tok)
	}
	if n := iss.JWKSFetches() - fetches; n != 0 {
		t.Fatalf("%d JWKS fetches for a token of the wrong type", n)
	}

	secret := []byte("0123456789abcdef0123456789abcdef")
	hj := newJWT(t, auth.WithHMACSecret(secret), auth.WithAlgorithms("HS256"), auth.WithAllowedTypes("at+jwt"))
	claims := jwtlib.MapClaims{"sub": "svc", "exp": time.Now().Add(time.Minute).Unix()}
	for typ, want := range map[any]error{"JWT": auth.ErrTokenType, "application/at+jwt": nil} {
		tk := jwtlib.NewWithClaims(jwtlib.SigningMethodHS256, claims)
		tk.Header["typ"] = typ
		s, err := tk.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		_, err = hj.Authenticate(reqWith(bearer(s)))
		if (want == nil) != (err == nil) || want != nil && !errors.Is(err, want) {
			t.Errorf("HS256 typ %v: %v, want %v", typ, err, want)
		}
	}
}

func TestWithAllowedTypesValidation(t *testing.T) {
	base := []auth.Option{auth.WithHMACSecret(make([]byte, 32)), auth.WithAlgorithms("HS256")}
	for name, types := range map[string][]string{
		"none":            nil,
		"space":           {"at jwt"},
		"two slashes":     {"application/at+jwt/x"},
		"no subtype":      {"application/"},
		"no type":         {"/jwt"},
		"parameter":       {"at+jwt;q=1"},
		"non-ASCII":       {"jwt\u00e9"},
		"one bad of many": {"JWT", "a b"},
	} {
		if j, err := auth.NewJWT(append(base, auth.WithAllowedTypes(types...))...); err == nil {
			_ = j.Close()
			t.Errorf("%s: WithAllowedTypes(%q) accepted", name, types)
		}
	}
	for _, types := range [][]string{{auth.NoType}, {"JWT"}, {"application/at+jwt", "at+jwt"}, {"text/plain"}} {
		j, err := auth.NewJWT(append(base, auth.WithAllowedTypes(types...))...)
		if err != nil {
			t.Errorf("WithAllowedTypes(%q): %v", types, err)
			continue
		}
		_ = j.Close()
	}
	if in, err := auth.NewIntrospection("https://idp/introspect", auth.WithClientCredentials("a", "b"),
		auth.WithAllowedTypes("at+jwt")); err == nil {
		_ = in.Close()
		t.Error("WithAllowedTypes accepted by NewIntrospection")
	}
	if j, err := auth.NewJWT(append(base, auth.WithAllowedTokenTypes("Bearer"))...); err == nil {
		_ = j.Close()
		t.Error("WithAllowedTokenTypes accepted by NewJWT")
	}
}
