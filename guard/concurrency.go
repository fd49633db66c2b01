package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// Defaults of NewConcurrency.
const (
	DefaultMaxWait    = 100 * time.Millisecond
	DefaultRetryAfter = time.Second
)

// PerKey also limits in-flight requests per key (default: no per-key limit). key maps a request
// to its key (a subject, an API key's owner, a client IP, a route); it must be cheap and safe for
// concurrent use, and "" is a key like any other. Applies to NewConcurrency.
func PerKey(limit int, key func(*http.Request) string) Option {
	return func(c *config) error {
		if err := c.applies("PerKey", kindConcurrency); err != nil {
			return err
		}
		if limit <= 0 {
			return fmt.Errorf("guard: PerKey: limit %d is not positive", limit)
		}
		if key == nil {
			return errors.New("guard: PerKey: nil key function")
		}
		c.perKeyMax, c.keyFunc = limit, key
		return nil
	}
}

// QueueSize sets how many requests may wait for a slot at once, across the global and per-key
// limits (default: the global limit; 0 rejects at once when full). Applies to NewConcurrency.
func QueueSize(n int) Option {
	return func(c *config) error {
		if err := c.applies("QueueSize", kindConcurrency); err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("guard: QueueSize: %d is negative", n)
		}
		c.queue, c.queueSet = n, true
		return nil
	}
}

// MaxWait sets how long a queued request waits for a slot before it is rejected (default 100ms,
// at most one minute). Applies to NewConcurrency.
func MaxWait(d time.Duration) Option {
	return func(c *config) error {
		if err := c.applies("MaxWait", kindConcurrency); err != nil {
			return err
		}
		if d <= 0 || d > time.Minute {
			return fmt.Errorf("guard: MaxWait: %v is not in (0, 1m]", d)
		}
		c.maxWait = d
		return nil
	}
}

// RetryAfter sets the Retry-After sent with a 503 (default 1s, rounded up to whole seconds).
// Applies to NewConcurrency.
func RetryAfter(d time.Duration) Option {
	return func(c *config) error {
		if err := c.applies("RetryAfter", kindConcurrency); err != nil {
			return err
		}
		if d <= 0 {
			return fmt.Errorf("guard: RetryAfter: %v is not positive", d)
		}
		c.retryAfter = d
		return nil
	}
}

// Concurrency bounds the requests in flight, globally and optionally per key, with a short
// bounded wait queue. See NewConcurrency. Safe for concurrent use.
type Concurrency struct {
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
	keys map[string]*keySlots
}

type keySlots struct {
	key   string
	slots chan struct{}
	refs  int // requests holding or waiting for a slot; the entry is dropped at zero
}

// NewConcurrency returns a limiter that lets at most limit requests run at once through the
// handler it wraps (and, with PerKey, at most that many per key). A request that finds no free
// slot waits in a queue of QueueSize requests for at most MaxWait; when the queue is full, the
// wait times out or the client goes away, it is rejected with a 503 problem and Retry-After. A
// request takes its per-key slot before a global one, so one busy key never holds global slots
// while it waits. The fast path (a free slot) does not allocate.
//
// Options: PerKey, QueueSize, MaxWait, RetryAfter, WithErrorHandler, WithMeterProvider.
func NewConcurrency(limit int, opts ...Option) (*Concurrency, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("guard: NewConcurrency: limit %d is not positive", limit)
	}
	c, err := newConfig(kindConcurrency, opts)
	if err != nil {
		return nil, err
	}
	l := &Concurrency{global: make(chan struct{}, limit), perKey: c.perKeyMax, key: c.keyFunc,
		queue: int64(limit), maxWait: DefaultMaxWait, retry: DefaultRetryAfter, onErr: c.onErr,
		keys: make(map[string]*keySlots)}
	if c.queueSet {
		l.queue = int64(c.queue)
	}
	if c.maxWait > 0 {
		l.maxWait = c.maxWait
	}
	if c.retryAfter > 0 {
		l.retry = c.retryAfter
	}
	for k, scope := range []string{"", "key_"} {
		l.reasons[k][0] = newReason("concurrency", scope+"queue_full")
		l.reasons[k][1] = newReason("concurrency", scope+"wait_timeout")
	}
	if l.m, err = newRejections(c.meter); err != nil {
		return nil, err
	}
	return l, nil
}

// InFlight returns the number of requests holding a global slot.
func (l *Concurrency) InFlight() int { return len(l.global) }

// Waiting returns the number of requests waiting for a slot.
func (l *Concurrency) Waiting() int { return int(l.waiting.Load()) }

// Wrap returns next behind the concurrency limit.
func (l *Concurrency) Wrap(next http.Handler) http.Handler {
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
				l.reject(w, r, l.reasons[1][b2i(timedOut)])
				return
			}
			defer func() { <-ks.slots }()
		}
		if ok, timedOut := l.acquire(r.Context(), l.global, &timer); !ok {
			l.reject(w, r, l.reasons[0][b2i(timedOut)])
			return
		}
		defer func() { <-l.global }()
		next.ServeHTTP(w, r)
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// acquire takes a slot of sem, waiting in the queue if there is room. The timer is shared by
// both waits of a request, so MaxWait bounds the total.
func (l *Concurrency) acquire(ctx context.Context, sem chan struct{}, timer **time.Timer) (ok, timedOut bool) {
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

func (l *Concurrency) acquireKey(k string) *keySlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	ks := l.keys[k]
	if ks == nil {
		ks = &keySlots{key: k, slots: make(chan struct{}, l.perKey)}
		l.keys[k] = ks
	}
	ks.refs++
	return ks
}

func (l *Concurrency) releaseKey(ks *keySlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ks.refs--; ks.refs == 0 {
		delete(l.keys, ks.key)
	}
}

func (l *Concurrency) reject(w http.ResponseWriter, r *http.Request, why reason) {
	l.m.add(r.Context(), why)
	l.onErr(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "The server is busy; retry later.").WithRetryAfter(l.retry))
}
