package cache_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit/cache"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

func redisClientForValidation(t *testing.T) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisStoreSharedByTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	clk := newClock()
	o := newOrigin("Cache-Control", "max-age=60", "Vary", "Accept-Language")
	a := newCache(t, cache.WithStore(cache.RedisStore(rdb)), cache.WithClock(clk.Now)).Wrap(o)
	b := newCache(t, cache.WithStore(cache.RedisStore(rdb)), cache.WithClock(clk.Now)).Wrap(o)

	first := get(a, "/shared", header("Accept-Language", "en"))
	if first.xcache() != "MISS" {
		t.Fatalf("first = %+v", first)
	}
	clk.Advance(3 * time.Second)
	r := get(b, "/shared", header("Accept-Language", "en"))
	if r.xcache() != "HIT" || r.body != first.body || r.h.Get("Age") != "3" || o.calls.Load() != 1 {
		t.Fatalf("instance b = %+v, calls %d", r, o.calls.Load())
	}
	if r := get(b, "/shared", header("Accept-Language", "de")); r.xcache() != "MISS" {
		t.Fatalf("other variant = %q", r.xcache())
	}

	// Keys carry the prefix, the path's hash tag and a TTL; per-user keys hold no user data.
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 { // the path's generation, the Vary marker and two variants
		t.Fatalf("keys = %v", keys)
	}
	tagged := regexp.MustCompile(`^` + regexp.QuoteMeta(cache.DefaultRedisPrefix) + `\{[0-9a-f]{32}\}([0-9a-f]{64})?$`)
	var markers int
	for _, k := range keys {
		m := tagged.FindStringSubmatch(k)
		if m == nil || k[:len(cache.DefaultRedisPrefix)+34] != keys[0][:len(cache.DefaultRedisPrefix)+34] {
			t.Errorf("key %q is not in the path's hash slot", k)
			continue
		}
		if m[1] == "" {
			markers++ // created with the first entry, with its TTL
		}
		const maxTTL = 60 * time.Second
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > maxTTL {
			t.Errorf("key %q TTL %v %v", k, ttl, err)
		}
	}
	if markers != 1 {
		t.Fatalf("%d generation markers in %v", markers, keys)
	}
}

func TestRedisPerUserIsolationAndPrefix(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	o := newOrigin()
	opts := []cache.Option{cache.TTL(time.Minute), cache.PerIdentity(), cache.WithStore(cache.RedisStore(rdb, cache.KeyPrefix("t:")))}
	a, b := newCache(t, opts...).Wrap(o), newCache(t, opts...).Wrap(o)
	get(a, "/d", as("alice"))
	if r := get(b, "/d", as("bob")); r.xcache() != "MISS" || !strings.HasSuffix(r.body, "user=bob") {
		t.Fatalf("bob = %+v", r)
	}
	if r := get(b, "/d", as("alice")); r.xcache() != "HIT" || !strings.HasSuffix(r.body, "user=alice") {
		t.Fatalf("alice on b = %+v", r)
	}
	keys, _ := rdb.Keys(context.Background(), "*").Result()
	for _, k := range keys {
		if !strings.HasPrefix(k, "t:") || strings.Contains(k, "alice") {
			t.Errorf("key %q", k)
		}
	}
}

func TestRedisKilledStillServesAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client() // default go-redis settings (retries with backoff): the store timeout bounds them
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t, cache.WithStore(cache.RedisStore(rdb))).Wrap(o)
	get(h, "/k")
	if r := get(h, "/k"); r.xcache() != "HIT" {
		t.Fatalf("before kill: %q", r.xcache())
	}
	srv.Kill()
	for i := range 5 {
		start := time.Now()
		r := get(h, "/k")
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("request %d took %v with Redis down", i, d)
		}
		if r.status != http.StatusOK || r.xcache() != "BYPASS" || !strings.HasPrefix(r.body, "call=") {
			t.Fatalf("request %d with Redis down: %+v", i, r)
		}
	}
	if o.calls.Load() != 6 {
		t.Fatalf("calls = %d, want 6", o.calls.Load())
	}
	srv.Restart()
	waitFor(t, func() bool { return get(h, "/k").xcache() == "HIT" })
}

func TestRedisCorruptEntryIsAMiss(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	o := newOrigin("Cache-Control", "max-age=60")
	c := newCache(t, cache.WithStore(cache.RedisStore(rdb)))
	h := c.Wrap(o)
	get(h, "/c")
	ctx := context.Background()
	keys, _ := rdb.Keys(ctx, "*}?*").Result() // the entry, not the path's generation
	if len(keys) != 1 {
		t.Fatalf("keys = %v", keys)
	}
	rdb.Set(ctx, keys[0], "garbage", time.Minute)
	if r := get(h, "/c"); r.xcache() != "MISS" {
		t.Fatalf("corrupt entry: %q", r.xcache())
	}
	if r := get(h, "/c"); r.xcache() != "HIT" {
		t.Fatalf("after overwrite: %q", r.xcache())
	}
}

// A brace in the key prefix would change the hash tag the store relies on (a path's generation and
// entries in one Redis Cluster slot): the prefix is refused, with a reason, by New and by every
// call of the store.
func TestRedisKeyPrefixWithBraceRejected(t *testing.T) {
	rdb := redisClientForValidation(t)
	for _, p := range []string{"{", "}", "app{", "app}", "{app}:", "app:{tenant}:", "a}b{c"} {
		s := cache.RedisStore(rdb, cache.KeyPrefix(p))
		c, err := cache.New(cache.WithStore(s))
		if err == nil {
			_ = c.Close()
			t.Fatalf("KeyPrefix(%q) accepted", p)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "cache: redis store: KeyPrefix") || !strings.Contains(msg, "hash tag") ||
			!strings.Contains(msg, strconv.Quote(p)) {
			t.Fatalf("KeyPrefix(%q): error %q does not say what is wrong", p, msg)
		}
		if _, err := s.Get(context.Background(), "k"); err == nil {
			t.Fatalf("KeyPrefix(%q): Get worked", p)
		}
	}
	for _, p := range []string{"app:", "gw:cache:v2:", "a-b_c.d/"} {
		c, err := cache.New(cache.WithStore(cache.RedisStore(rdb, cache.KeyPrefix(p))))
		if err != nil {
			t.Fatalf("KeyPrefix(%q): %v", p, err)
		}
		_ = c.Close()
	}
}
