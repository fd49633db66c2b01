package retrybudget

import (
	"sync"
	"sync/atomic"
	"time"
)

// Slots is the number of one-second slots of a Budget's window.
const Slots = 10

// Budget counts requests and retries per second over the last Slots seconds. Each slot is one
// atomic word, the slot's second (low 32 bits) over its count, so counting a request is lock-free;
// retries are reserved under a mutex so concurrent retries cannot overdraw the budget. The zero
// value is ready; a Budget must not be copied after first use. Safe for concurrent use.
type Budget struct {
	requests [Slots]atomic.Uint64
	mu       sync.Mutex
	retries  [Slots]atomic.Uint64
}

const slotCount = 1<<32 - 1

func slotTag(sec int64) uint64 { return uint64(uint32(sec)) << 32 }

// count adds one to the slot of second sec, resetting it when it counted an older second.
func count(slots *[Slots]atomic.Uint64, sec int64) {
	w := &slots[uint64(sec)%Slots]
	tag := slotTag(sec)
	for {
		old := w.Load()
		next := tag | 1
		if old&^slotCount == tag {
			next = old + 1
		} else if int32(uint32(old>>32)-uint32(sec)) > 0 {
			return // the slot already counts a later second: this one left the window
		}
		if w.CompareAndSwap(old, next) {
			return
		}
	}
}

// sum returns the counts of the window ending at second sec.
func sum(slots *[Slots]atomic.Uint64, sec int64) float64 {
	var n uint64
	for i := range int64(Slots) {
		s := sec - i
		if w := slots[uint64(s)%Slots].Load(); w&^slotCount == slotTag(s) {
			n += w & slotCount
		}
	}
	return float64(n)
}

// Request records one original request (not a retry) at now, in nanoseconds on any fixed epoch.
func (b *Budget) Request(now int64) { count(&b.requests, now/int64(time.Second)) }

// Requests returns the requests counted in the window ending at now.
func (b *Budget) Requests(now int64) float64 { return sum(&b.requests, now/int64(time.Second)) }

// TryRetry reserves one retry at now (nanoseconds, as for Request) if the retries in the window,
// this one included, stay within floor + ratio * requests; floor counts the whole window.
func (b *Budget) TryRetry(now int64, ratio, floor float64) bool {
	sec := now / int64(time.Second)
	b.mu.Lock()
	defer b.mu.Unlock()
	if sum(&b.retries, sec)+1 > floor+ratio*sum(&b.requests, sec) {
		return false
	}
	count(&b.retries, sec)
	return true
}
