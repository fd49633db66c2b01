package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/auth/authtest"
)

func TestMaxAge(t *testing.T) {
	cases := []struct {
		cc   string
		want time.Duration
		ok   bool
	}{
		{"max-age=60", time.Minute, true},
		{"public, max-age=3600, must-revalidate", time.Hour, true},
		{"MAX-AGE=5", 5 * time.Second, true},
		{`max-age="7"`, 7 * time.Second, true},
		{"no-cache", 0, true},
		{"no-store, max-age=60", 0, true},
		{"max-age=-1", 0, false},
		{"max-age=abc", 0, false},
		{"max-age=99999999999", maxRefreshInterval, true},
		{"", 0, false},
		{"private", 0, false},
	}
	for _, tc := range cases {
		got, ok := maxAge(tc.cc)
		if got != tc.want || ok != tc.ok {
			t.Errorf("maxAge(%q) = %v, %v; want %v, %v", tc.cc, got, ok, tc.want, tc.ok)
		}
	}
	rk := &remoteKeys{cooldown: 30 * time.Second, interval: time.Hour}
	for cc, want := range map[string]time.Duration{"": time.Hour, "max-age=1": 30 * time.Second,
		"max-age=600": 10 * time.Minute, "max-age=999999": 24 * time.Hour} {
		if got := rk.nextRefresh(cc); got != want {
			t.Errorf("nextRefresh(%q) = %v, want %v", cc, got, want)
		}
	}
}

func TestResultCacheBoundsAndExpiry(t *testing.T) {
	var nowNs atomic.Int64
	nowNs.Store(time.Unix(1_000_000, 0).UnixNano())
	clock := func() time.Time { return time.Unix(0, nowNs.Load()) }
	now := clock()
	rc, err := newResultCache[int](100, time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.close()
	rc.set("past", 1, now.Add(-time.Second))
	if _, ok := rc.get("past"); ok {
		t.Fatal("an already expired entry was cached")
	}
	rc.set("long", 2, now.Add(time.Hour)) // capped at the max TTL
	rc.set("zero", 3, time.Time{})        // the max TTL
	for _, k := range []string{"long", "zero"} {
		if v, ok := rc.get(k); !ok || v == 0 {
			t.Fatalf("%s missing", k)
		}
	}
	nowNs.Add(int64(2 * time.Minute))
	for _, k := range []string{"long", "zero"} {
		if _, ok := rc.get(k); ok {
			t.Fatalf("%s outlived the max TTL", k)
		}
	}
	if _, ok := rc.get("other"); ok {
		t.Fatal("hit for an unknown credential")
	}
	for i := range 10_000 {
		rc.set(string(rune('a'+i%26))+time.Duration(i).String(), i, clock().Add(time.Minute))
	}
	rc.c.CleanUp()
	if n := rc.c.EstimatedSize(); n > 100 {
		t.Fatalf("cache holds %d entries, bound 100", n)
	}
}

// TestRemovedKeyNotCachedDuringVerification: a token whose key disappears from the JWKS while the
// token is being verified (after the key lookup, before the result is cached) must not stay in
// the verification cache: the cache clear of the refresh ran before the entry was written.
func TestRemovedKeyNotCachedDuringVerification(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	j, err := NewJWT(WithJWKS(iss.JWKSURL()), WithAlgorithms("ES256"), AllowInsecureHTTP(), WithClock(clock),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	tok := iss.Token(t, map[string]any{"sub": "a", "exp": now.Add(time.Hour).Unix()})
	var once sync.Once
	j.testHookBeforeCache = func() {
		once.Do(func() { // the IdP drops key-1 and the JWKS refresh lands right now
			if _, err := iss.Rotate(); err != nil {
				t.Error(err)
			}
			iss.RemoveKey("key-1")
			if err := j.remote.refresh(context.Background(), true); err != nil {
				t.Error(err)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, "http://gw/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if _, err := j.Authenticate(req); err != nil {
		t.Fatalf("first use (key still current at lookup): %v", err)
	}
	if _, err := j.Authenticate(req); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of the removed key after the refresh: %v, want ErrUnknownKey", err)
	}
}
