package ratelimit

import (
	"fmt"
	"math"
	"math/bits"
)

// Algorithm selects how a rule counts requests. The zero value is GCRA.
//
// All algorithms are exact per store: a single Redis instance (or the in-memory store) never admits
// more than the algorithm allows, whatever the number of gateway instances. Windows are aligned to
// the Unix epoch, so every instance and the Redis server agree on where a window starts.
type Algorithm uint8

const (
	// GCRA (the generic cell rate algorithm) spaces requests Period/Count apart and lets Burst of
	// them through at once after a quiet period. It admits exactly the same sequences as
	// TokenBucket with the same Limit, but keeps one timestamp per key (the theoretical arrival
	// time), which makes it the smallest state in memory and in Redis. Over any interval t it
	// admits at most Burst + t*Count/Period requests. This is the default.
	GCRA Algorithm = iota
	// TokenBucket holds up to Burst tokens, refilled continuously at Count per Period; each request
	// takes one. Bursts of Burst are admitted after a quiet period, then requests flow at the
	// refill rate. State: token credit and last refill time per key.
	TokenBucket
	// FixedWindow counts requests in windows of Period aligned to the epoch and admits Count per
	// window. Cheapest to reason about, but up to 2*Count requests can pass around a window edge
	// (Count at the end of one window, Count at the start of the next).
	FixedWindow
	// SlidingWindow approximates a sliding window with two fixed-window counters: the estimate is
	// previous*(1-elapsed/Period) + current. It smooths the edge burst of FixedWindow (at most about
	// Count requests in any Period when traffic is even; the estimate assumes the previous window's
	// requests were spread evenly, so it can err by a few percent either way when they were not).
	// Burst: Count at the start of a quiet window.
	SlidingWindow
	// SlidingLog keeps the timestamp of every admitted request in the last Period and admits a
	// request only if fewer than Count are logged: exact for any interval of length Period. Memory
	// is 8 bytes per admitted request in the window per key (in Redis: a list entry), so Count is
	// capped at MaxLogCount.
	SlidingLog
)

// MaxLogCount is the largest Count accepted for SlidingLog rules.
const MaxLogCount = 10000

var algorithmNames = [...]string{"gcra", "token_bucket", "fixed_window", "sliding_window", "sliding_log"}

// String returns the algorithm's name ("gcra", "token_bucket", ...).
func (a Algorithm) String() string {
	if int(a) < len(algorithmNames) {
		return algorithmNames[a]
	}
	return fmt.Sprintf("Algorithm(%d)", uint8(a))
}

func (a Algorithm) validate(l Limit) error {
	if int(a) >= len(algorithmNames) {
		return fmt.Errorf("ratelimit: unknown algorithm %d", uint8(a))
	}
	if err := l.Validate(); err != nil {
		return err
	}
	if a == SlidingLog && l.Count > MaxLogCount {
		return fmt.Errorf("ratelimit: sliding_log count %d exceeds %d", l.Count, MaxLogCount)
	}
	return nil
}

// state is the per-key state of the counter algorithms; field meaning depends on the algorithm:
//
//	GCRA:          a = theoretical arrival time (ns)
//	TokenBucket:   a = credit (ns of refill time banked), b = time of last update (ns)
//	FixedWindow:   a = window start (ns), b = count
//	SlidingWindow: a = current window start (ns), b = current count<<32 | previous count
type state struct{ a, b int64 }

// outcome is one rule's verdict at one instant.
type outcome struct {
	allowed    bool
	remaining  int64
	resetAfter int64 // ns
	retryAfter int64 // ns, when rejected
	next       state // state to store when the request is admitted
	expires    int64 // absolute ns after which next is no longer needed
}

// interval returns the emission interval Period/Count in ns (at least 1).
func interval(l Limit) int64 {
	t := int64(l.Period) / l.Count
	if t < 1 {
		t = 1
	}
	return t
}

// evaluate decides one counter-algorithm rule (not SlidingLog) at now (Unix ns) for cost requests.
// exists is false for a key with no (or expired) state. Pure function: the stores share it.
func evaluate(alg Algorithm, l Limit, s state, exists bool, now, cost int64) outcome {
	switch alg {
	case TokenBucket:
		t := interval(l)
		capacity := l.burst() * t
		credit := capacity
		lag := int64(0) // the clock went back: no refill until it passes the last update again
		if exists {
			lag = max(0, s.b-now)
			credit = min(capacity, s.a+max(0, now-s.b))
		}
		need := cost * t
		if credit < need {
			return outcome{remaining: credit / t, resetAfter: lag + capacity - credit, retryAfter: lag + need - credit}
		}
		credit -= need
		return outcome{allowed: true, remaining: credit / t, resetAfter: lag + capacity - credit,
			next: state{a: credit, b: now + lag}, expires: now + lag + capacity - credit}
	case FixedWindow:
		p := int64(l.Period)
		ws := now - now%p
		count := int64(0)
		if exists && s.a == ws {
			count = s.b
		}
		reset := ws + p - now
		if count+cost > l.Count {
			return outcome{remaining: max(0, l.Count-count), resetAfter: reset, retryAfter: reset}
		}
		count += cost
		return outcome{allowed: true, remaining: l.Count - count, resetAfter: reset,
			next: state{a: ws, b: count}, expires: ws + p}
	case SlidingWindow:
		p := int64(l.Period)
		ws := now - now%p
		var curr, prev int64
		if exists {
			switch s.a {
			case ws:
				curr, prev = s.b>>32, s.b&(1<<32-1)
			case ws - p:
				prev = s.b >> 32
			}
		}
		elapsed := now - ws
		est := float64(prev)*(float64(p-elapsed)/float64(p)) + float64(curr)
		reset := ws + p - now
		if curr > 0 {
			reset += p
		}
		if !slidingAdmits(l.Count, prev, curr, cost, elapsed, p) {
			return outcome{remaining: max(0, int64(float64(l.Count)-est)), resetAfter: reset,
				retryAfter: slidingRetry(l.Count, prev, curr, cost, elapsed, p)}
		}
		curr += cost
		return outcome{allowed: true, remaining: max(0, int64(float64(l.Count)-est-float64(cost))), resetAfter: ws + 2*p - now,
			next: state{a: ws, b: curr<<32 | prev}, expires: ws + 2*p}
	default: // GCRA
		t := interval(l)
		limit := l.burst() * t
		tat := now
		if exists && s.a > now {
			tat = s.a
		}
		newTat := tat + cost*t
		if newTat-now > limit {
			return outcome{remaining: max(0, (limit-(tat-now))/t), resetAfter: tat - now, retryAfter: newTat - limit - now}
		}
		return outcome{allowed: true, remaining: (limit - (newTat - now)) / t, resetAfter: newTat - now,
			next: state{a: newTat}, expires: newTat}
	}
}

// slidingAdmits reports prev*(p-elapsed)/p + curr + cost <= count, exactly (128-bit products).
func slidingAdmits(count, prev, curr, cost, elapsed, p int64) bool {
	room := count - curr - cost
	if room < 0 {
		return false
	}
	h1, l1 := bits.Mul64(uint64(prev), uint64(p-elapsed))
	h2, l2 := bits.Mul64(uint64(room), uint64(p))
	return h1 < h2 || h1 == h2 && l1 <= l2
}

// floorMulDiv returns floor(a*b/c) for non-negative a, b and positive c with a < c (no overflow).
func floorMulDiv(a, b, c int64) int64 {
	return a*(b/c) + a*(b%c)/c
}

// slidingRetry returns how long after now (elapsed into the window) the estimate leaves room for
// cost requests: the smallest e with prev*(p-e) <= room*p in this window, or else in the next one.
func slidingRetry(count, prev, curr, cost, elapsed, p int64) int64 {
	if cost > count {
		return math.MaxInt64
	}
	room := count - cost - curr
	if room >= 0 && prev > room {
		return max(1, p-floorMulDiv(room, p, prev)-elapsed)
	}
	// wait for the next window, where curr becomes the previous count
	if curr <= count-cost {
		return p - elapsed
	}
	return p - elapsed + p - floorMulDiv(count-cost, p, curr)
}

// grantable returns how many requests (at most want) a counter algorithm would admit now.
func grantable(alg Algorithm, l Limit, s state, exists bool, now, want int64) int64 {
	// Binary search on cost: outcomes are monotonic in cost.
	lo, hi := int64(0), want
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if evaluate(alg, l, s, exists, now, mid).allowed {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// logOutcome decides a SlidingLog rule given the timestamps (oldest first) still inside the window.
func logOutcome(l Limit, ts []int64, now, cost int64) outcome {
	p := int64(l.Period)
	n := int64(len(ts))
	reset := int64(0)
	if n > 0 {
		reset = ts[n-1] + p - now
	}
	if n+cost > l.Count {
		if cost > l.Count {
			return outcome{resetAfter: reset, retryAfter: math.MaxInt64}
		}
		// the (n+cost-Count)-th oldest entry must leave the window
		return outcome{remaining: max(0, l.Count-n), resetAfter: reset, retryAfter: ts[n+cost-l.Count-1] + p - now}
	}
	return outcome{allowed: true, remaining: l.Count - n - cost, resetAfter: p, expires: now + p}
}
