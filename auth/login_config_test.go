package auth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

func TestNewLoginValidates(t *testing.T) {
	key := auth.WithSessionKeys(testKey("k"))
	insecure := auth.LoginVerifierOptions(auth.AllowInsecureHTTP())
	tests := []struct {
		name                       string
		issuer, clientID, redirect string
		opts                       []auth.LoginOption
		want                       string
	}{
		{"no client", "https://idp", "", "https://gw/cb", []auth.LoginOption{key}, "empty client ID"},
		{"no keys", "https://idp", "c", "https://gw/cb", nil, "WithSessionKeys is required"},
		{"short key", "https://idp", "c", "https://gw/cb", []auth.LoginOption{auth.WithSessionKeys(make([]byte, 16))}, "16 bytes"},
		{"same key twice", "https://idp", "c", "https://gw/cb", []auth.LoginOption{auth.WithSessionKeys(testKey("a"), testKey("a"))}, "twice"},
		{"http issuer", "http://idp", "c", "https://gw/cb", []auth.LoginOption{key}, "not https"},
		{"http redirect", "https://idp", "c", "http://gw/cb", []auth.LoginOption{key}, "not https"},
		{"key source", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.LoginVerifierOptions(auth.WithJWKS("https://idp/jwks"))}, "key source"},
		{"audience", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.LoginVerifierOptions(auth.WithAudience("other"))}, "WithAudience"},
		{"optional", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.LoginVerifierOptions(auth.Optional())}, "Optional"},
		{"foreign option", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.LoginVerifierOptions(auth.WithAPIKeyHeader("X-K"))}, "does not apply"},
		{"host cookie insecure", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.InsecureCookies()}, "__Host-"},
		{"cookie name", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithSessionCookie("a b")}, "invalid cookie name"},
		{"login path", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithLoginPath("//evil")}, "invalid path"},
		{"origin", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithReturnOrigins("https://app/x")}, "not scheme://host"},
		{"reserved param", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithAuthParams(map[string]string{"nonce": "x"})}, "cannot be set"},
		{"scope", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithScopes("a b")}, "invalid scope"},
		{"chunks", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithMaxCookieChunks(0)}, "out of range"},
		{"lifetime", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithSessionLifetime(time.Second)}, "out of range"},
		{"refresh before", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithRefreshBefore(-time.Second)}, "out of range"},
		{"login timeout", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithLoginTimeout(time.Second)}, "out of range"},
		{"nil store", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithSessionStore(nil, 0)}, "nil store"},
		{"post logout", "https://idp", "c", "https://gw/cb", []auth.LoginOption{key, auth.WithPostLogoutRedirect("/x")}, "invalid URL"},
		{"nil option", "http://idp", "c", "http://gw/cb", []auth.LoginOption{key, insecure, nil}, "nil option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := auth.NewLogin(tt.issuer, tt.clientID, tt.redirect, tt.opts...)
			if err == nil {
				_ = l.Close()
				t.Fatal("accepted")
			}
			if !strings.HasPrefix(err.Error(), "auth: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoginProviderOutageAtRefresh(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	g.op.tokenDown.Store(true)
	// Due but still valid: the old token keeps serving while the provider is down.
	g.clock.Advance(4*time.Minute + 30*time.Second)
	if status, _, body := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("due token, provider down: %d %q", status, body)
	}
	// Expired: 503, and the session is kept for when the provider is back.
	g.clock.Advance(time.Minute)
	status, _, body := get(t, c, g.srv.URL+"/api/x", false)
	if status != http.StatusServiceUnavailable || strings.Contains(body, "down") {
		t.Fatalf("expired token, provider down: %d %q", status, body)
	}
	g.op.tokenDown.Store(false)
	// Within the 5 s back-off the provider is not asked again ...
	g.clock.Advance(time.Second)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusServiceUnavailable {
		t.Fatalf("within the back-off: %d", status)
	}
	if got := g.op.grantCount("refresh_token"); got != 0 {
		t.Fatalf("refresh calls within the back-off: %d", got)
	}
	// ... after it, the refresh succeeds.
	g.clock.Advance(5 * time.Second)
	if status, _, body := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("provider back: %d %q", status, body)
	}
	if got := g.op.grantCount("refresh_token"); got != 1 {
		t.Fatalf("successful refreshes: %d, want 1", got)
	}
}

func TestLoginRedisDownFailsClosed(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	g := startGateway(t, auth.WithSessionStore(auth.RedisSessionStore(rdb), 200*time.Millisecond))
	c := g.browser(t)
	g.loginBrowser(t, c)
	srv.Kill()
	status, _, body := get(t, c, g.srv.URL+"/app/x", true)
	if status != http.StatusServiceUnavailable || strings.Contains(body, "redis") || strings.Contains(body, "dial") {
		t.Fatalf("store down: %d %q", status, body)
	}
	// A new login cannot create its session either: 503, not a session-less success.
	c2 := g.browser(t)
	cb := g.startCallback(t, c2, "/app/x")
	if status, _, _ := get(t, c2, cb.String(), true); status != http.StatusServiceUnavailable {
		t.Fatalf("callback with store down: %d", status)
	}
}

func TestLoginAsAuthenticator(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	l := g.login.Load()
	jwtMethod := newJWTForIssuer(t, g.op.issuer)
	gate, err := auth.NewMiddleware(auth.First(jwtMethod, l))
	if err != nil {
		t.Fatal(err)
	}
	var got *gatewaykit.Identity
	h := gate.Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, _ = gatewaykit.IdentityFrom(r.Context()) }))
	r, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
	for _, ck := range g.cookies(c) {
		r.AddCookie(ck)
	}
	w := &statusRecorder{}
	h.ServeHTTP(w, r)
	if w.status != 0 || got == nil || got.Subject != testSubject || got.Method != "session" {
		t.Fatalf("First(jwt, login): status %d, identity %+v", w.status, got)
	}
}

func newJWTForIssuer(t *testing.T, issuer string) *auth.JWT {
	t.Helper()
	j, err := auth.NewJWT(auth.WithOIDC(issuer), auth.WithAlgorithms("RS256"), auth.AllowInsecureHTTP())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

type statusRecorder struct {
	status int
	h      http.Header
}

func (s *statusRecorder) Header() http.Header {
	if s.h == nil {
		s.h = http.Header{}
	}
	return s.h
}
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(code int)        { s.status = code }

// Two gateway instances sharing a Redis session store: a refresh done by one is used by the other,
// which does not refresh again (with rotating refresh tokens a second refresh would be refused and
// log the user out).
func TestLoginStoreSharedBetweenInstances(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	store := auth.RedisSessionStore(rdb)
	g := startGateway(t, auth.WithSessionStore(store, 0))
	c := g.browser(t)
	g.loginBrowser(t, c)
	b := g.newLogin(t, auth.WithSessionStore(store, 0)) // the second instance

	g.clock.Advance(4*time.Minute + 30*time.Second)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("instance A: %d", status)
	}
	tokA, _ := g.upstreamAuth.Load().(string)
	g.login.Store(b)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("instance B: %d", status)
	}
	tokB, _ := g.upstreamAuth.Load().(string)
	if got := g.op.grantCount("refresh_token"); got != 1 {
		t.Fatalf("refreshes across two instances: %d, want 1", got)
	}
	if tokA == "" || tokA != tokB {
		t.Fatal("instance B did not forward the token refreshed by instance A")
	}
}

// Two gateway instances with cookie sessions: a request that reaches instance B with the cookie
// from before instance A refreshed (and rotated the refresh token) must not log the user out.
func TestLoginCookieSessionTwoInstancesRace(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	old := g.cookies(c)
	b := g.newLogin(t) // the second instance, same keys

	g.clock.Advance(4*time.Minute + 30*time.Second)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK { // A refreshes
		t.Fatalf("instance A: %d", status)
	}
	g.login.Store(b)
	late := g.browser(t) // the old cookie, as in a request that was in flight
	for _, ck := range old {
		ck.Secure, ck.Path = true, "/"
	}
	g.setCookies(late, old)
	if status, _, body := get(t, late, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("instance B with the pre-refresh cookie: %d %q", status, body)
	}
	if len(g.cookies(late)) == 0 {
		t.Fatal("instance B cleared the session cookie")
	}
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("instance B with the refreshed cookie: %d", status)
	}
	if got := g.op.grantCount("refresh_token"); got != 2 {
		t.Fatalf("refresh calls: %d, want 2 (A's, and B's refused one)", got)
	}
}

func TestLoginTimeout(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	cb := g.startCallback(t, c, "/app/x")
	g.clock.Advance(10*time.Minute + time.Second)
	status, _, body := get(t, c, cb.String(), true)
	if status != http.StatusUnauthorized || !strings.Contains(body, "login expired") {
		t.Fatalf("late callback: %d %q", status, body)
	}
}

func TestSessionTokenTransportAndForwarding(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	var seen []string
	upstream := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = append(seen, r.Header.Get("Authorization")) })
	rt := auth.SessionTokenTransport(roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		upstream.ServeHTTP(nil, r)
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}))
	call := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://orders.internal/", nil)
		req.Header.Set("Authorization", "Bearer client")
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Authorization") != "Bearer client" {
			t.Fatal("the transport modified the caller's request")
		}
	}
	// Behind Wrap, an outgoing call made with the incoming request's context carries the session's token.
	h := g.login.Load().Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		call(r.Context())
		tok, ok := auth.SessionToken(r.Context())
		if !ok || seen[0] != "Bearer "+tok {
			t.Errorf("upstream saw %q, session token %q", seen, tok)
		}
	}))
	r, _ := http.NewRequest(http.MethodGet, "/app/x", nil)
	for _, ck := range g.cookies(c) {
		r.AddCookie(ck)
	}
	w := &statusRecorder{}
	h.ServeHTTP(w, r)
	if w.status != 0 || len(seen) != 1 {
		t.Fatalf("status %d, calls %d", w.status, len(seen))
	}
	// Without a session the client's header does not leak upstream.
	call(context.Background())
	if seen[1] != "" {
		t.Fatalf("without a session upstream saw %q", seen[1])
	}
	fw := auth.ForwardSessionToken(upstream)
	r, _ = http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer client")
	fw.ServeHTTP(nil, r)
	if seen[2] != "" {
		t.Fatalf("ForwardSessionToken without a session forwarded %q", seen[2])
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestLoginPublicClient(t *testing.T) {
	g := startGateway(t)
	l, err := auth.NewLogin(g.op.issuer, testPublicClientID, g.callbackURL(),
		auth.WithSessionKeys(testKey("k1")), auth.LoginVerifierOptions(auth.AllowInsecureHTTP(), auth.WithClock(g.clock.Now)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	g.login.Store(l)
	c := g.browser(t)
	g.loginBrowser(t, c)
	g.clock.Advance(4*time.Minute + 30*time.Second)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK || g.op.grantCount("refresh_token") != 1 {
		t.Fatalf("public client refresh: %d, %d refreshes", status, g.op.grantCount("refresh_token"))
	}
}
