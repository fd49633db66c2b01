package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

var benchAlgs = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

func benchJWT(b *testing.B, alg string, opts ...auth.Option) (*auth.JWT, string) {
	iss, err := authtest.New("https://idp.example", alg)
	if err != nil {
		b.Fatal(err)
	}
	jwks, err := iss.JWKS()
	if err != nil {
		b.Fatal(err)
	}
	j, err := auth.NewJWT(append([]auth.Option{auth.WithKeySetJSON(jwks), auth.WithAlgorithms(alg),
		auth.WithIssuer(iss.URL()), auth.WithAudience("api")}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = j.Close() })
	tok, err := iss.Mint(map[string]any{"sub": "alice", "aud": "api", "roles": []string{"admin"}, "scope": "a b", "tier": "free"})
	if err != nil {
		b.Fatal(err)
	}
	return j, tok
}

// BenchmarkJWTVerify compares a full verification (signature check: WithoutCache) with a cache hit.
func BenchmarkJWTVerify(b *testing.B) {
	for _, alg := range benchAlgs {
		for _, mode := range []string{"uncached", "cached"} {
			b.Run(alg+"/"+mode, func(b *testing.B) {
				var opts []auth.Option
				if mode == "uncached" {
					opts = append(opts, auth.WithoutCache())
				}
				j, tok := benchJWT(b, alg, opts...)
				r := reqWith(bearer(tok))
				if _, err := j.Authenticate(r); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := j.Authenticate(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkJWTMiddleware is the whole middleware (header hygiene, cached verification, identity in
// the context, upstream headers) on a cached token, against a bare handler as the baseline.
func BenchmarkJWTMiddleware(b *testing.B) {
	j, tok := benchJWT(b, "ES256")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for name, h := range map[string]http.Handler{"baseline": ok, "jwt-cached": j.Wrap(ok)} {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/api/orders", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

func BenchmarkAPIKeyMemory(b *testing.B) {
	keys, err := auth.NewAPIKeys(auth.MemoryKeyStore())
	if err != nil {
		b.Fatal(err)
	}
	for range 10_000 { // a realistically filled store
		if _, _, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "x"}); err != nil {
			b.Fatal(err)
		}
	}
	benchAPIKey(b, keys)
}

// BenchmarkAPIKeyRedis is one GET round trip to a local redis-server per request.
func BenchmarkAPIKeyRedis(b *testing.B) {
	keys, err := auth.NewAPIKeys(auth.RedisKeyStore(redistest.Start(b).Client()))
	if err != nil {
		b.Fatal(err)
	}
	benchAPIKey(b, keys)
}

func benchAPIKey(b *testing.B, keys *auth.APIKeys) {
	key, _, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "svc", Tier: "premium", Roles: []string{"partner"}})
	if err != nil {
		b.Fatal(err)
	}
	r := reqWith(keyHeader(key))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIntrospectionCached is a repeated opaque token answered from the positive cache (no
// call to the endpoint), with issuer and audience configured.
func BenchmarkIntrospectionCached(b *testing.B) {
	iss := authtest.Start(b, "ES256")
	in, err := auth.NewIntrospection(iss.IntrospectionURL(), auth.AllowInsecureHTTP(),
		auth.WithClientCredentials("client", "secret"), auth.WithIssuer(iss.URL()), auth.WithAudience("api"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = in.Close() })
	r := reqWith(bearer(iss.MintOpaque(map[string]any{"sub": "alice", "aud": "api", "roles": []string{"admin"}})))
	if _, err := in.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
