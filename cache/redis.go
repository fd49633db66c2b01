package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix of RedisStore.
const DefaultRedisPrefix = "gatewaykit:cache:"

// Redis is a Store in Redis, shared by every gateway instance that uses the same Redis and
// prefix. Each entry is one string key (prefix + the 64-character hex cache key) holding the
// entry's binary encoding (see Entry.MarshalBinary), set with a TTL (PX), so Redis expires it.
// Keys are independent, so Redis Cluster needs no hash tags. It is safe for concurrent use; it
// does not own the client (Close does nothing).
type Redis struct {
	c      redis.UniversalClient
	prefix string
	err    error
}

// RedisOption configures RedisStore.
type RedisOption func(*Redis) error

// KeyPrefix sets the Redis key prefix. Default DefaultRedisPrefix. Use one prefix per cached
// API whose keys must not mix; instances sharing a prefix share entries.
func KeyPrefix(p string) RedisOption {
	return func(s *Redis) error {
		if p == "" {
			return errors.New("cache: redis store: KeyPrefix must not be empty")
		}
		s.prefix = p
		return nil
	}
}

// RedisStore returns a Store backed by client (a *redis.Client, *redis.ClusterClient or
// *redis.Ring). A nil client or invalid option is a configuration error that WithStore reports.
func RedisStore(client redis.UniversalClient, opts ...RedisOption) *Redis {
	s := &Redis{c: client, prefix: DefaultRedisPrefix}
	if client == nil {
		s.err = errors.New("cache: redis store: client is nil")
		return s
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			s.err = err
			return s
		}
	}
	return s
}

// Get returns the entry for key, nil when absent. A value that does not decode yields an error
// wrapping ErrCorruptEntry.
func (s *Redis) Get(ctx context.Context, key string) (*Entry, error) {
	if s.err != nil {
		return nil, s.err
	}
	b, err := s.c.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cache: redis get: %w", err)
	}
	e := new(Entry)
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("cache: redis get: %w", err)
	}
	return e, nil
}

// Set stores e under key with the TTL (rounded down to milliseconds; below 1 ms nothing is stored).
func (s *Redis) Set(ctx context.Context, key string, e *Entry, ttl time.Duration) error {
	if s.err != nil {
		return s.err
	}
	ttl = ttl.Truncate(time.Millisecond)
	if e == nil || ttl <= 0 {
		return nil
	}
	b, err := e.MarshalBinary()
	if err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	if err := s.c.Set(ctx, s.prefix+key, b, ttl).Err(); err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	return nil
}

func (s *Redis) configErr() error { return s.err }
