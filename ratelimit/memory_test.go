package ratelimit_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// fill takes one decision for n distinct keys "k<i>" of rule "user".
func fill(t testing.TB, s ratelimit.Store, now time.Time, from, n int) {
	reqs := []ratelimit.Request{{Rule: "user", Algorithm: ratelimit.GCRA, Limit: ratelimit.PerMinute(100), Cost: 1}}
	res := make([]ratelimit.Result, 1)
	var buf []byte
	for i := from; i < from+n; i++ {
		buf = strconv.AppendInt(append(buf[:0], "user-"...), int64(i), 10)
		reqs[0].Key = string(buf)
		if err := s.Take(context.Background(), now, reqs, res); err != nil || !res[0].Allowed {
			t.Fatalf("key %d: %v %+v", i, err, res[0])
		}
	}
}

// TestMemoryFloodBounded inserts 1M distinct keys and checks the heap stays within the documented
// bytes per key (with a 25% margin for GC timing), then floods another 1M keys and checks the
// store holds no more than its bound.
func TestMemoryFloodBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("1M keys: skipped in -short mode")
	}
	const n = 1 << 20
	before := heapInUse()
	s, err := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(n))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_006_400, 0)
	fill(t, s, now, 0, n)
	after := heapInUse()
	perKey := float64(after-before) / n
	t.Logf("%d keys: %.1f bytes/key (documented %d)", s.Len(), perKey, ratelimit.MemoryBytesPerKey)
	if perKey > ratelimit.MemoryBytesPerKey*1.25 {
		t.Fatalf("%.1f bytes/key exceeds the documented %d", perKey, ratelimit.MemoryBytesPerKey)
	}
	fill(t, s, now, n, n) // flood: as many new keys again, none expired
	if got := s.Len(); got > n+128 {
		t.Fatalf("store holds %d keys, bound %d", got, n)
	}
	if grown := heapInUse(); grown > after+after/4 {
		t.Fatalf("heap grew from %d to %d under a flood at the bound", after, grown)
	}
	runtime.KeepAlive(s)
}

// TestMemoryExpiry: expired entries are reclaimed and the bound holds exactly. Repeated with fresh
// stores (fresh hash seeds): the bound once slipped when a full shard's sample window happened to
// be a run of empty slots (about 1 store in 10 at this size).
func TestMemoryExpiry(t *testing.T) {
	for range 100 {
		clk := newClock()
		s, _ := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(1024))
		fill(t, s, clk.Now(), 0, 1000)
		if s.Len() != 1000 {
			t.Fatalf("len %d", s.Len())
		}
		clk.Advance(2 * time.Minute) // every bucket is full again: entries expired
		fill(t, s, clk.Now(), 1000, 3000)
		if got := s.Len(); got > 1024 {
			t.Fatalf("expired entries not reclaimed: %d keys held, bound 1024", got)
		}
	}
}

func TestMemoryEvictionKeepsWorking(t *testing.T) {
	// A full store with only live keys still decides correctly for a hot key.
	clk := newClock()
	s, _ := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(1024))
	l, _ := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerHour(3), Key: ratelimit.Constant("x")}},
		ratelimit.WithStore(s), ratelimit.WithClock(clk.Now))
	fill(t, s, clk.Now(), 0, 5000)
	var admitted atomic.Int64
	for range 10 {
		if d, _ := l.Allow(context.Background(), "hot"); d.Allowed {
			admitted.Add(1)
		}
	}
	if admitted.Load() != 3 {
		t.Fatalf("hot key admitted %d, want 3", admitted.Load())
	}
}

// TestStoresRejectInvalidRequests: Store.Take is public; a request with a zero or invalid Limit
// (which the Limiter never sends) gets an error, not a division-by-zero panic.
func TestStoresRejectInvalidRequests(t *testing.T) {
	ms, _ := ratelimit.NewMemoryStore()
	ls, _ := ratelimit.NewLeaseStore(ms)
	now := time.Unix(1_700_006_400, 0)
	for _, s := range []ratelimit.Store{ms, ls} {
		for _, alg := range algorithms {
			for _, lim := range []ratelimit.Limit{{}, {Count: 5}, {Period: time.Second}, {Count: -1, Period: time.Second}} {
				reqs := []ratelimit.Request{{Rule: "r", Key: "k", Algorithm: alg, Limit: lim, Cost: 1}}
				err := s.Take(context.Background(), now, reqs, make([]ratelimit.Result, 1))
				if err == nil {
					t.Errorf("%T %v %+v: no error", s, alg, lim)
				}
			}
		}
	}
}

// TestMemoryConcurrentFlood: goroutines flood a small store with distinct keys of every algorithm
// (so tables grow, entries expire and are evicted concurrently; run with -race) while a hot key,
// decided together with a second rule, stays exact: 5 admitted per hour, whatever the flood.
func TestMemoryConcurrentFlood(t *testing.T) {
	clk := newClock()
	s, _ := ratelimit.NewMemoryStore(ratelimit.MemoryMaxKeys(4096))
	l, _ := ratelimit.New([]ratelimit.Rule{
		{Name: "user", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("x")},
		{Name: "svc", Limit: ratelimit.PerHour(1 << 20), Key: ratelimit.Constant("x"), Algorithm: ratelimit.FixedWindow},
	}, ratelimit.WithStore(s), ratelimit.WithClock(clk.Now))
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			reqs := []ratelimit.Request{{Rule: "flood", Limit: ratelimit.PerSecond(10), Cost: 1}}
			res := make([]ratelimit.Result, 1)
			for i := range 20000 {
				reqs[0].Key = strconv.Itoa(g*1_000_000 + i)
				reqs[0].Algorithm = algorithms[i%len(algorithms)]
				if err := s.Take(context.Background(), clk.Now(), reqs, res); err != nil || !res[0].Allowed {
					t.Errorf("flood key %d: %v %+v", i, err, res[0])
					return
				}
				if i%1000 == 0 {
					clk.Advance(50 * time.Millisecond) // some flood entries expire
				}
			}
		})
	}
	wg.Go(func() {
		for range 2000 {
			if d, _ := l.Allow(context.Background(), "hot"); d.Allowed {
				admitted.Add(1)
			}
		}
	})
	wg.Wait()
	if got := s.Len(); got > 4096 {
		t.Fatalf("store holds %d keys, bound 4096", got)
	}
	if admitted.Load() != 5 {
		t.Fatalf("hot key admitted %d, want 5", admitted.Load())
	}
}
