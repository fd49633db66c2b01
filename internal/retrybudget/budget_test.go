package retrybudget

import (
	"sync"
	"testing"
	"time"
)

func TestRetryBudgetWindow(t *testing.T) {
	sec := int64(time.Second)
	t0 := int64(1_700_000_000) * sec
	var b Budget
	const ratio, floor = 0.5, 0
	for i := range 10 {
		b.Request(t0 + int64(i)*sec) // one request per second over the window
	}
	now := t0 + 9*sec
	if got := sum(&b.requests, now/sec); got != 10 {
		t.Fatalf("requests in the window %v, want 10", got)
	}
	for i := range 5 {
		if !b.TryRetry(now, ratio, floor) {
			t.Fatalf("retry %d refused within 0.5 x 10 requests", i)
		}
	}
	if b.TryRetry(now, ratio, floor) {
		t.Fatal("a sixth retry was allowed")
	}
	// One second later the first request has left the window (9 requests, 4.5 retries allowed,
	// 5 used); ten seconds later everything has.
	if b.TryRetry(now+sec, ratio, floor) {
		t.Fatal("retry allowed with 5 retries for 9 requests")
	}
	if got := sum(&b.requests, now/sec+10); got != 0 {
		t.Fatalf("requests in a window past them: %v", got)
	}
	// A late request for a second the slot no longer holds is dropped, not counted now.
	b.Request(now + 10*sec)
	b.Request(now) // same slot as now+10s, older second
	if got := sum(&b.requests, now/sec+10); got != 1 {
		t.Fatalf("requests after a stale one: %v, want 1", got)
	}
}

// Counting is lock-free and exact under concurrency within a second.
func TestRetryBudgetConcurrentCounts(t *testing.T) {
	var b Budget
	const ratio, floor = 1, 10 // 1/s over the window
	now := int64(1_700_000_000) * int64(time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				b.Request(now)
			}
		})
	}
	wg.Wait()
	if got := sum(&b.requests, now/int64(time.Second)); got != 8000 {
		t.Fatalf("counted %v requests, want 8000", got)
	}
	var granted sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range 8 {
		granted.Go(func() {
			for range 2000 {
				if b.TryRetry(now, ratio, floor) {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
		})
	}
	granted.Wait()
	if n != 8010 { // ratio 1 x 8000 requests + 1/s x 10 s
		t.Fatalf("granted %d retries, want exactly 8010", n)
	}
}
