package auth_test

// An in-process, certified OpenID Provider (github.com/zitadel/oidc/v3's op package with the
// in-memory storage of its example server) and a TLS gateway around auth.Login, for the login tests.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
)

const (
	testClientID     = "gateway-web"
	testClientSecret = "gateway-secret"
	// testPublicClientID is a public (native) client: no secret, PKCE only.
	testPublicClientID = "gateway-public"
	testUser           = "test-user2" // subject "id2" in the example storage
	testSubject        = "id2"
)

// testOP is the OpenID Provider. It counts token requests by grant type.
type testOP struct {
	srv     *httptest.Server
	storage *storage.Storage
	issuer  string

	mu     sync.Mutex
	grants map[string]int
	// tokenDown makes the token endpoint answer 503 (a provider outage).
	tokenDown atomic.Bool
	// sid, when set, is the "sid" claim of the ID tokens issued from now on.
	sid atomic.Pointer[string]
}

func (o *testOP) grantCount(grant string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.grants[grant]
}

// startOP serves a provider whose web client testClientID may redirect to redirectURI.
func startOP(t testing.TB, redirectURI string, now func() time.Time) *testOP {
	t.Helper()
	o := &testOP{grants: map[string]int{}}
	var handler atomic.Pointer[http.Handler]
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	o.issuer = o.srv.URL

	clients := map[string]*storage.Client{
		testClientID:       storage.WebClient(testClientID, testClientSecret, redirectURI),
		testPublicClientID: storage.NativeClient(testPublicClientID, redirectURI), // PKCE, no secret
	}
	o.storage = storage.NewStorageWithClients(storage.NewUserStore(o.issuer), clients)
	cfg := &op.Config{
		CryptoKey:                sha256.Sum256([]byte(rand.Text())),
		DefaultLogoutRedirectURI: "/logged-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
	}
	provider, err := op.NewProvider(cfg, &clockedStorage{Storage: o.storage, now: now, sid: &o.sid}, op.StaticIssuer(o.issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	callback := op.AuthCallbackURL(provider)
	mux := http.NewServeMux()
	// The login UI: a browser that reaches it logs in as testUser at once (the user typing the
	// password is not what these tests are about).
	mux.Handle("/login/username", op.NewIssuerInterceptor(provider.IssuerFromRequest).HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			id := r.FormValue("authRequestID")
			if err := o.storage.CheckUsernamePassword(testUser, "verysecure", id); err != nil {
				http.Error(w, "login failed", http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
		}))
	mux.HandleFunc("/logged-out", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "signed out") })
	mux.Handle("/", provider)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
			if o.tokenDown.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			o.mu.Lock()
			o.grants[form.Get("grant_type")]++
			o.mu.Unlock()
		}
		mux.ServeHTTP(w, r)
	})
	handler.Store(&h)
	return o
}

// clockedStorage makes the provider's access tokens expire 5 minutes after the gateway's (fake)
// clock rather than the real one, so that tests can move through token lifetimes without sleeping.
type clockedStorage struct {
	*storage.Storage
	now func() time.Time
	sid *atomic.Pointer[string]
}

// SetUserinfoFromRequest adds the test's provider session ID ("sid") to the ID token.
func (s *clockedStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if sid := s.sid.Load(); sid != nil {
		ui.AppendClaims("sid", *sid)
	}
	return nil
}

func (s *clockedStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, _, err := s.Storage.CreateAccessToken(ctx, req)
	return id, s.now().Add(accessTokenLifetime), err
}

func (s *clockedStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, rt, _, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	return id, rt, s.now().Add(accessTokenLifetime), err
}

const accessTokenLifetime = 5 * time.Minute

// loginClock is the gateway's clock; it starts at the real time (the provider uses real time).
type loginClock struct {
	mu sync.Mutex
	t  time.Time
}

func newLoginClock() *loginClock { return &loginClock{t: time.Now()} }

func (c *loginClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *loginClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *loginClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gateway is a TLS server with the login endpoints, an /app route behind Wrap and an /api route
// behind WrapAPI that forwards the session's access token.
type gateway struct {
	srv   *httptest.Server
	op    *testOP
	clock *loginClock
	login atomic.Pointer[auth.Login]
	// upstreamAuth records the Authorization header the /api upstream received.
	upstreamAuth atomic.Value
}

func (g *gateway) callbackURL() string { return g.srv.URL + "/auth/callback" }

// startGateway starts the provider and the gateway; opts are added to the login's options.
func startGateway(t testing.TB, opts ...auth.LoginOption) *gateway {
	t.Helper()
	g := &gateway{clock: newLoginClock()}
	mux := http.NewServeMux()
	g.srv = httptest.NewTLSServer(mux)
	t.Cleanup(g.srv.Close)
	g.op = startOP(t, g.callbackURL(), g.clock.Now)
	g.setLogin(t, opts...)

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := gatewaykit.IdentityFrom(r.Context())
		_, _ = io.WriteString(w, "hello "+id.Subject+" via "+id.Method+" uid="+r.Header.Get("X-User-Id"))
	})
	api := auth.ForwardSessionToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.upstreamAuth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, "api ok")
	}))
	l := func() *auth.Login { return g.login.Load() }
	mux.HandleFunc("GET /auth/login", func(w http.ResponseWriter, r *http.Request) { l().ServeLogin(w, r) })
	mux.HandleFunc("GET /auth/callback", func(w http.ResponseWriter, r *http.Request) { l().ServeCallback(w, r) })
	mux.HandleFunc("POST /auth/logout", func(w http.ResponseWriter, r *http.Request) { l().ServeLogout(w, r) })
	mux.HandleFunc("/auth/backchannel-logout", func(w http.ResponseWriter, r *http.Request) { l().ServeBackChannelLogout(w, r) })
	mux.Handle("/app/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l().Wrap(app).ServeHTTP(w, r) }))
	mux.Handle("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l().WrapAPI(api).ServeHTTP(w, r) }))
	return g
}

// testKey returns a deterministic 32-byte session key.
func testKey(name string) []byte {
	k := sha256.Sum256([]byte("session key " + name))
	return k[:]
}

// newLogin builds a login for the gateway (default key "k1", the fake clock, plain http issuer).
func (g *gateway) newLogin(t testing.TB, opts ...auth.LoginOption) *auth.Login {
	t.Helper()
	all := []auth.LoginOption{
		auth.WithClientSecret(testClientSecret),
		auth.WithSessionKeys(testKey("k1")),
		auth.LoginVerifierOptions(auth.AllowInsecureHTTP(), auth.WithClock(g.clock.Now)),
		auth.WithPostLogoutRedirect(g.op.issuer + "/logged-out"),
	}
	l, err := auth.NewLogin(g.op.issuer, testClientID, g.callbackURL(), append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (g *gateway) setLogin(t testing.TB, opts ...auth.LoginOption) *auth.Login {
	l := g.newLogin(t, opts...)
	g.login.Store(l)
	return l
}

// browser returns a cookie-jar client that trusts the gateway's certificate and follows redirects.
func (g *gateway) browser(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *g.srv.Client() // a copy: the server's client is shared
	c.Jar = jar
	c.Timeout = 30 * time.Second
	return &c
}

// get sends a GET (as a browser navigation when html) and returns status, final URL and body.
func get(t testing.TB, c *http.Client, u string, html bool) (int, *url.URL, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if html {
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Request.URL, string(body)
}

// login runs a full login in browser c (starting at /app/home) and fails t unless it ends on the app.
func (g *gateway) loginBrowser(t testing.TB, c *http.Client) {
	t.Helper()
	status, final, body := get(t, c, g.srv.URL+"/app/home", true)
	if status != http.StatusOK || final.Path != "/app/home" || !strings.Contains(body, "hello "+testSubject+" via session") {
		t.Fatalf("login: status %d at %s: %q", status, final, body)
	}
}

// stopAt returns a copy of c that does not follow a redirect whose target satisfies stop.
func stopAt(c *http.Client, stop func(*url.URL) bool) *http.Client {
	c2 := *c
	c2.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if stop(req.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &c2
}

// redirectTo does a GET with c (not following the last redirect) and returns the Location.
func redirectTo(t testing.TB, c *http.Client, u string) *url.URL {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("GET %s: status %d, no redirect", u, resp.StatusCode)
	}
	return loc
}

// sessionCookies returns the gateway's cookies in c's jar.
func (g *gateway) cookies(c *http.Client) []*http.Cookie {
	u, _ := url.Parse(g.srv.URL)
	return c.Jar.Cookies(u)
}

func (g *gateway) setCookies(c *http.Client, cs []*http.Cookie) {
	u, _ := url.Parse(g.srv.URL)
	c.Jar.SetCookies(u, cs)
}
