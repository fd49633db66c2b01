package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// LeaseStore is the approximate mode for high rates: it takes quota from a shared store (a
// RedisStore) in batches and spends it locally, so most decisions cost no round trip.
//
// How it works: for each (rule, key) the instance holds a lease of tokens. A request that finds
// enough tokens in every rule's lease is admitted locally. Otherwise the instance asks the shared
// store for a batch per rule lacking tokens (one round trip, all rules at once, granting up to the
// batch: fewer near the limit), then decides locally. One fetch per key is in flight per instance;
// concurrent requests for the same key wait for it. When the shared store rejects, the rejection
// is remembered until its RetryAfter (for GCRA and TokenBucket: until a whole batch has refilled),
// so a flood of rejected requests costs about one round trip per batch too.
// A request rejected by one rule consumes no token from the others.
//
// Accuracy: every admitted request was counted by the shared store, possibly earlier (when its
// batch was leased). Leased tokens are spent at most LeaseMaxAge after they were taken (for
// FixedWindow, never after their window ends); unspent tokens are then discarded. Hence:
//
//   - Over-admission: over any interval, at most I*B requests beyond what the exact algorithm
//     admits, for I instances and batch B (tokens leased before the interval and spent in it).
//     FixedWindow never over-admits.
//   - Under-admission: tokens leased but unspent (at most I*B per key at any moment) are unusable
//     by other instances until they expire, so a key may be rejected while another instance still
//     holds its quota.
//   - Round trips: about one per B admitted requests per key and instance, instead of one each.
//   - Headers: Remaining is the shared remaining at the last lease plus the local tokens.
//
// The effective batch for a rule is min(LeaseBatch, max(1, Count/16)), so small limits are not
// hoarded by one instance. LeaseStore is safe for concurrent use; it owns no goroutines.
type LeaseStore struct {
	remote   Store
	batch    int64
	maxAge   int64
	seed     maphash.Seed
	perShard int
	shards   [leaseShards]leaseShard
}

const leaseShards = 64

type leaseShard struct {
	mu sync.Mutex
	m  map[uint64]*lease
	_  [48]byte
}

type lease struct {
	tokens      int64
	exp         int64 // tokens are void at or after exp (local ns)
	deniedUntil int64 // shared store rejected until then
	remaining   int64 // shared remaining at the last lease
	resetAt     int64
	fetching    chan struct{} // non-nil while a fetch is in flight
}

// LeaseOption configures NewLeaseStore.
type LeaseOption func(*leaseConfig) error

type leaseConfig struct {
	batch   int64
	maxAge  time.Duration
	maxKeys int
}

// LeaseBatch sets the most tokens leased per fetch (default 20, 1..100000).
func LeaseBatch(n int64) LeaseOption {
	return func(c *leaseConfig) error {
		if n < 1 || n > 100000 {
			return fmt.Errorf("ratelimit: lease batch %d out of range 1..100000", n)
		}
		c.batch = n
		return nil
	}
}

// LeaseMaxAge sets how long leased tokens may be spent (default 1s, 1ms..1m).
func LeaseMaxAge(d time.Duration) LeaseOption {
	return func(c *leaseConfig) error {
		if d < time.Millisecond || d > time.Minute {
			return fmt.Errorf("ratelimit: lease max age %v out of range 1ms..1m", d)
		}
		c.maxAge = d
		return nil
	}
}

// LeaseMaxKeys bounds the leases held (default 65,536; at least 1,024). When full, inserting
// evicts an expired lease or else the one closest to expiry (its unspent tokens are lost).
func LeaseMaxKeys(n int) LeaseOption {
	return func(c *leaseConfig) error {
		if n < 1024 {
			return fmt.Errorf("ratelimit: lease max keys %d is below 1024", n)
		}
		c.maxKeys = n
		return nil
	}
}

// NewLeaseStore returns a LeaseStore over remote (usually a *RedisStore).
func NewLeaseStore(remote Store, opts ...LeaseOption) (*LeaseStore, error) {
	if remote == nil {
		return nil, errors.New("ratelimit: lease store: remote store is nil")
	}
	c := leaseConfig{batch: 20, maxAge: time.Second, maxKeys: 1 << 16}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	s := &LeaseStore{remote: remote, batch: c.batch, maxAge: int64(c.maxAge), seed: maphash.MakeSeed(),
		perShard: (c.maxKeys + leaseShards - 1) / leaseShards}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]*lease)
	}
	return s, nil
}

func (s *LeaseStore) batchFor(l Limit) int64 { return min(s.batch, max(1, l.Count/16)) }

func (s *LeaseStore) hash(r *Request) uint64 { return keyHash(s.seed, r) }

func (s *LeaseStore) shard(k uint64) *leaseShard { return &s.shards[k>>58] }

// Take implements Store (see LeaseStore). Errors come from the shared store.
func (s *LeaseStore) Take(ctx context.Context, now time.Time, reqs []Request, res []Result) error {
	_, err := s.take(ctx, now, reqs, res, false)
	return err
}

// takeLocal decides from the leases alone, without waiting or I/O; decided is false when a fetch
// is needed (the Limiter then calls Take under its store timeout).
func (s *LeaseStore) takeLocal(now time.Time, reqs []Request, res []Result) (decided bool) {
	decided, _ = s.take(context.Background(), now, reqs, res, true)
	return decided
}

func (s *LeaseStore) take(ctx context.Context, now time.Time, reqs []Request, res []Result, localOnly bool) (bool, error) {
	n := len(reqs)
	if n > MaxRules || len(res) < n {
		return true, ErrTooManyRules
	}
	var keys [MaxRules]uint64
	var order [MaxRules]uint8
	for i := range reqs {
		keys[i] = s.hash(&reqs[i])
		order[i] = uint8(keys[i] >> 58)
	}
	sortSmall(order[:n])
	lock := func() {
		for i := 0; i < n; i++ {
			if i == 0 || order[i] != order[i-1] {
				s.shards[order[i]].mu.Lock()
			}
		}
	}
	unlock := func() {
		for i := n - 1; i >= 0; i-- {
			if i == 0 || order[i] != order[i-1] {
				s.shards[order[i]].mu.Unlock()
			}
		}
	}
	nowNs := now.UnixNano()
	for attempt := 0; attempt < 64; attempt++ {
		lock()
		var need [MaxRules]int
		nn := 0
		var wait chan struct{}
		denied := false
		for i := range reqs {
			le := s.shard(keys[i]).m[keys[i]]
			if le != nil && le.exp > nowNs && le.tokens >= reqs[i].Cost {
				continue
			}
			if le != nil && le.deniedUntil > nowNs {
				denied = true
				continue
			}
			if le != nil && le.fetching != nil {
				wait = le.fetching
				continue
			}
			need[nn] = i
			nn++
		}
		if denied { // a rule is known to reject: answer locally, consume nothing
			for i := range reqs {
				le := s.shard(keys[i]).m[keys[i]]
				res[i] = s.result(le, &reqs[i], nowNs, false)
			}
			unlock()
			return true, nil
		}
		if localOnly && (wait != nil || nn > 0) {
			unlock()
			return false, nil
		}
		if wait != nil {
			unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return true, ctx.Err()
			}
		}
		if nn == 0 { // every rule has tokens: admit locally
			for i := range reqs {
				le := s.shard(keys[i]).m[keys[i]]
				le.tokens -= reqs[i].Cost
				res[i] = s.result(le, &reqs[i], nowNs, true)
			}
			unlock()
			return true, nil
		}
		// fetch batches for the rules lacking tokens
		done := make(chan struct{})
		rreqs := make([]Request, nn)
		rres := make([]Result, nn)
		for j := range nn {
			i := need[j]
			sh := s.shard(keys[i])
			le := sh.m[keys[i]]
			if le == nil {
				sh.makeRoom(nowNs, s.perShard)
				le = &lease{}
				sh.m[keys[i]] = le
			}
			le.fetching = done
			rreqs[j] = reqs[i]
			rreqs[j].Cost = max(reqs[i].Cost, s.batchFor(reqs[i].Limit))
			rreqs[j].UpTo = true
		}
		unlock()
		err := s.remote.Take(ctx, now, rreqs, rres)
		lock()
		all := err == nil
		for j := range nn {
			all = all && rres[j].Allowed
		}
		for j := range nn {
			i := need[j]
			le := s.shard(keys[i]).m[keys[i]]
			if le == nil || le.fetching != done { // evicted meanwhile: the lease is lost
				continue
			}
			le.fetching = nil
			if err != nil {
				continue
			}
			r := &rres[j]
			le.remaining, le.resetAt = r.Remaining, nowNs+int64(r.ResetAfter)
			if all {
				if le.exp <= nowNs {
					le.tokens = 0
				}
				le.tokens += r.Granted
				le.exp = nowNs + s.maxAge
				if reqs[i].Algorithm == FixedWindow {
					le.exp = min(le.exp, nowNs+int64(r.ResetAfter))
				}
			} else if !r.Allowed {
				le.deniedUntil = nowNs + int64(r.RetryAfter)
				if a := reqs[i].Algorithm; (a == GCRA || a == TokenBucket) && reqs[i].Limit.burst() >= rreqs[j].Cost {
					// ask again when a whole batch has refilled, not after every single token
					le.deniedUntil += (rreqs[j].Cost - 1) * interval(reqs[i].Limit)
				}
			}
		}
		if err == nil && !all { // rejected: report every rule, none consumed
			for i := range reqs {
				res[i] = s.result(s.shard(keys[i]).m[keys[i]], &reqs[i], nowNs, false)
			}
			for j := range nn {
				res[need[j]] = rres[j]
				res[need[j]].Granted = 0
			}
		}
		unlock()
		close(done)
		if err != nil {
			return true, err
		}
		if !all {
			return true, nil
		}
	}
	// Tokens kept being taken by concurrent requests: decide this one exactly.
	rreqs := make([]Request, n)
	copy(rreqs, reqs)
	return true, s.remote.Take(ctx, now, rreqs, res[:n])
}

// result describes a rule's lease for the decision's headers.
func (s *LeaseStore) result(le *lease, r *Request, now int64, allowed bool) Result {
	if le == nil {
		return Result{Allowed: true, Remaining: r.Limit.Count}
	}
	tokens := le.tokens
	if le.exp <= now {
		tokens = 0
	}
	res := Result{Allowed: allowed || le.deniedUntil <= now, Remaining: le.remaining + tokens, ResetAfter: time.Duration(max(0, le.resetAt-now))}
	if allowed {
		res.Granted = r.Cost
	} else if le.deniedUntil > now {
		res.Allowed = false
		res.RetryAfter = time.Duration(le.deniedUntil - now)
		res.Remaining = 0
	}
	return res
}

// makeRoom evicts an expired lease, or when the shard is full the one closest to expiry.
func (sh *leaseShard) makeRoom(now int64, limit int) {
	full := len(sh.m) >= limit
	sample := 2
	if full {
		sample = 8
	}
	var victim uint64
	found, victimExp, seen := false, int64(0), 0
	for k, le := range sh.m {
		if le.fetching == nil && le.exp <= now && le.deniedUntil <= now {
			delete(sh.m, k)
			full = false
		} else if le.fetching == nil && (!found || le.exp < victimExp) {
			victim, victimExp, found = k, le.exp, true
		}
		if seen++; seen >= sample {
			break
		}
	}
	if full && found {
		delete(sh.m, victim)
	}
}
