package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/guard"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// turnstile is a handler that announces each request it admits (its X-ID header) on entered,
// then holds it until the test lets that request go (let) or opens the turnstile for all.
type turnstile struct {
	entered chan string
	open    chan struct{}

	mu   sync.Mutex
	exit map[string]chan struct{}
}

func newTurnstile() *turnstile {
	return &turnstile{entered: make(chan string, 256), open: make(chan struct{}), exit: map[string]chan struct{}{}}
}

func (ts *turnstile) exitOf(id string) chan struct{} {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ch := ts.exit[id]
	if ch == nil {
		ch = make(chan struct{})
		ts.exit[id] = ch
	}
	return ch
}

func (ts *turnstile) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-ID")
	ts.entered <- id
	select {
	case <-ts.exitOf(id):
	case <-ts.open:
	}
}

// let lets the running request id finish.
func (ts *turnstile) let(id string) { close(ts.exitOf(id)) }

// next returns the next request admitted to the handler.
func (ts *turnstile) next(t *testing.T) string {
	t.Helper()
	select {
	case id := <-ts.entered:
		return id
	case <-time.After(30 * time.Second):
		t.Fatal("no request was admitted")
		return ""
	}
}

// keyed is a request of key with the given ID.
func keyed(key, id string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Key", key)
	r.Header.Set("X-ID", id)
	return r
}

func byKey(r *http.Request) string { return r.Header.Get("X-Key") }

// result is a finished request.
type result struct {
	id  string
	rec *httptest.ResponseRecorder
}

// serveTo serves req through h on a goroutine and sends the outcome to results.
func serveTo(h http.Handler, req *http.Request, results chan<- result) {
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		results <- result{req.Header.Get("X-ID"), rec}
	}()
}

func nextResult(t *testing.T, results <-chan result) result {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no request finished")
		return result{}
	}
}

// TestConcurrencyFairTurns: when a slot frees, the keys with waiters take turns, so a quiet
// key's one request runs before the noisy key's later waiters, which keep their own order. The
// per-key limit is above the global one: fairness without a per-key cap. (The
// channel-semaphore limiter served one global FIFO there: the quiet request came after all
// eight noisy ones.)
func TestConcurrencyFairTurns(t *testing.T) {
	ts := newTurnstile()
	l := must(guard.NewConcurrency(2, guard.PerKey(100, byKey), guard.QueueSize(16), guard.MaxWait(time.Minute)))
	h := l.Wrap(ts)
	results := make(chan result, 16)

	serveTo(h, keyed("steady", "s0"), results)
	if id := ts.next(t); id != "s0" {
		t.Fatalf("admitted %s", id)
	}
	serveTo(h, keyed("noisy", "n0"), results)
	if id := ts.next(t); id != "n0" {
		t.Fatalf("admitted %s", id)
	}
	// The noisy key queues eight more, one at a time so their order is known.
	for i := 1; i <= 8; i++ {
		serveTo(h, keyed("noisy", "n"+strconv.Itoa(i)), results)
		waitFor(t, "noisy waiter "+strconv.Itoa(i), func() bool { return l.Waiting() == i })
	}
	serveTo(h, keyed("quiet", "q"), results)
	waitFor(t, "the quiet request to queue", func() bool { return l.Waiting() == 9 })

	// The noisy key was waiting first, so it has the first turn; then the quiet key; then the
	// noisy key alone, in its own arrival order.
	want := []string{"n1", "q", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	running := []string{"s0", "n0"}
	var admitted []string
	for _, w := range want {
		ts.let(running[0])
		running = running[1:]
		if r := nextResult(t, results); r.rec.Code != 200 {
			t.Fatalf("%s: %d", r.id, r.rec.Code)
		}
		got := ts.next(t)
		admitted = append(admitted, got)
		if got != w {
			t.Fatalf("admitted %v, want %v", admitted, want)
		}
		running = append(running, got)
	}
	close(ts.open)
	for range running {
		if r := nextResult(t, results); r.rec.Code != 200 {
			t.Fatalf("%s: %d", r.id, r.rec.Code)
		}
	}
	if l.InFlight() != 0 || l.Waiting() != 0 {
		t.Fatalf("in flight %d, waiting %d", l.InFlight(), l.Waiting())
	}
}

// TestConcurrencyNoisyKeyFloods: a key that floods fills the queue, and what does not fit is
// rejected with a 503 problem and Retry-After. A quiet key's request still gets in (the noisy
// key's newest waiter is displaced for it) and runs as soon as a slot frees, before every
// noisy waiter. (The channel-semaphore limiter rejected it at once: queue full.)
func TestConcurrencyNoisyKeyFloods(t *testing.T) {
	const limit, queue, flood = 2, 6, 30
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	ts := newTurnstile()
	l := must(guard.NewConcurrency(limit, guard.PerKey(limit, byKey), guard.QueueSize(queue), guard.MaxWait(time.Minute),
		guard.RetryAfter(3*time.Second), guard.WithMeterProvider(mp)))
	h := l.Wrap(ts)
	results := make(chan result, flood+1)

	for i := range flood {
		serveTo(h, keyed("noisy", "n"+strconv.Itoa(i)), results)
	}
	running := []string{ts.next(t), ts.next(t)}
	checkBusy := func(r result) {
		t.Helper()
		if r.rec.Code != 503 || r.rec.Header().Get("Retry-After") != "3" {
			t.Fatalf("%s: %d, Retry-After %q; want 503, 3", r.id, r.rec.Code, r.rec.Header().Get("Retry-After"))
		}
		problemOf(t, r.rec.Header(), r.rec.Body.String())
	}
	for range flood - limit - queue {
		checkBusy(nextResult(t, results))
	}
	waitFor(t, "the queue to fill", func() bool { return l.Waiting() == queue })

	serveTo(h, keyed("quiet", "q"), results)
	displaced := nextResult(t, results)
	if displaced.id == "q" || displaced.id == "" {
		t.Fatalf("the quiet request was rejected: %d", displaced.rec.Code)
	}
	checkBusy(displaced)
	if l.Waiting() != queue {
		t.Fatalf("waiting %d, want %d", l.Waiting(), queue)
	}

	ts.let(running[0])
	if r := nextResult(t, results); r.rec.Code != 200 {
		t.Fatalf("%s: %d", r.id, r.rec.Code)
	}
	if got := ts.next(t); got != "q" {
		t.Fatalf("admitted %s, want the quiet request", got)
	}
	close(ts.open)
	for range limit + queue - 1 { // the other running request, the quiet one, 5 noisy waiters
		if r := nextResult(t, results); r.rec.Code != 200 {
			t.Fatalf("%s: %d", r.id, r.rec.Code)
		}
	}

	got := concurrencyRejections(t, reader)
	want := map[string]int64{"key_queue_full": flood - limit - queue, "displaced": 1}
	if len(got) != len(want) || got["key_queue_full"] != want["key_queue_full"] || got["displaced"] != want["displaced"] {
		t.Fatalf("rejections %v, want %v", got, want)
	}
}

// TestConcurrencyCancelLeavesQueue: a waiter whose context ends leaves its key's queue at once;
// the waiters behind it keep their order, and a key whose only waiter left loses its turn.
func TestConcurrencyCancelLeavesQueue(t *testing.T) {
	ts := newTurnstile()
	l := must(guard.NewConcurrency(1, guard.PerKey(1, byKey), guard.QueueSize(8), guard.MaxWait(time.Minute)))
	h := l.Wrap(ts)
	results := make(chan result, 8)

	serveTo(h, keyed("a", "a0"), results)
	if id := ts.next(t); id != "a0" {
		t.Fatalf("admitted %s", id)
	}
	ctxs := map[string]context.CancelFunc{}
	for i, id := range []string{"a1", "a2", "b1", "a3", "c1"} {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ctxs[id] = cancel
		key := id[:1]
		serveTo(h, keyed(key, id).WithContext(ctx), results)
		waitFor(t, id+" to queue", func() bool { return l.Waiting() == i+1 })
	}
	for _, id := range []string{"a2", "b1"} {
		ctxs[id]()
		r := nextResult(t, results)
		if r.id != id || r.rec.Code != 503 {
			t.Fatalf("canceled %s, got %s %d", id, r.id, r.rec.Code)
		}
	}
	if l.Waiting() != 3 {
		t.Fatalf("waiting %d after two cancellations, want 3", l.Waiting())
	}
	running := "a0"
	for _, want := range []string{"c1", "a1", "a3"} {
		ts.let(running)
		if r := nextResult(t, results); r.id != running || r.rec.Code != 200 {
			t.Fatalf("%s: %d", r.id, r.rec.Code)
		}
		if running = ts.next(t); running != want {
			t.Fatalf("admitted %s, want %s", running, want)
		}
	}
	ts.let(running)
	nextResult(t, results)
	if l.InFlight() != 0 || l.Waiting() != 0 {
		t.Fatalf("in flight %d, waiting %d", l.InFlight(), l.Waiting())
	}
}

// TestConcurrencyDisplaceOnlyForFewer: a full queue admits a request by displacement only when
// its key has at least two fewer waiters than the longest queue, so two keys end up sharing it.
func TestConcurrencyDisplaceOnlyForFewer(t *testing.T) {
	ts := newTurnstile()
	l := must(guard.NewConcurrency(1, guard.PerKey(1, byKey), guard.QueueSize(4), guard.MaxWait(time.Minute)))
	h := l.Wrap(ts)
	results := make(chan result, 16)
	serveTo(h, keyed("x", "x0"), results)
	ts.next(t)
	for i := 1; i <= 4; i++ {
		serveTo(h, keyed("a", "a"+strconv.Itoa(i)), results)
		waitFor(t, "a waiter", func() bool { return l.Waiting() == i })
	}
	// a: 4 waiters. b's first two requests each displace a's newest (a4, then a3).
	for i, victim := range []string{"a4", "a3"} {
		serveTo(h, keyed("b", "b"+strconv.Itoa(i+1)), results)
		if r := nextResult(t, results); r.id != victim || r.rec.Code != 503 {
			t.Fatalf("displaced %s %d, want %s 503", r.id, r.rec.Code, victim)
		}
	}
	// a: 2, b: 2. A third b request and a third a request are refused: queue full.
	for _, id := range []string{"b3", "a5"} {
		serveTo(h, keyed(id[:1], id), results)
		if r := nextResult(t, results); r.id != id || r.rec.Code != 503 {
			t.Fatalf("%s: got %s %d, want it refused", id, r.id, r.rec.Code)
		}
	}
	close(ts.open)
	for range 5 {
		if r := nextResult(t, results); r.rec.Code != 200 {
			t.Fatalf("%s: %d", r.id, r.rec.Code)
		}
	}
}

// concurrencyRejections sums gatewaykit.guard.rejections{guard.check="concurrency"} by reason.
func concurrencyRejections(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != "gatewaykit.guard.rejections" {
				continue
			}
			for _, dp := range sum.DataPoints {
				if c, _ := dp.Attributes.Value(attribute.Key("guard.check")); c.AsString() == "concurrency" {
					r, _ := dp.Attributes.Value(attribute.Key("guard.reason"))
					got[r.AsString()] += dp.Value
				}
			}
		}
	}
	return got
}
