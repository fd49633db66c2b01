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

// MemorySessionStore returns an in-process SessionStore (and SessionIndexer): a map guarded by a mutex whose expired
// records are dropped when read and swept every 1024 writes. Sessions are lost on restart and not
// shared between gateway instances; use RedisSessionStore for that. now is the clock (nil means
// time.Now). It owns no goroutine.
func MemorySessionStore(now func() time.Time) SessionStore {
	if now == nil {
		now = time.Now
	}
	return &memorySessions{now: now, m: make(map[string]memorySession), idx: make(map[string]map[string]time.Time)}
}

type memorySession struct {
	data []byte
	exp  time.Time
}

type memorySessions struct {
	now    func() time.Time
	mu     sync.Mutex
	m      map[string]memorySession
	idx    map[string]map[string]time.Time // SessionIndexer key -> session ID -> listed until
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
		for k, ids := range s.idx {
			for id, exp := range ids {
				if !now.Before(exp) {
					delete(ids, id)
				}
			}
			if len(ids) == 0 {
				delete(s.idx, k)
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

// AddToIndex implements SessionIndexer.
func (s *memorySessions) AddToIndex(_ context.Context, key, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("auth: session store: ttl must be positive")
	}
	exp := s.now().Add(ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.idx[key]
	if ids == nil {
		ids = make(map[string]time.Time)
		s.idx[key] = ids
	}
	ids[id] = exp
	return nil
}

// DeleteIndexed implements SessionIndexer.
func (s *memorySessions) DeleteIndexed(_ context.Context, key string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.idx[key] {
		delete(s.m, id)
		out = append(out, id)
	}
	delete(s.idx, key)
	return out, nil
}

// RedisSessionKeyPrefix prefixes the Redis keys of RedisSessionStore: one string key per session,
// "gatewaykit:session:{<id>}" (the hash tag keeps Redis Cluster slot routing per session).
const RedisSessionKeyPrefix = "gatewaykit:session:"

// RedisSessionStore returns a SessionStore in Redis (any go-redis UniversalClient: single node,
// Sentinel or Cluster), shared by every gateway instance. Each session is one string key with a
// Redis expiry (SET PX), so expired sessions disappear by themselves; logout is a DEL, visible to
// every instance at once. It is a SessionIndexer too: each index key is a Redis set
// RedisSessionIndexKeyPrefix+"{<key>}" of session IDs, expiring with the newest session listed.
// Safe for concurrent use.
func RedisSessionStore(rdb redis.UniversalClient) SessionStore {
	return redisSessions{rdb: rdb}
}

type redisSessions struct {
	rdb redis.UniversalClient
}

// RedisSessionIndexKeyPrefix prefixes the Redis sets of RedisSessionStore's SessionIndexer: the
// session IDs of one provider session or subject, for back-channel logout.
const RedisSessionIndexKeyPrefix = "gatewaykit:session-index:"

func redisSessionIndexKey(key string) string { return RedisSessionIndexKeyPrefix + "{" + key + "}" }

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

// AddToIndex implements SessionIndexer: SADD, then PEXPIRE to ttl unless the set already lives
// longer (sessions of one Login all last the session lifetime, so the newest decides).
func (s redisSessions) AddToIndex(ctx context.Context, key, id string, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("auth: session store: ttl must be positive")
	}
	return s.rdb.Eval(ctx, redisIndexAddScript, []string{redisSessionIndexKey(key)}, ttl.Milliseconds(), id).Err()
}

// redisIndexAddScript adds ARGV[2..] to the set KEYS[1] and extends its expiry to ARGV[1] ms
// unless it already lives longer.
const redisIndexAddScript = `redis.call('SADD', KEYS[1], unpack(ARGV, 2))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`

// DeleteIndexed implements SessionIndexer: it reads and deletes the set, then deletes each
// session (one DEL per session: they live in different cluster slots).
func (s redisSessions) DeleteIndexed(ctx context.Context, key string) ([]string, error) {
	ik := redisSessionIndexKey(key)
	var members *redis.StringSliceCmd
	var pttl *redis.DurationCmd
	if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		members = p.SMembers(ctx, ik)
		pttl = p.PTTL(ctx, ik)
		p.Del(ctx, ik)
		return nil
	}); err != nil {
		return nil, err
	}
	ids := members.Val()
	for _, id := range ids {
		if err := s.rdb.Del(ctx, redisSessionKey(id)).Err(); err != nil {
			// Put the set back, with its expiry, so that a retried logout finds the sessions
			// still to delete.
			if ttl := pttl.Val(); ttl > 0 {
				args := make([]any, 0, len(ids)+1)
				args = append(args, ttl.Milliseconds())
				for _, id := range ids {
					args = append(args, id)
				}
				// Not ctx alone: a DEL that failed by running out of time must still be undone.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				_ = s.rdb.Eval(rctx, redisIndexAddScript, []string{ik}, args...).Err()
				cancel()
			}
			return nil, err
		}
	}
	return ids, nil
}
