package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

const bclEvent = "http://schemas.openid.net/event/backchannel-logout"

// del marks a claim or header to remove in logoutToken.
var del = struct{}{}

// logoutToken signs a logout token with the provider's key: a valid one for sid (or sub when sid
// is ""), changed by header and claims (a value del removes the member). key, when not nil,
// signs instead of the provider's key (same kid).
func (g *gateway) logoutToken(t *testing.T, sid string, header, claims map[string]any, key *rsa.PrivateKey) string {
	t.Helper()
	sk, err := g.op.storage.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := g.clock.Now()
	c := jwtlib.MapClaims{
		"iss": g.op.issuer, "aud": testClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": rand.Text(), "events": map[string]any{bclEvent: map[string]any{}},
	}
	if sid != "" {
		c["sid"] = sid
	} else {
		c["sub"] = testSubject
	}
	for k, v := range claims {
		if v == del {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwtlib.NewWithClaims(jwtlib.SigningMethodRS256, c)
	tok.Header["kid"] = sk.ID()
	tok.Header["typ"] = "logout+jwt"
	for k, v := range header {
		if v == del {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	if key == nil {
		key = sk.Key().(*rsa.PrivateKey)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// backChannel posts a logout token form and returns the status and body.
func (g *gateway) backChannel(t *testing.T, method, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.srv.URL+"/auth/backchannel-logout", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (g *gateway) postLogout(t *testing.T, tok string) (int, http.Header, string) {
	t.Helper()
	return g.backChannel(t, http.MethodPost, "application/x-www-form-urlencoded", url.Values{"logout_token": {tok}}.Encode())
}

// loginAs logs a new browser in while the provider issues ID tokens with sid.
func (g *gateway) loginAs(t *testing.T, sid string) *http.Client {
	t.Helper()
	g.op.sid.Store(&sid)
	c := g.browser(t)
	g.loginBrowser(t, c)
	return c
}

func apiStatus(t *testing.T, g *gateway, c *http.Client) int {
	t.Helper()
	status, _, _ := get(t, c, g.srv.URL+"/api/x", false)
	return status
}

// unindexedStore is a SessionStore that is not a SessionIndexer.
type unindexedStore struct{ auth.SessionStore }

func TestBackChannelLogout(t *testing.T) {
	modes := []struct {
		name  string
		opts  func(t *testing.T) []auth.LoginOption
		store bool
	}{
		{"cookie", func(*testing.T) []auth.LoginOption { return []auth.LoginOption{auth.WithBackChannelLogout(nil)} }, false},
		{"cookie redis records", func(t *testing.T) []auth.LoginOption {
			return []auth.LoginOption{auth.WithBackChannelLogout(redistest.Start(t).Client())}
		}, false},
		{"memory store", func(*testing.T) []auth.LoginOption {
			return []auth.LoginOption{auth.WithBackChannelLogout(nil), auth.WithSessionStore(auth.MemorySessionStore(nil), 0)}
		}, true},
		{"redis store", func(t *testing.T) []auth.LoginOption {
			rdb := redistest.Start(t).Client()
			return []auth.LoginOption{auth.WithBackChannelLogout(rdb), auth.WithSessionStore(auth.RedisSessionStore(rdb), 0)}
		}, true},
		{"store without index", func(*testing.T) []auth.LoginOption {
			return []auth.LoginOption{auth.WithBackChannelLogout(nil), auth.WithSessionStore(unindexedStore{auth.MemorySessionStore(nil)}, 0)}
		}, false},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			g := startGateway(t, m.opts(t)...)
			a := g.loginAs(t, "op-session-a")
			b := g.loginAs(t, "op-session-b")
			copied := g.cookies(a)

			// Logout of provider session a ends a's session only.
			status, h, body := g.postLogout(t, g.logoutToken(t, "op-session-a", nil, nil, nil))
			if status != http.StatusOK || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("logout: %d %q, Cache-Control %q", status, body, h.Get("Cache-Control"))
			}
			if s := apiStatus(t, g, a); s != http.StatusUnauthorized {
				t.Fatalf("session a after its logout: %d", s)
			}
			if s := apiStatus(t, g, b); s != http.StatusOK {
				t.Fatalf("session b after a's logout: %d", s)
			}
			// A browser navigation with the logged-out cookie is sent to the login.
			replay := g.browser(t)
			g.setCookies(replay, copied)
			nc := stopAt(replay, func(u *url.URL) bool { return u.Path == "/auth/login" })
			req, _ := http.NewRequest(http.MethodGet, g.srv.URL+"/app/home", nil)
			req.Header.Set("Accept", "text/html")
			resp, err := nc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc, _ := resp.Location(); resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/auth/login" {
				t.Fatalf("navigation after logout: %d -> %v", resp.StatusCode, loc)
			}

			// A logout by subject (no sid) ends every session of the user.
			g.clock.Advance(time.Second)
			c := g.loginAs(t, "op-session-c")
			if status, _, body := g.postLogout(t, g.logoutToken(t, "", nil, nil, nil)); status != http.StatusOK {
				t.Fatalf("logout by sub: %d %q", status, body)
			}
			for name, cl := range map[string]*http.Client{"b": b, "c": c} {
				if s := apiStatus(t, g, cl); s != http.StatusUnauthorized {
					t.Fatalf("session %s after the subject's logout: %d", name, s)
				}
			}
			// A login after the logout is not affected by it.
			g.clock.Advance(time.Second)
			d := g.loginAs(t, "op-session-a")
			if s := apiStatus(t, g, d); s != http.StatusOK {
				t.Fatalf("new session after logout: %d", s)
			}
		})
	}
}

func TestBackChannelLogoutRejects(t *testing.T) {
	for _, store := range []bool{false, true} {
		name := "cookie"
		opts := []auth.LoginOption{auth.WithBackChannelLogout(nil)}
		if store {
			name = "memory store"
			opts = append(opts, auth.WithSessionStore(auth.MemorySessionStore(nil), 0))
		}
		t.Run(name, func(t *testing.T) {
			g := startGateway(t, opts...)
			c := g.loginAs(t, "op-session-a")
			otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			now := g.clock.Now()
			replayed := g.logoutToken(t, "op-session-other", nil, nil, nil)
			if status, _, body := g.postLogout(t, replayed); status != http.StatusOK {
				t.Fatalf("first use: %d %q", status, body)
			}
			form := func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }
			valid := func() string { return g.logoutToken(t, "op-session-a", nil, nil, nil) }
			tests := []struct {
				name, method, ctype, body string
			}{
				{"bad signature", "POST", "", form(g.logoutToken(t, "op-session-a", nil, nil, otherKey))},
				{"wrong iss", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"iss": "https://evil.example"}, nil))},
				{"wrong aud", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"aud": "other-client"}, nil))},
				{"nonce", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"nonce": "n"}, nil))},
				{"no events", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"events": del}, nil))},
				{"events without member", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"events": map[string]any{"x": map[string]any{}}}, nil))},
				{"event not an object", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"events": map[string]any{bclEvent: "yes"}}, nil))},
				{"events not an object", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"events": []string{bclEvent}}, nil))},
				{"neither sid nor sub", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"sid": del}, nil))},
				{"sid not a string", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"sid": 7}, nil))},
				{"typ JWT", "POST", "", form(g.logoutToken(t, "op-session-a", map[string]any{"typ": "JWT"}, nil, nil))},
				{"typ at+jwt", "POST", "", form(g.logoutToken(t, "op-session-a", map[string]any{"typ": "at+jwt"}, nil, nil))},
				{"no iat", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"iat": del}, nil))},
				{"iat in the future", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"iat": now.Add(time.Hour).Unix()}, nil))},
				{"expired", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}, nil))},
				{"no exp and old", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"exp": del, "iat": now.Add(-time.Hour).Unix()}, nil))},
				{"no jti", "POST", "", form(g.logoutToken(t, "op-session-a", nil, map[string]any{"jti": del}, nil))},
				{"replayed jti", "POST", "", form(replayed)},
				{"GET", "GET", "", ""},
				{"JSON", "POST", "application/json", `{"logout_token":"` + valid() + `"}`},
				{"no token", "POST", "", "other=1"},
				{"two tokens", "POST", "", form(valid()) + "&" + form(valid())},
				{"not a JWT", "POST", "", form("abc")},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					ct := tt.ctype
					if ct == "" && tt.method == "POST" {
						ct = "application/x-www-form-urlencoded"
					}
					status, h, body := g.backChannel(t, tt.method, ct, tt.body)
					if status != http.StatusBadRequest || h.Get("Cache-Control") != "no-store" ||
						!strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
						t.Fatalf("%d %q %q: %s", status, h.Get("Cache-Control"), h.Get("Content-Type"), body)
					}
					if s := apiStatus(t, g, c); s != http.StatusOK {
						t.Fatalf("session after a rejected logout: %d", s)
					}
				})
			}
			// A token without typ is accepted (the spec only recommends explicit typing).
			if status, _, body := g.postLogout(t, g.logoutToken(t, "op-session-a", map[string]any{"typ": del}, nil, nil)); status != http.StatusOK {
				t.Fatalf("untyped logout token: %d %q", status, body)
			}
			if s := apiStatus(t, g, c); s != http.StatusUnauthorized {
				t.Fatalf("session after logout: %d", s)
			}
		})
	}
}

func TestBackChannelLogoutDisabled(t *testing.T) {
	g := startGateway(t)
	c := g.loginAs(t, "op-session-a")
	if status, _, _ := g.postLogout(t, g.logoutToken(t, "op-session-a", nil, nil, nil)); status != http.StatusNotFound {
		t.Fatalf("disabled: %d", status)
	}
	if s := apiStatus(t, g, c); s != http.StatusOK {
		t.Fatalf("session: %d", s)
	}
}
