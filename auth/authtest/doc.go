// Package authtest is an in-process OpenID Connect issuer for tests and demos: it generates signing
// keys (RSA, EC, Ed25519), serves OIDC discovery, a JWK Set and an RFC 7662 introspection
// endpoint, mints JWTs and opaque tokens with chosen claims, and rotates keys. Faults (IdP down,
// slow IdP) can be switched on to test how a gateway behaves.
//
// Serve it with Start (an httptest server bound to the test) or on any listener through its
// ServeHTTP method:
//
//	iss := authtest.Start(t, "ES256")
//	jwt, _ := auth.NewJWT(auth.WithOIDC(iss.URL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP())
//	tok := iss.Token(t, map[string]any{"sub": "alice", "roles": []string{"admin"}})
//
// All methods are safe for concurrent use.
package authtest
