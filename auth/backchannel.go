package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	jwtlib "github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit"
)

// backChannelLogoutEvent is the member of a logout token's "events" claim that makes it one
// (OpenID Connect Back-Channel Logout 1.0, section 2.4).
const backChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// DefaultLogoutTokenMaxAge is how old (by its iat) a logout token may be, whatever its exp, and
// how long after its iat a logout token's jti is remembered at most (WithBackChannelLogout).
const DefaultLogoutTokenMaxAge = 10 * time.Minute

// maxLogoutRecords bounds the in-memory revocation records and remembered jti values; when full
// (after dropping expired ones) a logout token is answered 503 rather than forgetting one.
const maxLogoutRecords = 100_000

// WithBackChannelLogout enables OpenID Connect Back-Channel Logout 1.0 at ServeBackChannelLogout,
// whose URL you register at the provider (nothing is advertised). rdb, when not nil, keeps the
// logout records (the jti of each logout token seen, to refuse replays, and, for cookie sessions,
// which provider sessions ended when) in Redis, shared by every gateway instance; nil keeps them
// in this process, which suits a single instance only: with cookie sessions (or a store that is
// not a SessionIndexer) and several instances, a logout received by one instance must reach the
// others, so pass rdb. Default: back-channel logout disabled (ServeBackChannelLogout answers 404).
func WithBackChannelLogout(rdb redis.UniversalClient) LoginOption {
	return loginOpt("WithBackChannelLogout", func(c *loginConfig) error {
		c.backChannel, c.backChannelRDB = true, rdb
		return nil
	})
}

// backChannel is the state of back-channel logout; nil when disabled.
type backChannel struct {
	parser *jwtlib.Parser
	keys   *JWT // only its keys and typ policy: keyFor
	log    logoutLog
	// revocations is true when sessions are ended by revocation records checked at each request
	// (cookie sessions, or a store that is not a SessionIndexer) rather than deleted from the store.
	revocations bool
	maxAge      time.Duration
	leeway      time.Duration // the parser's clock skew allowance on exp and iat
}

func newBackChannel(l *Login, c *config, rdb redis.UniversalClient) (*backChannel, error) {
	tc, err := apply("WithBackChannelLogout", sJWT, []Option{WithAllowedTypes(NoType, "logout+jwt")})
	if err != nil {
		return nil, err
	}
	algs := c.algorithms
	if len(algs) == 0 {
		algs = []string{"RS256"}
	}
	b := &backChannel{
		parser: jwtlib.NewParser(jwtlib.WithValidMethods(algs), jwtlib.WithLeeway(c.leeway),
			jwtlib.WithTimeFunc(c.clock), jwtlib.WithIssuedAt(), jwtlib.WithStrictDecoding(),
			jwtlib.WithIssuer(l.issuer), jwtlib.WithAudience(l.clientID)),
		keys:   &JWT{typ: tc.types, hmac: l.verifier.hmac, static: l.verifier.static, remote: l.verifier.remote},
		maxAge: DefaultLogoutTokenMaxAge,
		leeway: c.leeway,
	}
	if rdb != nil {
		b.log = redisLogoutLog{rdb: rdb}
	} else {
		b.log = newMemoryLogoutLog(l.now)
	}
	_, indexed := l.store.(SessionIndexer)
	b.revocations = l.store == nil || !indexed
	return b, nil
}

// errLogoutToken is a logout token that fails validation (400).
var errLogoutToken = errors.New("auth: invalid logout token")

// logoutClaims is what a valid logout token asks for.
type logoutClaims struct {
	sid, sub, jti string
	until         time.Time // when the jti may be forgotten
}

// verifyLogoutToken validates a logout token (section 2.6): signature with the provider's keys,
// typ absent or logout+jwt, iss, aud, iat (present, not in the future, at most maxAge old), exp
// when present, events with the back-channel logout member,
// sid or sub, jti, no nonce.
func (l *Login) verifyLogoutToken(ctx context.Context, raw string) (*logoutClaims, error) {
	b := l.bcl
	if len(raw) > 64<<10 {
		return nil, ErrTooLarge
	}
	claims := jwtlib.MapClaims{}
	called := false
	_, err := b.parser.ParseWithClaims(raw, claims, func(t *jwtlib.Token) (any, error) {
		called = true
		return b.keys.keyFor(ctx, t)
	})
	if err != nil {
		return nil, classifyJWT(err, called)
	}
	if err := checkUniqueMembers(raw); err != nil {
		return nil, err
	}
	if err := checkDates(claims); err != nil {
		return nil, err
	}
	iat, _ := claims["iat"].(float64)
	if _, ok := claims["iat"]; !ok {
		return nil, fmt.Errorf("%w: iat", ErrMissingClaim)
	}
	if _, ok := claims["nonce"]; ok {
		return nil, fmt.Errorf("%w: a logout token must not carry a nonce", errLogoutToken)
	}
	events, _ := claims["events"].(map[string]any)
	if ev, ok := events[backChannelLogoutEvent].(map[string]any); !ok || ev == nil {
		return nil, fmt.Errorf("%w: no back-channel logout event", errLogoutToken)
	}
	lc := &logoutClaims{}
	var ok bool
	for _, f := range []struct {
		name string
		dst  *string
	}{{"sid", &lc.sid}, {"sub", &lc.sub}, {"jti", &lc.jti}} {
		v, present := claims[f.name]
		if !present {
			continue
		}
		if *f.dst, ok = v.(string); !ok || *f.dst == "" {
			return nil, fmt.Errorf("%w: %s is not a non-empty string", ErrMalformed, f.name)
		}
	}
	if lc.sid == "" && lc.sub == "" {
		return nil, fmt.Errorf("%w: neither sid nor sub", errLogoutToken)
	}
	if lc.jti == "" {
		return nil, fmt.Errorf("%w: jti", ErrMissingClaim)
	}
	now := l.now()
	issued := time.Unix(int64(iat), 0)
	// The replay set keeps a jti at most maxAge after iat, so any token older than that is
	// refused, whatever its exp: a decision that depended on exp and the time of arrival let a
	// token living longer than the window be accepted again once its jti was forgotten.
	if now.Sub(issued) > b.maxAge {
		return nil, fmt.Errorf("%w: logout token too old", errLogoutToken)
	}
	lc.until = issued.Add(b.maxAge)
	if exp, present := claims["exp"].(float64); present {
		// The parser accepts the token until exp plus the leeway: its jti must be remembered as
		// long (when that is sooner than iat + maxAge).
		if deadline := time.Unix(int64(exp), 0).Add(b.leeway); deadline.Before(lc.until) {
			lc.until = deadline
		}
	}
	return lc, nil
}

// ServeBackChannelLogout is the back-channel logout endpoint (OpenID Connect Back-Channel Logout
// 1.0) that the provider calls with POST application/x-www-form-urlencoded logout_token=<JWT>.
// Mount it without a method in the pattern (other methods get the spec's 400) at the URL
// registered at the provider; it needs no cookie, so exempt it from CSRF protection. It requires
// WithBackChannelLogout (404 otherwise).
//
// The logout token is verified with the provider's keys (those of the ID tokens) and must have
// "typ" absent or "logout+jwt" (an ID or access token is refused), iss = the issuer, aud
// containing the client ID, iat (not in the future; at most DefaultLogoutTokenMaxAge old, even
// when exp allows longer), exp if present, "events" holding the back-channel logout member (an
// object), sid or sub, jti, and no nonce. Each jti is accepted once (remembered until exp plus
// the leeway, at most DefaultLogoutTokenMaxAge after iat). Then every session of that provider session (sid; sub when the token
// has no sid) ends: with a store that is a SessionIndexer (MemorySessionStore, RedisSessionStore)
// the records are deleted; otherwise, and for cookie sessions, a revocation record makes the
// gateway refuse (and clear) any such session created before now on its next request, which then
// gets the login redirect or 401 like any ended session. The answer is 200 with Cache-Control:
// no-store; a bad request or token 400 problem+json; a failing store 503 (the token's jti is not
// consumed then: the provider may send the same token again).
func (l *Login) ServeBackChannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if l.bcl == nil {
		l.onError(w, r, gatewaykit.NewProblem(http.StatusNotFound, "back-channel logout is not enabled"))
		return
	}
	bad := func(detail string) {
		l.onError(w, r, gatewaykit.NewProblem(http.StatusBadRequest, detail))
	}
	if r.Method != http.MethodPost {
		bad("back-channel logout needs POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		bad("back-channel logout needs application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 128<<10)
	if err := r.ParseForm(); err != nil {
		bad("unreadable form")
		return
	}
	toks := r.PostForm["logout_token"]
	if len(toks) != 1 || toks[0] == "" {
		bad("exactly one logout_token is required")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*l.hcTimeout())
	defer cancel()
	lc, err := l.verifyLogoutToken(ctx, toks[0])
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			l.onError(w, r, problemFor(err))
			return
		}
		detail := "logout token rejected"
		if errors.Is(err, errLogoutToken) {
			detail = err.Error()[len("auth: "):]
		} else {
			detail += ": " + detailOf(classOf(err))
		}
		bad(detail)
		return
	}
	sctx, scancel := context.WithTimeout(r.Context(), l.storeTO)
	defer scancel()
	first, err := l.bcl.log.firstUse(sctx, logoutKey("jti", l.issuer, lc.jti), lc.until.Sub(l.now()))
	if err != nil {
		l.logLimited(slog.LevelWarn, "auth: back-channel logout: store failed", "error", err)
		l.onError(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "logout store unavailable").WithRetryAfter(5*time.Second))
		return
	}
	if !first {
		bad("logout token replayed")
		return
	}
	kind, val := "sid", lc.sid
	if val == "" {
		kind, val = "sub", lc.sub
	}
	key := logoutKey(kind, l.issuer, val)
	if l.bcl.revocations {
		err = l.bcl.log.revoke(sctx, key, l.now(), l.lifetime)
	} else {
		var ids []string
		ids, err = l.store.(SessionIndexer).DeleteIndexed(sctx, key)
		for _, id := range ids {
			l.recent.put(id, &refreshResult{ended: true, at: l.now()})
		}
	}
	if err != nil {
		// The logout did not happen: forget the jti so that the provider's retry of this token
		// is not refused as a replay.
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(r.Context()), l.storeTO)
		if ferr := l.bcl.log.forget(fctx, logoutKey("jti", l.issuer, lc.jti)); ferr != nil {
			err = errors.Join(err, ferr)
		}
		fcancel()
		l.logLimited(slog.LevelWarn, "auth: back-channel logout: store failed", "error", err)
		l.onError(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "logout store unavailable").WithRetryAfter(5*time.Second))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// logoutKey names a provider session ("sid"), subject ("sub") or logout token ("jti") of an
// issuer in the index and the logout records: a hash, so that any value makes a short key.
func logoutKey(kind, issuer, v string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + issuer + "\x00" + v))
	return kind + ":" + hex.EncodeToString(sum[:20])
}

// sessionLogoutKeys returns the index keys of a session: its provider session, then its subject.
func (l *Login) sessionLogoutKeys(claims map[string]any) []string {
	var keys []string
	if sid, _ := claims["sid"].(string); sid != "" {
		keys = append(keys, logoutKey("sid", l.issuer, sid))
	}
	if sub, _ := claims["sub"].(string); sub != "" {
		keys = append(keys, logoutKey("sub", l.issuer, sub))
	}
	return keys
}

// indexSession lists a new session under its sid and sub when back-channel logout deletes
// sessions from an indexing store.
func (l *Login) indexSession(ctx context.Context, s *session) error {
	if l.bcl == nil || l.bcl.revocations {
		return nil
	}
	idx := l.store.(SessionIndexer)
	ctx, cancel := context.WithTimeout(ctx, l.storeTO)
	defer cancel()
	for _, k := range l.sessionLogoutKeys(s.Claims) {
		if err := idx.AddToIndex(ctx, k, s.ID, s.ExpiresAt.Sub(l.now())); err != nil {
			return fmt.Errorf("%w: session index: %w", ErrUnavailable, err)
		}
	}
	return nil
}

// checkRevoked refuses a session whose provider session or subject was logged out through the
// back channel after the session was created (revocation mode only).
func (l *Login) checkRevoked(ctx context.Context, s *session) error {
	if l.bcl == nil || !l.bcl.revocations {
		return nil
	}
	if rr, ok := l.recent.get(s.ID); ok && rr.ended {
		return ErrSessionExpired
	}
	keys := s.logoutKeys
	if keys == nil {
		keys = l.sessionLogoutKeys(s.Claims)
	}
	if _, local := l.bcl.log.(*memoryLogoutLog); !local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.storeTO)
		defer cancel()
	}
	at, found, err := l.bcl.log.revokedAt(ctx, keys)
	if err != nil {
		return fmt.Errorf("%w: logout records: %w", ErrUnavailable, err)
	}
	if found && !s.Created.After(at) {
		l.recent.put(s.ID, &refreshResult{ended: true, at: l.now()})
		return fmt.Errorf("%w: logged out by the provider", ErrSessionExpired)
	}
	return nil
}

// SessionIndexer is an optional interface of a SessionStore that lets back-channel logout
// (WithBackChannelLogout) find and delete the sessions of a provider session or subject.
// MemorySessionStore and RedisSessionStore implement it; with a store that does not, logged-out
// sessions are refused through revocation records instead. Implementations must be safe for
// concurrent use.
type SessionIndexer interface {
	// AddToIndex lists session id under key (an opaque string of at most 64 bytes) for at least
	// ttl (> 0).
	AddToIndex(ctx context.Context, key, id string, ttl time.Duration) error
	// DeleteIndexed deletes every session listed under key and the list itself, and returns the
	// IDs it listed. An unknown key is no error.
	DeleteIndexed(ctx context.Context, key string) ([]string, error)
}

// logoutLog keeps the jti values of accepted logout tokens and the revocation records.
type logoutLog interface {
	// firstUse records key for ttl and reports whether it was new.
	firstUse(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// forget removes key recorded by firstUse (the logout it guarded failed).
	forget(ctx context.Context, key string) error
	// revoke records that key was logged out at at, kept for ttl.
	revoke(ctx context.Context, key string, at time.Time, ttl time.Duration) error
	// revokedAt returns the latest logout time recorded for any of keys.
	revokedAt(ctx context.Context, keys []string) (time.Time, bool, error)
}

type memoryLogoutLog struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]logoutRecord
}

type logoutRecord struct {
	at, exp time.Time
}

func newMemoryLogoutLog(now func() time.Time) *memoryLogoutLog {
	return &memoryLogoutLog{now: now, m: make(map[string]logoutRecord)}
}

var errLogoutLogFull = errors.New("auth: back-channel logout records full")

// put stores rec under key unless replace is false and a live record exists; it reports whether
// it stored. Caller holds mu.
func (s *memoryLogoutLog) put(key string, rec logoutRecord, replace bool) (bool, error) {
	now := s.now()
	if old, ok := s.m[key]; ok && now.Before(old.exp) {
		if !replace {
			return false, nil
		}
		if old.at.After(rec.at) {
			rec.at = old.at
		}
	}
	if len(s.m) >= maxLogoutRecords {
		for k, e := range s.m {
			if !now.Before(e.exp) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxLogoutRecords {
			return false, errLogoutLogFull
		}
	}
	s.m[key] = rec
	return true, nil
}

func (s *memoryLogoutLog) firstUse(_ context.Context, key string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(key, logoutRecord{exp: s.now().Add(max(ttl, time.Second))}, false)
}

func (s *memoryLogoutLog) forget(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memoryLogoutLog) revoke(_ context.Context, key string, at time.Time, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.put(key, logoutRecord{at: at, exp: s.now().Add(ttl)}, true)
	return err
}

func (s *memoryLogoutLog) revokedAt(_ context.Context, keys []string) (time.Time, bool, error) {
	now := s.now()
	var latest time.Time
	found := false
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if e, ok := s.m[k]; ok && now.Before(e.exp) && (!found || e.at.After(latest)) {
			latest, found = e.at, true
		}
	}
	return latest, found, nil
}

// RedisLogoutKeyPrefix prefixes the Redis keys of back-channel logout records
// (WithBackChannelLogout with a Redis client): "gatewaykit:logout:{jti:<hash>}" for each accepted
// logout token and "gatewaykit:logout:{sid:<hash>}" / "{sub:<hash>}" for revocation records.
const RedisLogoutKeyPrefix = "gatewaykit:logout:"

type redisLogoutLog struct{ rdb redis.UniversalClient }

func redisLogoutKey(key string) string { return RedisLogoutKeyPrefix + "{" + key + "}" }

func (s redisLogoutLog) firstUse(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, redisLogoutKey(key), 1, max(ttl, time.Second)).Result()
}

func (s redisLogoutLog) forget(ctx context.Context, key string) error {
	return s.rdb.Del(ctx, redisLogoutKey(key)).Err()
}

func (s redisLogoutLog) revoke(ctx context.Context, key string, at time.Time, ttl time.Duration) error {
	// A later logout wins; an earlier one arriving late does not move the time back.
	const script = `local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cur) > tonumber(ARGV[1]) then ARGV[1] = cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`
	return s.rdb.Eval(ctx, script, []string{redisLogoutKey(key)}, at.UnixNano(), ttl.Milliseconds()).Err()
}

func (s redisLogoutLog) revokedAt(ctx context.Context, keys []string) (time.Time, bool, error) {
	var latest time.Time
	found := false
	// One GET per key (they live in different cluster slots), pipelined: one round trip.
	cmds := make([]*redis.StringCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, redisLogoutKey(k))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, false, err
	}
	for i, k := range keys {
		v, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return time.Time{}, false, err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("logout record %s: %w", k, err)
		}
		if t := time.Unix(0, n); !found || t.After(latest) {
			latest, found = t, true
		}
	}
	return latest, found, nil
}
