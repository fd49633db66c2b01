package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/guard"
)

// waitFor polls cond for up to 30 seconds (generous for a loaded machine).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gate is a handler that blocks until released and measures how many run at once.
type gate struct {
	release chan struct{}
	now     atomic.Int32
	max     atomic.Int32
	entered atomic.Int32
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := g.now.Add(1)
	g.entered.Add(1)
	for {
		m := g.max.Load()
		if n <= m || g.max.CompareAndSwap(m, n) {
			break
		}
	}
	<-g.release
	g.now.Add(-1)
}

func TestConcurrencyUnderLoad(t *testing.T) {
	const limit, clients = 4, 40
	g := newGate()
	l := must(guard.NewConcurrency(limit, guard.QueueSize(clients), guard.MaxWait(time.Minute)))
	srv := httptest.NewServer(l.Wrap(g))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: clients, MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()

	statuses := make(chan int, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			resp, err := client.Get(srv.URL)
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	waitFor(t, "the limit to fill and the rest to queue", func() bool {
		return l.InFlight() == limit && l.Waiting() == clients-limit
	})
	if got := g.now.Load(); got != limit {
		t.Fatalf("%d handlers running, want %d", got, limit)
	}
	close(g.release)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("a queued request got %d, want 200", s)
		}
	}
	if m := g.max.Load(); m > limit {
		t.Fatalf("%d requests were in flight at once, limit %d", m, limit)
	}
	if g.entered.Load() != clients || l.InFlight() != 0 || l.Waiting() != 0 {
		t.Fatalf("entered %d in flight %d waiting %d", g.entered.Load(), l.InFlight(), l.Waiting())
	}
}

// serveAsync serves req through h on a goroutine and returns the recorder when done.
func serveAsync(h http.Handler, req *http.Request) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		done <- rec
	}()
	return done
}

func TestConcurrencyQueueFullAndTimeout(t *testing.T) {
	g := newGate()
	l := must(guard.NewConcurrency(1, guard.QueueSize(1), guard.MaxWait(time.Minute), guard.RetryAfter(2*time.Second)))
	h := l.Wrap(g)
	first := serveAsync(h, httptest.NewRequest("GET", "/", nil))
	waitFor(t, "first in flight", func() bool { return g.now.Load() == 1 })

	// The queue has room for one: this one waits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := serveAsync(h, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	waitFor(t, "second queued", func() bool { return l.Waiting() == 1 })
	// Queue full: rejected at once.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("queue full: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	problemOf(t, rec.Header(), rec.Body.String())
	cancel()
	if r := <-second; r.Code != 503 {
		t.Fatalf("canceled wait: %d, want 503", r.Code)
	}

	// A wait longer than MaxWait is rejected. (Nothing here depends on how long it took.)
	short := must(guard.NewConcurrency(1, guard.MaxWait(20*time.Millisecond), guard.RetryAfter(2*time.Second)))
	busy := serveAsync(short.Wrap(g), httptest.NewRequest("GET", "/", nil))
	waitFor(t, "the short limiter's slot taken", func() bool { return short.InFlight() == 1 })
	rec = httptest.NewRecorder()
	short.Wrap(g).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "2" || short.Waiting() != 0 {
		t.Fatalf("timed-out wait: %d Retry-After %q, %d waiting", rec.Code, rec.Header().Get("Retry-After"), short.Waiting())
	}
	problemOf(t, rec.Header(), rec.Body.String())
	close(g.release)
	if r := <-first; r.Code != 200 {
		t.Fatalf("first: %d", r.Code)
	}
	if r := <-busy; r.Code != 200 {
		t.Fatalf("busy: %d", r.Code)
	}
}

func TestConcurrencyNoQueue(t *testing.T) {
	g := newGate()
	l := must(guard.NewConcurrency(1, guard.QueueSize(0)))
	h := l.Wrap(g)
	first := serveAsync(h, httptest.NewRequest("GET", "/", nil))
	waitFor(t, "first in flight", func() bool { return g.now.Load() == 1 })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 {
		t.Fatalf("%d, want 503", rec.Code)
	}
	close(g.release)
	<-first
}

func TestConcurrencyClientGoesAway(t *testing.T) {
	g := newGate()
	l := must(guard.NewConcurrency(1, guard.MaxWait(time.Minute)))
	h := l.Wrap(g)
	first := serveAsync(h, httptest.NewRequest("GET", "/", nil))
	waitFor(t, "first in flight", func() bool { return g.now.Load() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	second := serveAsync(h, httptest.NewRequest("GET", "/", nil).WithContext(ctx))
	waitFor(t, "second queued", func() bool { return l.Waiting() == 1 })
	cancel()
	if r := <-second; r.Code != 503 || l.Waiting() != 0 {
		t.Fatalf("canceled wait: %d, waiting %d", r.Code, l.Waiting())
	}
	close(g.release)
	<-first
}

func TestConcurrencyPerKey(t *testing.T) {
	const perKey, clients = 2, 12
	g := newGate()
	byHeader := func(r *http.Request) string { return r.Header.Get("X-Key") }
	l := must(guard.NewConcurrency(100, guard.PerKey(perKey, byHeader), guard.QueueSize(100), guard.MaxWait(time.Minute)))
	h := l.Wrap(g)
	var done []<-chan *httptest.ResponseRecorder
	for i := range clients {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-Key", "k"+strconv.Itoa(i%2))
		done = append(done, serveAsync(h, req))
	}
	// Two keys, two slots each: four run, the rest wait even though the global limit is 100.
	waitFor(t, "per-key slots to fill", func() bool { return g.now.Load() == 2*perKey && l.Waiting() == clients-2*perKey })
	other := httptest.NewRequest("GET", "/", nil)
	other.Header.Set("X-Key", "other")
	otherDone := serveAsync(h, other)
	waitFor(t, "another key to run", func() bool { return g.now.Load() == 2*perKey+1 })
	close(g.release)
	for _, d := range append(done, otherDone) {
		if r := <-d; r.Code != 200 {
			t.Fatalf("status %d", r.Code)
		}
	}
	if m := g.max.Load(); m > 2*perKey+1 {
		t.Fatalf("max in flight %d", m)
	}
}

func TestConcurrencyPerKeyRejects(t *testing.T) {
	g := newGate()
	l := must(guard.NewConcurrency(10, guard.PerKey(1, func(*http.Request) string { return "one" }), guard.QueueSize(0)))
	h := l.Wrap(g)
	first := serveAsync(h, httptest.NewRequest("GET", "/", nil))
	waitFor(t, "first in flight", func() bool { return g.now.Load() == 1 })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	close(g.release)
	<-first
}

func TestConcurrencyConstruction(t *testing.T) {
	if _, err := guard.NewConcurrency(0); err == nil {
		t.Error("limit 0 accepted")
	}
	for name, opt := range map[string]guard.Option{
		"per key 0":      guard.PerKey(0, func(*http.Request) string { return "" }),
		"nil key":        guard.PerKey(1, nil),
		"negative queue": guard.QueueSize(-1),
		"zero wait":      guard.MaxWait(0),
		"long wait":      guard.MaxWait(time.Hour),
		"zero retry":     guard.RetryAfter(0),
		"misplaced":      guard.MaxBodyBytes(1),
	} {
		if _, err := guard.NewConcurrency(1, opt); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}
