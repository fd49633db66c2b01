package auth_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

// A logout token accepted within the exp leeway must stay refused as a replay for as long as it
// is acceptable: its jti is remembered until exp plus the leeway (30 s by default).
func TestBackChannelLogoutReplayWithinLeeway(t *testing.T) {
	g := startGateway(t, auth.WithBackChannelLogout(nil))
	now := g.clock.Now()
	tok := g.logoutToken(t, "op-session-x", nil, map[string]any{
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(-20 * time.Second).Unix(),
	}, nil)
	if status, _, body := g.postLogout(t, tok); status != http.StatusOK {
		t.Fatalf("first use within leeway: %d %q", status, body)
	}
	g.clock.Advance(5 * time.Second)
	if status, _, body := g.postLogout(t, tok); status != http.StatusBadRequest {
		t.Fatalf("replay within leeway: %d %q", status, body)
	}
}

// flakyIndexStore is a memory store whose first DeleteIndexed fails, as a store outage would.
type flakyIndexStore struct {
	auth.SessionStore
	failed atomic.Bool
}

func (s *flakyIndexStore) AddToIndex(ctx context.Context, key, id string, ttl time.Duration) error {
	return s.SessionStore.(auth.SessionIndexer).AddToIndex(ctx, key, id, ttl)
}

func (s *flakyIndexStore) DeleteIndexed(ctx context.Context, key string) ([]string, error) {
	if s.failed.CompareAndSwap(false, true) {
		return nil, errors.New("store down")
	}
	return s.SessionStore.(auth.SessionIndexer).DeleteIndexed(ctx, key)
}

// A logout that fails on the store (503) must be retryable with the same token (the provider
// retries the delivery): the jti is not consumed by a logout that did not happen.
func TestBackChannelLogoutRetryAfterStoreFailure(t *testing.T) {
	g := startGateway(t, auth.WithBackChannelLogout(nil), auth.WithSessionStore(&flakyIndexStore{SessionStore: auth.MemorySessionStore(nil)}, 0))
	c := g.loginAs(t, "op-session-a")
	tok := g.logoutToken(t, "op-session-a", nil, nil, nil)
	if status, _, body := g.postLogout(t, tok); status != http.StatusServiceUnavailable {
		t.Fatalf("logout with the store down: %d %q", status, body)
	}
	if status, _, body := g.postLogout(t, tok); status != http.StatusOK {
		t.Fatalf("retried logout: %d %q", status, body)
	}
	if s := apiStatus(t, g, c); s != http.StatusUnauthorized {
		t.Fatalf("session after the retried logout: %d", s)
	}
}

// When RedisSessionStore's DeleteIndexed fails half-way it puts the index set back for a retry;
// the restored set must keep an expiry, not live forever.
func TestRedisDeleteIndexedFailureKeepsTTL(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	idx := auth.RedisSessionStore(admin).(auth.SessionIndexer)
	if err := idx.AddToIndex(ctx, "sid:k", "s1", time.Hour); err != nil {
		t.Fatal(err)
	}
	// A user that may touch the index sets but only read the sessions: deleting a session fails.
	if err := admin.Do(ctx, "ACL", "SETUSER", "idx", "on", ">pw", "~"+auth.RedisSessionIndexKeyPrefix+"*",
		"%R~"+auth.RedisSessionKeyPrefix+"*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	opts := *admin.Options()
	opts.Username, opts.Password = "idx", "pw"
	limited := redis.NewClient(&opts)
	t.Cleanup(func() { _ = limited.Close() })
	if _, err := auth.RedisSessionStore(limited).(auth.SessionIndexer).DeleteIndexed(ctx, "sid:k"); err == nil {
		t.Fatal("DeleteIndexed succeeded without the right to delete sessions")
	}
	key := auth.RedisSessionIndexKeyPrefix + "{sid:k}"
	if n, err := admin.SMembers(ctx, key).Result(); err != nil || len(n) != 1 {
		t.Fatalf("restored index: %v %v", n, err)
	}
	if ttl, err := admin.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("restored index TTL: %v %v", ttl, err)
	}
}

// A provider need not repeat "sid" in the ID token of a refresh: the session must still end when
// its provider session is logged out (cookie sessions, refused by revocation records).
func TestBackChannelLogoutAfterRefreshWithoutSid(t *testing.T) {
	g := startGateway(t, auth.WithBackChannelLogout(nil))
	c := g.loginAs(t, "op-session-a")
	g.op.sid.Store(nil) // refreshed ID tokens carry no sid
	g.clock.Advance(4*time.Minute + 30*time.Second)
	if s := apiStatus(t, g, c); s != http.StatusOK {
		t.Fatalf("refresh: %d", s)
	}
	if status, _, body := g.postLogout(t, g.logoutToken(t, "op-session-a", nil, nil, nil)); status != http.StatusOK {
		t.Fatalf("logout: %d %q", status, body)
	}
	if s := apiStatus(t, g, c); s != http.StatusUnauthorized {
		t.Fatalf("refreshed session after its provider session's logout: %d", s)
	}
}

// With revocation records in Redis, a request whose records cannot be read fails closed (503),
// never passing as a valid session.
func TestBackChannelLogoutRecordsUnavailableFailClosed(t *testing.T) {
	srv := redistest.Start(t)
	g := startGateway(t, auth.WithBackChannelLogout(srv.Client()))
	c := g.loginAs(t, "op-session-a")
	if s := apiStatus(t, g, c); s != http.StatusOK {
		t.Fatalf("before: %d", s)
	}
	srv.Kill()
	if s := apiStatus(t, g, c); s != http.StatusServiceUnavailable {
		t.Fatalf("records unavailable: %d", s)
	}
}

// A token living longer than the replay window (exp beyond iat + DefaultLogoutTokenMaxAge) has
// its jti remembered only until iat + DefaultLogoutTokenMaxAge: it must not be accepted again
// after that, while its exp still allows it.
func TestBackChannelLogoutLongLivedTokenReplay(t *testing.T) {
	g := startGateway(t, auth.WithBackChannelLogout(nil))
	now := g.clock.Now()
	tok := g.logoutToken(t, "op-session-x", nil, map[string]any{
		"iat": now.Unix(), "exp": now.Add(auth.DefaultLogoutTokenMaxAge + 20*time.Second).Unix(),
	}, nil)
	if status, _, body := g.postLogout(t, tok); status != http.StatusOK {
		t.Fatalf("first use: %d %q", status, body)
	}
	g.clock.Advance(auth.DefaultLogoutTokenMaxAge + 5*time.Second)
	if status, _, body := g.postLogout(t, tok); status != http.StatusBadRequest {
		t.Fatalf("replay after the jti window, before exp: %d %q", status, body)
	}
}
