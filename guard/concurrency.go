package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// Defaults of NewConcurrency.
const (
	DefaultMaxWait    = 100 * time.Millisecond
	DefaultRetryAfter = time.Second
)

// PerKey also limits in-flight requests per key (default: no per-key limit), and makes the wait
// queue fair across keys: waiters are served one key at a time in turn, and a full queue makes
// room for a key with fewer waiters (see NewConcurrency). key maps a request to its key (a
// subject, an API key's owner, a client IP, a route); it must be cheap and safe for concurrent
// use, and "" is a key like any other. For the fair queue without a per-key in-flight cap, give
// the global limit as limit. Applies to NewConcurrency.
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

// QueueSize sets how many requests may wait for a slot at once, across all keys and whether they
// wait for a global or a per-key slot (default: the global limit; 0 rejects at once when full).
// One key may fill the queue alone; with PerKey, other keys' requests then displace its newest
// waiters (see NewConcurrency). Applies to NewConcurrency.
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
// bounded wait queue that is fair across keys. See NewConcurrency. Safe for concurrent use.
type Concurrency struct {
	limit   int
	perKey  int // the per-key in-flight limit; limit without PerKey
	key     func(*http.Request) string
	queue   int
	maxWait time.Duration
	retry   time.Duration
	onErr   gatewaykit.ErrorHandler
	m       rejections
	reasons [numReasons]reason
	waiters sync.Pool // *waiter, with its channel and timer

	mu       sync.Mutex
	inFlight int                  // requests holding a slot
	waiting  int                  // requests in the queue
	one      keyState             // the only key without PerKey
	keys     map[string]*keyState // with PerKey: keys with requests in flight or waiting
	free     []*keyState          // idle keyStates for reuse, so a new key does not allocate
	ready    keyList              // keys whose oldest waiter only waits for a global slot, in turn order
	byLen    []keyList            // byLen[n]: keys with n waiters (n >= 1), oldest first
	longest  int                  // the largest n with a non-empty byLen[n]; 0 without waiters
}

// Rejection reasons, indexes into Concurrency.reasons. The key_ variants are used when the
// request's key was at its PerKey limit, so its own key held it back.
const (
	reasonQueueFull = iota
	reasonWaitTimeout
	reasonKeyQueueFull
	reasonKeyWaitTimeout
	reasonDisplaced
	numReasons
)

// maxFreeKeys bounds the idle keyStates kept for reuse.
const maxFreeKeys = 1024

// keyState is one key's share of the limiter; every field is guarded by Concurrency.mu.
type keyState struct {
	key        string
	inFlight   int
	head, tail *waiter // the key's waiters, oldest first
	n          int     // len of that list
	links      [2]keyLink
}

// The lists a keyState can be in, as indexes into keyState.links.
const (
	inReady = iota // Concurrency.ready
	inByLen        // Concurrency.byLen[n]
)

type keyLink struct {
	prev, next *keyState
	in         bool
}

// keyList is an intrusive doubly linked list of keyStates through links[i].
type keyList struct{ head, tail *keyState }

func (q *keyList) pushBack(ks *keyState, i int) {
	ks.links[i] = keyLink{prev: q.tail, in: true}
	if q.tail != nil {
		q.tail.links[i].next = ks
	} else {
		q.head = ks
	}
	q.tail = ks
}

func (q *keyList) remove(ks *keyState, i int) {
	lk := &ks.links[i]
	if lk.prev != nil {
		lk.prev.links[i].next = lk.next
	} else {
		q.head = lk.next
	}
	if lk.next != nil {
		lk.next.links[i].prev = lk.prev
	} else {
		q.tail = lk.prev
	}
	*lk = keyLink{}
}

// waiter is a request in the queue. Its verdict (granted or displaced) is set under
// Concurrency.mu and announced by a send on ch.
type waiter struct {
	ks         *keyState
	prev, next *waiter
	state      uint8
	ch         chan struct{} // capacity 1: the sender never blocks
	timer      *time.Timer
}

const (
	waiting uint8 = iota
	granted
	displaced
)

// NewConcurrency returns a limiter that lets at most limit requests run at once through the
// handler it wraps (and, with PerKey, at most that many per key). A request that finds no free
// slot waits in a queue of QueueSize requests for at most MaxWait; when the queue is full, the
// wait times out or the client goes away, it is rejected with a 503 problem and Retry-After.
//
// The queue is fair across the PerKey keys. Each key's waiters are served in arrival order, and
// when a slot frees, the keys with waiters take turns: one request each, round robin, so a quiet
// key's request waits for at most one grant per key that was waiting before it, however many
// requests a noisy key has queued. A key at its PerKey limit skips its turns (it waits for its
// own slots) and rejoins at the back of the line when one of its requests ends. When the queue
// is full, a request whose key has at least two fewer waiters
// than the key with the most still gets in: that key's newest waiter is rejected (reason
// "displaced") to make room. So one key can use the whole queue while nobody else needs it, but
// cannot keep other keys out of it. Without PerKey all requests are one key: plain FIFO.
//
// A request with a free slot takes it under one mutex without allocating (the key table's
// entries are recycled); waiting costs a pooled waiter and timer. A waiter whose request context ends leaves the queue
// at once (and hands on a slot granted at the same moment). No goroutines are started.
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
	l := &Concurrency{limit: limit, perKey: limit, key: c.keyFunc, queue: limit,
		maxWait: DefaultMaxWait, retry: DefaultRetryAfter, onErr: c.onErr,
		keys: make(map[string]*keyState)}
	if c.perKeyMax > 0 {
		l.perKey = min(c.perKeyMax, limit)
	}
	if c.queueSet {
		l.queue = c.queue
	}
	if c.maxWait > 0 {
		l.maxWait = c.maxWait
	}
	if c.retryAfter > 0 {
		l.retry = c.retryAfter
	}
	for i, why := range [numReasons]string{"queue_full", "wait_timeout", "key_queue_full", "key_wait_timeout", "displaced"} {
		l.reasons[i] = newReason("concurrency", why)
	}
	l.waiters.New = func() any { return &waiter{ch: make(chan struct{}, 1)} }
	if l.m, err = newRejections(c.meter); err != nil {
		return nil, err
	}
	return l, nil
}

// InFlight returns the number of requests holding a slot. Safe for concurrent use.
func (l *Concurrency) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// Waiting returns the number of requests waiting for a slot. Safe for concurrent use.
func (l *Concurrency) Waiting() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting
}

// Wrap returns next behind the concurrency limit.
func (l *Concurrency) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k string
		if l.key != nil {
			k = l.key(r)
		}
		l.mu.Lock()
		ks := l.lookup(k)
		// A free slot means nobody eligible for it waits (dispatch hands every freed slot to
		// the next waiter), so taking it jumps no queue.
		if l.inFlight < l.limit && ks.inFlight < l.perKey {
			l.inFlight++
			ks.inFlight++
			l.mu.Unlock()
		} else if why, ok := l.wait(r.Context(), ks); !ok {
			l.reject(w, r, why)
			return
		}
		defer l.release(ks)
		next.ServeHTTP(w, r)
	})
}

// wait queues a request of ks until it is granted a slot, displaced, timed out or canceled. It is
// called with l.mu held and returns with it released.
func (l *Concurrency) wait(ctx context.Context, ks *keyState) (reason, bool) {
	if l.waiting >= l.queue && !l.displaceFor(ks) {
		why := l.reasons[l.blockedBy(ks, reasonQueueFull)]
		l.forget(ks)
		l.mu.Unlock()
		return why, false
	}
	w := l.waiters.Get().(*waiter)
	w.ks, w.state = ks, waiting
	l.enqueue(w)
	l.mu.Unlock()

	if w.timer == nil {
		w.timer = time.NewTimer(l.maxWait)
	} else {
		w.timer.Reset(l.maxWait)
	}
	told, ticked := false, false
	select {
	case <-w.ch:
		told = true
	case <-w.timer.C:
		ticked = true
	case <-ctx.Done():
	}
	if !w.timer.Stop() && !ticked {
		// Only with asynctimerchan=1 (the timer channels of Go before 1.23; since then Stop
		// reports true for a tick nobody received): the timer fired and its tick is in, or on its
		// way to, the channel. Take it, or the next waiter reusing the timer would time out at
		// once.
		<-w.timer.C
	}

	var why reason
	ok := false
	l.mu.Lock()
	switch w.state {
	case granted:
		if ctx.Err() == nil {
			ok = true
		} else { // the client is gone: hand the slot on
			why = l.reasons[reasonWaitTimeout]
			l.releaseLocked(ks)
		}
	case displaced:
		// Not l.forget(ks): the key kept other waiters when this one was displaced, and whoever
		// removes its last request forgets it; by now ks may even serve another key.
		why = l.reasons[reasonDisplaced]
	default: // timed out or canceled while waiting
		l.dequeue(w)
		why = l.reasons[l.blockedBy(ks, reasonWaitTimeout)]
		l.forget(ks)
	}
	l.mu.Unlock()

	if w.state != waiting && !told {
		<-w.ch // sent under l.mu before we read the state: never blocks
	}
	*w = waiter{ch: w.ch, timer: w.timer}
	l.waiters.Put(w)
	return why, ok
}

// blockedBy returns the key_ variant of reason base when ks is at its per-key limit.
func (l *Concurrency) blockedBy(ks *keyState, base int) int {
	if l.key != nil && ks.inFlight >= l.perKey {
		return base + reasonKeyQueueFull - reasonQueueFull
	}
	return base
}

// release gives back the slot of a request of ks and hands it to the next waiter in turn.
func (l *Concurrency) release(ks *keyState) {
	l.mu.Lock()
	l.releaseLocked(ks)
	l.mu.Unlock()
}

func (l *Concurrency) releaseLocked(ks *keyState) {
	l.inFlight--
	ks.inFlight--
	if ks.n > 0 && ks.inFlight < l.perKey && !ks.links[inReady].in {
		l.ready.pushBack(ks, inReady) // its own limit held it back; now it takes turns
	}
	l.dispatch()
	l.forget(ks)
}

// dispatch grants free global slots to the oldest waiter of each ready key in turn; a key that
// still has a waiter it may run goes to the back of the line.
func (l *Concurrency) dispatch() {
	for l.inFlight < l.limit && l.ready.head != nil {
		ks := l.ready.head
		l.ready.remove(ks, inReady)
		w := ks.head
		l.dequeue(w)
		l.inFlight++
		ks.inFlight++
		w.state = granted
		w.ch <- struct{}{}
		if ks.n > 0 && ks.inFlight < l.perKey {
			l.ready.pushBack(ks, inReady)
		}
	}
}

// displaceFor makes room in the full queue for a request of ks by rejecting the newest waiter of
// the key with the most waiters, when that key has at least two more than ks (so the two would
// not merely swap places). It reports whether it did.
func (l *Concurrency) displaceFor(ks *keyState) bool {
	if l.longest < ks.n+2 {
		return false
	}
	victim := l.byLen[l.longest].head
	w := victim.tail
	l.dequeue(w)
	w.state = displaced
	w.ch <- struct{}{}
	return true
}

// enqueue appends w to its key's waiters.
func (l *Concurrency) enqueue(w *waiter) {
	ks := w.ks
	w.prev, w.next = ks.tail, nil
	if ks.tail != nil {
		ks.tail.next = w
	} else {
		ks.head = w
	}
	ks.tail = w
	ks.n++
	l.waiting++
	l.resized(ks, ks.n-1)
	// Only the global limit holds this key back: it takes turns. (A new waiter never finds a
	// slot it could take now: the caller just failed to.)
	if ks.inFlight < l.perKey && !ks.links[inReady].in {
		l.ready.pushBack(ks, inReady)
	}
}

// dequeue removes w from its key's waiters.
func (l *Concurrency) dequeue(w *waiter) {
	ks := w.ks
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		ks.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		ks.tail = w.prev
	}
	w.prev, w.next = nil, nil
	ks.n--
	l.waiting--
	l.resized(ks, ks.n+1)
	if ks.n == 0 && ks.links[inReady].in {
		l.ready.remove(ks, inReady)
	}
}

// resized moves ks from byLen[was] to byLen[ks.n] and keeps l.longest true.
func (l *Concurrency) resized(ks *keyState, was int) {
	if was > 0 {
		l.byLen[was].remove(ks, inByLen)
	}
	if ks.n > 0 {
		for len(l.byLen) <= ks.n {
			l.byLen = append(l.byLen, keyList{})
		}
		l.byLen[ks.n].pushBack(ks, inByLen)
		l.longest = max(l.longest, ks.n)
	}
	for l.longest > 0 && l.byLen[l.longest].head == nil {
		l.longest--
	}
}

// lookup returns the state of key k, creating (or recycling) it. Called with l.mu held.
func (l *Concurrency) lookup(k string) *keyState {
	if l.key == nil {
		return &l.one
	}
	ks := l.keys[k]
	if ks == nil {
		if n := len(l.free); n > 0 {
			ks = l.free[n-1]
			l.free = l.free[:n-1]
		} else {
			ks = new(keyState)
		}
		ks.key = k
		l.keys[k] = ks
	}
	return ks
}

// forget drops ks from the table once no request holds or waits for its slots, so the table
// holds at most limit + QueueSize keys. Called with l.mu held.
func (l *Concurrency) forget(ks *keyState) {
	if l.key == nil || ks.inFlight > 0 || ks.n > 0 {
		return
	}
	delete(l.keys, ks.key)
	*ks = keyState{}
	if len(l.free) < maxFreeKeys {
		l.free = append(l.free, ks)
	}
}

func (l *Concurrency) reject(w http.ResponseWriter, r *http.Request, why reason) {
	l.m.add(r.Context(), why)
	l.onErr(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "The server is busy; retry later.").WithRetryAfter(l.retry))
}
