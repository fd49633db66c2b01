package cache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/cache"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

// uncacheable answers every GET with a response the cache must not store, in turns: no-store,
// no lifetime, a status that is not cacheable, private, Set-Cookie.
func uncacheable() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch len(r.URL.Path) % 5 {
		case 0:
			w.Header().Set("Cache-Control", "no-store")
		case 1: // no lifetime and no TTL option
		case 2:
			w.Header().Set("Cache-Control", "max-age=60")
			w.WriteHeader(http.StatusInternalServerError)
		case 3:
			w.Header().Set("Cache-Control", "private, max-age=60")
		case 4:
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Set-Cookie", "s=1")
		}
		_, _ = io.WriteString(w, "body")
	})
}

// A scan of distinct paths whose responses are never stored writes nothing to the store: no
// generation is created by a miss.
func TestMissesOfUncacheablePathsWriteNothing(t *testing.T) {
	const n = 200
	scan := func(t *testing.T, h http.Handler) {
		t.Helper()
		for i := range n {
			target := fmt.Sprintf("/scan/%d%s", i, strings.Repeat("x", i%5))
			if r := get(h, target); r.xcache() != "MISS" || r.body != "body" {
				t.Fatalf("GET %s: %+v", target, r)
			}
			if r := do(h, http.MethodHead, target+"/head"); r.xcache() != "MISS" {
				t.Fatalf("HEAD %s: %+v", target, r)
			}
		}
	}
	t.Run("memory", func(t *testing.T) {
		m := cache.MemoryStore(16 << 20)
		t.Cleanup(func() { _ = m.Close() })
		h := newCache(t, cache.WithStore(m)).Wrap(uncacheable())
		scan(t, h)
		if m.Len() != 0 || m.WeightedSize() != 0 {
			t.Fatalf("after %d uncacheable misses the store holds %d items, %d bytes", n, m.Len(), m.WeightedSize())
		}
		// A cacheable response stores its entry and creates its path's generation.
		h = newCache(t, cache.WithStore(m)).Wrap(&site{})
		get(h, "/cacheable")
		expectCache(t, "cacheable", get(h, "/cacheable"), "HIT")
		if m.Len() != 2 {
			t.Fatalf("after one stored response the store holds %d items, want 2 (entry, generation)", m.Len())
		}
	})
	t.Run("redis", func(t *testing.T) {
		rdb := redistest.Start(t).Client()
		h := newCache(t, cache.WithStore(cache.RedisStore(rdb))).Wrap(uncacheable())
		scan(t, h)
		ctx := context.Background()
		if size, err := rdb.DBSize(ctx).Result(); err != nil || size != 0 {
			t.Fatalf("after %d uncacheable misses DBSIZE = %d, %v; want 0", n, size, err)
		}
		h = newCache(t, cache.WithStore(cache.RedisStore(rdb))).Wrap(&site{})
		get(h, "/cacheable")
		expectCache(t, "cacheable", get(h, "/cacheable"), "HIT")
		if size, err := rdb.DBSize(ctx).Result(); err != nil || size != 2 {
			t.Fatalf("after one stored response DBSIZE = %d, %v; want 2 (entry, generation)", size, err)
		}
		// The generation was created with the entry, with the entry's TTL (max-age=60).
		ttl, err := rdb.PTTL(ctx, cache.DefaultRedisPrefix+"{"+cache.PathHash("/cacheable")+"}").Result()
		if err != nil || ttl <= 0 || ttl > time.Minute {
			t.Fatalf("generation TTL %v, %v; want the entry's, at most 60 s", ttl, err)
		}
		// An invalidation writes a fresh generation that outlives any fetch still stored (twice
		// the 5-minute hold).
		do(h, http.MethodPost, "/cacheable")
		ttl, err = rdb.PTTL(ctx, cache.DefaultRedisPrefix+"{"+cache.PathHash("/cacheable")+"}").Result()
		if err != nil || ttl <= 9*time.Minute || ttl > 10*time.Minute {
			t.Fatalf("generation TTL after an invalidation %v, %v; want 10 minutes", ttl, err)
		}
	})
}

// storeWithMarkers is a store of each kind with a way to lose a path's generation, as if it had
// expired or been evicted.
func storesWithMarkers(t *testing.T, f func(t *testing.T, s cache.Store, lose func(path string))) {
	t.Run("memory", func(t *testing.T) {
		m := cache.MemoryStore(16 << 20)
		t.Cleanup(func() { _ = m.Close() })
		f(t, m, m.DropMarker)
	})
	t.Run("redis", func(t *testing.T) {
		rdb := redistest.Start(t).Client()
		f(t, cache.RedisStore(rdb), func(path string) {
			if err := rdb.Del(context.Background(), cache.DefaultRedisPrefix+"{"+cache.PathHash(path)+"}").Err(); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("custom", func(t *testing.T) {
		m := cache.MemoryStore(16 << 20)
		t.Cleanup(func() { _ = m.Close() })
		f(t, plainStore{m}, m.DropMarker)
	})
}

// An entry stored before an invalidation stays dead when the invalidation's generation is lost
// (its TTL ran out, or it was evicted) while the entry would still be servable by its own times:
// no entry is ever stored "without a generation", so a path without one matches nothing. The
// entry's own generation lost is a miss as well.
func TestLostGenerationDoesNotResurrectEntries(t *testing.T) {
	storesWithMarkers(t, func(t *testing.T, st cache.Store, lose func(string)) {
		clk := newClock()
		s := &site{}
		c := newCache(t, cache.WithStore(st), cache.WithClock(clk.Now), cache.StaleWhileRevalidate(time.Hour))
		h := c.Wrap(s)
		get(h, "/r")
		get(h, "/kept")
		expectCache(t, "before", get(h, "/r"), "HIT")
		clk.Advance(2 * time.Minute) // past max-age=60: the entry could be served stale for an hour

		if r := do(h, http.MethodPost, "/r"); r.status != http.StatusCreated {
			t.Fatalf("POST: %+v", r)
		}
		lose("/r") // the invalidation's generation expires or is evicted
		r := get(h, "/r")
		expectCache(t, "after the invalidation's generation was lost", r, "MISS")
		if !strings.HasPrefix(r.body, "v=1 ") {
			t.Fatalf("the invalidated entry came back: %q", r.body)
		}
		r = get(h, "/r")
		expectCache(t, "the new entry", r, "HIT")
		if !strings.HasPrefix(r.body, "v=1 ") {
			t.Fatalf("the new entry: %q", r.body)
		}

		lose("/kept") // no invalidation: the entry's own generation lost
		expectCache(t, "after its own generation was lost", get(h, "/kept"), "MISS")
		expectCache(t, "stored again", get(h, "/kept"), "HIT")
	})
}

// A fetch that takes longer than the hold (real time from its lookup to its store) is not stored:
// an invalidation's generation is only sure to outlive fetches within it.
func TestFetchSlowerThanHoldNotStored(t *testing.T) {
	m := cache.MemoryStore(1 << 20)
	t.Cleanup(func() { _ = m.Close() })
	c := newCache(t, cache.WithStore(m))
	c.SetHold(time.Nanosecond)
	h := c.Wrap(&site{})
	for i := range 3 {
		expectCache(t, fmt.Sprintf("GET %d", i), get(h, "/slow"), "MISS")
	}
	if m.Len() != 0 {
		t.Fatalf("store holds %d items", m.Len())
	}
}
