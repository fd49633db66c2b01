package ratelimit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

func benchStore(b *testing.B, keys []string) {
	s, _ := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(max(2*len(keys), 1024))) // headroom: no eviction
	now := time.Unix(1_700_006_400, 0)
	for _, k := range keys { // warm: every key present
		_ = s.Take(context.Background(), now, []ratelimit.Request{{Rule: "user", Key: k, Limit: ratelimit.PerSecond(1 << 30), Cost: 1}}, make([]ratelimit.Result, 1))
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		reqs := []ratelimit.Request{{Rule: "user", Limit: ratelimit.PerSecond(1 << 30), Cost: 1}}
		res := make([]ratelimit.Result, 1)
		i := next.Add(7919) * 104729
		for pb.Next() {
			i++
			reqs[0].Key = keys[i%uint64(len(keys))]
			_ = s.Take(context.Background(), now, reqs, res)
		}
	})
}

func manyKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	return keys
}

// BenchmarkMemoryDecision is one GCRA decision in the MemoryStore, all goroutines on one key (the
// worst case for lock contention) and spread over 1M keys (the cache-miss case).
func BenchmarkMemoryDecision(b *testing.B) {
	b.Run("1key", func(b *testing.B) { benchStore(b, []string{"user-1"}) })
	b.Run("1Mkeys", func(b *testing.B) { benchStore(b, manyKeys(1<<20)) })
}

// BenchmarkLimiterAllow is the full non-HTTP decision (Limiter.Allow) with the memory store.
func BenchmarkLimiterAllow(b *testing.B) {
	l, _ := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerSecond(1 << 30), Key: ratelimit.Constant("x")}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = l.Allow(context.Background(), "user-1")
		}
	})
}

// BenchmarkMemoryBytesPerKey reports the heap cost per key of 1M active keys.
func BenchmarkMemoryBytesPerKey(b *testing.B) {
	for range b.N {
		before := heapInUse()
		s, _ := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(1 << 20))
		fill(b, s, time.Unix(1_700_006_400, 0), 0, 1<<20)
		b.ReportMetric(float64(heapInUse()-before)/(1<<20), "bytes/key")
		runtime.KeepAlive(s)
	}
}

// BenchmarkBaselineMutexMap is the floor the MemoryStore is measured against in the same run: one
// mutex-protected map[uint64]int64 increment per decision (no algorithm, no sharding).
func BenchmarkBaselineMutexMap(b *testing.B) {
	for _, n := range []int{1, 1 << 20} {
		b.Run(strconv.Itoa(n)+"keys", func(b *testing.B) {
			var mu sync.Mutex
			m := make(map[uint64]int64, n)
			for i := range n {
				m[uint64(i)*0x9E3779B97F4A7C15] = 0
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(7919) * 104729
				for pb.Next() {
					i++
					k := (i % uint64(n)) * 0x9E3779B97F4A7C15
					mu.Lock()
					m[k]++
					mu.Unlock()
				}
			})
		})
	}
}

// BenchmarkWrap is the HTTP middleware's own cost with the memory store, one rule keyed by a
// constant, with all headers and with none.
func BenchmarkWrap(b *testing.B) {
	for _, c := range []struct {
		name string
		h    ratelimit.Headers
	}{{"headers=both", ratelimit.HeadersBoth}, {"headers=none", ratelimit.HeadersNone}} {
		b.Run(c.name, func(b *testing.B) {
			l, _ := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerSecond(1 << 30), Key: ratelimit.Constant("x")}}, ratelimit.WithHeaders(c.h))
			h := l.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			r := httptest.NewRequest("GET", "/", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
