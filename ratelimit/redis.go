package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix prefixes every key the RedisStore writes.
const DefaultRedisPrefix = "gatewaykit:rl:"

// RedisStore keeps counters in Redis through a go-redis UniversalClient (a single node, Sentinel
// failover, Redis Cluster or Ring), so every gateway instance shares them. It is safe for
// concurrent use; it does not own the client (closing it is the caller's business).
//
// One decision is one round trip: a Lua script reads every rule's state, decides with the Redis
// server's clock (TIME, so gateway clocks may drift) and writes all rules or none. Keys are
// prefix + "{" + key + "}:" + rule + ":" + algorithm; the {hash tag} is the rule's key, so in Redis
// Cluster all rules keyed by the same value (per-user and per-tier limits of one user) live in one
// slot, and every key has a TTL so idle keys vanish.
//
// Redis Cluster and Ring: rules whose keys fall in different slots (Ring: different hash tags) are
// decided by one script per slot, sent in one pipeline (go-redis runs the nodes' pipelines
// concurrently), still one round trip. Each script is atomic for its slot; when one slot's script
// rejects while another's admits, the admitted slot is refunded with a second, best-effort script
// (GCRA moves its timestamp back, the token bucket regains its tokens, windows decrement their
// current count, the log drops its newest entries). Between the two scripts the refunded quota is
// briefly consumed, so concurrent requests may be rejected a little early (never admitted beyond
// the limit), and a refund lost to a failure under-counts nothing and over-counts at most one
// request's cost. A single node or failover client never needs a refund.
type RedisStore struct {
	c      redis.UniversalClient
	prefix string
	group  int // 0 single node, 1 cluster (by slot), 2 ring (by hash tag)
	take   *redis.Script
	refund *redis.Script
}

// RedisOption configures NewRedisStore.
type RedisOption func(*redisConfig) error

type redisConfig struct{ prefix string }

// RedisKeyPrefix sets the key prefix (default DefaultRedisPrefix). It must not contain '{' or '}'.
func RedisKeyPrefix(p string) RedisOption {
	return func(c *redisConfig) error {
		if strings.ContainsAny(p, "{}") || len(p) > 64 {
			return fmt.Errorf("ratelimit: redis key prefix %q must have at most 64 bytes and no braces", p)
		}
		c.prefix = p
		return nil
	}
}

// NewRedisStore returns a Store over c. A Limiter using it must be given FailOpen or FailClosed.
func NewRedisStore(c redis.UniversalClient, opts ...RedisOption) (*RedisStore, error) {
	if c == nil {
		return nil, errors.New("ratelimit: redis client is nil")
	}
	cfg := redisConfig{prefix: DefaultRedisPrefix}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	s := &RedisStore{c: c, prefix: cfg.prefix, take: redis.NewScript(takeScript), refund: redis.NewScript(refundScript)}
	switch c.(type) {
	case *redis.ClusterClient:
		s.group = 1
	case *redis.Ring:
		s.group = 2
	}
	return s, nil
}

// Key returns the Redis key of a rule's counter, for inspection and tests.
func (s *RedisStore) Key(rule, key string, alg Algorithm) string {
	return s.prefix + "{" + key + "}:" + rule + ":" + strconv.Itoa(int(alg))
}

func scriptArgs(args []any, r *Request, cost int64, upto bool) []any {
	micros := int64(r.Limit.Period / time.Microsecond)
	u := "0"
	if upto {
		u = "1"
	}
	return append(args, int(r.Algorithm), r.Limit.Count, micros, r.Limit.burst(), cost, u)
}

// Take implements Store with one round trip (see RedisStore). now is ignored: Redis' clock
// decides. Errors wrap ErrStoreUnavailable.
func (s *RedisStore) Take(ctx context.Context, _ time.Time, reqs []Request, res []Result) error {
	if len(reqs) > MaxRules || len(res) < len(reqs) {
		return ErrTooManyRules
	}
	groups := s.groups(reqs)
	type call struct {
		idx  []int
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	calls := make([]call, len(groups))
	for g, idx := range groups {
		c := call{idx: idx, keys: make([]string, len(idx)), args: make([]any, 0, 6*len(idx))}
		for j, i := range idx {
			r := &reqs[i]
			c.keys[j] = s.Key(r.Rule, r.Key, r.Algorithm)
			c.args = scriptArgs(c.args, r, r.Cost, r.UpTo)
		}
		calls[g] = c
	}
	if len(calls) == 1 {
		calls[0].cmd = s.take.Run(ctx, s.c, calls[0].keys, calls[0].args...)
	} else {
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for g := range calls {
				calls[g].cmd = s.take.EvalSha(ctx, p, calls[g].keys, calls[g].args...)
			}
			return nil
		})
		for g := range calls { // scripts are flushed by a restart or failover: load and retry once
			if err := calls[g].cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
				calls[g].cmd = s.take.Run(ctx, s.c, calls[g].keys, calls[g].args...)
			}
		}
	}
	all := true
	for _, c := range calls {
		vals, err := c.cmd.Int64Slice()
		if err != nil {
			return fmt.Errorf("%w: redis: %w", ErrStoreUnavailable, err)
		}
		if len(vals) != 1+5*len(c.idx) {
			return fmt.Errorf("%w: redis: unexpected script reply of %d values", ErrStoreUnavailable, len(vals))
		}
		for j, i := range c.idx {
			v := vals[1+5*j:]
			res[i] = Result{Allowed: v[0] == 1, Granted: v[1], Remaining: v[2],
				ResetAfter: time.Duration(v[3]) * time.Microsecond, RetryAfter: time.Duration(v[4]) * time.Microsecond}
		}
		all = all && vals[0] == 1
	}
	if all {
		return nil
	}
	// Some slot rejected: refund the slots that admitted (cluster and ring only).
	var refunds []call
	for _, c := range calls {
		admitted := true
		for _, i := range c.idx {
			admitted = admitted && res[i].Allowed
		}
		if !admitted {
			continue
		}
		r := call{keys: c.keys}
		for _, i := range c.idx {
			r.args = scriptArgs(r.args, &reqs[i], res[i].Granted, false)
		}
		refunds = append(refunds, r)
	}
	for _, c := range calls {
		for _, i := range c.idx {
			if res[i].Granted > 0 {
				res[i].Remaining += res[i].Granted
				res[i].Granted = 0
			}
		}
	}
	for _, r := range refunds {
		_ = s.refund.Run(ctx, s.c, r.keys, r.args...).Err() // best effort, documented
	}
	return nil
}

// groups splits reqs into the sets one script may touch: everything for a single node, one set
// per hash slot for Cluster, one per hash tag for Ring.
func (s *RedisStore) groups(reqs []Request) [][]int {
	if s.group == 0 {
		idx := make([]int, len(reqs))
		for i := range idx {
			idx[i] = i
		}
		return [][]int{idx}
	}
	var out [][]int
	var ids []string
	for i := range reqs {
		id := reqs[i].Key
		if s.group == 1 {
			id = strconv.Itoa(int(hashSlot(s.Key(reqs[i].Rule, reqs[i].Key, reqs[i].Algorithm))))
		}
		found := false
		for g, gid := range ids {
			if gid == id {
				out[g] = append(out[g], i)
				found = true
				break
			}
		}
		if !found {
			ids = append(ids, id)
			out = append(out, []int{i})
		}
	}
	return out
}

// hashSlot is Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag, modulo 16384.
func hashSlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
