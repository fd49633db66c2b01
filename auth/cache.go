package auth

import (
	"hash/maphash"
	"time"

	"github.com/maypok86/otter/v2"
)

// resultCache is a bounded cache of authentication results keyed by a hash of the credential. The
// credential itself is never stored: an entry is found by one 64-bit keyed hash (random seed per
// process) and confirmed by a second, independent one, so a hit needs a 128-bit match that an
// attacker cannot aim at. An entry never outlives its expiry (the token's exp), checked on every
// read with the injectable clock, nor the configured maximum TTL.
type resultCache[V any] struct {
	c      *otter.Cache[uint64, cached[V]]
	key    maphash.Seed
	check  maphash.Seed
	clock  func() time.Time
	maxTTL time.Duration
}

type cached[V any] struct {
	check uint64
	exp   int64 // unix nanoseconds by the cache's clock
	val   V
}

func newResultCache[V any](size int, maxTTL time.Duration, clock func() time.Time) (*resultCache[V], error) {
	rc := &resultCache[V]{key: maphash.MakeSeed(), check: maphash.MakeSeed(), clock: clock, maxTTL: maxTTL}
	c, err := otter.New(&otter.Options[uint64, cached[V]]{
		MaximumSize: size,
		// otter checks expiry on every read with this clock (ours, so tests can move it): a hit
		// needs no second clock reading.
		Clock: otterClock(clock),
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[uint64, cached[V]]) time.Duration {
			return time.Duration(e.Value.exp - rc.clock().UnixNano())
		}),
	})
	if err != nil {
		return nil, err
	}
	rc.c = c
	return rc, nil
}

// get returns the cached value for the credential, if present and not expired. It reads the clock
// once (inside otter) and hashes the credential twice.
func (rc *resultCache[V]) get(cred string) (v V, ok bool) {
	e, ok := rc.c.GetIfPresent(maphash.String(rc.key, cred)) // expired entries are not returned
	if !ok || e.check != maphash.String(rc.check, cred) {
		return v, false
	}
	return e.val, true
}

// set caches v for the credential until exp, capped by the maximum TTL. An exp in the past caches
// nothing; a zero exp means the maximum TTL.
func (rc *resultCache[V]) set(cred string, v V, exp time.Time) {
	now := rc.clock()
	limit := now.Add(rc.maxTTL)
	if exp.IsZero() || exp.After(limit) {
		exp = limit
	}
	if !exp.After(now) {
		return
	}
	rc.c.Set(maphash.String(rc.key, cred), cached[V]{check: maphash.String(rc.check, cred), exp: exp.UnixNano(), val: v})
}

// delete drops the entry of the credential, if any.
func (rc *resultCache[V]) delete(cred string) { rc.c.Invalidate(maphash.String(rc.key, cred)) }

// clear drops every entry (after a signing key disappeared from the key set).
func (rc *resultCache[V]) clear() { rc.c.InvalidateAll() }

// close stops the cache's clean-up goroutine.
func (rc *resultCache[V]) close() { rc.c.StopAllGoroutines() }

// otterClock adapts an injectable clock to otter.
type otterClock func() time.Time

func (c otterClock) NowNano() int64 { return c().UnixNano() }

// Tick serves otter's periodic clean-up (once a second). The ticker is not stopped when the cache
// closes; since Go 1.23 an unreferenced ticker is garbage collected.
func (c otterClock) Tick(d time.Duration) <-chan time.Time { return time.NewTicker(d).C }
