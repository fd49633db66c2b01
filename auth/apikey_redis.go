package auth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RedisKeyPrefix prefixes the Redis keys of RedisKeyStore: one string key per API key,
// "gatewaykit:apikey:{<id>}" (the hash tag keeps Redis Cluster slot routing per key).
const RedisKeyPrefix = "gatewaykit:apikey:"

// RedisKeyStore returns a KeyStore in Redis (any go-redis UniversalClient: single node, Sentinel or
// Cluster), shared by every gateway instance. Each key is a JSON record holding the SHA-256 of the
// API key (never the key) and its metadata; a key with an expiry also gets a Redis expiry, so
// expired keys disappear by themselves. Revocation is a DEL, visible to every instance at once.
// Errors from Redis make authentication fail closed (503). Safe for concurrent use.
func RedisKeyStore(rdb redis.UniversalClient) KeyStore { return &redisKeyStore{rdb: rdb} }

type redisKeyStore struct{ rdb redis.UniversalClient }

type redisRecord struct {
	Hash string  `json:"hash"` // hex SHA-256
	Info KeyInfo `json:"info"`
}

func redisKey(id string) string { return RedisKeyPrefix + "{" + id + "}" }

func (s *redisKeyStore) Get(ctx context.Context, id string) (StoredKey, error) {
	b, err := s.rdb.Get(ctx, redisKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return StoredKey{}, ErrKeyNotFound
	}
	if err != nil {
		return StoredKey{}, fmt.Errorf("redis: %w", err)
	}
	var rec redisRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return StoredKey{}, fmt.Errorf("redis: corrupt API key record: %w", err)
	}
	sk := StoredKey{ID: id, Info: rec.Info}
	// hex.Decode writes len(src)/2 bytes: check the length first (a longer hash would panic).
	if len(rec.Hash) != hex.EncodedLen(len(sk.Hash)) {
		return StoredKey{}, errors.New("redis: corrupt API key hash")
	}
	if n, err := hex.Decode(sk.Hash[:], []byte(rec.Hash)); err != nil || n != len(sk.Hash) {
		return StoredKey{}, errors.New("redis: corrupt API key hash")
	}
	return sk, nil
}

func (s *redisKeyStore) Put(ctx context.Context, k StoredKey) error {
	_, err := s.set(ctx, k, "")
	return err
}

// rewrite replaces an existing record only (SET XX), so that Rotate cannot undo a Revoke.
func (s *redisKeyStore) rewrite(ctx context.Context, k StoredKey) (bool, error) {
	return s.set(ctx, k, "XX")
}

func (s *redisKeyStore) set(ctx context.Context, k StoredKey, mode string) (bool, error) {
	b, err := json.Marshal(redisRecord{Hash: hex.EncodeToString(k.Hash[:]), Info: k.Info})
	if err != nil {
		return false, err
	}
	args := redis.SetArgs{Mode: mode}
	if !k.Info.ExpiresAt.IsZero() {
		args.ExpireAt = k.Info.ExpiresAt
	}
	err = s.rdb.SetArgs(ctx, redisKey(k.ID), b, args).Err()
	switch {
	case errors.Is(err, redis.Nil): // XX and no such key
		return false, nil
	case err != nil:
		return false, fmt.Errorf("redis: %w", err)
	}
	return true, nil
}

func (s *redisKeyStore) Delete(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, redisKey(id)).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
