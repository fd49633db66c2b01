package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// LeaseStore is the approximate mode for high rates: it takes quota from a shared store (a
// RedisStore) in batches and spends it locally, so most decisions cost no round trip.
//
// How it works: for each (rule, key) the instance holds a lease of tokens. A request that finds
// enough tokens in every rule's lease is admitted locally. Otherwise the instance asks the shared
// store for a batch per rule lacking tokens (one round trip, all rules at once, granting up to the
// batch: fewer near the limit), then decides locally. One fetch per key is in flight per instance;
// concurrent requests for the same key wait for it. When the shared store rejects, the rejection
// is remembered until its RetryAfter (for GCRA and TokenBucket: until a whole batch has refilled,
// and the rejection's RetryAfter then reports that longer wait, so a retry at RetryAfter succeeds),
// so a flood of rejected requests costs about one round trip per batch too.
// A request rejected by one rule consumes no token from the others.
//
// Accuracy: every admitted request was counted by the shared store, possibly earlier (when its
// batch was leased). Leased tokens are spent at most LeaseMaxAge after they were taken (for
// FixedWindow, never after their window ends); unspent tokens are then discarded. Hence:
//
//   - Over-admission: over any interval, at most I*B requests beyond what the exact algorithm
//     admits, for I instances and batch B (tokens leased before the interval and spent in it).
//     FixedWindow leases end with their window, measured from the lease's arrival, so they can
//     outlive the shared store's window only by the reply's transit time (a fraction of a
//     millisecond on a LAN): FixedWindow over-admits only within that margin after a window edge.
//   - Under-admission: tokens leased but unspent (at most I*B per key at any moment) are unusable
//     by other instances until they expire, so a key may be rejected while another instance still
//     holds its quota.
//   - Round trips: about one per B admitted requests per key and instance, instead of one each.
//   - Headers: Remaining is the shared remaining at the last lease plus the local tokens.
//
// The effective batch for a rule is min(LeaseBatch, max(1, Count/16)), so small limits are not
// hoarded by one instance.
//
// Metrics (meter "github.com/gatewaykit/gatewaykit/ratelimit", provider LeaseMeterProvider): how
// many decisions were served from the lease and how many needed the shared store, leases and
// tokens taken per rule, and leased tokens that expired or were evicted unspent (see
// LeaseMeterProvider for the instruments). They are observable counters read at collection: the
// local decision only increments a count under the shard lock it already holds, and allocates
// nothing.
//
// LeaseStore is safe for concurrent use; it owns no goroutines and needs no Close (its metric
// callback is unregistered when the store is garbage collected).
type LeaseStore struct {
	remote   Store
	batch    int64
	maxAge   int64
	seed     maphash.Seed
	perShard int
	tel      leaseTelemetry
	shards   [leaseShards]leaseShard
}

const leaseShards = 64

type leaseShard struct {
	mu sync.Mutex
	m  map[uint64]*lease
	// decided counts the decisions whose first rule lives in this shard, by source and outcome,
	// under mu: the local path adds to a cache line its lock already owns, without an atomic
	// instruction (the counts fill the shard's 64 bytes). Read under mu at metric collection.
	decided [numLeaseSources][numLeaseOutcomes]int64
}

type lease struct {
	tokens      int64
	exp         int64 // tokens are void at or after exp (local ns)
	deniedUntil int64 // shared store rejected until then
	remaining   int64 // shared remaining at the last lease
	resetAt     int64
	fetching    chan struct{} // non-nil while a fetch is in flight
	rt          *leaseRuleTel // the rule's token counters
}

// LeaseOption configures NewLeaseStore.
type LeaseOption func(*leaseConfig) error

type leaseConfig struct {
	batch   int64
	maxAge  time.Duration
	maxKeys int
	meter   metric.MeterProvider
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

// LeaseMeterProvider sets the OpenTelemetry meter provider of lease mode's metrics (default
// otel.GetMeterProvider() at NewLeaseStore; the Limiter's WithMeterProvider does not reach a
// store). Instruments, all observable counters of meter "github.com/gatewaykit/gatewaykit/ratelimit":
//
//   - gatewaykit.ratelimit.lease.decisions ({decision}): Take calls that decided, by source
//     ("lease": from the local lease, leased tokens or a remembered rejection, no round trip of
//     its own, possibly after waiting for another request's fetch; "store": the decision made a
//     round trip to the shared store) and outcome ("allowed", "rejected", "error": the shared
//     store failed, or the context ended while waiting for another request's fetch). A decision
//     the Limiter first tries locally and then sends through Take is counted once.
//   - gatewaykit.ratelimit.lease.acquired ({lease}): batches granted by the shared store, by rule.
//   - gatewaykit.ratelimit.lease.tokens ({token}): by rule and state: "leased" (granted by the
//     shared store), "expired" (void unspent after LeaseMaxAge or the fixed window's end) and
//     "evicted" (dropped unspent with their lease by LeaseMaxKeys). Tokens are never given back to
//     the shared store. Expired tokens are counted when the instance notices: at the key's next
//     fetch or when its lease is evicted, so the count lags for idle keys. Leased minus expired,
//     evicted and held is what was spent (one per admitted decision of cost 1).
//
// Several LeaseStores on one provider add up (their series carry the same attributes). Rule names
// beyond the first 1,024 a store sees are counted under rule "".
func LeaseMeterProvider(mp metric.MeterProvider) LeaseOption {
	return func(c *leaseConfig) error {
		if mp == nil {
			return errors.New("ratelimit: LeaseMeterProvider: provider is nil")
		}
		c.meter = mp
		return nil
	}
}

// NewLeaseStore returns a LeaseStore over remote (usually a *RedisStore). Defaults: LeaseBatch 20,
// LeaseMaxAge 1s, LeaseMaxKeys 65,536, otel.GetMeterProvider(). A Limiter using it must be given
// FailOpen or FailClosed.
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
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if err := s.tel.init(s, c.meter); err != nil {
		return nil, err
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
	if n == 0 { // nothing to decide, and no shard lock to count under
		return true, nil
	}
	var keys [MaxRules]uint64
	var order [MaxRules]uint8
	for i := range reqs {
		if !reqs[i].valid() {
			return true, errInvalidRequest
		}
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
	counter := &s.shards[order[0]].decided // where this decision is counted (under the shard's lock)
	src := leaseFromLease                  // leaseFromStore once this call made a round trip
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
			counter[src][leaseRejected]++
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
				s.count(order[0], src, leaseError)
				return true, ctx.Err()
			}
		}
		if nn == 0 { // every rule has tokens: admit locally
			for i := range reqs {
				le := s.shard(keys[i]).m[keys[i]]
				le.tokens -= reqs[i].Cost
				res[i] = s.result(le, &reqs[i], nowNs, true)
			}
			counter[src][leaseAllowed]++
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
				le = &lease{rt: s.tel.rule(reqs[i].Rule)}
				sh.m[keys[i]] = le
			}
			le.fetching = done
			rreqs[j] = reqs[i]
			rreqs[j].Cost = max(reqs[i].Cost, s.batchFor(reqs[i].Limit))
			rreqs[j].UpTo = true
		}
		unlock()
		src = leaseFromStore
		err := s.remote.Take(ctx, now, rreqs, rres)
		lock()
		all := err == nil
		for j := range nn {
			all = all && rres[j].Allowed
		}
		var deniedFor [MaxRules]int64 // how long a rejecting rule's denial is remembered
		for j := range nn {
			i := need[j]
			le := s.shard(keys[i]).m[keys[i]]
			if le == nil || le.fetching != done { // evicted meanwhile: the lease is lost
				if g := rres[j].Granted; err == nil && all && g > 0 {
					rt := s.tel.rule(reqs[i].Rule)
					rt.acquired.Add(1)
					rt.tokens[tokenLeased].Add(g)
					rt.tokens[tokenEvicted].Add(g)
				}
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
					if le.tokens > 0 {
						le.rt.tokens[tokenExpired].Add(le.tokens)
					}
					le.tokens = 0
				}
				le.tokens += r.Granted
				le.rt.acquired.Add(1)
				le.rt.tokens[tokenLeased].Add(r.Granted)
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
				deniedFor[j] = le.deniedUntil - nowNs
			}
		}
		if err == nil && !all { // rejected: report every rule, none consumed
			for i := range reqs {
				res[i] = s.result(s.shard(keys[i]).m[keys[i]], &reqs[i], nowNs, false)
			}
			for j := range nn {
				res[need[j]] = rres[j]
				res[need[j]].Granted = 0
				if !rres[j].Allowed { // a retry succeeds only once the remembered denial ends
					res[need[j]].RetryAfter = max(rres[j].RetryAfter, time.Duration(deniedFor[j]))
				}
			}
		}
		if err != nil {
			counter[src][leaseError]++
		} else if !all {
			counter[src][leaseRejected]++
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
	err := s.remote.Take(ctx, now, rreqs, res[:n])
	o := leaseAllowed
	if err != nil {
		o = leaseError
	} else {
		for i := range n {
			if !res[i].Allowed {
				o = leaseRejected
			}
		}
	}
	s.count(order[0], leaseFromStore, o)
	return true, err
}

// count counts a decision in shard sh when the caller does not hold its lock.
func (s *LeaseStore) count(sh uint8, src leaseSource, o leaseOutcome) {
	s.shards[sh].mu.Lock()
	s.shards[sh].decided[src][o]++
	s.shards[sh].mu.Unlock()
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
			if le.tokens > 0 {
				le.rt.tokens[tokenExpired].Add(le.tokens)
			}
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
		if le := sh.m[victim]; le.tokens > 0 {
			state := tokenEvicted
			if le.exp <= now {
				state = tokenExpired
			}
			le.rt.tokens[state].Add(le.tokens)
		}
		delete(sh.m, victim)
	}
}
