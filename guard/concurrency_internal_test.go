package guard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrencyForgetsIdleKeys: the per-key table holds only keys with requests in flight or
// waiting, so it cannot grow without bound.
func TestConcurrencyForgetsIdleKeys(t *testing.T) {
	l, err := NewConcurrency(8, PerKey(1, func(r *http.Request) string { return r.Header.Get("K") }))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("K", strconv.Itoa(i%17))
			h.ServeHTTP(httptest.NewRecorder(), req)
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) != 0 {
		t.Fatalf("%d keys left in the table", len(l.keys))
	}
}

// TestConcurrencyGrantedButGoneHandsOn: a waiter granted a slot at the moment its client goes
// away does not run the handler; it hands the slot to the next waiter.
func TestConcurrencyGrantedButGoneHandsOn(t *testing.T) {
	l, err := NewConcurrency(1, QueueSize(4), MaxWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// A request holds the only slot, taken by hand as Wrap's fast path takes it.
	l.mu.Lock()
	holder := l.lookup("")
	l.inFlight++
	holder.inFlight++
	l.mu.Unlock()

	ran := make(chan string, 2)
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran <- r.Header.Get("X-ID") }))
	serve := func(id string, ctx context.Context) <-chan int {
		done := make(chan int, 1)
		req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
		req.Header.Set("X-ID", id)
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			done <- rec.Code
		}()
		return done
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := serve("gone", ctx)
	waitUntil(t, func() bool { return l.Waiting() == 1 })
	next := serve("next", context.Background())
	waitUntil(t, func() bool { return l.Waiting() == 2 })

	// Both at once, as far as the waiter can tell: its slot is granted and its context ends.
	l.mu.Lock()
	cancel()
	l.releaseLocked(holder)
	l.mu.Unlock()

	if code := <-gone; code != 503 {
		t.Fatalf("gone: %d, want 503", code)
	}
	if code := <-next; code != 200 {
		t.Fatalf("next: %d, want 200", code)
	}
	close(ran)
	for id := range ran {
		if id != "next" {
			t.Fatalf("the handler ran for %s", id)
		}
	}
	if err := l.check(); err != nil || l.InFlight() != 0 || l.Waiting() != 0 {
		t.Fatalf("%v; in flight %d, waiting %d", err, l.InFlight(), l.Waiting())
	}
}

// TestConcurrencyInvariantsUnderChurn drives many keys through a small limiter with timeouts and
// cancellations while a checker verifies the bookkeeping, and the limits hold in the handler.
func TestConcurrencyInvariantsUnderChurn(t *testing.T) {
	const limit, perKey, queue, keys = 4, 2, 6, 5
	l, err := NewConcurrency(limit, PerKey(perKey, func(r *http.Request) string { return r.Header.Get("K") }),
		QueueSize(queue), MaxWait(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	var global atomic.Int32
	var perKeyNow [keys]atomic.Int32
	var violations atomic.Int32
	h := l.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.Header.Get("K"))
		if global.Add(1) > limit || perKeyNow[k].Add(1) > perKey {
			violations.Add(1)
		}
		for range 10 {
			runtime.Gosched()
		}
		perKeyNow[k].Add(-1)
		global.Add(-1)
	}))

	stop := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		var first error
		for {
			select {
			case <-stop:
				checked <- first
				return
			default:
			}
			if err := l.check(); err != nil && first == nil {
				first = err
			}
			runtime.Gosched()
		}
	}()

	var wg sync.WaitGroup
	var ok, busy atomic.Int32
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 100 {
				ctx, cancel := context.WithCancel(context.Background())
				req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
				req.Header.Set("K", strconv.Itoa(rng.IntN(keys)))
				if rng.IntN(5) == 0 {
					go func() {
						runtime.Gosched()
						cancel()
					}()
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				cancel()
				switch rec.Code {
				case 200:
					ok.Add(1)
				case 503:
					busy.Add(1)
				default:
					t.Errorf("status %d", rec.Code)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-checked; err != nil {
		t.Fatalf("during the run: %v", err)
	}
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d requests ran over a limit", v)
	}
	if err := l.check(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight != 0 || l.waiting != 0 || len(l.keys) != 0 || l.longest != 0 {
		t.Fatalf("after the run: in flight %d, waiting %d, %d keys, longest %d", l.inFlight, l.waiting, len(l.keys), l.longest)
	}
	t.Logf("%d served, %d rejected", ok.Load(), busy.Load())
}

// check verifies the limiter's bookkeeping under l.mu.
func (l *Concurrency) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := []*keyState{&l.one}
	if l.key != nil {
		all = all[:0]
		for k, ks := range l.keys {
			if ks.key != k {
				return fmt.Errorf("key %q stored under %q", ks.key, k)
			}
			if ks.inFlight == 0 && ks.n == 0 {
				return fmt.Errorf("idle key %q kept", k)
			}
			all = append(all, ks)
		}
	}
	inFlight, queued, longest := 0, 0, 0
	for _, ks := range all {
		n := 0
		var prev *waiter
		for w := ks.head; w != nil; w = w.next {
			if w.prev != prev || w.ks != ks || w.state != waiting {
				return fmt.Errorf("key %q: broken waiter list", ks.key)
			}
			prev, n = w, n+1
		}
		if prev != ks.tail || n != ks.n {
			return fmt.Errorf("key %q: %d waiters listed, n = %d", ks.key, n, ks.n)
		}
		if ks.inFlight < 0 || ks.inFlight > l.perKey {
			return fmt.Errorf("key %q: %d in flight", ks.key, ks.inFlight)
		}
		if want := ks.n > 0 && ks.inFlight < l.perKey; ks.links[inReady].in != want {
			return fmt.Errorf("key %q: in the ready list %v, want %v", ks.key, ks.links[inReady].in, want)
		}
		if ks.links[inByLen].in != (ks.n > 0) {
			return fmt.Errorf("key %q: in byLen %v with %d waiters", ks.key, ks.links[inByLen].in, ks.n)
		}
		inFlight += ks.inFlight
		queued += ks.n
		longest = max(longest, ks.n)
	}
	if inFlight != l.inFlight || queued != l.waiting || longest != l.longest {
		return fmt.Errorf("counted %d in flight, %d waiting, longest %d; recorded %d, %d, %d",
			inFlight, queued, longest, l.inFlight, l.waiting, l.longest)
	}
	if l.inFlight > l.limit || l.waiting > l.queue {
		return fmt.Errorf("%d in flight (limit %d), %d waiting (queue %d)", l.inFlight, l.limit, l.waiting, l.queue)
	}
	if l.ready.head != nil && l.inFlight < l.limit {
		return fmt.Errorf("a free slot (%d in flight) while keys are ready", l.inFlight)
	}
	for n, q := range l.byLen {
		for ks := q.head; ks != nil; ks = ks.links[inByLen].next {
			if ks.n != n {
				return fmt.Errorf("key %q with %d waiters in byLen[%d]", ks.key, ks.n, n)
			}
		}
	}
	return nil
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
