package auth_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

func TestLoginFullFlow(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)

	// An API call without a session is refused with 401, never redirected.
	status, _, body := get(t, c, g.srv.URL+"/api/orders", false)
	if status != http.StatusUnauthorized || !strings.Contains(body, "no session") {
		t.Fatalf("API without session: %d %q", status, body)
	}
	// A browser navigation is sent through the provider and back to where it started.
	g.loginBrowser(t, c)
	if got := g.op.grantCount("authorization_code"); got != 1 {
		t.Fatalf("code exchanges: %d, want 1", got)
	}
	var names []string
	for _, ck := range g.cookies(c) {
		names = append(names, ck.Name)
	}
	if len(names) != 1 || names[0] != auth.DefaultSessionCookie {
		t.Fatalf("cookies after login: %v (the login-state cookie must be gone)", names)
	}
	// Client-sent identity headers never reach the app.
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app/x", nil)
	req.Header.Set("X-User-Id", "admin")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status, _, body = get(t, c, g.srv.URL+"/app/x", false)
	if status != http.StatusOK || !strings.Contains(body, "uid="+testSubject) {
		t.Fatalf("app: %d %q", status, body)
	}
	// The API route forwards the session's access token, not the client's.
	req, _ = http.NewRequest(http.MethodGet, g.srv.URL+"/api/orders", nil)
	req.Header.Set("Authorization", "Bearer forged")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fwd, _ := g.upstreamAuth.Load().(string)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(fwd, "Bearer ") || fwd == "Bearer forged" || len(fwd) < 20 {
		t.Fatalf("api: %d, upstream Authorization %q", resp.StatusCode, fwd)
	}
	// The token never appears in a cookie in clear.
	for _, ck := range g.cookies(c) {
		if strings.Contains(ck.Value, strings.TrimPrefix(fwd, "Bearer ")) {
			t.Fatal("access token in clear in a cookie")
		}
	}

	// Logout clears the session and sends the browser to the provider's end_session endpoint.
	copied := g.cookies(c)
	nc := stopAt(c, func(u *url.URL) bool { return true })
	resp, err = nc.Post(g.srv.URL+"/auth/logout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || loc == nil || !strings.HasPrefix(loc.String(), g.op.issuer) ||
		loc.Query().Get("client_id") != testClientID || loc.Query().Get("post_logout_redirect_uri") != g.op.issuer+"/logged-out" {
		t.Fatalf("logout: %d -> %v", resp.StatusCode, loc)
	}
	if loc.Query().Has("id_token_hint") {
		t.Fatal("ID token in the logout URL")
	}
	if cs := g.cookies(c); len(cs) != 0 {
		t.Fatalf("cookies after logout: %v", cs)
	}
	if status, _, _ = get(t, c, g.srv.URL+"/api/orders", false); status != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", status)
	}
	// A copy of the logged-out cookie is refused by this instance.
	replay := g.browser(t)
	for _, ck := range copied {
		ck.Secure, ck.Path = true, "/"
	}
	g.setCookies(replay, copied)
	if status, _, _ = get(t, replay, g.srv.URL+"/api/orders", false); status != http.StatusUnauthorized {
		t.Fatalf("copied cookie after logout: %d", status)
	}
}

// startCallback runs a login in c up to the redirect to the gateway's callback and returns that URL.
func (g *gateway) startCallback(t *testing.T, c *http.Client, returnTo string) *url.URL {
	t.Helper()
	nc := stopAt(c, func(u *url.URL) bool { return u.Path == "/auth/callback" })
	return redirectTo(t, nc, g.srv.URL+"/auth/login?return_to="+url.QueryEscape(returnTo))
}

func TestLoginTamperedState(t *testing.T) {
	g := startGateway(t)
	tests := []struct {
		name   string
		mutate func(q url.Values)
		status int
	}{
		{"changed", func(q url.Values) { s := []byte(q.Get("state")); s[20] ^= 1; q.Set("state", string(s)) }, http.StatusUnauthorized},
		{"other prefix", func(q url.Values) { q.Set("state", strings.Repeat("A", 43)) }, http.StatusUnauthorized},
		{"missing", func(q url.Values) { q.Del("state") }, http.StatusBadRequest},
		{"short", func(q url.Values) { q.Set("state", "abc") }, http.StatusBadRequest},
		{"doubled", func(q url.Values) { q.Add("state", q.Get("state")) }, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := g.browser(t)
			cb := g.startCallback(t, c, "/app/home")
			q := cb.Query()
			tt.mutate(q)
			cb.RawQuery = q.Encode()
			status, _, body := get(t, c, cb.String(), true)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if strings.Contains(body, cb.Query().Get("code")) {
				t.Fatal("the code is echoed")
			}
			if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusUnauthorized {
				t.Fatalf("a session was created: %d", status)
			}
		})
	}
	// A callback from another browser (no login-state cookie: login CSRF) is refused.
	c := g.browser(t)
	cb := g.startCallback(t, c, "/")
	other := g.browser(t)
	if status, _, _ := get(t, other, cb.String(), true); status != http.StatusUnauthorized {
		t.Fatalf("callback in another browser: %d", status)
	}
}

func TestLoginReplayedCode(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	cb := g.startCallback(t, c, "/app/home")
	stateCookies := g.cookies(c)
	if status, final, _ := get(t, c, cb.String(), true); status != http.StatusOK || final.Path != "/app/home" {
		t.Fatalf("first callback: %d at %s", status, final)
	}
	// The same callback again is refused: the state cookie is gone ...
	if status, _, _ := get(t, c, cb.String(), true); status != http.StatusUnauthorized {
		t.Fatalf("replay without state cookie: %d", status)
	}
	// ... and an attacker who kept the state cookie meets the provider's one-time code.
	attacker := g.browser(t)
	for _, ck := range stateCookies {
		ck.Secure, ck.Path = true, "/"
	}
	g.setCookies(attacker, stateCookies)
	status, _, body := get(t, attacker, cb.String(), true)
	if status != http.StatusUnauthorized || !strings.Contains(body, "authorization code refused") {
		t.Fatalf("replayed code: %d %q", status, body)
	}
	if got := g.op.grantCount("authorization_code"); got != 2 {
		t.Fatalf("code exchanges: %d, want 2", got)
	}
}

func TestLoginWrongNonce(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	// Stop at the provider's authorization endpoint and swap the nonce (an injected authorization
	// request): the ID token then carries a nonce the login-state cookie does not know.
	nc := stopAt(c, func(u *url.URL) bool { return strings.HasPrefix(u.String(), g.op.issuer) })
	authz := redirectTo(t, nc, g.srv.URL+"/auth/login")
	q := authz.Query()
	if q.Get("nonce") == "" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
		t.Fatalf("authorization request lacks nonce/PKCE/state: %v", q)
	}
	q.Set("nonce", "attacker-nonce")
	authz.RawQuery = q.Encode()
	status, _, body := get(t, c, authz.String(), true)
	if status != http.StatusUnauthorized || !strings.Contains(body, "ID token rejected") {
		t.Fatalf("wrong nonce: %d %q", status, body)
	}
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusUnauthorized {
		t.Fatalf("a session was created: %d", status)
	}
}

func TestLoginExpiredSession(t *testing.T) {
	g := startGateway(t, auth.WithSessionLifetime(2*time.Hour))
	c := g.browser(t)
	g.loginBrowser(t, c)
	g.clock.Advance(2*time.Hour + time.Second)
	// An API call gets 401 problem+json ...
	status, _, body := get(t, c, g.srv.URL+"/api/x", false)
	if status != http.StatusUnauthorized || !strings.Contains(body, "session expired") {
		t.Fatalf("expired session, API: %d %q", status, body)
	}
	// ... and the dead cookie was cleared; a browser navigation starts a new login and succeeds
	// (back at the provider's real time, whose ID tokens live one hour).
	g.clock.Set(time.Now())
	g.loginBrowser(t, c)
	if got := g.op.grantCount("authorization_code"); got != 2 {
		t.Fatalf("code exchanges: %d, want 2", got)
	}
}

func TestLoginBrowserRedirectCarriesReturnURL(t *testing.T) {
	g := startGateway(t)
	c := stopAt(g.browser(t), func(*url.URL) bool { return true })
	req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app/orders?page=2", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/auth/login" || loc.Query().Get("return_to") != "/app/orders?page=2" {
		t.Fatalf("redirect: %d %v", resp.StatusCode, loc)
	}
	// A POST, even from a browser, gets 401 rather than a redirect that would lose its body.
	req, _ = http.NewRequest(http.MethodPost, g.srv.URL+"/app/orders", nil)
	req.Header.Set("Accept", "text/html")
	if resp, err = c.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

func TestLoginOpenRedirect(t *testing.T) {
	g := startGateway(t, auth.WithReturnOrigins("https://app.example.com"))
	tests := []struct{ returnTo, want string }{
		{"/app/orders?page=2", "/app/orders?page=2"},
		{"https://app.example.com/home", "https://app.example.com/home"},
		{"//evil.example/x", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"https://app.example.com.evil.example/", "/"},
		{"https://app.example.com@evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"/%2F%2Fevil.example", "/"},
		{"http://app.example.com/", "/"},
		{"/ok\r\nSet-Cookie: x=y", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.returnTo, func(t *testing.T) {
			c := g.browser(t)
			cb := g.startCallback(t, c, tt.returnTo)
			nc := stopAt(c, func(*url.URL) bool { return true })
			loc := redirectTo(t, nc, cb.String())
			want := tt.want
			if strings.HasPrefix(want, "/") {
				want = g.srv.URL + want // the client resolves the relative Location
			}
			if loc.String() != want {
				t.Fatalf("return_to %q led to %q, want %q", tt.returnTo, loc, tt.want)
			}
		})
	}
}

func TestLoginRefreshSingleFlight(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	before := g.cookies(c)[0].Value
	// The provider's access tokens live 5 minutes; at 4.5 minutes they are due (1 minute early).
	g.clock.Advance(4*time.Minute + 30*time.Second)

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	tokens := make(chan string, n)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app/x", nil)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- resp.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	close(tokens)
	for e := range errs {
		t.Error(e)
	}
	if got := g.op.grantCount("refresh_token"); got != 1 {
		t.Fatalf("refresh calls under %d concurrent requests: %d, want 1", n, got)
	}
	if after := g.cookies(c)[0].Value; after == before {
		t.Fatal("the session cookie was not rewritten after the refresh")
	}
	// The next due refresh happens again exactly once.
	g.clock.Advance(5 * time.Minute)
	if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
		t.Fatalf("after second refresh: %d", status)
	}
	if got := g.op.grantCount("refresh_token"); got != 2 {
		t.Fatalf("refresh calls: %d, want 2", got)
	}
}

func TestLoginRevokedRefreshToken(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	old := g.cookies(c)
	if err := g.op.storage.TerminateSession(context.Background(), testSubject, testClientID); err != nil {
		t.Fatal(err)
	}
	// While the access token is still valid the session serves it (the refusal may also come from a
	// concurrent refresh by another gateway instance), without asking the provider again ...
	g.clock.Advance(4*time.Minute + 30*time.Second)
	for range 3 {
		if status, _, body := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
			t.Fatalf("revoked refresh token, access token still valid: %d %q", status, body)
		}
	}
	if got := g.op.grantCount("refresh_token"); got != 1 {
		t.Fatalf("refresh calls: %d, want 1", got)
	}
	// ... and ends when the access token expires.
	g.clock.Advance(time.Minute)
	status, _, body := get(t, c, g.srv.URL+"/api/x", false)
	if status != http.StatusUnauthorized || !strings.Contains(body, "session expired") {
		t.Fatalf("revoked refresh token: %d %q", status, body)
	}
	// The old cookie replayed later is refused without asking the provider again.
	calls := g.op.grantCount("refresh_token")
	replay := g.browser(t)
	for _, ck := range old {
		ck.Secure, ck.Path = true, "/"
	}
	g.setCookies(replay, old)
	if status, _, _ := get(t, replay, g.srv.URL+"/api/x", false); status != http.StatusUnauthorized {
		t.Fatalf("replayed ended session: %d", status)
	}
	if got := g.op.grantCount("refresh_token"); got != calls {
		t.Fatalf("refresh calls %d -> %d for an ended session", calls, got)
	}
	// A browser starts a new login.
	g.loginBrowser(t, c)
}

func TestLoginSessionCookieTamperingAndKeyRotation(t *testing.T) {
	g := startGateway(t)
	c := g.browser(t)
	g.loginBrowser(t, c)
	good := g.cookies(c)[0]

	tamper := func(mut func(v []byte) []byte) *http.Client {
		b := g.browser(t)
		v := mut([]byte(good.Value))
		g.setCookies(b, []*http.Cookie{{Name: good.Name, Value: string(v), Secure: true, Path: "/"}})
		return b
	}
	for name, mut := range map[string]func([]byte) []byte{
		"flipped byte": func(v []byte) []byte { v[len(v)/2] ^= 1; return v },
		"truncated":    func(v []byte) []byte { return v[:len(v)-4] },
		"version":      func(v []byte) []byte { v[0] = 'Z'; return v },
		// A login-state cookie, sealed with the same key for another purpose, is no session.
		"state cookie": func([]byte) []byte {
			b := g.browser(t)
			g.startCallback(t, b, "/")
			return []byte(g.cookies(b)[0].Value)
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := tamper(mut)
			status, _, body := get(t, b, g.srv.URL+"/api/x", false)
			if status != http.StatusUnauthorized || !strings.Contains(body, "invalid session") {
				t.Fatalf("tampered cookie: %d %q", status, body)
			}
			if len(g.cookies(b)) != 0 {
				t.Fatal("the invalid cookie was not cleared")
			}
		})
	}

	// Rotation: a new first key seals, the old one still opens.
	g.setLogin(t, auth.WithSessionKeys(testKey("k2"), testKey("k1")))
	if status, _, body := get(t, c, g.srv.URL+"/app/x", false); status != http.StatusOK {
		t.Fatalf("old-key cookie after rotation: %d %q", status, body)
	}
	c2 := g.browser(t)
	g.loginBrowser(t, c2) // sealed with k2
	// Once k1 is dropped, its cookies stop working and k2 cookies keep working.
	g.setLogin(t, auth.WithSessionKeys(testKey("k2")))
	if status, _, _ := get(t, c, g.srv.URL+"/app/x", false); status != http.StatusUnauthorized {
		t.Fatalf("k1 cookie after k1 was dropped: %d", status)
	}
	if status, _, _ := get(t, c2, g.srv.URL+"/app/x", false); status != http.StatusOK {
		t.Fatalf("k2 cookie: %d", status)
	}
}

func TestLoginServerSideStores(t *testing.T) {
	stores := map[string]func(t *testing.T) auth.SessionStore{
		"memory": func(t *testing.T) auth.SessionStore { return auth.MemorySessionStore(nil) },
		"redis": func(t *testing.T) auth.SessionStore {
			srv := redistest.Start(t)
			rdb := srv.Client()
			t.Cleanup(func() { _ = rdb.Close() })
			return auth.RedisSessionStore(rdb)
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			store := mk(t)
			g := startGateway(t, auth.WithSessionStore(store, 0))
			c := g.browser(t)
			g.loginBrowser(t, c)
			cs := g.cookies(c)
			if len(cs) != 1 || len(cs[0].Value) > 200 {
				t.Fatalf("store-mode cookie should hold only the sealed ID: %d cookies, %d bytes", len(cs), len(cs[0].Value))
			}
			// Refresh updates the record; the cookie stays.
			g.clock.Advance(4*time.Minute + 30*time.Second)
			if status, _, _ := get(t, c, g.srv.URL+"/api/x", false); status != http.StatusOK {
				t.Fatalf("after refresh: %d", status)
			}
			if g.op.grantCount("refresh_token") != 1 {
				t.Fatalf("refreshes: %d", g.op.grantCount("refresh_token"))
			}
			// A copy of the cookie stops working after logout (the record is deleted).
			copyC := g.browser(t)
			for _, ck := range cs {
				ck.Secure, ck.Path = true, "/"
			}
			g.setCookies(copyC, cs)
			if status, _, _ := get(t, copyC, g.srv.URL+"/api/x", false); status != http.StatusOK {
				t.Fatalf("cookie copy before logout: %d", status)
			}
			// A new login in the same browser replaces the session: the old record is deleted.
			if status, final, _ := get(t, c, g.srv.URL+"/auth/login?return_to=/app/home", true); status != http.StatusOK || final.Path != "/app/home" {
				t.Fatalf("second login: %d at %s", status, final)
			}
			if status, _, _ := get(t, copyC, g.srv.URL+"/api/x", false); status != http.StatusUnauthorized {
				t.Fatalf("cookie of the replaced session: %d", status)
			}
			copyC = g.browser(t)
			cs = g.cookies(c)
			for _, ck := range cs {
				ck.Secure, ck.Path = true, "/"
			}
			g.setCookies(copyC, cs)
			nc := stopAt(c, func(*url.URL) bool { return true })
			resp, err := nc.Post(g.srv.URL+"/auth/logout", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if status, _, body := get(t, copyC, g.srv.URL+"/api/x", false); status != http.StatusUnauthorized {
				t.Fatalf("cookie copy after logout: %d %q", status, body)
			}
		})
	}
}
