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

func TestMemoryExpiry(t *testing.T) {
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
