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
// algorithm (GCRA, TokenBucket, FixedWindow, SlidingWindow) in a MemoryStore, table overhead
// included (a 32-byte entry in a table between three-eighths and three-quarters full at the bound:
// at most 86 bytes), whatever the key's length (see BenchmarkMemoryBytesPerKey for the measured figure).
// SlidingLog keys cost more: roughly 120 bytes plus 8 bytes per logged request beyond 8
// (estimated from the layout, not measured).
const MemoryBytesPerKey = 128

// MemoryStore is the in-process Store: sharded open-addressing hash tables with per-entry expiry
// and a hard bound on the number of keys. A decision locks the shards of its keys (in a fixed
// order, so several rules are decided atomically: all counted or none) and does not allocate.
//
// Keys: each (rule, key, algorithm) is stored as a 64-bit keyed hash (hash/maphash, with a random
// seed per store), not as a string, so the memory per key is fixed whatever the key's length and
// the keys cannot be chosen to collide. Two distinct keys share a counter with probability about
// n²/2^65 for n live keys (3e-8 for a million): negligible for rate limiting.
//
// Layout: the counter algorithms' entries (hash, state and expiry: 32 bytes, half a cache line)
// sit inline in one flat linear-probing table per shard; the hash's top bits pick the shard and its
// low bits the slot, so a decision on a cold key costs about one cache miss. Tables start small
// and double up to a fixed size that keeps them at most three-quarters full at the bound.
// SlidingLog keys, whose size varies, live in a separate map per shard.
//
// Expiry: an entry is dropped once its state is no longer needed (a full bucket, an ended window).
// Expired entries are removed lazily: when a key is inserted into a shard more than half full, two
// sampled entries of the shard are checked and the expired ones deleted. Bound: when a shard is
// full, inserting checks 8 sampled entries and deletes the expired ones or else the one closest to
// expiry. Evicting an unexpired entry forgets that key's usage (the key starts afresh, which can
// admit up to one more burst for it), so size MaxKeys above the number of keys active within a
// Period. A flood of distinct keys therefore costs at most about MaxKeys*MemoryBytesPerKey bytes
// and never blocks. The bound is per shard (MaxKeys split evenly), so eviction can start slightly
// before MaxKeys keys in total.
//
// The zero MemoryStore is not usable; use NewMemoryStore. It is safe for concurrent use and owns no
// goroutines.
type MemoryStore struct {
	seed     maphash.Seed
	perShard int // bound on the keys of a shard (table and logs together)
	maxSlots int // final table size of a shard: a power of two >= perShard*4/3
	mask     uint64
	shards   []memShard
}

// memEntry is one counter-algorithm key: 32 bytes, so two share a cache line and none straddles
// one (tables are allocated in power-of-two sizes, hence 64-byte aligned).
type memEntry struct {
	key uint64 // keyed hash of (rule, algorithm, key); 0 marks an empty slot
	st  state
	exp int64
}

type logEntry struct {
	ts  []int64 // admitted request times, oldest first
	exp int64
}

type memShard struct {
	mu   sync.Mutex
	n    int        // occupied slots of tab
	tab  []memEntry // linear probing, len a power of two (or nil), at most 3/4 full
	logs map[uint64]*logEntry
	_    [16]byte // keep shards on separate cache lines
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

// NewMemoryStore returns an empty MemoryStore holding at most DefaultMemoryMaxKeys keys unless
// MemoryMaxKeys says otherwise.
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
	perShard := (c.maxKeys + shards - 1) / shards
	maxSlots := minSlots
	for maxSlots*3/4 < perShard {
		maxSlots *= 2
	}
	s := &MemoryStore{seed: maphash.MakeSeed(), perShard: perShard, maxSlots: maxSlots,
		mask: uint64(shards - 1), shards: make([]memShard, shards)}
	for i := range s.shards {
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
		n += sh.n + len(sh.logs)
		sh.mu.Unlock()
	}
	return n
}

func (s *MemoryStore) hash(r *Request) uint64 { return memKey(s.seed, r) }

// keyHash identifies (rule, algorithm, key) by 64 bits: two keyed hashes (aeshash, random seed)
// combined by a bijective mix, so for a given rule distinct keys collide only when their keyed
// hashes do.
func keyHash(seed maphash.Seed, r *Request) uint64 {
	h := maphash.String(seed, r.Key)
	salt := maphash.String(seed, r.Rule) + uint64(r.Algorithm)*0x9E3779B97F4A7C15
	return mix64(h ^ salt)
}

// memKey is keyHash made nonzero (0 marks an empty slot; hashes 0 and 1 share a counter, one more
// collision among 2^64 values).
func memKey(seed maphash.Seed, r *Request) uint64 { return max(keyHash(seed, r), 1) }

// mix64 is the SplitMix64 finalizer, a bijection that spreads every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	return x ^ x>>31
}

// Take implements Store. It returns an error only for more than MaxRules requests or a request
// whose Limit has no Count or Period (the Limiter never sends one); ctx is not consulted (the store
// never blocks on I/O).
func (s *MemoryStore) Take(_ context.Context, now time.Time, reqs []Request, res []Result) error {
	n := len(reqs)
	if n > MaxRules || len(res) < n {
		return ErrTooManyRules
	}
	nowNs := now.UnixNano()
	if n == 1 { // the common case, without the multi-rule bookkeeping
		r := &reqs[0]
		if !r.valid() {
			return errInvalidRequest
		}
		k := s.hash(r)
		sh := &s.shards[(k>>57)&s.mask]
		sh.mu.Lock()
		if r.Algorithm == SlidingLog {
			if le := sh.decideLog(r, k, nowNs, &res[0]); res[0].Allowed {
				sh.commitLog(le, r, k, res[0].Granted, nowNs, s.perShard)
			}
		} else if slot, e := sh.decideCounter(r, k, nowNs, &res[0]); res[0].Allowed {
			sh.commitCounter(slot, e, nowNs, s.perShard, s.maxSlots)
		}
		sh.mu.Unlock()
		return nil
	}
	var (
		keys  [MaxRules]uint64
		order [MaxRules]uint8
		next  [MaxRules]memEntry
		slots [MaxRules]int // where the key was found, or -1
		logs  [MaxRules]*logEntry
	)
	for i := range reqs {
		if !reqs[i].valid() {
			return errInvalidRequest
		}
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
		sh := &s.shards[(keys[i]>>57)&s.mask]
		if reqs[i].Algorithm == SlidingLog {
			logs[i] = sh.decideLog(&reqs[i], keys[i], nowNs, &res[i])
		} else {
			slots[i], next[i] = sh.decideCounter(&reqs[i], keys[i], nowNs, &res[i])
		}
		all = all && res[i].Allowed
	}
	for i := range reqs {
		if !all {
			if res[i].Allowed { // not counted after all
				res[i].Remaining += res[i].Granted
				res[i].Granted = 0
			}
			continue
		}
		sh := &s.shards[(keys[i]>>57)&s.mask]
		if reqs[i].Algorithm == SlidingLog {
			sh.commitLog(logs[i], &reqs[i], keys[i], res[i].Granted, nowNs, s.perShard)
		} else {
			sh.commitCounter(slots[i], next[i], nowNs, s.perShard, s.maxSlots)
		}
	}
	for i := n - 1; i >= 0; i-- {
		if i == 0 || order[i] != order[i-1] {
			s.shards[order[i]].mu.Unlock()
		}
	}
	return nil
}

// setResult fills res from o for cost requests.
func setResult(res *Result, o outcome, cost int64) {
	*res = Result{Allowed: o.allowed, Remaining: o.remaining,
		ResetAfter: time.Duration(o.resetAfter), RetryAfter: time.Duration(o.retryAfter)}
	if o.allowed {
		res.RetryAfter = 0
		res.Granted = cost
	}
}

// decideCounter decides a counter-algorithm request for key k at now without counting it: it
// fills res and returns the slot holding k (or -1) and the entry to store if the decision admits.
// Called with the shard locked.
func (sh *memShard) decideCounter(r *Request, k uint64, now int64, res *Result) (int, memEntry) {
	var e memEntry
	slot := sh.find(k)
	if slot >= 0 {
		e = sh.tab[slot]
	}
	exists := slot >= 0 && e.exp > now
	cost := r.Cost
	if r.UpTo {
		cost = max(1, grantable(r.Algorithm, r.Limit, e.st, exists, now, cost))
	}
	o := evaluate(r.Algorithm, r.Limit, e.st, exists, now, cost)
	setResult(res, o, cost)
	return slot, memEntry{key: k, st: o.next, exp: o.expires}
}

// commitCounter stores e, found at slot by decideCounter (-1: absent). Called with the shard
// locked.
func (sh *memShard) commitCounter(slot int, e memEntry, now int64, limit, maxSlots int) {
	if slot >= 0 && slot < len(sh.tab) && sh.tab[slot].key == e.key {
		sh.tab[slot] = e // still where decideCounter found it (nothing moved it since)
		return
	}
	sh.put(e, now, limit, maxSlots)
}

// decideLog decides a SlidingLog request for key k at now without counting it: it prunes the
// key's log, fills res and returns the log (nil if none). Called with the shard locked.
func (sh *memShard) decideLog(r *Request, k uint64, now int64, res *Result) *logEntry {
	le := sh.logs[k]
	var ts []int64
	if le != nil {
		le.ts = pruneLog(le.ts, now-int64(r.Limit.Period))
		ts = le.ts
	}
	cost := r.Cost
	if r.UpTo {
		cost = max(1, min(cost, r.Limit.Count-int64(len(ts))))
	}
	setResult(res, logOutcome(r.Limit, ts, now, cost), cost)
	return le
}

// commitLog records granted requests at now in le, key k's log (nil: created). Called with the
// shard locked.
func (sh *memShard) commitLog(le *logEntry, r *Request, k uint64, granted, now int64, limit int) {
	if le == nil {
		sh.makeRoom(now, limit, k)
		le = &logEntry{ts: make([]int64, 0, min(r.Limit.Count, 8))}
		sh.logs[k] = le
	}
	for range granted {
		le.ts = append(le.ts, now)
	}
	le.exp = now + int64(r.Limit.Period)
}

// minSlots is the size of a shard's table when its first key arrives.
const minSlots = 8

// sampleScan bounds the slots makeRoom visits to find its sample of occupied ones.
const sampleScan = 64

// find returns the slot holding key k, or -1. Called with the shard locked.
func (sh *memShard) find(k uint64) int {
	tab := sh.tab
	if len(tab) == 0 {
		return -1
	}
	mask := uint64(len(tab) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch tab[i].key {
		case k:
			return int(i)
		case 0:
			return -1
		}
	}
}

// put stores e (e.key != 0), inserting it when absent: room is made first (expired entries
// dropped, an entry evicted at the bound) and the table grown when three-quarters full. Called with
// the shard locked.
func (sh *memShard) put(e memEntry, now int64, limit, maxSlots int) {
	if i := sh.find(e.key); i >= 0 {
		sh.tab[i] = e
		return
	}
	sh.makeRoom(now, limit, e.key)
	if len(sh.tab) == 0 || (sh.n+1 > len(sh.tab)*3/4 && len(sh.tab) < maxSlots) {
		sh.grow(maxSlots)
	}
	tab := sh.tab
	mask := uint64(len(tab) - 1)
	i := e.key & mask
	for tab[i].key != 0 {
		i = (i + 1) & mask
	}
	tab[i] = e
	sh.n++
}

// grow doubles the table (or allocates the first one) and reinserts every entry.
func (sh *memShard) grow(maxSlots int) {
	size := min(max(2*len(sh.tab), minSlots), maxSlots)
	old := sh.tab
	tab := make([]memEntry, size)
	mask := uint64(size - 1)
	for _, e := range old {
		if e.key == 0 {
			continue
		}
		i := e.key & mask
		for tab[i].key != 0 {
			i = (i + 1) & mask
		}
		tab[i] = e
	}
	sh.tab = tab
}

// deleteAt empties slot i, shifting back the entries of its probe run that may move (backward
// shift deletion: no tombstones, lookups stay short).
func (sh *memShard) deleteAt(i uint64) {
	tab := sh.tab
	mask := uint64(len(tab) - 1)
	for j := (i + 1) & mask; tab[j].key != 0; j = (j + 1) & mask {
		// the entry at j may move to i if i lies on its probe path (from its home slot to j)
		if home := tab[j].key & mask; (j-home)&mask >= (j-i)&mask {
			tab[i] = tab[j]
			i = j
		}
	}
	tab[i] = memEntry{}
	sh.n--
}

// makeRoom removes a few expired entries and, when the shard is full, evicts one. Called with the
// shard locked, before inserting a new key; k (the new key's hash) picks where sampling starts.
func (sh *memShard) makeRoom(now int64, limit int, k uint64) {
	size := sh.n + len(sh.logs)
	if size < limit/2 { // far from the bound: sampling is not worth its cost
		return
	}
	full := size >= limit
	sample := 2
	if full {
		sample = 8
	}
	var victim uint64
	victimExp, found, inLogs := int64(0), false, false
	if tab := sh.tab; len(tab) > 0 {
		// a run of consecutive slots from a position the new key's hash picks (bits that choose
		// neither the shard nor the key's own slot): one or two cache lines per sample
		mask := uint64(len(tab) - 1)
		i := (k >> 32) & mask
		seen := 0
		for n := 0; n < len(tab); n++ {
			// past sampleScan slots, go on only while a full shard has no victim yet (a run
			// of 64 empty slots does occur in a half-empty linear-probing table)
			if n >= sampleScan && (found || !full || sh.n == 0) {
				break
			}
			e := &tab[i]
			if e.key != 0 {
				if e.exp <= now {
					sh.deleteAt(i) // an entry may shift into slot i: look at it again
					full = false
					if seen++; seen >= sample {
						break
					}
					continue
				}
				if !found || e.exp < victimExp {
					victim, victimExp, found = e.key, e.exp, true
				}
				if seen++; seen >= sample {
					break
				}
			}
			i = (i + 1) & mask
		}
	}
	if len(sh.logs) > 0 {
		seen := 0
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
	}
	if !full || !found {
		return
	}
	if inLogs {
		delete(sh.logs, victim)
	} else if i := sh.find(victim); i >= 0 {
		sh.deleteAt(uint64(i))
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
