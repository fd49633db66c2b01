package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

func TestFirstJWTOrAPIKey(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"))
	keys, err := auth.NewAPIKeys(auth.MemoryKeyStore(), auth.APIKeyFromBearer())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := keys.Create(context.Background(), auth.KeyInfo{Subject: "svc", Tier: "premium"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	h := auth.First(j, keys).Wrap(rec)
	tok := iss.Token(t, map[string]any{"sub": "alice"})
	cases := []struct {
		name   string
		hdr    http.Header
		status int
		method string
	}{
		{"jwt", bearer(tok), 200, "jwt"},
		{"api key header", keyHeader(key), 200, "apikey"},
		{"api key as bearer", bearer(key), 200, "apikey"},
		{"bad jwt not retried as key", bearer(tok[:len(tok)-3] + "AAA"), 401, ""},
		{"opaque bearer unknown to both", bearer("opaque"), 401, ""},
		{"none", nil, 401, ""},
		{"jwt wins when both sent", http.Header{"Authorization": {"Bearer " + tok}, "X-Api-Key": {key}}, 200, "jwt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec.id.Store(nil)
			w := do(t, h, tc.hdr)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.method != "" && rec.id.Load().Method != tc.method {
				t.Fatalf("method %q, want %q", rec.id.Load().Method, tc.method)
			}
		})
	}
}

func TestOptionalStripsSpoofedHeaders(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"), auth.Optional())
	rec := &recorder{}
	h := j.Wrap(rec)
	spoof := http.Header{"X-User-Id": {"admin"}, "x-user-roles": {"admin"}, "X-USER-TIER": {"premium"}, "X-Other": {"kept"}}
	w := do(t, h, spoof)
	if w.Code != http.StatusOK {
		t.Fatalf("anonymous: %d", w.Code)
	}
	hdr := *rec.headers.Load()
	for k := range hdr {
		if len(k) >= 7 && (k[:7] == "X-User-" || k[:7] == "x-user-") {
			t.Errorf("spoofed %s reached the upstream", k)
		}
	}
	if hdr.Get("X-Other") != "kept" {
		t.Error("unrelated header removed")
	}
	if rec.id.Load() != nil {
		t.Error("anonymous request got an identity")
	}
	// invalid credentials are still rejected under Optional
	if w := do(t, h, bearer("a.b.c")); w.Code != http.StatusUnauthorized {
		t.Fatalf("invalid token under Optional: %d", w.Code)
	}
}

func TestCustomUpstreamHeadersAndErrorHandler(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	var problems []*gatewaykit.Problem
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"),
		auth.WithUpstreamHeaders("X-Auth-", map[string]auth.HeaderFunc{
			"X-Auth-Subject": func(id *gatewaykit.Identity) string { return id.Subject },
			"X-Auth-Tier":    func(id *gatewaykit.Identity) string { return id.Tier },
		}),
		auth.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
			problems = append(problems, p)
			gatewaykit.WriteProblem(w, r, p)
		}))
	rec := &recorder{}
	h := j.Wrap(rec)
	hdr := bearer(iss.Token(t, map[string]any{"sub": "alice", "tier": "gold"}))
	hdr.Set("X-Auth-Admin", "1")
	if w := do(t, h, hdr); w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
	got := *rec.headers.Load()
	if got.Get("X-Auth-Subject") != "alice" || got.Get("X-Auth-Tier") != "gold" || got.Get("X-Auth-Admin") != "" {
		t.Fatalf("headers %v", got)
	}
	if got.Get("X-User-Id") != "" {
		t.Fatal("default header set despite a custom mapping")
	}
	_ = do(t, h, bearer("x.y.z"))
	if len(problems) != 1 || problems[0].Status != http.StatusUnauthorized || problems[0].Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("problems %+v", problems)
	}
}

func TestNewMiddleware(t *testing.T) {
	if _, err := auth.NewMiddleware(nil); err == nil {
		t.Fatal("nil authenticator accepted")
	}
	if _, err := auth.NewMiddleware(auth.First(), auth.WithAudience("x")); err == nil {
		t.Fatal("JWT option accepted by NewMiddleware")
	}
	m, err := auth.NewMiddleware(auth.First(), auth.Optional())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if w := do(t, m.Wrap(rec), nil); w.Code != http.StatusOK || rec.hits.Load() != 1 {
		t.Fatalf("optional empty First: %d", w.Code)
	}
	if _, err := auth.First().Authenticate(reqWith(nil)); !errors.Is(err, auth.ErrNoCredentials) {
		t.Fatalf("empty First: %v", err)
	}
}

func TestUpstreamHeaderDropsControlCharacters(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"))
	rec := &recorder{}
	tok := iss.Token(t, map[string]any{"sub": "alice\r\nX-Admin: true", "roles": []string{"user"}})
	if w := do(t, j.Wrap(rec), bearer(tok)); w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
	hdr := *rec.headers.Load()
	if _, ok := hdr["X-User-Id"]; ok {
		t.Fatalf("header with CRLF forwarded: %q", hdr["X-User-Id"])
	}
	if hdr.Get("X-User-Roles") != "user" {
		t.Fatal("valid header dropped")
	}
}

func TestNilRequestHeader(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://gw/", nil)
	r.Header = nil
	rec := &recorder{}
	m, err := auth.NewMiddleware(auth.First(), auth.Optional())
	if err != nil {
		t.Fatal(err)
	}
	m.Wrap(rec).ServeHTTP(httptest.NewRecorder(), r)
	if rec.hits.Load() != 1 {
		t.Fatal("not served")
	}
}

// TestUpstreamRolesHeaderCannotSmuggleRoles: X-User-Roles is a comma-separated list, so a role
// whose name holds a comma (an IdP group named "x,admin") must not arrive upstream as two roles.
func TestUpstreamRolesHeaderCannotSmuggleRoles(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	jwks, _ := iss.JWKS()
	j := newJWT(t, auth.WithKeySetJSON(jwks), auth.WithAlgorithms("ES256"))
	rec := &recorder{}
	tok := iss.Token(t, map[string]any{"sub": "alice", "roles": []string{"user", "staff,admin", " admin"}})
	if w := do(t, j.Wrap(rec), bearer(tok)); w.Code != http.StatusOK {
		t.Fatal(w.Code)
	}
	if got := (*rec.headers.Load()).Get("X-User-Roles"); got != "user" {
		t.Fatalf("X-User-Roles %q, want only the role without separators", got)
	}
	if id := rec.id.Load(); !id.HasRole("staff,admin") || id.HasRole("admin") {
		t.Fatalf("identity roles %q changed", id.Roles)
	}
}

// TestStripIsCaseInsensitiveForNamedHeaders: with an empty prefix only the named headers are
// deleted, whatever the case of the client's (or an earlier handler's) key.
func TestStripIsCaseInsensitiveForNamedHeaders(t *testing.T) {
	g, err := auth.NewMiddleware(auth.First(), auth.Optional(), auth.WithUpstreamHeaders("",
		map[string]auth.HeaderFunc{"X-Auth-Subject": func(id *gatewaykit.Identity) string { return id.Subject }}))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header["x-auth-subject"] = []string{"admin"} // not canonical: set by hand, not by a server
	r.Header["X-AUTH-SUBJECT"] = []string{"admin"}
	g.Wrap(rec).ServeHTTP(httptest.NewRecorder(), r)
	for k := range *rec.headers.Load() {
		if http.CanonicalHeaderKey(k) == "X-Auth-Subject" {
			t.Fatalf("spoofed %s reached the handler", k)
		}
	}
}
