package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/gatewaykit/gatewaykit"
)

// Login is OpenID Connect login at the gateway (a backend-for-frontend): the authorization code flow
// with PKCE (S256), state and nonce, sessions in an encrypted cookie or a server-side store, access
// token refresh shortly before expiry, and logout (RP-initiated when the provider supports it;
// OpenID Connect back-channel logout with WithBackChannelLogout).
// Endpoints come from OIDC discovery; the ID token is verified with this package's JWT verifier.
//
// Mount its handlers and protect routes with Wrap (browsers are redirected to the login) or WrapAPI
// (401 problem+json):
//
//	mux.HandleFunc("GET /auth/login", l.ServeLogin)
//	mux.HandleFunc("GET /auth/callback", l.ServeCallback)
//	mux.HandleFunc("POST /auth/logout", l.ServeLogout)
//	mux.HandleFunc("/auth/backchannel-logout", l.ServeBackChannelLogout) // with WithBackChannelLogout
//	mux.Handle("/app/", l.Wrap(app))
//	mux.Handle("/api/", l.WrapAPI(auth.ForwardSessionToken(api)))
//
// Metrics (meter "github.com/gatewaykit/gatewaykit/auth"): gatewaykit.auth.logins (counter,
// {login}, attribute auth.outcome: ok, state, provider_error, exchange, id_token, nonce, session),
// gatewaykit.auth.session.refreshes (counter, {refresh}, auth.outcome: ok, refused, ended,
// unavailable), and
// the package's gatewaykit.auth.decisions with auth.method "session".
//
// It is safe for concurrent use; call Close to stop the ID token verifier's JWKS refresh.
type Login struct {
	issuer, clientID, clientSecret, redirectURL string
	scopes                                      []string
	authParams                                  []oauth2.AuthCodeOption

	hc       *http.Client
	closeHC  func()
	insecure bool
	verifier *JWT
	claims   claimMapper
	sealer   *sealer
	cookies  cookieCodec
	store    SessionStore
	storeTO  time.Duration
	returns  returnURLs
	bcl      *backChannel // nil unless WithBackChannelLogout

	lifetime, refreshBefore, loginTTL time.Duration
	loginPath, defaultReturn          string
	postLogoutURL                     string
	statePrefix                       string

	now     func() time.Time
	logger  *slog.Logger
	onError gatewaykit.ErrorHandler
	gate    *gate

	discMu   sync.Mutex
	disc     *oidcEndpoints
	discLast time.Time

	flights singleflight.Group
	backoff boundedMap[time.Time]      // session ID -> last transient refresh failure
	lastLog atomic.Int64               // unix nanos of the last rate-limited log line
	recent  boundedMap[*refreshResult] // session ID -> newest refresh outcome
	decoded boundedMap[*session]       // sealed cookie or record -> decoded session

	logins, refreshes metric.Int64Counter
	loginAttrs        map[string][]metric.AddOption
	refreshAttrs      map[string][]metric.AddOption

	closeOnce sync.Once
}

// refreshResult is the newest outcome of refreshing a session: the refreshed session; or refused
// (s's refresh token was refused while its access token is still valid: s is served until that
// expires, without asking the provider again); or ended.
type refreshResult struct {
	s       *session
	refused bool
	ended   bool
	at      time.Time
}

// oidcEndpoints is the part of an OpenID Provider's discovery document the login uses.
type oidcEndpoints struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	AuthMethods           []string `json:"token_endpoint_auth_methods_supported"`

	authStyle oauth2.AuthStyle
}

// LoginOption configures NewLogin.
type LoginOption func(*loginConfig) error

type loginConfig struct {
	clientSecret    string
	keys            [][]byte
	scopes          []string
	authParams      map[string]string
	store           SessionStore
	storeTimeout    time.Duration
	cookieName      string
	insecureCookies bool
	maxChunks       int
	lifetime        time.Duration
	refreshBefore   time.Duration
	loginTTL        time.Duration
	origins         []string
	loginPath       string
	defaultReturn   string
	postLogoutURL   string
	verifierOpts    []Option
	backChannel     bool
	backChannelRDB  redis.UniversalClient
}

func loginOpt(name string, f func(*loginConfig) error) LoginOption {
	return func(c *loginConfig) error {
		if err := f(c); err != nil {
			return fmt.Errorf("auth: %s: %w", name, err)
		}
		return nil
	}
}

// DefaultSessionCookie is the default name of the session cookie. The __Host- prefix makes
// browsers refuse it unless it is Secure, host-only and for path "/".
const DefaultSessionCookie = "__Host-gk_session"

// NewLogin returns OIDC login for the provider at issuer (discovered from
// <issuer>/.well-known/openid-configuration, whose "issuer" must equal issuer) as client clientID,
// with redirectURL as the registered redirect URI (the URL of ServeCallback). WithSessionKeys is
// required.
//
// Defaults: scopes "openid offline_access"; public client (PKCE only) unless WithClientSecret;
// sessions in the cookie DefaultSessionCookie (Secure, HttpOnly, SameSite=Lax, at most 4 chunks of
// 3800 bytes) living 24 h; access tokens refreshed 1 minute before they expire; a login must
// complete within 10 minutes; the login path for redirects is "/auth/login"; return URLs must be
// same-origin paths; ID tokens must be RS256 (change with LoginVerifierOptions(WithAlgorithms(...)));
// https required for the issuer and redirect URL.
//
// Discovery happens here, bounded by the fetch timeout; if the provider is unreachable it is
// retried (at most every 5 s) when a login starts, so a gateway can start while the IdP is down.
func NewLogin(issuer, clientID, redirectURL string, opts ...LoginOption) (*Login, error) {
	lc := &loginConfig{
		scopes: []string{"openid", "offline_access"}, cookieName: DefaultSessionCookie, maxChunks: 4,
		lifetime: 24 * time.Hour, refreshBefore: time.Minute, loginTTL: 10 * time.Minute,
		loginPath: "/auth/login", defaultReturn: "/", storeTimeout: time.Second,
	}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("auth: NewLogin: nil option")
		}
		if err := o(lc); err != nil {
			return nil, err
		}
	}
	c, err := apply("NewLogin", sMiddleware|sJWT, lc.verifierOpts)
	if err != nil {
		return nil, err
	}
	switch {
	case clientID == "":
		return nil, errors.New("auth: NewLogin: empty client ID")
	case lc.keys == nil:
		return nil, errors.New("auth: NewLogin: WithSessionKeys is required")
	case c.oidcIssuer != "" || c.jwksURL != "" || len(c.staticKeys) > 0 || len(c.jwksJSON) > 0 || c.hmacSecret != nil:
		return nil, errors.New("auth: NewLogin: the ID token keys come from the issuer's discovery; do not pass a key source")
	case c.issuer != "" || len(c.audiences) > 0:
		return nil, errors.New("auth: NewLogin: the ID token's issuer and audience are the issuer and client ID; do not pass WithIssuer or WithAudience")
	case c.optional:
		return nil, errors.New("auth: NewLogin: Optional does not apply (use the Login inside First with NewMiddleware(..., Optional()))")
	case lc.insecureCookies && strings.HasPrefix(lc.cookieName, "__Host-"):
		return nil, errors.New("auth: NewLogin: a __Host- cookie must be Secure; rename it with WithSessionCookie")
	}
	if err := checkURL(issuer, c.allowInsecure); err != nil {
		return nil, fmt.Errorf("auth: NewLogin: issuer: %w", err)
	}
	if err := checkURL(redirectURL, c.allowInsecure); err != nil {
		return nil, fmt.Errorf("auth: NewLogin: redirect URL: %w", err)
	}
	l := &Login{
		issuer: issuer, clientID: clientID, clientSecret: lc.clientSecret, redirectURL: redirectURL,
		scopes: lc.scopes, insecure: c.allowInsecure, store: lc.store, storeTO: lc.storeTimeout,
		lifetime: lc.lifetime, refreshBefore: lc.refreshBefore, loginTTL: lc.loginTTL,
		loginPath: lc.loginPath, defaultReturn: lc.defaultReturn, postLogoutURL: lc.postLogoutURL,
		now: c.clock, logger: c.logger, onError: c.onError.Or(), claims: newClaimMapper(c),
		cookies: cookieCodec{name: lc.cookieName, secure: !lc.insecureCookies, maxChunks: lc.maxChunks},
		recent:  newBoundedMap[*refreshResult](10_000),
		backoff: newBoundedMap[time.Time](10_000),
		decoded: newBoundedMap[*session](decodeCacheSize),
	}
	l.statePrefix = "gk_login_"
	if !lc.insecureCookies {
		l.statePrefix = "__Host-gk_login_"
	}
	if lc.store != nil {
		l.cookies.maxChunks = 1
	}
	l.cookies = l.cookies.withNames()
	for k, v := range lc.authParams {
		l.authParams = append(l.authParams, oauth2.SetAuthURLParam(k, v))
	}
	if l.sealer, err = newSealer(lc.keys); err != nil {
		return nil, fmt.Errorf("auth: NewLogin: %w", err)
	}
	if l.returns, err = newReturnURLs(lc.origins); err != nil {
		return nil, fmt.Errorf("auth: NewLogin: %w", err)
	}
	if l.gate, err = newGate(c, "session"); err != nil {
		return nil, fmt.Errorf("auth: NewLogin: %w", err)
	}
	if err := l.initMetrics(c.meter); err != nil {
		return nil, fmt.Errorf("auth: NewLogin: %w", err)
	}
	l.hc, l.closeHC = newHTTPClient(c)
	// An ID token has no typ or "JWT"; the user's WithAllowedTypes, if any, comes later and wins.
	vopts := append([]Option{WithAllowedTypes(NoType, "JWT")}, lc.verifierOpts...)
	// Each ID token is verified once: no verification cache (and no cache goroutine).
	vopts = append(vopts, WithOIDC(issuer), WithAudience(clientID), WithHTTPClient(l.hc), WithoutCache())
	if len(c.algorithms) == 0 {
		vopts = append(vopts, WithAlgorithms("RS256"))
	}
	if l.verifier, err = NewJWT(vopts...); err != nil {
		l.closeHC()
		return nil, fmt.Errorf("auth: NewLogin: ID token verifier: %w", err)
	}
	if lc.backChannel {
		if l.bcl, err = newBackChannel(l, c, lc.backChannelRDB); err != nil {
			l.Close()
			return nil, fmt.Errorf("auth: NewLogin: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.fetchTimeout)
	defer cancel()
	if _, err := l.endpoints(ctx); err != nil {
		l.logger.Warn("auth: OIDC discovery failed; retrying at the next login", "issuer", issuer, "error", err)
	}
	return l, nil
}

func (l *Login) initMetrics(mp metric.MeterProvider) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	var err error
	if l.logins, err = m.Int64Counter("gatewaykit.auth.logins", metric.WithUnit("{login}"),
		metric.WithDescription("Completed OIDC login callbacks by outcome.")); err != nil {
		return err
	}
	if l.refreshes, err = m.Int64Counter("gatewaykit.auth.session.refreshes", metric.WithUnit("{refresh}"),
		metric.WithDescription("Access token refreshes of sessions by outcome.")); err != nil {
		return err
	}
	attrs := func(outcomes ...string) map[string][]metric.AddOption {
		out := make(map[string][]metric.AddOption, len(outcomes))
		for _, o := range outcomes {
			out[o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("auth.outcome", o)))}
		}
		return out
	}
	l.loginAttrs = attrs("ok", "state", "provider_error", "exchange", "id_token", "nonce", "session")
	l.refreshAttrs = attrs("ok", "refused", "ended", "unavailable")
	return nil
}

// Close stops the ID token verifier (JWKS refresh) and closes idle connections. Idempotent.
func (l *Login) Close() error {
	l.closeOnce.Do(func() {
		_ = l.verifier.Close()
		l.closeHC()
	})
	return nil
}

// ---- options ----

// WithClientSecret makes the client confidential: the secret authenticates the code exchange and
// refreshes (HTTP Basic, or form parameters when the provider's discovery document lists only
// client_secret_post). Default: a public client relying on PKCE alone (client_id in the form).
func WithClientSecret(secret string) LoginOption {
	return loginOpt("WithClientSecret", func(c *loginConfig) error {
		if secret == "" {
			return errors.New("empty secret")
		}
		c.clientSecret = secret
		return nil
	})
}

// WithSessionKeys sets the AES-256-GCM keys (SessionKeySize bytes each, from a secret store, never
// in code) that seal session and login-state cookies and store records. The first key seals; all
// open, so rotation is: prepend a new key, keep the old ones until the longest session has ended,
// then drop them. Required.
func WithSessionKeys(keys ...[]byte) LoginOption {
	return loginOpt("WithSessionKeys", func(c *loginConfig) error {
		if _, err := newSealer(keys); err != nil {
			return err
		}
		c.keys = make([][]byte, len(keys))
		for i, k := range keys {
			c.keys[i] = slices.Clone(k)
		}
		return nil
	})
}

// WithScopes sets the requested scopes; "openid" is always included. Default "openid offline_access"
// (offline_access asks for a refresh token).
func WithScopes(scopes ...string) LoginOption {
	return loginOpt("WithScopes", func(c *loginConfig) error {
		c.scopes = []string{"openid"}
		for _, s := range scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				return fmt.Errorf("invalid scope %q", s)
			}
			if s != "openid" {
				c.scopes = append(c.scopes, s)
			}
		}
		return nil
	})
}

// WithAuthParams adds fixed parameters to the authorization request (prompt, audience, acr_values,
// ...). The protocol parameters (state, nonce, code_challenge, ...) cannot be overridden.
func WithAuthParams(params map[string]string) LoginOption {
	return loginOpt("WithAuthParams", func(c *loginConfig) error {
		reserved := []string{"state", "nonce", "code_challenge", "code_challenge_method", "client_id",
			"redirect_uri", "response_type", "scope"}
		c.authParams = make(map[string]string, len(params))
		for k, v := range params {
			if k == "" || slices.Contains(reserved, k) {
				return fmt.Errorf("parameter %q cannot be set", k)
			}
			c.authParams[k] = v
		}
		return nil
	})
}

// WithSessionStore keeps sessions server-side (MemorySessionStore, RedisSessionStore, or your own):
// the cookie carries only the sealed session ID, records are sealed too, and logout deletes the
// record so a copied cookie stops working at once. Use it when tokens are too large for a cookie or
// when logout must be effective everywhere. timeout bounds each store call (0 means 1 s); a
// failing store answers 503 (fail closed). Default: the whole session in the cookie.
func WithSessionStore(store SessionStore, timeout time.Duration) LoginOption {
	return loginOpt("WithSessionStore", func(c *loginConfig) error {
		if store == nil {
			return errors.New("nil store")
		}
		if timeout < 0 {
			return errors.New("negative timeout")
		}
		c.store = store
		if timeout > 0 {
			c.storeTimeout = timeout
		}
		return nil
	})
}

// WithSessionCookie sets the session cookie name. Default DefaultSessionCookie.
func WithSessionCookie(name string) LoginOption {
	return loginOpt("WithSessionCookie", func(c *loginConfig) error {
		if name == "" || !validToken(name) {
			return fmt.Errorf("invalid cookie name %q", name)
		}
		c.cookieName = name
		return nil
	})
}

// InsecureCookies drops the Secure attribute (and so the __Host- prefix of the login-state cookies)
// for plain-http development setups. The session cookie name must then not start with __Host-.
// Default: Secure cookies.
func InsecureCookies() LoginOption {
	return loginOpt("InsecureCookies", func(c *loginConfig) error { c.insecureCookies = true; return nil })
}

// WithMaxCookieChunks sets how many cookies (name, name_1, ...) a session may span, 1 to 16.
// A larger session fails the login with ErrSessionTooLarge (logged; the user gets 500): use
// WithSessionStore then. Default 4 (about 15 KB).
func WithMaxCookieChunks(n int) LoginOption {
	return loginOpt("WithMaxCookieChunks", func(c *loginConfig) error {
		if n < 1 || n > 16 {
			return fmt.Errorf("%d chunks out of range [1, 16]", n)
		}
		c.maxChunks = n
		return nil
	})
}

// WithSessionLifetime sets how long a session lasts after login, regardless of refreshes
// (1 minute to 90 days). Default 24 h.
func WithSessionLifetime(d time.Duration) LoginOption {
	return loginOpt("WithSessionLifetime", func(c *loginConfig) error {
		if d < time.Minute || d > 90*24*time.Hour {
			return fmt.Errorf("lifetime %v out of range [1m, 90d]", d)
		}
		c.lifetime = d
		return nil
	})
}

// WithRefreshBefore sets how long before the access token's expiry it is refreshed (0 to 1 h).
// Default 1 minute.
func WithRefreshBefore(d time.Duration) LoginOption {
	return loginOpt("WithRefreshBefore", func(c *loginConfig) error {
		if d < 0 || d > time.Hour {
			return fmt.Errorf("%v out of range [0, 1h]", d)
		}
		c.refreshBefore = d
		return nil
	})
}

// WithLoginTimeout sets how long a started login (its state cookie) stays valid, 1 to 60 minutes.
// Default 10 minutes.
func WithLoginTimeout(d time.Duration) LoginOption {
	return loginOpt("WithLoginTimeout", func(c *loginConfig) error {
		if d < time.Minute || d > time.Hour {
			return fmt.Errorf("%v out of range [1m, 1h]", d)
		}
		c.loginTTL = d
		return nil
	})
}

// WithReturnOrigins allows absolute return URLs (after login and logout) on these origins
// ("https://app.example.com"). Default: only same-origin paths ("/orders").
func WithReturnOrigins(origins ...string) LoginOption {
	return loginOpt("WithReturnOrigins", func(c *loginConfig) error {
		if _, err := newReturnURLs(origins); err != nil {
			return err
		}
		c.origins = append(c.origins, origins...)
		return nil
	})
}

// WithLoginPath sets the path of ServeLogin, where Wrap sends browsers without a session
// (with return_to set to the requested path). Default "/auth/login".
func WithLoginPath(path string) LoginOption {
	return loginOpt("WithLoginPath", func(c *loginConfig) error {
		if !strings.HasPrefix(path, "/") || strings.HasPrefix(path, "//") || strings.ContainsAny(path, "?#\\ ") {
			return fmt.Errorf("invalid path %q", path)
		}
		c.loginPath = path
		return nil
	})
}

// WithPostLogoutRedirect sets the post_logout_redirect_uri sent to the provider's end_session
// endpoint (it must be registered there). Default: none, the provider shows its own page.
func WithPostLogoutRedirect(u string) LoginOption {
	return loginOpt("WithPostLogoutRedirect", func(c *loginConfig) error {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("invalid URL %q", u)
		}
		c.postLogoutURL = u
		return nil
	})
}

// LoginVerifierOptions passes options of this package to the ID token verifier and to the login's
// shared settings: WithAlgorithms, WithAllowedTypes, WithLeeway, WithClock, WithLogger,
// WithMeterProvider, WithErrorHandler, WithHTTPClient, WithFetchTimeout, AllowInsecureHTTP,
// WithUpstreamHeaders and the claim options (WithRolesClaim, WithScopeClaims, WithTierClaim) that
// shape the session's Identity. The ID token's "typ" must be absent or "JWT" unless
// WithAllowedTypes says otherwise: an "at+jwt" access token is not accepted as an ID token.
// Key sources, WithIssuer, WithAudience and Optional are refused (the issuer, client ID and
// discovery decide them); options that do not apply to NewJWT are refused as by NewJWT.
func LoginVerifierOptions(opts ...Option) LoginOption {
	return loginOpt("LoginVerifierOptions", func(c *loginConfig) error {
		c.verifierOpts = append(c.verifierOpts, opts...)
		return nil
	})
}

// ---- discovery ----

// endpoints returns the discovered provider endpoints, fetching them at most every 5 s until one
// fetch succeeds.
func (l *Login) endpoints(ctx context.Context) (*oidcEndpoints, error) {
	l.discMu.Lock()
	defer l.discMu.Unlock()
	if l.disc != nil {
		return l.disc, nil
	}
	now := l.now()
	if !l.discLast.IsZero() && now.Sub(l.discLast) < 5*time.Second && now.After(l.discLast) {
		return nil, fmt.Errorf("%w: OIDC discovery failed recently", ErrUnavailable)
	}
	l.discLast = now
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		strings.TrimSuffix(l.issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	body, _, err := doJSON(l.hc, req)
	if err != nil {
		return nil, fmt.Errorf("%w: OIDC discovery: %w", ErrUnavailable, err)
	}
	ep := &oidcEndpoints{}
	if err := json.Unmarshal(body, ep); err != nil {
		return nil, fmt.Errorf("%w: OIDC discovery: %w", ErrUnavailable, err)
	}
	if ep.Issuer != l.issuer {
		return nil, fmt.Errorf("%w: OIDC discovery: document names issuer %q, want %q", ErrUnavailable, ep.Issuer, l.issuer)
	}
	for _, u := range []string{ep.AuthorizationEndpoint, ep.TokenEndpoint} {
		if err := checkURL(u, l.insecure); err != nil {
			return nil, fmt.Errorf("%w: OIDC discovery: %w", ErrUnavailable, err)
		}
	}
	if ep.EndSessionEndpoint != "" && checkURL(ep.EndSessionEndpoint, l.insecure) != nil {
		ep.EndSessionEndpoint = ""
	}
	// Choose the client authentication the provider supports (client_secret_basic is the default
	// when it lists none) rather than letting x/oauth2 guess, which costs a second token request
	// (and a second use of a one-time code) whenever the first is refused.
	switch {
	case len(ep.AuthMethods) == 0 || slices.Contains(ep.AuthMethods, "client_secret_basic"):
		ep.authStyle = oauth2.AuthStyleInHeader
	case slices.Contains(ep.AuthMethods, "client_secret_post"):
		ep.authStyle = oauth2.AuthStyleInParams
	}
	l.disc = ep
	return ep, nil
}

func (l *Login) oauthConfig(ep *oidcEndpoints) *oauth2.Config {
	style := ep.authStyle
	if l.clientSecret == "" {
		style = oauth2.AuthStyleInParams // a public client: client_id in the form, no Basic header
	}
	return &oauth2.Config{
		ClientID: l.clientID, ClientSecret: l.clientSecret, RedirectURL: l.redirectURL, Scopes: l.scopes,
		Endpoint: oauth2.Endpoint{AuthURL: ep.AuthorizationEndpoint, TokenURL: ep.TokenEndpoint, AuthStyle: style},
	}
}

// clientContext carries the login's HTTP client to x/oauth2 and detaches from the caller's
// cancellation (a refresh shared by many requests must not fail because one client went away).
func (l *Login) clientContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*l.hcTimeout())
	return context.WithValue(ctx, oauth2.HTTPClient, l.hc), cancel
}

func (l *Login) hcTimeout() time.Duration {
	if l.hc.Timeout > 0 {
		return l.hc.Timeout
	}
	return 5 * time.Second
}

// ---- login ----

// loginState is sealed into the short-lived login-state cookie: it binds the callback to the
// browser that started the login (CSRF-safe state) and keeps the PKCE verifier and nonce.
type loginState struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Return   string    `json:"r"`
	Created  time.Time `json:"t"`
}

func randomString() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// stateCookie names the login-state cookie of one state, so parallel logins in several tabs do not
// overwrite each other.
func (l *Login) stateCookie(state string) string { return l.statePrefix + state[:16] }

var adLoginState = []byte("gatewaykit login state")

// ServeLogin starts a login: it sets a login-state cookie (sealed state, nonce and PKCE verifier,
// valid for the login timeout) and redirects to the provider's authorization endpoint. The query
// parameter return_to says where to go afterwards; it must be a same-origin path or an allowed
// origin (WithReturnOrigins), otherwise the default "/" is used. 503 when discovery fails.
func (l *Login) ServeLogin(w http.ResponseWriter, r *http.Request) {
	ep, err := l.endpoints(r.Context())
	if err != nil {
		l.logLimited(slog.LevelWarn, "auth: login: OIDC discovery failed", "error", err)
		l.onError(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "identity provider unavailable").WithRetryAfter(5*time.Second))
		return
	}
	ret, ok := l.returns.check(r.URL.Query().Get("return_to"))
	if !ok {
		ret = l.defaultReturn
	}
	st := loginState{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Return: ret, Created: l.now()}
	pt, _ := json.Marshal(st)
	cc := cookieCodec{name: l.stateCookie(st.State), secure: l.cookies.secure, maxChunks: 1}
	http.SetCookie(w, cc.cookie(cc.name, l.sealer.seal(pt, adLoginState), int(l.loginTTL/time.Second)))
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier),
		oauth2.SetAuthURLParam("nonce", st.Nonce)}, l.authParams...)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, l.oauthConfig(ep).AuthCodeURL(st.State, opts...), http.StatusFound)
}

// callbackFail answers a failed callback with p and counts the outcome.
func (l *Login) callbackFail(w http.ResponseWriter, r *http.Request, outcome string, p *gatewaykit.Problem) {
	l.logins.Add(r.Context(), 1, l.loginAttrs[outcome]...)
	w.Header().Set("Cache-Control", "no-store")
	l.onError(w, r, p)
}

// ServeCallback completes a login at the redirect URL: it checks state against the login-state
// cookie (which it deletes), exchanges the code with the PKCE verifier, verifies the ID token
// (signature, iss, aud, exp, azp when several audiences, and nonce), creates the session and
// redirects to the return URL (303). Failures answer 401 problem+json (400 for a callback without
// state or code, 502 when the token endpoint fails) and never echo tokens or provider messages.
func (l *Login) ServeCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if len(state) != 43 || q.Has("state") && len(q["state"]) != 1 {
		l.callbackFail(w, r, "state", gatewaykit.NewProblem(http.StatusBadRequest, "missing or malformed login state"))
		return
	}
	cc := cookieCodec{name: l.stateCookie(state), secure: l.cookies.secure, maxChunks: 1}
	raw := cc.read(r)
	if raw == "" {
		l.callbackFail(w, r, "state", gatewaykit.NewProblem(http.StatusUnauthorized, "login state not found (expired, replayed or started in another browser)"))
		return
	}
	cc.clear(w, r) // one use only
	var st loginState
	pt, err := l.sealer.open(raw, adLoginState)
	if err == nil {
		err = json.Unmarshal(pt, &st)
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		l.callbackFail(w, r, "state", gatewaykit.NewProblem(http.StatusUnauthorized, "login state mismatch"))
		return
	}
	if age := l.now().Sub(st.Created); age < -time.Minute || age > l.loginTTL {
		l.callbackFail(w, r, "state", gatewaykit.NewProblem(http.StatusUnauthorized, "login expired"))
		return
	}
	if q.Has("error") {
		l.callbackFail(w, r, "provider_error", gatewaykit.NewProblem(http.StatusUnauthorized, "login refused by the identity provider"))
		return
	}
	code := q.Get("code")
	if code == "" {
		l.callbackFail(w, r, "exchange", gatewaykit.NewProblem(http.StatusBadRequest, "missing authorization code"))
		return
	}
	ep, err := l.endpoints(r.Context())
	if err != nil {
		l.callbackFail(w, r, "exchange", gatewaykit.NewProblem(http.StatusServiceUnavailable, "identity provider unavailable").WithRetryAfter(5*time.Second))
		return
	}
	ctx, cancel := l.clientContext(r.Context())
	defer cancel()
	tok, err := l.oauthConfig(ep).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		if _, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
			l.callbackFail(w, r, "exchange", gatewaykit.NewProblem(http.StatusUnauthorized, "authorization code refused"))
			return
		}
		l.logLimited(slog.LevelWarn, "auth: login: token endpoint failed", "error", redactErr(err))
		l.callbackFail(w, r, "exchange", gatewaykit.NewProblem(http.StatusBadGateway, "identity provider failed"))
		return
	}
	claims, err := l.verifyIDToken(ctx, tok, st.Nonce, "")
	if err != nil {
		outcome := "id_token"
		if errors.Is(err, errNonce) {
			outcome = "nonce"
		}
		l.callbackFail(w, r, outcome, gatewaykit.NewProblem(http.StatusUnauthorized, "ID token rejected: "+detailOf(classOf(err))))
		return
	}
	now := l.now()
	s := &session{
		ID: newSessionID(), Claims: claims, AccessToken: tok.AccessToken, TokenType: tok.TokenType,
		RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, Created: now, ExpiresAt: now.Add(l.lifetime),
	}
	if l.store != nil { // a new login replaces the browser's previous session, if any
		if prev, err := l.sessionID(r); err == nil {
			sctx, cancel := context.WithTimeout(r.Context(), l.storeTO)
			_ = l.store.Delete(sctx, prev)
			cancel()
		}
	}
	err = l.indexSession(r.Context(), s)
	if err == nil {
		err = l.save(r.Context(), w, r, s)
	}
	if err != nil {
		l.logLimited(slog.LevelError, "auth: login: cannot save the session", "error", err)
		status := http.StatusInternalServerError
		if errors.Is(err, ErrUnavailable) {
			status = http.StatusServiceUnavailable
		}
		l.callbackFail(w, r, "session", gatewaykit.NewProblem(status, "cannot create the session"))
		return
	}
	l.logins.Add(r.Context(), 1, l.loginAttrs["ok"]...)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, st.Return, http.StatusSeeOther)
}

var errNonce = fmt.Errorf("%w: nonce mismatch", ErrInvalidCredential)

// verifyIDToken verifies the ID token of a token response with the package's JWT verifier (keys
// from the issuer's JWKS, typ absent or "JWT" by default, iss, aud = client ID, exp, iat), then
// azp and nonce. At refresh (wantNonce == "") an ID token is optional, must keep the subject and
// its nonce is not checked.
func (l *Login) verifyIDToken(ctx context.Context, tok *oauth2.Token, wantNonce, wantSub string) (map[string]any, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		if wantNonce == "" {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: no ID token in the token response", ErrMissingClaim)
	}
	if len(raw) > 64<<10 {
		return nil, ErrTooLarge
	}
	id, err := l.verifier.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	claims := id.Claims
	if auds, ok := claims["aud"].([]any); ok && len(auds) > 1 {
		if azp, _ := claims["azp"].(string); azp != l.clientID {
			return nil, fmt.Errorf("%w: azp is not the client", ErrAudience)
		}
	}
	if wantNonce != "" {
		nonce, _ := claims["nonce"].(string)
		if subtle.ConstantTimeCompare([]byte(nonce), []byte(wantNonce)) != 1 {
			return nil, errNonce
		}
	}
	if wantSub != "" && id.Subject != wantSub {
		return nil, fmt.Errorf("%w: subject changed at refresh", ErrInvalidCredential)
	}
	return claims, nil
}

// logInterval is the minimum time between per-request operational log lines (a failing IdP or store
// would otherwise log once per request); failures are always counted in metrics.
const logInterval = 10 * time.Second

// logLimited logs at most one line per logInterval.
func (l *Login) logLimited(level slog.Level, msg string, args ...any) {
	now := time.Now().UnixNano() // wall clock on purpose: the rate limit is about log volume
	last := l.lastLog.Load()
	if now-last < int64(logInterval) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.logger.Log(context.Background(), level, msg, args...)
}

// redactErr keeps an error loggable without leaking URLs with query strings (codes, tokens) or
// token endpoint response bodies.
func redactErr(err error) string {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("token endpoint: status %d, error %q", status, re.ErrorCode)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Op + " " + redactURL(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// ---- logout ----

// ServeLogout ends the session: it deletes the server-side record (with a store), clears the
// session cookies and, when the provider advertises an end_session_endpoint, redirects there
// (RP-initiated logout with client_id and the WithPostLogoutRedirect URL; never the ID token, which
// would end up in URLs and logs). Otherwise it redirects (303) to return_to when allowed, or "/".
// In cookie mode a copy of the cookie stays valid on other instances until it expires (this
// instance refuses it); use WithSessionStore when logout must be effective everywhere.
// Mount it on POST so that other sites cannot log users out (SameSite=Lax cookies travel with
// cross-site top-level GETs).
func (l *Login) ServeLogout(w http.ResponseWriter, r *http.Request) {
	if l.store == nil {
		// A stateless cookie cannot be revoked everywhere; this instance at least refuses it from now on.
		if s, err := l.load(r); err == nil {
			l.recent.put(s.ID, &refreshResult{ended: true, at: l.now()})
		}
	} else {
		if id, err := l.sessionID(r); err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), l.storeTO)
			if err := l.store.Delete(ctx, id); err != nil {
				l.logLimited(slog.LevelWarn, "auth: logout: session store delete failed", "error", err)
			}
			cancel()
			l.recent.put(id, &refreshResult{ended: true, at: l.now()})
		}
	}
	l.cookies.clear(w, r)
	w.Header().Set("Cache-Control", "no-store")
	ret, ok := l.returns.check(r.URL.Query().Get("return_to"))
	if !ok {
		ret = l.defaultReturn
	}
	if ep, err := l.endpoints(r.Context()); err == nil && ep.EndSessionEndpoint != "" {
		u, err := url.Parse(ep.EndSessionEndpoint)
		if err == nil {
			q := u.Query()
			q.Set("client_id", l.clientID)
			if l.postLogoutURL != "" {
				q.Set("post_logout_redirect_uri", l.postLogoutURL)
			}
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
	}
	http.Redirect(w, r, ret, http.StatusSeeOther)
}
