package cache

import (
	"context"
	"time"
)

// Store holds entries by key. Implementations must be safe for concurrent use. Keys are
// fixed-length hex strings (SHA-256 of the request's cache key), so they contain no user data.
//
// Get returns (nil, nil) when the key is absent or expired. Set stores e for at most ttl (ttl is
// positive). Both should honour ctx: the middleware bounds every call with its store timeout
// (see StoreTimeout) and, on any error, serves the request without the cache.
//
// For invalidation (see Cache.Invalidate) the middleware keeps each path's generation in the
// store. MemoryStore and RedisStore keep it natively: read with the entry in one call, created
// atomically with the path's first stored entry, so a miss writes nothing. In any other Store it
// is an Entry with only Generation set, under a key of its own: a lookup then costs two Get calls,
// the generation is created by a path's first miss (Get and Set cannot create it atomically with
// the entry), it lives 24 hours (the path's entries are fetched again at least that often), and
// Entry.Generation must survive the store's encoding.
type Store interface {
	Get(ctx context.Context, key string) (*Entry, error)
	Set(ctx context.Context, key string, e *Entry, ttl time.Duration) error
}

// localStore is implemented by stores that answer in-process without I/O; the middleware skips
// the per-call timeout context for them.
type localStore interface {
	Store
	local()
}

// storeErr is implemented by stores whose constructor recorded a configuration error, reported by
// WithStore so that New fails.
type storeErr interface{ configErr() error }
