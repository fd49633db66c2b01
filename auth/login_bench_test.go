package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

// BenchmarkSessionRequest measures a request through Login.Wrap with a valid session cookie (the
// steady state: AES-GCM open of the cookie, decode cache hit, identity and headers) against, in the
// same run, a bare handler and the JWT method with a cached bearer token (RS256).
func BenchmarkSessionRequest(b *testing.B) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	run := func(b *testing.B, h http.Handler, r *http.Request) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	}
	b.Run("baseline-bare", func(b *testing.B) {
		run(b, ok, httptest.NewRequest(http.MethodGet, "/", nil))
	})
	b.Run("baseline-jwt-cached", func(b *testing.B) {
		j, tok := benchJWT(b, "RS256")
		run(b, j.Wrap(ok), reqWith(bearer(tok)))
	})
	// cookie-bcl and cookie-bcl-redis: cookie sessions with back-channel logout, so each request
	// also looks up the revocation records of its sid and sub (in memory; in a local Redis).
	for _, mode := range []string{"cookie", "cookie-bcl", "cookie-bcl-redis", "memory-store"} {
		b.Run("session-"+mode, func(b *testing.B) {
			var opts []auth.LoginOption
			switch mode {
			case "memory-store":
				opts = append(opts, auth.WithSessionStore(auth.MemorySessionStore(nil), 0))
			case "cookie-bcl":
				opts = append(opts, auth.WithBackChannelLogout(nil))
			case "cookie-bcl-redis":
				opts = append(opts, auth.WithBackChannelLogout(redistest.Start(b).Client()))
			}
			g := startGateway(b, opts...)
			c := g.browser(b)
			g.loginBrowser(b, c)
			r := httptest.NewRequest(http.MethodGet, "/app/x", nil)
			for _, ck := range g.cookies(c) {
				r.AddCookie(ck)
			}
			b.Logf("cookie bytes: %d", len(r.Header.Get("Cookie")))
			run(b, g.login.Load().Wrap(ok), r)
		})
	}
}
