package cache_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/cache"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

var body1KiB = []byte(strings.Repeat("x", 1024))

func benchOrigin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Cache-Control"] = []string{"max-age=3600"}
		h["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body1KiB)
	})
}

// discardRW is a minimal ResponseWriter so the benchmark measures the middleware, not a recorder.
type discardRW struct{ h http.Header }

func (d *discardRW) Header() http.Header         { return d.h }
func (d *discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardRW) WriteHeader(int)             {}

func benchServe(b *testing.B, h http.Handler) {
	req := httptest.NewRequest(http.MethodGet, "/api/items?page=2&sort=name", nil)
	w := &discardRW{h: make(http.Header, 8)}
	h.ServeHTTP(w, req) // warm: fills the cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if got := w.h.Get("X-Cache"); got != "HIT" && got != "" {
		b.Fatalf("X-Cache = %q", got)
	}
}

// BenchmarkBaseline is the origin alone, writing the 1 KiB body: the reference for the hit path.
func BenchmarkBaseline(b *testing.B) { benchServe(b, benchOrigin()) }

// BenchmarkHitMemory is the cache hit path for a 1 KiB body from the memory store.
func BenchmarkHitMemory(b *testing.B) {
	c := newCache(b, cache.WithStore(cache.MemoryStore(16<<20)))
	benchServe(b, c.Wrap(benchOrigin()))
}

// BenchmarkHitMemoryParallel is the same under parallel load.
func BenchmarkHitMemoryParallel(b *testing.B) {
	c := newCache(b, cache.WithStore(cache.MemoryStore(16<<20)))
	h := c.Wrap(benchOrigin())
	req := httptest.NewRequest(http.MethodGet, "/api/items?page=2&sort=name", nil)
	h.ServeHTTP(&discardRW{h: make(http.Header)}, req)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardRW{h: make(http.Header, 8)}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

// BenchmarkHitRedis is the hit path for a 1 KiB body from a local Redis: one MGET round trip
// (the path's generation and the entry).
func BenchmarkHitRedis(b *testing.B) {
	srv := redistest.Start(b)
	c := newCache(b, cache.WithStore(cache.RedisStore(srv.Client())))
	benchServe(b, c.Wrap(benchOrigin()))
}

// BenchmarkMissMemory is a miss that records and stores the 1 KiB response (a new key each time).
func BenchmarkMissMemory(b *testing.B) {
	c := newCache(b, cache.WithStore(cache.MemoryStore(16<<20)))
	h := c.Wrap(benchOrigin())
	req := httptest.NewRequest(http.MethodGet, "/api/items", nil)
	w := &discardRW{h: make(http.Header, 8)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req.URL.RawQuery = "i=" + strconv.Itoa(i)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if got := w.h.Get("X-Cache"); got != "MISS" {
		b.Fatalf("X-Cache = %q", got)
	}
}

// BenchmarkInvalidateMemory is a successful POST through Wrap: the upstream's 201 plus the
// invalidation of its path (one marker deleted from the memory store).
func BenchmarkInvalidateMemory(b *testing.B) {
	c := newCache(b, cache.WithStore(cache.MemoryStore(16<<20)))
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }))
	req := httptest.NewRequest(http.MethodPost, "/api/items", nil)
	w := &discardRW{h: make(http.Header, 8)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

// BenchmarkRevalidateMemory is a request for an entry past its freshness that the upstream
// confirms with a 304 (the 1 KiB body is not sent again): the conditional request, the refresh of
// the stored entry and the answer from it.
func BenchmarkRevalidateMemory(b *testing.B) {
	clk := newClock()
	c := newCache(b, cache.WithStore(cache.MemoryStore(16<<20)), cache.WithClock(clk.Now), cache.RevalidateWindow(time.Hour))
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Cache-Control"] = []string{"max-age=1"}
		h["Etag"] = []string{`"v1"`}
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body1KiB)
	}))
	req := httptest.NewRequest(http.MethodGet, "/api/items?page=2&sort=name", nil)
	w := &discardRW{h: make(http.Header, 8)}
	h.ServeHTTP(w, req)
	b.ReportAllocs()
	for b.Loop() {
		clk.Advance(2 * time.Second)
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if got := w.h.Get("X-Cache"); got != "REVALIDATED" {
		b.Fatalf("X-Cache = %q", got)
	}
}
