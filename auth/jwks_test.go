package auth_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

// fakeClock is a manually advanced clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func oidcJWT(t *testing.T, iss *authtest.Issuer, clock *fakeClock, opts ...auth.Option) *auth.JWT {
	t.Helper()
	base := []auth.Option{auth.WithOIDC(iss.URL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP(),
		auth.WithUnknownKIDCooldown(30 * time.Second)}
	if clock != nil {
		base = append(base, auth.WithClock(clock.Now))
	}
	return newJWT(t, append(base, opts...)...)
}

func authn(a auth.Authenticator, tok string) error {
	_, err := a.Authenticate(reqWith(bearer(tok)))
	return err
}

func TestJWKSRotation(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	clock := newFakeClock()
	j := oidcJWT(t, iss, clock)
	tok1 := iss.Token(t, map[string]any{"sub": "a", "exp": clock.Now().Add(time.Hour).Unix()})
	if err := authn(j, tok1); err != nil {
		t.Fatal(err)
	}
	// New key added: tokens signed with it are accepted after one refresh.
	if _, err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	tok2 := iss.Token(t, map[string]any{"sub": "b", "exp": clock.Now().Add(time.Hour).Unix()})
	clock.Advance(31 * time.Second)
	if err := authn(j, tok2); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if err := authn(j, tok1); err != nil {
		t.Fatalf("old key still published: %v", err)
	}
	// Old key removed: after the next refresh, its tokens (even cached ones) are rejected.
	iss.RemoveKey("key-1")
	if _, err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	tok3 := iss.Token(t, map[string]any{"sub": "c", "exp": clock.Now().Add(time.Hour).Unix()})
	clock.Advance(31 * time.Second)
	if err := authn(j, tok3); err != nil {
		t.Fatalf("token of the third key: %v", err)
	}
	if err := authn(j, tok1); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("token of the removed key: %v", err)
	}
	if err := authn(j, tok2); err != nil {
		t.Fatalf("key-2 still published: %v", err)
	}
}

// TestJWKSUnknownKIDStorm: 1000 concurrent requests with an unknown kid cause one fetch; when the
// kid is a new key all of them succeed, when it is bogus all fail and no further fetch happens
// within the cooldown.
func TestJWKSUnknownKIDStorm(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	clock := newFakeClock()
	j := oidcJWT(t, iss, clock)
	if _, err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	tok := iss.Token(t, map[string]any{"sub": "a"})
	bogus, err := iss.MintWithHeader(map[string]any{"kid": "bogus"}, map[string]any{"sub": "a"})
	if err != nil {
		t.Fatal(err)
	}
	iss.SetDelay(100 * time.Millisecond) // keep the fetch in flight while the storm arrives
	clock.Advance(31 * time.Second)
	storm := func(tok string) (ok, failed int) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		start := make(chan struct{})
		for range 1000 {
			wg.Go(func() {
				<-start
				err := authn(j, tok)
				mu.Lock()
				if err == nil {
					ok++
				} else {
					failed++
				}
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		return ok, failed
	}
	before := iss.JWKSFetches()
	if ok, failed := storm(tok); ok != 1000 || failed != 0 {
		t.Fatalf("new kid: %d ok, %d failed", ok, failed)
	}
	if n := iss.JWKSFetches() - before; n != 1 {
		t.Fatalf("new kid storm caused %d fetches, want 1", n)
	}
	before = iss.JWKSFetches()
	if ok, _ := storm(bogus); ok != 0 {
		t.Fatalf("bogus kid accepted %d times", ok)
	}
	if n := iss.JWKSFetches() - before; n != 0 {
		t.Fatalf("bogus kid within the cooldown caused %d fetches, want 0", n)
	}
	clock.Advance(31 * time.Second)
	before = iss.JWKSFetches()
	if ok, _ := storm(bogus); ok != 0 {
		t.Fatalf("bogus kid accepted %d times", ok)
	}
	if n := iss.JWKSFetches() - before; n != 1 {
		t.Fatalf("bogus kid after the cooldown caused %d fetches, want 1", n)
	}
}

func TestJWKSIdPDownKeepsLastGoodKeys(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	clock := newFakeClock()
	j := oidcJWT(t, iss, clock, auth.WithoutCache())
	tok := iss.Token(t, map[string]any{"sub": "a"})
	if err := authn(j, tok); err != nil {
		t.Fatal(err)
	}
	iss.SetDown(true)
	unknown, _ := iss.MintWithHeader(map[string]any{"kid": "new"}, map[string]any{"sub": "a"})
	clock.Advance(31 * time.Second)
	before := iss.JWKSFetches()
	if err := authn(j, unknown); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("unknown kid while down: %v", err)
	}
	if iss.JWKSFetches() != before {
		t.Fatal("the down IdP served a JWKS")
	}
	for range 3 {
		if err := authn(j, tok); err != nil {
			t.Fatalf("known key while the IdP is down: %v", err)
		}
	}
}

func TestJWKSSlowIdPTimesOut(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	clock := newFakeClock()
	j := oidcJWT(t, iss, clock, auth.WithFetchTimeout(200*time.Millisecond))
	tok := iss.Token(t, map[string]any{"sub": "a"})
	iss.SetDelay(30 * time.Second)
	if _, err := iss.Rotate(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second)
	done := make(chan error, 1)
	go func() { done <- authn(j, iss.Token(t, map[string]any{"sub": "b"})) }()
	select {
	case err := <-done:
		if !errors.Is(err, auth.ErrUnknownKey) {
			t.Fatalf("new kid from a slow IdP: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("request hung on a slow IdP")
	}
	iss.SetDelay(0)
	if err := authn(j, tok); err != nil {
		t.Fatalf("known key: %v", err)
	}
}

func TestJWKSIdPDownAtStartRecovers(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	iss.SetDown(true)
	j := newJWT(t, auth.WithOIDC(iss.URL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP(),
		auth.WithUnknownKIDCooldown(50*time.Millisecond))
	tok := iss.Token(t, map[string]any{"sub": "a"})
	if err := authn(j, tok); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("before keys: %v", err)
	}
	iss.SetDown(false)
	deadline := time.Now().Add(15 * time.Second)
	for authn(j, tok) != nil {
		if time.Now().After(deadline) {
			t.Fatal("keys never arrived after the IdP came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJWKSHonoursMaxAge(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	iss.SetCacheControl("public, max-age=1")
	_ = newJWT(t, auth.WithJWKS(iss.JWKSURL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP(),
		auth.WithUnknownKIDCooldown(100*time.Millisecond), auth.WithJWKSRefreshInterval(time.Hour))
	deadline := time.Now().Add(20 * time.Second)
	for iss.JWKSFetches() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches: max-age=1 not honoured (interval is 1h)", iss.JWKSFetches())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOIDCDiscoveryIssuerMismatch(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	j := newJWT(t, auth.WithOIDC(iss.URL()+"/"), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP())
	if err := authn(j, iss.Token(t, map[string]any{"sub": "a", "iss": iss.URL() + "/"})); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("keys from a discovery document naming another issuer: %v", err)
	}
	if iss.JWKSFetches() != 0 {
		t.Fatal("JWKS fetched despite the issuer mismatch")
	}
}

func TestJWKSRejectsNonHTTPS(t *testing.T) {
	for _, o := range []auth.Option{auth.WithJWKS("http://idp.example/jwks"), auth.WithOIDC("http://idp.example")} {
		if j, err := auth.NewJWT(o, auth.WithAlgorithms("ES256")); err == nil {
			_ = j.Close()
			t.Fatal("plain http accepted without AllowInsecureHTTP")
		}
	}
}

// TestJWKSOverHTTPS: with https (no AllowInsecureHTTP) discovery and JWKS work, and a discovery
// document pointing at a plain-http jwks_uri is refused.
func TestJWKSOverHTTPS(t *testing.T) {
	for _, downgrade := range []bool{false, true} {
		var issuer atomic.Pointer[authtest.Issuer] // set once the server's URL is known
		var jwksHits atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			iss := issuer.Load()
			if r.URL.Path == authtest.DiscoveryPath && downgrade {
				jwksURI := strings.Replace(iss.JWKSURL(), "https://", "http://", 1)
				_, _ = w.Write([]byte(`{"issuer":"` + iss.URL() + `","jwks_uri":"` + jwksURI + `"}`))
				return
			}
			if r.URL.Path == authtest.JWKSPath {
				jwksHits.Add(1)
			}
			iss.ServeHTTP(w, r)
		}))
		srv.StartTLS()
		t.Cleanup(srv.Close)
		iss, err := authtest.New(srv.URL, "ES256")
		if err != nil {
			t.Fatal(err)
		}
		issuer.Store(iss)
		j := newJWT(t, auth.WithOIDC(iss.URL()), auth.WithAlgorithms("ES256"), auth.WithHTTPClient(srv.Client()))
		err = authn(j, iss.Token(t, map[string]any{"sub": "a"}))
		if downgrade {
			if !errors.Is(err, auth.ErrUnknownKey) || jwksHits.Load() != 0 {
				t.Fatalf("http jwks_uri: err %v, %d fetches", err, jwksHits.Load())
			}
		} else if err != nil {
			t.Fatalf("https IdP: %v", err)
		}
	}
}

// TestJWKSRedirectToHTTPRefusedWithOwnClient: a client given with WithHTTPClient still may not
// follow an https JWKS URL's redirect to plain http (without AllowInsecureHTTP), while its own
// redirect policy keeps applying to https redirects.
func TestJWKSRedirectToHTTPRefusedWithOwnClient(t *testing.T) {
	plain := authtest.Start(t, "ES256") // http only
	for _, target := range []string{"http", "https"} {
		t.Run(target, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/moved" && target == "http":
					http.Redirect(w, r, plain.JWKSURL(), http.StatusFound)
				case r.URL.Path == "/moved":
					http.Redirect(w, r, srv.URL+"/keys", http.StatusFound)
				default:
					doc, _ := plain.JWKS()
					_, _ = w.Write(doc)
				}
			}))
			t.Cleanup(srv.Close)
			hc := srv.Client()
			var redirects atomic.Int64
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { redirects.Add(1); return nil }
			before := plain.JWKSFetches()
			j := newJWT(t, auth.WithJWKS(srv.URL+"/moved"), auth.WithAlgorithms("ES256"), auth.WithHTTPClient(hc))
			err := authn(j, plain.Token(t, map[string]any{"sub": "a"}))
			if target == "http" {
				if !errors.Is(err, auth.ErrUnknownKey) || plain.JWKSFetches() != before {
					t.Fatalf("redirect to http: err %v, %d plain fetches", err, plain.JWKSFetches()-before)
				}
				return
			}
			if err != nil || redirects.Load() == 0 {
				t.Fatalf("https redirect: err %v, own CheckRedirect called %d times", err, redirects.Load())
			}
		})
	}
}

// TestJWKSKeyOpsMustAllowVerify: a JWK whose key_ops does not include "verify" (RFC 7517 4.3) is
// not a verification key, even without "use".
func TestJWKSKeyOpsMustAllowVerify(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	doc, err := iss.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	withOps := func(ops ...string) []byte {
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(doc, &set); err != nil {
			t.Fatal(err)
		}
		for _, k := range set.Keys {
			delete(k, "use")
			k["key_ops"] = ops
		}
		b, err := json.Marshal(set)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if j, err := auth.NewJWT(auth.WithKeySetJSON(withOps("encrypt", "wrapKey")), auth.WithAlgorithms("ES256")); err == nil {
		_ = j.Close()
		t.Fatal("a key whose key_ops excludes verify was accepted as a verification key")
	}
	j := newJWT(t, auth.WithKeySetJSON(withOps("verify")), auth.WithAlgorithms("ES256"))
	if err := authn(j, iss.Token(t, map[string]any{"sub": "a"})); err != nil {
		t.Fatalf("key_ops [verify]: %v", err)
	}
}
