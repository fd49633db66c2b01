package cache

import (
	"context"
	"math/rand/v2"
	"time"
)

// Invalidation without an index: every request path has a generation, a random non-zero 64-bit
// number kept in the store next to the entries (a "path marker", keyed by the request's genPath:
// its decoded, cleaned path without the query; the path itself in memory, a hash of it in Redis
// and custom stores). An entry records the generation that was current when its fetch
// started, and is served only while the path's generation is still that one. Invalidating a path
// deletes its marker, which at once orphans every entry of that path (all queries, Vary variants
// and identities); the first miss afterwards creates a new marker with a fresh random number.
//
// Why this is correct without clocks or compare-at-store:
//   - a lookup reads the entry and the marker together (one Redis round trip) and compares for
//     equality, so an entry stored under an older generation can never match again: random
//     generations do not repeat (a 2^-64 chance per new marker), unlike a counter that restarts
//     at 1 when its key expires or is evicted;
//   - a miss creates the marker, if absent, before it fetches, and its entry carries that
//     generation; a fetch that was in flight when the path was invalidated therefore stores an
//     entry under a generation that no longer exists, which no lookup will serve (the stores also
//     skip such writes: Redis atomically, in the script that sets the entry);
//   - a lost marker (expired, evicted under memory pressure, deleted by hand) means "invalidated":
//     the failure mode of losing state is a miss, never a stale hit;
//   - nothing compares times across instances, so clock skew plays no part.
//
// Markers are created with markerHold as TTL and extended to the TTL of each entry stored under
// them, so a marker lives as long as the longest-lived entry of its path and no longer: markers do
// not accumulate. A foreground fetch that takes longer than the marker's TTL (at least
// markerHold) finds no marker when it stores and is not stored.

// markerHold is the TTL a path marker gets when a miss creates it: how long a fetch may take and
// still be stored. Storing an entry extends the marker to the entry's TTL.
const markerHold = 5 * time.Minute

// plainMarkerTTL is the TTL of path markers in a Store that is not one of the package's: such a
// store cannot extend a marker atomically, so markers get a fixed lifetime and the entries of a
// path are fetched again at least this often.
const plainMarkerTTL = 24 * time.Hour

// genStore is the middleware's view of a store: entries plus per-path generations. path is a
// request's genPath (decoded and cleaned, no query), key a 64-character entry key; each store
// derives the generation's own key from path.
type genStore interface {
	// lookup returns the entry under key (nil when absent) and the current generation of the
	// path (0 when it has no marker, or when the store does not know without another call).
	lookup(ctx context.Context, path, key string) (*Entry, uint64, error)
	// ensure returns the path's generation, creating its marker with fresh for hold when absent.
	ensure(ctx context.Context, path string, fresh uint64, hold time.Duration) (uint64, error)
	// setIf stores e under key for ttl if the path's generation is still gen (e.Generation), and
	// extends the marker to ttl. A changed generation is not an error: nothing is stored.
	setIf(ctx context.Context, path, key string, gen uint64, e *Entry, ttl time.Duration) error
	// drop invalidates the paths: every entry stored under their current generations.
	drop(ctx context.Context, paths []string) error
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
// domain). A hit costs two Get calls; invalidation replaces the marker with a fresh generation (a
// Store cannot delete).
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

func (p plainGens) ensure(ctx context.Context, path string, fresh uint64, _ time.Duration) (uint64, error) {
	mk := plainMarkerKey(path)
	m, err := p.s.Get(ctx, mk)
	if err != nil {
		return 0, err
	}
	if m != nil && m.Generation != 0 {
		return m.Generation, nil
	}
	// Not atomic: of two concurrent creators one overwrites the other, whose entries then never
	// match (a lost store, not a stale hit).
	return fresh, p.s.Set(ctx, mk, &Entry{Generation: fresh}, plainMarkerTTL)
}

func (p plainGens) setIf(ctx context.Context, path, key string, gen uint64, e *Entry, ttl time.Duration) error {
	m, err := p.s.Get(ctx, plainMarkerKey(path))
	if err != nil || m == nil || m.Generation != gen {
		return err
	}
	return p.s.Set(ctx, key, e, ttl)
}

func (p plainGens) drop(ctx context.Context, paths []string) error {
	for _, path := range paths {
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
