package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/gatewaykit/gatewaykit"
)

var (
	adSessionCookie = []byte("gatewaykit session")
	adSessionID     = []byte("gatewaykit session id")
)

func adSessionRecord(id string) []byte { return []byte("gatewaykit session record " + id) }

// sessionID reads the session ID from a store-mode cookie.
func (l *Login) sessionID(r *http.Request) (string, error) {
	raw := l.cookies.read(r)
	if raw == "" {
		return "", ErrNoCredentials
	}
	pt, err := l.sealer.open(raw, adSessionID)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// load returns the request's session (not yet checked for expiry). ErrNoCredentials when the
// request has no session cookie, ErrSessionInvalid when it cannot be opened, ErrSessionExpired for
// a store record that is gone, ErrUnavailable when the store fails.
func (l *Login) load(r *http.Request) (*session, error) {
	if l.store != nil {
		id, err := l.sessionID(r)
		if err != nil {
			return nil, err
		}
		return l.loadRecord(r.Context(), id)
	}
	sealed := l.cookies.read(r)
	if sealed == "" {
		return nil, ErrNoCredentials
	}
	return l.decode(sealed, adSessionCookie)
}

// loadRecord reads and decodes the store record of session id.
func (l *Login) loadRecord(ctx context.Context, id string) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, l.storeTO)
	rec, err := l.store.Get(ctx, id)
	cancel()
	if errors.Is(err, ErrSessionNotFound) {
		return nil, ErrSessionExpired
	} else if err != nil {
		return nil, fmt.Errorf("%w: session store: %w", ErrUnavailable, err)
	}
	return l.decode(string(rec), adSessionRecord(id))
}

// decode opens a sealed session. The decode cache is keyed by the whole sealed value: only a value
// that opened before (so authenticated by AES-GCM) can hit, and it always means the same session.
func (l *Login) decode(sealed string, ad []byte) (*session, error) {
	if s, ok := l.decoded.get(sealed); ok {
		return s, nil
	}
	pt, err := l.sealer.open(sealed, ad)
	if err != nil {
		return nil, err
	}
	s, err := unmarshalSession(pt)
	if err != nil {
		return nil, err
	}
	if s.identity, err = l.claims.identity(s.Claims, "session"); err != nil {
		return nil, ErrSessionInvalid
	}
	if l.bcl != nil {
		s.logoutKeys = l.sessionLogoutKeys(s.Claims)
	}
	if len(sealed) <= maxCachedSealed {
		l.decoded.put(sealed, s)
	}
	return s, nil
}

// maxCachedSealed bounds the size of a decode cache key; with decodeCacheSize entries the cache
// holds at most 16 MiB of keys.
const (
	maxCachedSealed = 4 << 10
	decodeCacheSize = 4096
)

// save writes s as the session cookie, or as a store record with a cookie holding its ID.
func (l *Login) save(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	pt, err := marshalSession(s)
	if err != nil {
		return err
	}
	ttl := s.ExpiresAt.Sub(l.now())
	if ttl <= 0 {
		return ErrSessionExpired
	}
	if l.store == nil {
		return l.cookies.write(w, r, l.sealer.seal(pt, adSessionCookie), ttl)
	}
	sctx, cancel := context.WithTimeout(ctx, l.storeTO)
	defer cancel()
	if err := l.store.Set(sctx, s.ID, []byte(l.sealer.seal(pt, adSessionRecord(s.ID))), ttl); err != nil {
		return fmt.Errorf("%w: session store: %w", ErrUnavailable, err)
	}
	return l.cookies.write(w, r, l.sealer.seal([]byte(s.ID), adSessionID), ttl)
}

// current returns the newest known version of s: a refresh done by a concurrent or earlier request
// (whose cookie this request does not carry yet) replaces it, an ended session is an error.
// refused reports that the refresh of the returned version was refused: serve it until its access
// token expires, do not refresh it again.
func (l *Login) current(s *session) (_ *session, refused bool, err error) {
	if rr, ok := l.recent.get(s.ID); ok {
		switch {
		case rr.ended:
			return nil, false, ErrSessionExpired
		case rr.s.Gen > s.Gen:
			return rr.s, rr.refused, nil
		case rr.s.Gen == s.Gen:
			return s, rr.refused, nil
		}
	}
	return s, false, nil
}

// refreshBackoff is how long a session waits after a failed (transient) refresh before trying again.
const refreshBackoff = 5 * time.Second

// needsRefresh reports whether s's access token is due for refresh.
func (l *Login) needsRefresh(s *session, now time.Time) bool {
	return s.RefreshToken != "" && !s.Expiry.IsZero() && !now.Before(s.Expiry.Add(-l.refreshBefore))
}

// fresh returns s, or a refreshed version of it when its access token is about to expire; changed
// is true when the caller's cookie is out of date. The refresh is single-flight per session.
func (l *Login) fresh(ctx context.Context, s *session) (_ *session, changed bool, err error) {
	now := l.now()
	if !now.Before(s.ExpiresAt) {
		return nil, false, ErrSessionExpired
	}
	cur, refused, err := l.current(s)
	if err != nil {
		return nil, false, err
	}
	if refused && !now.Before(cur.Expiry) {
		l.end(ctx, cur.ID)
		return nil, false, fmt.Errorf("%w: refresh refused", ErrSessionExpired)
	}
	if refused || !l.needsRefresh(cur, now) {
		return cur, cur != s, nil
	}
	if at, ok := l.backoff.get(s.ID); ok && now.Sub(at) < refreshBackoff && now.After(at) {
		// The provider failed moments ago: do not hammer it once per request.
		if now.Before(cur.Expiry) {
			return cur, cur != s, nil
		}
		return nil, false, fmt.Errorf("%w: token endpoint failed recently", ErrUnavailable)
	}
	v, err, _ := l.flights.Do(s.ID, func() (any, error) { return l.refresh(ctx, s) })
	if err != nil {
		if errors.Is(err, ErrUnavailable) && now.Before(cur.Expiry) {
			return cur, cur != s, nil // the IdP blinks: keep the still valid token, retry next time
		}
		return nil, false, err
	}
	ns := v.(*session)
	return ns, ns != s, nil
}

// newer returns the store's version of base when another gateway instance has refreshed it since
// (store mode only; nil otherwise).
func (l *Login) newer(ctx context.Context, base *session) *session {
	if l.store == nil {
		return nil
	}
	if s, err := l.loadRecord(ctx, base.ID); err == nil && s.Gen > base.Gen {
		return s
	}
	return nil
}

// refresh runs inside the session's flight: it refreshes the newest version of s unless another
// flight (or, with a store, another gateway instance) already did.
func (l *Login) refresh(ctx context.Context, s *session) (*session, error) {
	now := l.now()
	base, refused, err := l.current(s)
	if err != nil {
		return nil, err
	}
	if n := l.newer(ctx, base); n != nil {
		base, refused = n, false
	}
	if refused || !l.needsRefresh(base, now) {
		return base, nil
	}
	ep, err := l.endpoints(ctx)
	if err != nil {
		l.refreshes.Add(ctx, 1, l.refreshAttrs["unavailable"]...)
		return nil, err
	}
	cctx, cancel := l.clientContext(ctx)
	defer cancel()
	tok, err := l.oauthConfig(ep).TokenSource(cctx, &oauth2.Token{RefreshToken: base.RefreshToken, Expiry: now.Add(-time.Hour)}).Token()
	if err != nil {
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil && re.Response.StatusCode < 500 {
			if n := l.newer(ctx, base); n != nil {
				return n, nil // another instance rotated the refresh token first
			}
			if now.Before(base.Expiry) {
				// Revoked, or rotated by another gateway instance that served the same cookie
				// concurrently (that instance's response carries the newer cookie). Either way the
				// access token is still valid: serve it until it expires, then end the session.
				l.recent.put(base.ID, &refreshResult{s: base, refused: true, at: now})
				l.refreshes.Add(ctx, 1, l.refreshAttrs["refused"]...)
				return base, nil
			}
			l.end(ctx, base.ID)
			l.refreshes.Add(ctx, 1, l.refreshAttrs["ended"]...)
			return nil, fmt.Errorf("%w: refresh refused", ErrSessionExpired)
		}
		l.logLimited(slog.LevelWarn, "auth: session refresh failed", "error", redactErr(err))
		l.refreshes.Add(ctx, 1, l.refreshAttrs["unavailable"]...)
		l.backoff.put(base.ID, now)
		return nil, fmt.Errorf("%w: token endpoint: %w", ErrUnavailable, err)
	}
	ns := *base
	ns.Gen++
	ns.AccessToken, ns.TokenType, ns.Expiry = tok.AccessToken, tok.TokenType, tok.Expiry
	if tok.RefreshToken != "" {
		ns.RefreshToken = tok.RefreshToken
	}
	claims, err := l.verifyIDToken(cctx, tok, "", base.identity.Subject)
	if err != nil {
		l.end(ctx, base.ID)
		l.refreshes.Add(ctx, 1, l.refreshAttrs["ended"]...)
		return nil, fmt.Errorf("%w: refreshed ID token: %w", ErrSessionExpired, err)
	}
	if claims != nil {
		// The provider session is the login's: a refreshed ID token without "sid" (the provider
		// need not repeat it) keeps the login's, or a back-channel logout by sid would miss it.
		if sid, ok := base.Claims["sid"]; ok {
			if _, has := claims["sid"]; !has {
				claims["sid"] = sid
			}
		}
		ns.Claims = claims
		if ns.identity, err = l.claims.identity(claims, "session"); err != nil {
			return nil, ErrSessionInvalid
		}
		if l.bcl != nil {
			ns.logoutKeys = l.sessionLogoutKeys(claims)
		}
	}
	if l.store != nil {
		pt, err := marshalSession(&ns)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(cctx, l.storeTO)
		err = l.store.Set(sctx, ns.ID, []byte(l.sealer.seal(pt, adSessionRecord(ns.ID))), ns.ExpiresAt.Sub(now))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: session store: %w", ErrUnavailable, err)
		}
	}
	l.recent.put(ns.ID, &refreshResult{s: &ns, at: now})
	l.refreshes.Add(ctx, 1, l.refreshAttrs["ok"]...)
	return &ns, nil
}

// end marks a session as ended in this process and deletes its store record.
func (l *Login) end(ctx context.Context, id string) {
	l.recent.put(id, &refreshResult{ended: true, at: l.now()})
	if l.store != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.storeTO)
		_ = l.store.Delete(sctx, id)
		cancel()
	}
}

// Authenticate implements Authenticator, so a session can be combined with other methods
// (First(jwt, login)). The Identity has Method "session", the subject, roles, scopes and tier
// mapped from the ID token claims, which are its Claims. It refreshes a due access token like Wrap
// does, but cannot rewrite the cookie; prefer Wrap, which does. No session cookie is
// ErrNoCredentials.
func (l *Login) Authenticate(r *http.Request) (*gatewaykit.Identity, error) {
	s, err := l.load(r)
	if err == nil {
		err = l.checkRevoked(r.Context(), s)
	}
	if err != nil {
		return nil, err
	}
	if s, _, err = l.fresh(r.Context(), s); err != nil {
		return nil, err
	}
	return s.identity, nil
}

// Wrap returns next behind the session: requests with a valid session reach next with the
// session's Identity in their context and its access token available to ForwardSessionToken and
// SessionTokenTransport (refreshed first when due; the new session cookie is set on the response).
// A refused refresh (revoked refresh token) ends the session when the access token expires, at most
// the refresh margin later; until then the token is served and the provider is not asked again.
// Without a valid session, a browser navigation (GET or HEAD accepting text/html) is redirected to
// the login path with return_to set to the requested path; any other request gets 401
// problem+json. A failing session store or token endpoint (with an expired token) gets 503.
// Client-sent identity headers (X-User-*) are removed and set from the session as for the other
// methods. The method value is a gatewaykit.Middleware.
func (l *Login) Wrap(next http.Handler) http.Handler { return l.wrap(next, false) }

// WrapAPI is Wrap for API routes: a request without a valid session always gets 401 problem+json,
// never a redirect.
func (l *Login) WrapAPI(next http.Handler) http.Handler { return l.wrap(next, true) }

func (l *Login) wrap(next http.Handler, api bool) http.Handler {
	g := l.gate
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header == nil { // only hand-built requests; servers always set it
			r.Header = make(http.Header)
		}
		g.strip(r.Header)
		ctx := r.Context()
		s, err := l.load(r)
		changed := false
		if err == nil {
			err = l.checkRevoked(ctx, s)
		}
		if err == nil {
			s, changed, err = l.fresh(ctx, s)
		}
		if err != nil {
			l.reject(w, r, err, api)
			return
		}
		if changed && l.store == nil {
			if err := l.save(ctx, w, r, s); err != nil {
				l.logLimited(slog.LevelWarn, "auth: cannot rewrite the refreshed session cookie", "error", err)
			}
		}
		vals := make([]string, len(g.headers))
		for i, uh := range g.headers {
			if vals[i] = uh.value(s.identity); vals[i] != "" && validHeaderValue(vals[i]) {
				r.Header[uh.name] = vals[i : i+1 : i+1]
			}
		}
		g.decisions.Add(ctx, 1, g.okAttrs...)
		ctx = gatewaykit.WithIdentity(ctx, s.identity)
		ctx = context.WithValue(ctx, sessionTokenKey{}, s)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (l *Login) reject(w http.ResponseWriter, r *http.Request, err error, api bool) {
	ctx := r.Context()
	cl := classOf(err)
	l.gate.decisions.Add(ctx, 1, l.gate.rejAttrs[cl]...)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(l.gate.methodKV, attribute.String("auth.reason", detailOf(cl)))
	}
	if cl == ErrUnavailable {
		l.onError(w, r, problemFor(err))
		return
	}
	if !errors.Is(err, ErrNoCredentials) {
		l.cookies.clear(w, r) // an invalid or ended session cookie is useless from now on
	}
	if !api && (r.Method == http.MethodGet || r.Method == http.MethodHead) && acceptsHTML(r) {
		ret := r.URL.RequestURI()
		if _, ok := l.returns.check(ret); !ok {
			ret = l.defaultReturn
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, l.loginPath+"?return_to="+url.QueryEscape(ret), http.StatusFound)
		return
	}
	detail := "no session"
	switch {
	case errors.Is(err, ErrSessionExpired):
		detail = "session expired"
	case errors.Is(err, ErrSessionInvalid):
		detail = "invalid session"
	}
	l.onError(w, r, gatewaykit.NewProblem(http.StatusUnauthorized, detail).
		WithHeader("WWW-Authenticate", `Bearer realm="session"`).WithErr(err))
}

// acceptsHTML reports whether the client prefers an HTML page (a browser navigation).
func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}

type sessionTokenKey struct{}

// SessionToken returns the access token of the session that Wrap put in ctx.
func SessionToken(ctx context.Context) (token string, ok bool) {
	s, _ := ctx.Value(sessionTokenKey{}).(*session)
	if s == nil || s.AccessToken == "" {
		return "", false
	}
	return s.AccessToken, true
}

// ForwardSessionToken is a gatewaykit.Middleware for the routes whose upstream should receive the
// user's access token: it sets Authorization: Bearer <token> from the session that Login.Wrap put
// in the context, replacing whatever the client sent. Without a session it removes the client's
// Authorization header, so nothing unverified reaches the upstream. Put it inside Login.Wrap.
func ForwardSessionToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok, ok := SessionToken(r.Context()); ok {
			r.Header.Set("Authorization", "Bearer "+tok)
		} else {
			r.Header.Del("Authorization")
		}
		next.ServeHTTP(w, r)
	})
}

// SessionTokenTransport returns an http.RoundTripper that sends each outgoing request with the
// access token of the session found in the request's context (a request made with the incoming
// request's context behind Login.Wrap, as in aggregate parts), and without Authorization when
// there is none. base nil means http.DefaultTransport. Safe for concurrent use.
func SessionTokenTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return sessionTransport{base}
}

type sessionTransport struct{ base http.RoundTripper }

func (t sessionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, ok := SessionToken(req.Context())
	if !ok && req.Header.Get("Authorization") == "" {
		return t.base.RoundTrip(req)
	}
	r2 := req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
	if ok {
		r2.Header.Set("Authorization", "Bearer "+tok)
	} else {
		r2.Header.Del("Authorization")
	}
	return t.base.RoundTrip(r2)
}

// boundedMap is a mutex-guarded map that forgets arbitrary entries when full. It backs the decode
// cache and the recent-refresh table, whose entries are cheap to lose.
type boundedMap[V any] struct {
	mu  *sync.Mutex
	m   map[string]V
	max int
}

func newBoundedMap[V any](max int) boundedMap[V] {
	return boundedMap[V]{mu: &sync.Mutex{}, m: make(map[string]V), max: max}
}

func (b boundedMap[V]) get(k string) (V, bool) {
	b.mu.Lock()
	v, ok := b.m[k]
	b.mu.Unlock()
	return v, ok
}

func (b boundedMap[V]) put(k string, v V) {
	b.mu.Lock()
	if len(b.m) >= b.max {
		n := 0
		for old := range b.m {
			delete(b.m, old)
			if n++; n >= b.max/4 {
				break
			}
		}
	}
	b.m[k] = v
	b.mu.Unlock()
}
