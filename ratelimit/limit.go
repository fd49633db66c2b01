package ratelimit

import (
	"fmt"
	"strconv"
	"time"
)

// Limit is a quota: Count requests per Period, with an optional Burst for the algorithms that have
// one (TokenBucket and GCRA). The zero Limit means "no limit applies" and is only meaningful as the
// result of a LimitFunc, where it exempts a request from a rule. Limit is a plain value, safe to
// copy and share.
type Limit struct {
	// Count is how many requests the quota admits per Period. Must be at least 1.
	Count int64
	// Period is the window length (or, for TokenBucket and GCRA, the time to refill Count tokens).
	// Must be at least one millisecond and at most 366 days.
	Period time.Duration
	// Burst is the bucket capacity of TokenBucket and GCRA: how many requests may arrive at once
	// after a quiet period. Zero means Count (a full period's quota may be spent at once). Ignored
	// by the window algorithms, whose burst is fixed by the window (see Algorithm).
	Burst int64
}

// Maximum values accepted in a Limit. They keep all arithmetic (including Redis' Lua doubles, in
// microseconds) exact.
const (
	MaxCount  = 1 << 30
	MaxPeriod = 366 * 24 * time.Hour
	MinPeriod = time.Millisecond
)

// PerSecond returns a Limit of n requests per second (Burst n).
func PerSecond(n int64) Limit { return Limit{Count: n, Period: time.Second} }

// PerMinute returns a Limit of n requests per minute (Burst n).
func PerMinute(n int64) Limit { return Limit{Count: n, Period: time.Minute} }

// PerHour returns a Limit of n requests per hour (Burst n).
func PerHour(n int64) Limit { return Limit{Count: n, Period: time.Hour} }

// PerDay returns a Limit of n requests per 24 hours (Burst n).
func PerDay(n int64) Limit { return Limit{Count: n, Period: 24 * time.Hour} }

// Every returns a Limit of n requests per period (Burst n).
func Every(n int64, period time.Duration) Limit { return Limit{Count: n, Period: period} }

// WithBurst returns a copy of l with the given burst (bucket capacity) for TokenBucket and GCRA.
func (l Limit) WithBurst(burst int64) Limit { l.Burst = burst; return l }

// IsZero reports whether l is the zero Limit (no limit applies).
func (l Limit) IsZero() bool { return l == Limit{} }

// burst returns the effective bucket capacity.
func (l Limit) burst() int64 {
	if l.Burst > 0 {
		return l.Burst
	}
	return l.Count
}

// Validate reports what is wrong with l, or nil.
func (l Limit) Validate() error {
	switch {
	case l.Count < 1 || l.Count > MaxCount:
		return fmt.Errorf("ratelimit: limit count %d out of range 1..%d", l.Count, MaxCount)
	case l.Period < MinPeriod || l.Period > MaxPeriod:
		return fmt.Errorf("ratelimit: limit period %v out of range %v..%v", l.Period, MinPeriod, MaxPeriod)
	case l.Burst < 0 || l.Burst > MaxCount:
		return fmt.Errorf("ratelimit: limit burst %d out of range 0..%d", l.Burst, MaxCount)
	}
	return nil
}

// String renders l as "100/1m0s" or "100/1m0s burst 20".
func (l Limit) String() string {
	s := strconv.FormatInt(l.Count, 10) + "/" + l.Period.String()
	if l.Burst > 0 && l.Burst != l.Count {
		s += " burst " + strconv.FormatInt(l.Burst, 10)
	}
	return s
}
