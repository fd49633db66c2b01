package guard

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"go.opentelemetry.io/otel/metric/noop"
)

// newChanConcurrency builds the baseline of BenchmarkConcurrencyFastPath: the channel-semaphore
// limiter Concurrency was until commit 72d9bf7 (buffered channels as the global and per-key
// semaphores, one atomic counter for all waiters, FIFO only within each channel, so one key
// could fill the whole queue), copied here unchanged but for the names.
func newChanConcurrency(limit int, perKey int, key func(*http.Request) string) *chanConcurrency {
	l := &chanConcurrency{global: make(chan struct{}, limit), perKey: perKey, key: key, queue: int64(limit),
		maxWait: DefaultMaxWait, retry: DefaultRetryAfter, onErr: gatewaykit.WriteProblem,
		keys: make(map[string]*chanKeySlots)}
	for k, scope := range []string{"", "key_"} {
		l.reasons[k][0] = newReason("concurrency", scope+"queue_full")
		l.reasons[k][1] = newReason("concurrency", scope+"wait_timeout")
	}
	var err error
	if l.m, err = newRejections(noop.NewMeterProvider()); err != nil {
		panic(err)
	}
	return l
}

// chanConcurrency bounds the requests in flight, globally and optionally per key, with a short
// bounded wait queue. Safe for concurrent use.
type chanConcurrency struct {
	global  chan struct{}
	perKey  int
	key     func(*http.Request) string
	queue   int64
	waiting atomic.Int64
	maxWait time.Duration
	retry   time.Duration
	onErr   gatewaykit.ErrorHandler
	m       rejections
	reasons [2][2]reason // [per key][timed out]

	mu   sync.Mutex
	keys map[string]*chanKeySlots
}

type chanKeySlots struct {
	key   string
	slots chan struct{}
	refs  int // requests holding or waiting for a slot; the entry is dropped at zero
}

// Wrap returns next behind the concurrency limit.
func (l *chanConcurrency) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var timer *time.Timer
		defer func() {
			if timer != nil {
				timer.Stop()
			}
		}()
		if l.key != nil {
			ks := l.acquireKey(l.key(r))
			defer l.releaseKey(ks)
			if ok, timedOut := l.acquire(r.Context(), ks.slots, &timer); !ok {
				l.reject(w, r, l.reasons[1][chanB2i(timedOut)])
				return
			}
			defer func() { <-ks.slots }()
		}
		if ok, timedOut := l.acquire(r.Context(), l.global, &timer); !ok {
			l.reject(w, r, l.reasons[0][chanB2i(timedOut)])
			return
		}
		defer func() { <-l.global }()
		next.ServeHTTP(w, r)
	})
}

func chanB2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// acquire takes a slot of sem, waiting in the queue if there is room. The timer is shared by
// both waits of a request, so MaxWait bounds the total.
func (l *chanConcurrency) acquire(ctx context.Context, sem chan struct{}, timer **time.Timer) (ok, timedOut bool) {
	select {
	case sem <- struct{}{}:
		return true, false
	default:
	}
	if l.waiting.Add(1) > l.queue {
		l.waiting.Add(-1)
		return false, false
	}
	defer l.waiting.Add(-1)
	if *timer == nil {
		*timer = time.NewTimer(l.maxWait)
	}
	select {
	case sem <- struct{}{}:
		return true, false
	case <-(*timer).C:
		return false, true
	case <-ctx.Done():
		return false, true
	}
}

func (l *chanConcurrency) acquireKey(k string) *chanKeySlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	ks := l.keys[k]
	if ks == nil {
		ks = &chanKeySlots{key: k, slots: make(chan struct{}, l.perKey)}
		l.keys[k] = ks
	}
	ks.refs++
	return ks
}

func (l *chanConcurrency) releaseKey(ks *chanKeySlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ks.refs--; ks.refs == 0 {
		delete(l.keys, ks.key)
	}
}

func (l *chanConcurrency) reject(w http.ResponseWriter, r *http.Request, why reason) {
	l.m.add(r.Context(), why)
	l.onErr(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "The server is busy; retry later.").WithRetryAfter(l.retry))
}
