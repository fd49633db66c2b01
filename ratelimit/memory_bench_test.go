package ratelimit_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

func benchStore(b *testing.B, keys []string) {
	s, _ := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(max(len(keys), 1024)))
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
