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
