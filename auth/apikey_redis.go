package auth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// RedisKeyPrefix prefixes the Redis keys of RedisKeyStore: one string key per API key,
// "gatewaykit:apikey:{<id>}" (the hash tag keeps Redis Cluster slot routing per key).
const RedisKeyPrefix = "gatewaykit:apikey:"

// RedisKeyStore returns a KeyStore in Redis (any go-redis UniversalClient: single node, Sentinel or
// Cluster), shared by every gateway instance. Each key is a JSON record holding the SHA-256 of the
// API key (never the key) and its metadata; a key with an expiry also gets a Redis expiry, so
// expired keys disappear by themselves. Revocation is a DEL, visible to every instance at once.
// Errors from Redis make authentication fail closed (503). The returned store also implements
// ConditionalKeyStore (Update is one atomic Lua script). Safe for concurrent use.
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
	b, err := marshalRecord(k)
	if err != nil {
		return err
	}
	args := redis.SetArgs{}
	if !k.Info.ExpiresAt.IsZero() {
		args.ExpireAt = k.Info.ExpiresAt
	}
	if err := s.rdb.SetArgs(ctx, redisKey(k.ID), b, args).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

func marshalRecord(k StoredKey) ([]byte, error) {
	return json.Marshal(redisRecord{Hash: hex.EncodeToString(k.Hash[:]), Info: k.Info})
}

// updateScript is the compare-and-swap of Update: KEYS[1] the record, ARGV[1] the expected JSON,
// ARGV[2] the new JSON, ARGV[3] its expiry in Unix milliseconds ("" for none; SET without it drops
// a TTL, as Put does). It returns 1 when written, 0 when the key is gone, -1 when it differs.
//
// Byte equality is the fast path; otherwise both documents are decoded (cjson) and compared value
// by value, because encoding/json does not reproduce its own output after a decode for strings
// that are not valid UTF-8: Put writes each invalid byte as the escape �, Get turns it into
// U+FFFD, and encoding that again writes the raw character. A record that does not decode, or
// holds a member old does not (or lacks one), differs.
var updateScript = redis.NewScript(`
local function same(a, b)
  if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if cur ~= ARGV[1] then
  local ok, got = pcall(cjson.decode, cur)
  if not ok or not same(got, cjson.decode(ARGV[1])) then return -1 end
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
end
return 1
`)

// Update implements ConditionalKeyStore with one Lua script (one round trip, atomic, one key so
// Cluster-safe): the stored JSON must hold the same members and values as the encoding of old,
// which it does for records written by this store (Get decodes them losslessly, up to the U+FFFD
// that replaced bytes that were not UTF-8). A record written in another form (another time
// format, an extra member) counts as changed (fail closed).
func (s *redisKeyStore) Update(ctx context.Context, old, next StoredKey) error {
	if next.ID != old.ID {
		return fmt.Errorf("auth: Update: record %q cannot replace %q", next.ID, old.ID)
	}
	want, err := marshalRecord(old)
	if err != nil {
		return err
	}
	b, err := marshalRecord(next)
	if err != nil {
		return err
	}
	exp := ""
	if !next.Info.ExpiresAt.IsZero() {
		exp = strconv.FormatInt(next.Info.ExpiresAt.UnixMilli(), 10) // as Put: at most 1 ms early
	}
	n, err := updateScript.Run(ctx, s.rdb, []string{redisKey(old.ID)}, want, b, exp).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redis: %w", err)
	case n == 0:
		return ErrKeyNotFound
	case n < 0:
		return ErrKeyChanged
	}
	return nil
}

func (s *redisKeyStore) Delete(ctx context.Context, id string) error {
	if err := s.rdb.Del(ctx, redisKey(id)).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
