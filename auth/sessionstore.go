package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSessionNotFound is returned by a SessionStore for an unknown or expired session ID.
var ErrSessionNotFound = errors.New("auth: session not found")

// SessionStore keeps server-side sessions (WithSessionStore) when tokens are too large for a
// cookie: the cookie then carries only the sealed session ID. Records are opaque, already sealed
// (AES-256-GCM with the session keys, bound to the session ID), so a store never sees a token in
// clear. Implementations must be safe for concurrent use and return an error wrapping
// ErrSessionNotFound for an unknown ID; any other error fails the request closed (503).
type SessionStore interface {
	// Get returns the record stored under id, or an error wrapping ErrSessionNotFound.
	Get(ctx context.Context, id string) ([]byte, error)
	// Set stores data under id for ttl (> 0), replacing an existing record.
	Set(ctx context.Context, id string, data []byte, ttl time.Duration) error
	// Delete removes id; deleting an unknown ID is not an error.
	Delete(ctx context.Context, id string) error
}

// MemorySessionStore returns an in-process SessionStore: a map guarded by a mutex whose expired
// records are dropped when read and swept every 1024 writes. Sessions are lost on restart and not
// shared between gateway instances; use RedisSessionStore for that. now is the clock (nil means
// time.Now). It owns no goroutine.
func MemorySessionStore(now func() time.Time) SessionStore {
	if now == nil {
		now = time.Now
	}
	return &memorySessions{now: now, m: make(map[string]memorySession)}
}

type memorySession struct {
	data []byte
	exp  time.Time
}

type memorySessions struct {
	now    func() time.Time
	mu     sync.Mutex
	m      map[string]memorySession
	writes int
}

func (s *memorySessions) Get(_ context.Context, id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	if !ok {
		return nil, ErrSessionNotFound
	}
	if !s.now().Before(e.exp) {
		delete(s.m, id)
		return nil, ErrSessionNotFound
	}
	return e.data, nil
}

func (s *memorySessions) Set(_ context.Context, id string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("auth: session store: ttl must be positive")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = memorySession{data: append([]byte(nil), data...), exp: now.Add(ttl)}
	if s.writes++; s.writes%1024 == 0 {
		for k, e := range s.m {
			if !now.Before(e.exp) {
				delete(s.m, k)
			}
		}
	}
	return nil
}

func (s *memorySessions) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
	return nil
}

// RedisSessionKeyPrefix prefixes the Redis keys of RedisSessionStore: one string key per session,
// "gatewaykit:session:{<id>}" (the hash tag keeps Redis Cluster slot routing per session).
const RedisSessionKeyPrefix = "gatewaykit:session:"

// RedisSessionStore returns a SessionStore in Redis (any go-redis UniversalClient: single node,
// Sentinel or Cluster), shared by every gateway instance. Each session is one string key with a
// Redis expiry (SET PX), so expired sessions disappear by themselves; logout is a DEL, visible to
// every instance at once. Safe for concurrent use.
func RedisSessionStore(rdb redis.UniversalClient) SessionStore {
	return redisSessions{rdb: rdb}
}

type redisSessions struct {
	rdb redis.UniversalClient
}

func redisSessionKey(id string) string { return RedisSessionKeyPrefix + "{" + id + "}" }

func (s redisSessions) Get(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, redisSessionKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrSessionNotFound
	}
	return b, err
}

func (s redisSessions) Set(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("auth: session store: ttl must be positive")
	}
	return s.rdb.Set(ctx, redisSessionKey(id), data, ttl).Err()
}

func (s redisSessions) Delete(ctx context.Context, id string) error {
	return s.rdb.Del(ctx, redisSessionKey(id)).Err()
}
