package ratelimit

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// DefaultMemoryMaxKeys is the default bound on the number of keys a MemoryStore holds.
const DefaultMemoryMaxKeys = 1 << 18

// MemoryBytesPerKey is the documented upper bound of the heap cost of one key of a counter
// algorithm (GCRA, TokenBucket, FixedWindow, SlidingWindow) in a MemoryStore, map overhead
// included, whatever the key's length (see BenchmarkMemoryBytesPerKey for the measured figure).
// SlidingLog keys cost more: roughly 120 bytes plus 8 bytes per logged request beyond 8
// (estimated from the layout, not measured).
const MemoryBytesPerKey = 128

// MemoryStore is the in-process Store: sharded maps with per-entry expiry and a hard bound on the
// number of keys. A decision locks the shards of its keys (in a fixed order, so several rules are
// decided atomically: all counted or none) and does not allocate.
//
// Keys: each (rule, key, algorithm) is stored as a 64-bit keyed hash (hash/maphash, with a random
// seed per store), not as a string, so the memory per key is fixed whatever the key's length and
// the keys cannot be chosen to collide. Two distinct keys share a counter with probability about
// n²/2^65 for n live keys (3e-8 for a million): negligible for rate limiting.
//
// Expiry: an entry is dropped once its state is no longer needed (a full bucket, an ended window).
// Expired entries are removed lazily: when a key is inserted into a shard more than half full, two
// sampled entries of the shard are checked and the expired ones deleted. Bound: when a shard is full, inserting checks 8 sampled
// entries and deletes the expired ones or else the one closest to expiry. Evicting an unexpired
// entry forgets that key's usage (the key starts afresh, which can admit up to one more burst for
// it), so size MaxKeys above the number of keys active within a Period. A flood of distinct keys
// therefore costs at most about MaxKeys*MemoryBytesPerKey bytes and never blocks. The bound is per
// shard (MaxKeys split evenly), so eviction can start slightly before MaxKeys keys in total.
//
// The zero MemoryStore is not usable; use NewMemoryStore. It is safe for concurrent use and owns no
// goroutines.
type MemoryStore struct {
	seed     maphash.Seed
	perShard int
	mask     uint64
	shards   []memShard
}

type memEntry struct {
	st  state
	exp int64
}

type logEntry struct {
	ts  []int64 // admitted request times, oldest first
	exp int64
}

type memShard struct {
	mu   sync.Mutex
	m    map[uint64]memEntry
	logs map[uint64]*logEntry
	_    [40]byte // keep shards on separate cache lines
}

// MemoryOption configures NewMemoryStore.
type MemoryOption func(*memoryConfig) error

type memoryConfig struct{ maxKeys int }

// MemoryMaxKeys bounds the number of keys held (default DefaultMemoryMaxKeys, 262,144). At least
// 1,024.
func MemoryMaxKeys(n int) MemoryOption {
	return func(c *memoryConfig) error {
		if n < 1024 {
			return fmt.Errorf("ratelimit: memory max keys %d is below 1024", n)
		}
		c.maxKeys = n
		return nil
	}
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts ...MemoryOption) (*MemoryStore, error) {
	c := memoryConfig{maxKeys: DefaultMemoryMaxKeys}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	shards := 1 // about 2,048 keys or more per shard, at most 128 shards
	for shards < 128 && c.maxKeys/(shards*2) >= 2048 {
		shards *= 2
	}
	s := &MemoryStore{seed: maphash.MakeSeed(), perShard: (c.maxKeys + shards - 1) / shards,
		mask: uint64(shards - 1), shards: make([]memShard, shards)}
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]memEntry)
		s.shards[i].logs = make(map[uint64]*logEntry)
	}
	return s, nil
}

// Len returns the number of keys held, expired or not. Safe for concurrent use.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m) + len(sh.logs)
		sh.mu.Unlock()
	}
	return n
}

func (s *MemoryStore) hash(r *Request) uint64 { return keyHash(s.seed, r) }

// keyHash identifies (rule, algorithm, key) by 64 bits: two keyed hashes (aeshash, random seed)
// combined by a bijective mix, so for a given rule distinct keys collide only when their keyed
// hashes do.
func keyHash(seed maphash.Seed, r *Request) uint64 {
	h := maphash.String(seed, r.Key)
	salt := maphash.String(seed, r.Rule) + uint64(r.Algorithm)*0x9E3779B97F4A7C15
	return mix64(h ^ salt)
}

// mix64 is the SplitMix64 finalizer, a bijection that spreads every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	return x ^ x>>31
}

// Take implements Store. It returns an error only for more than MaxRules requests; ctx is not
// consulted (the store never blocks on I/O).
func (s *MemoryStore) Take(_ context.Context, now time.Time, reqs []Request, res []Result) error {
	n := len(reqs)
	if n > MaxRules || len(res) < n {
		return ErrTooManyRules
	}
	nowNs := now.UnixNano()
	var (
		keys  [MaxRules]uint64
		order [MaxRules]uint8
		next  [MaxRules]memEntry
		logs  [MaxRules]*logEntry
	)
	for i := range reqs {
		keys[i] = s.hash(&reqs[i])
		order[i] = uint8((keys[i] >> 57) & s.mask)
	}
	// lock each distinct shard once, in ascending order
	sortSmall(order[:n])
	for i := 0; i < n; i++ {
		if i == 0 || order[i] != order[i-1] {
			s.shards[order[i]].mu.Lock()
		}
	}
	all := true
	for i := range reqs {
		r := &reqs[i]
		sh := &s.shards[(keys[i]>>57)&s.mask]
		cost := r.Cost
		var o outcome
		if r.Algorithm == SlidingLog {
			le := sh.logs[keys[i]]
			var ts []int64
			if le != nil {
				le.ts = pruneLog(le.ts, nowNs-int64(r.Limit.Period))
				ts = le.ts
			}
			if r.UpTo {
				cost = max(1, min(cost, r.Limit.Count-int64(len(ts))))
			}
			o = logOutcome(r.Limit, ts, nowNs, cost)
			logs[i] = le
		} else {
			e, ok := sh.m[keys[i]]
			exists := ok && e.exp > nowNs
			if r.UpTo {
				cost = max(1, grantable(r.Algorithm, r.Limit, e.st, exists, nowNs, cost))
			}
			o = evaluate(r.Algorithm, r.Limit, e.st, exists, nowNs, cost)
		}
		res[i] = Result{Allowed: o.allowed, Remaining: o.remaining,
			ResetAfter: time.Duration(o.resetAfter), RetryAfter: time.Duration(o.retryAfter)}
		if o.allowed {
			res[i].RetryAfter = 0
			res[i].Granted = cost
			next[i] = memEntry{st: o.next, exp: o.expires}
		}
		all = all && o.allowed
	}
	for i := range reqs {
		if !all {
			if res[i].Allowed { // not counted after all
				res[i].Remaining += res[i].Granted
				res[i].Granted = 0
			}
			continue
		}
		r := &reqs[i]
		sh := &s.shards[(keys[i]>>57)&s.mask]
		if r.Algorithm == SlidingLog {
			le := logs[i]
			if le == nil {
				sh.makeRoom(nowNs, s.perShard)
				le = &logEntry{ts: make([]int64, 0, min(r.Limit.Count, 8))}
				sh.logs[keys[i]] = le
			}
			for range res[i].Granted {
				le.ts = append(le.ts, nowNs)
			}
			le.exp = nowNs + int64(r.Limit.Period)
			continue
		}
		if _, ok := sh.m[keys[i]]; !ok {
			sh.makeRoom(nowNs, s.perShard)
		}
		sh.m[keys[i]] = next[i]
	}
	for i := n - 1; i >= 0; i-- {
		if i == 0 || order[i] != order[i-1] {
			s.shards[order[i]].mu.Unlock()
		}
	}
	return nil
}

// makeRoom removes a few expired entries and, when the shard is full, evicts one. Called with the
// shard locked, before inserting a new key.
func (sh *memShard) makeRoom(now int64, limit int) {
	size := len(sh.m) + len(sh.logs)
	if size < limit/2 { // far from the bound: sampling (a map iteration) is not worth its cost
		return
	}
	full := size >= limit
	sample := 2
	if full {
		sample = 8
	}
	var victim uint64
	victimExp, found, inLogs := int64(0), false, false
	seen := 0
	for k, e := range sh.m {
		if e.exp <= now {
			delete(sh.m, k)
			full = false
		} else if !found || e.exp < victimExp {
			victim, victimExp, found = k, e.exp, true
		}
		if seen++; seen >= sample {
			break
		}
	}
	seen = 0
	for k, e := range sh.logs {
		if e.exp <= now {
			delete(sh.logs, k)
			full = false
		} else if !found || e.exp < victimExp {
			victim, victimExp, found, inLogs = k, e.exp, true, true
		}
		if seen++; seen >= sample {
			break
		}
	}
	if !full || !found {
		return
	}
	if inLogs {
		delete(sh.logs, victim)
	} else {
		delete(sh.m, victim)
	}
}

// pruneLog drops timestamps at or before cutoff, reusing the slice's array.
func pruneLog(ts []int64, cutoff int64) []int64 {
	i := 0
	for i < len(ts) && ts[i] <= cutoff {
		i++
	}
	if i == 0 {
		return ts
	}
	return append(ts[:0], ts[i:]...)
}

// sortSmall sorts a few bytes in place (insertion sort; no allocation).
func sortSmall(a []uint8) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
