package cache

import (
	"context"
	"math/rand/v2"
	"time"
)

// Invalidation without an index: a path may have a generation, a random non-zero 64-bit number
// kept in the store next to the entries (a "path marker", keyed by the request's genPath: its
// decoded, cleaned path without the query; the path itself in memory, a hash of it in Redis and
// custom stores). An entry records its path's generation and is served only while the path's
// generation is still that one. Invalidating a path writes a fresh random generation to its
// marker, which at once orphans every entry of that path (all queries, Vary variants and
// identities).
//
// A miss writes nothing: it reads the path's generation with the entry (one Redis round trip),
// possibly finding none, and its store is conditional on the generation being unchanged since:
//   - the path had generation g: the entry is stored under g if the marker still holds g (and the
//     marker's TTL is extended to the entry's);
//   - the path had none: the entry is stored only if it still has none, and the store creates the
//     path's generation (a fresh random number, the entry's) in the same step, atomically (the
//     Redis script; otter's SetIfAbsent in memory).
//
// So no entry is ever stored "under no generation", and a marker that is lost (expired, evicted
// under memory pressure, deleted by hand) means "invalidated": every entry of the path misses,
// never a stale hit. Paths whose responses are never stored (a scan of random or uncacheable
// paths) write nothing at all, neither to Redis nor into the memory store's byte bound.
//
// The alternative, entries stored under "none" and valid while the path has no marker, was
// rejected: a marker's loss would resurrect what it invalidated. Its TTL would have to outlive
// every entry stored before it (a cap on entry lifetimes), and eviction (Redis allkeys-* policies,
// otter's size bound) has no TTL to bound it at all.
//
// Why this is correct without clocks or an index:
//   - a lookup compares the entry's generation with the marker's for equality; random generations
//     do not repeat (2^-64 per new one), unlike a counter that restarts at 1 when its key expires
//     or is evicted, so an entry orphaned once can never match again;
//   - a fetch in flight when its path is invalidated stores nothing: the marker changed (from g to
//     a fresh one, or from none to one). The invalidation's marker lives invalidationTTL, twice
//     the longest fetch whose response is stored (Cache.hold, measured in real time from just
//     after the lookup), so it is still there when such a fetch ends; a slower fetch is neither stored nor
//     shared with requests that waited for it;
//   - the singleflight key includes the generation read, so a GET sent after an invalidation never
//     joins a fetch that started before it (the invalidation changed what the GET reads, and a
//     marker outlives every fetch whose response is shared);
//   - nothing compares times across instances, so clock skew plays no part.
//
// Markers live as long as the longest-lived entry of their path (each store extends its marker's
// TTL to the entry's) and no longer; an invalidation's marker with no entry stored under it lives
// invalidationTTL. Markers do not accumulate.
//
// The price of creating the generation with the first entry: two first misses of one path that
// store at once (two users' dashboards on a path without a marker) race to create it; the second
// finds the first's generation and is not stored (its next request misses once more).

// storeHold is the longest a fetch may take, from its lookup to its store, and still be stored or
// shared (at least RevalidateTimeout; see Cache.hold).
const storeHold = 5 * time.Minute

// invalidationTTL is the TTL of the marker an invalidation writes, given the Cache's hold.
func invalidationTTL(hold time.Duration) time.Duration { return 2 * hold }

// plainMarkerTTL is the TTL of path markers in a Store that is not one of the package's: such a
// store cannot extend a marker atomically, so markers get a fixed lifetime and the entries of a
// path are fetched again at least this often.
const plainMarkerTTL = 24 * time.Hour

// genStore is the middleware's view of a store: entries plus per-path generations. path is a
// request's genPath (decoded and cleaned, no query), key a 64-character entry key; each store
// derives the generation's own key from path.
type genStore interface {
	// lookup returns the entry under key (nil when absent) and the current generation of the
	// path (0 when it has none).
	lookup(ctx context.Context, path, key string) (*Entry, uint64, error)
	// setIf stores e under key for ttl if the path's generation is still expected, and extends the
	// generation's TTL to ttl. expected 0 means the path had none: then e is stored only if it
	// still has none, and its generation is created as e.Generation (non-zero) in the same step.
	// Otherwise e.Generation is expected. A changed generation is not an error: nothing is stored.
	setIf(ctx context.Context, path, key string, expected uint64, e *Entry, ttl time.Duration) error
	// drop invalidates the paths: each gets a fresh generation, kept for ttl.
	drop(ctx context.Context, paths []string, ttl time.Duration) error
}

// eagerGens is implemented by generation views that cannot create a path's generation atomically
// with its first entry (a custom Store has no compare-and-set): the middleware creates it before
// the fetch instead, as ensure does.
type eagerGens interface {
	// ensure returns the path's generation, creating its marker with fresh when absent.
	ensure(ctx context.Context, path string, fresh uint64) (uint64, error)
}

// newGeneration returns a random non-zero generation.
func newGeneration() uint64 {
	for {
		if g := rand.Uint64(); g != 0 {
			return g
		}
	}
}

// plainGens keeps generations in any Store: a marker is an Entry with only Generation set, stored
// under a 64-character hex key like entry keys (SHA-256 of the path's hash, in its own hash
// domain). A hit costs two Get calls. Without a compare-and-set, creating the generation with the
// first entry could overwrite an invalidation's marker written between the check and the write
// (and so store a response from before the invalidation): a custom store creates it before the
// fetch instead (eagerGens), which costs a write on a path's first miss.
type plainGens struct{ s Store }

// plainMarkerKey is the Store key of a path's marker.
func plainMarkerKey(path string) string {
	return hashKey(append([]byte("gm1"), pathHash(path)...))
}

func (p plainGens) lookup(ctx context.Context, path, key string) (*Entry, uint64, error) {
	e, err := p.s.Get(ctx, key)
	if err != nil || e == nil {
		return nil, 0, err // on a miss, ensure reads the marker
	}
	m, err := p.s.Get(ctx, plainMarkerKey(path))
	if err != nil || m == nil {
		return e, 0, err
	}
	return e, m.Generation, nil
}

func (p plainGens) ensure(ctx context.Context, path string, fresh uint64) (uint64, error) {
	mk := plainMarkerKey(path)
	m, err := p.s.Get(ctx, mk)
	if err != nil {
		return 0, err
	}
	if m != nil && m.Generation != 0 {
		return m.Generation, nil
	}
	// Not atomic: of two concurrent creators one overwrites the other, whose entries then never
	// match (a lost store, not a stale hit). An invalidation overwritten here came before the
	// fetch that follows, which therefore sees its change.
	return fresh, p.s.Set(ctx, mk, &Entry{Generation: fresh}, plainMarkerTTL)
}

func (p plainGens) setIf(ctx context.Context, path, key string, expected uint64, e *Entry, ttl time.Duration) error {
	if expected == 0 {
		return nil // ensure ran before the fetch; its failure bypassed the cache
	}
	m, err := p.s.Get(ctx, plainMarkerKey(path))
	if err != nil || m == nil || m.Generation != expected {
		return err
	}
	return p.s.Set(ctx, key, e, ttl)
}

func (p plainGens) drop(ctx context.Context, paths []string, _ time.Duration) error {
	for _, path := range paths {
		// A marker lives plainMarkerTTL whatever wrote it: ensure reuses an invalidation's.
		if err := p.s.Set(ctx, plainMarkerKey(path), &Entry{Generation: newGeneration()}, plainMarkerTTL); err != nil {
			return err
		}
	}
	return nil
}

// gensOf returns the generation view of s: the package's stores keep markers natively (matched by
// concrete type, so a custom store embedding *Memory to override Get is not bypassed).
func gensOf(s Store) genStore {
	switch s := s.(type) {
	case *Memory:
		return s
	case *Redis:
		return s
	}
	return plainGens{s}
}
