package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix of RedisStore.
const DefaultRedisPrefix = "gatewaykit:cache:"

// Redis is a Store in Redis, shared by every gateway instance that uses the same Redis and
// prefix. Each entry is one string key holding the entry's binary encoding (see
// Entry.MarshalBinary), set with a TTL (PX), so Redis expires it. It is safe for concurrent use;
// it does not own the client (Close does nothing).
//
// The middleware keys an entry by its path, for invalidation (see Cache.Invalidate): the path
// marker is prefix + "{" + 32 hex characters of the path's hash + "}" and holds the path's
// generation as a decimal number; the path's entries are the marker's name + the 64-character hex
// cache key. The hash tag puts a path's marker and entries in one Redis Cluster slot, so a hit
// reads both with one MGET, and a store checks the generation (creating it with the path's first
// entry) and writes the entry in one script (each one round trip). A miss writes nothing. The cost: all entries of one path (all its users, queries and variants)
// live on one cluster shard. Get and Set, called directly, use prefix + key.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	err    error
}

// RedisOption configures RedisStore.
type RedisOption func(*Redis) error

// KeyPrefix sets the Redis key prefix. Default DefaultRedisPrefix. Use one prefix per cached
// API whose keys must not mix; instances sharing a prefix share entries. The prefix must not be
// empty and must not contain "{" or "}": the store follows it with a {hash tag} of the path, so
// that Redis Cluster keeps a path's generation and entries in one slot, and a brace in the prefix
// would change which part Redis hashes (a prefix with its own "{...}" puts every path on one
// shard; a lone "{" or "}" splits a path's keys across slots, and every lookup fails with
// CROSSSLOT). Such a prefix is a configuration error that WithStore reports.
func KeyPrefix(p string) RedisOption {
	return func(s *Redis) error {
		if p == "" {
			return errors.New("cache: redis store: KeyPrefix must not be empty")
		}
		if strings.ContainsAny(p, "{}") {
			return fmt.Errorf("cache: redis store: KeyPrefix %q contains a brace: the store appends a {hash tag} of the path so that a path's keys share a Redis Cluster slot, and a '{' or '}' in the prefix would change the tag (every path on one shard, or CROSSSLOT errors)", p)
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

// marker is the key of a path's generation; its entries' keys extend it.
func (s *Redis) marker(path string) string { return s.prefix + "{" + pathHash(path) + "}" }

func (s *Redis) lookup(ctx context.Context, path, key string) (*Entry, uint64, error) {
	if s.err != nil {
		return nil, 0, s.err
	}
	m := s.marker(path)
	vals, err := s.c.MGet(ctx, m, m+key).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("cache: redis get: %w", err)
	}
	if len(vals) != 2 {
		return nil, 0, fmt.Errorf("cache: redis get: MGET returned %d values", len(vals))
	}
	var gen uint64
	if g, ok := vals[0].(string); ok {
		gen, _ = strconv.ParseUint(g, 10, 64) // not a number: 0, no entry matches
	}
	v, ok := vals[1].(string)
	if !ok {
		return nil, gen, nil
	}
	e := new(Entry)
	// The reply string is this call's alone: decode it in place rather than copying the body,
	// as go-redis's own StringCmd.Bytes does. The entry's Body aliases it and, like every
	// entry, is never written to.
	if err := e.UnmarshalBinary(unsafe.Slice(unsafe.StringData(v), len(v))); err != nil {
		return nil, gen, fmt.Errorf("cache: redis get: %w", err)
	}
	return e, gen, nil
}

// setIfScript sets KEYS[2] (an entry) to ARGV[3] for ARGV[4] ms if KEYS[1] (the path's
// generation) is still ARGV[1], and extends KEYS[1] to at least that TTL. ARGV[1] "0" means the
// path had no generation: then the entry is set only if it still has none, and KEYS[1] is created
// as ARGV[2] (the entry's generation) with the entry's TTL. It returns 1 when it stored.
var setIfScript = redis.NewScript(`
local g = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if g then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[4])
else
  if g ~= ARGV[1] then return 0 end
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
`)

func (s *Redis) setIf(ctx context.Context, path, key string, expected uint64, e *Entry, ttl time.Duration) error {
	if s.err != nil {
		return s.err
	}
	ttl = ttl.Truncate(time.Millisecond)
	if e == nil || ttl <= 0 || e.Generation == 0 {
		return nil
	}
	b, err := e.MarshalBinary()
	if err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	m := s.marker(path)
	if err := setIfScript.Run(ctx, s.c, []string{m, m + key}, strconv.FormatUint(expected, 10),
		strconv.FormatUint(e.Generation, 10), b, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	return nil
}

// drop gives the paths' markers fresh generations for ttl, one SET each in one pipeline (markers
// of different paths may live in different cluster slots).
func (s *Redis) drop(ctx context.Context, paths []string, ttl time.Duration) error {
	if s.err != nil {
		return s.err
	}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, path := range paths {
			p.Set(ctx, s.marker(path), strconv.FormatUint(newGeneration(), 10), ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: redis invalidate: %w", err)
	}
	return nil
}
