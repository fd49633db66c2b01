package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit/internal/redistest"
	"github.com/gatewaykit/gatewaykit/internal/testservice"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

func redisLimiter(t testing.TB, c redis.UniversalClient, rules []ratelimit.Rule, opts ...ratelimit.Option) *ratelimit.Limiter {
	t.Helper()
	s, err := ratelimit.NewRedisStore(c)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]ratelimit.Option{ratelimit.WithStore(s), ratelimit.FailClosed(), ratelimit.WithStoreTimeout(5 * time.Second),
		ratelimit.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	l, err := ratelimit.New(rules, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// hammer runs goroutines*each decisions split over the limiters and returns how many were admitted.
func hammer(t *testing.T, ls []*ratelimit.Limiter, goroutines, each int, keys ...string) int64 {
	t.Helper()
	var admitted, failed atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ls[g%len(ls)]
			for range each {
				d, err := l.Allow(context.Background(), keys...)
				if err != nil {
					failed.Add(1)
				} else if d.Allowed {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d decisions failed", failed.Load())
	}
	return admitted.Load()
}

// TestRedisTwoInstancesAdmitExactlyTheLimit: two limiters with their own clients (two gateway
// instances) share one Redis; 200 goroutines make 1,000 attempts against a limit of 300.
func TestRedisTwoInstancesAdmitExactlyTheLimit(t *testing.T) {
	srv := redistest.Start(t)
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			rules := []ratelimit.Rule{{Name: "user", Limit: ratelimit.PerDay(300), Key: ratelimit.Constant("x"), Algorithm: alg}}
			a, b := redisLimiter(t, srv.Client(), rules), redisLimiter(t, srv.Client(), rules)
			if got := hammer(t, []*ratelimit.Limiter{a, b}, 200, 5, "k-"+alg.String()); got != 300 {
				t.Fatalf("admitted %d, want exactly 300", got)
			}
		})
	}
}

func TestRedisMultiLimitNoConsume(t *testing.T) {
	srv := redistest.Start(t)
	for _, alg := range algorithms {
		rules := []ratelimit.Rule{
			{Name: "user", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("x"), Algorithm: alg},
			{Name: "service", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("x"), Algorithm: alg},
		}
		l := redisLimiter(t, srv.Client(), rules)
		checkNoConsume(t, alg, l)
	}
}

// checkNoConsume: u1 spends its 2, then 10 rejections must not reach the service's 5.
func checkNoConsume(t *testing.T, alg ratelimit.Algorithm, l *ratelimit.Limiter) {
	t.Helper()
	ctx := context.Background()
	want := []bool{true, true, false, false, false, false, false, false, false, false, false, false}
	for i, w := range want {
		if d, err := l.Allow(ctx, "u1-"+alg.String(), "svc-"+alg.String()); err != nil || d.Allowed != w {
			t.Fatalf("%v: u1 request %d: %+v %v", alg, i, d, err)
		}
	}
	for i, u := range []string{"u2", "u2", "u3", "u4"} {
		d, err := l.Allow(ctx, u+"-"+alg.String(), "svc-"+alg.String())
		if err != nil || d.Allowed != (i < 3) {
			t.Fatalf("%v: %s: %+v %v (service counted a rejected request?)", alg, u, d, err)
		}
		if i == 3 && d.Rule != "service" {
			t.Fatalf("%v: binding rule %q", alg, d.Rule)
		}
	}
}

// TestRedisClusterSlotsAndRefund runs against a one-node Redis Cluster: the two rules' keys hash
// to different slots, so each decision is two scripts in one pipeline, and an admitted slot is
// refunded when the other rejects.
func TestRedisClusterSlotsAndRefund(t *testing.T) {
	srv, cc := startCluster(t)
	ctx := context.Background()
	for _, alg := range algorithms {
		rules := []ratelimit.Rule{
			{Name: "user", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("x"), Algorithm: alg},
			{Name: "service", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("x"), Algorithm: alg},
		}
		checkNoConsume(t, alg, redisLimiter(t, cc, rules))
	}
	// Ring (one shard here): grouped by hash tag, same pipeline and refund path
	if err := srv.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr}})
	t.Cleanup(func() { _ = ring.Close() })
	for _, alg := range algorithms {
		rules := []ratelimit.Rule{
			{Name: "user", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("x"), Algorithm: alg},
			{Name: "service", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("x"), Algorithm: alg},
		}
		checkNoConsume(t, alg, redisLimiter(t, ring, rules, ratelimit.WithStoreTimeout(5*time.Second)))
	}
	// and exactness under concurrency in cluster mode
	rules := []ratelimit.Rule{{Name: "user", Limit: ratelimit.PerDay(100), Key: ratelimit.Constant("x")}}
	if got := hammer(t, []*ratelimit.Limiter{redisLimiter(t, cc, rules), redisLimiter(t, cc, rules)}, 50, 4, "hot"); got != 100 {
		t.Fatalf("cluster admitted %d, want 100", got)
	}
}

func TestRedisKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	store, _ := ratelimit.NewRedisStore(c)
	ctx := context.Background()
	for _, alg := range algorithms {
		// a one-token wait of 1s: the shortest TTL (GCRA, token bucket) survives a loaded machine's
		// pause between the decision and PTTL
		l := redisLimiter(t, c, []ratelimit.Rule{{Name: "r", Limit: ratelimit.Every(2, 2*time.Second), Key: ratelimit.Constant("x"), Algorithm: alg}})
		if d, err := l.Allow(ctx, "exp"); err != nil || !d.Allowed {
			t.Fatalf("%v: %+v %v", alg, d, err)
		}
		key := store.Key("r", "exp", alg)
		ttl, err := c.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > 4*time.Second {
			t.Fatalf("%v: key %s has TTL %v (%v)", alg, key, ttl, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := c.DBSize(ctx).Result()
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			keys, _ := c.Keys(ctx, "*").Result()
			t.Fatalf("keys never expired: %v", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisKilled: with Redis killed mid-test, FailOpen admits and FailClosed rejects within the
// store timeout; after Restart decisions are exact again.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t)
	rules := []ratelimit.Rule{{Name: "r", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("x")}}
	const timeout = 300 * time.Millisecond
	open := redisLimiter(t, srv.Client(), rules, ratelimit.WithStoreTimeout(timeout))
	s, _ := ratelimit.NewRedisStore(srv.Client())
	openL, err := ratelimit.New(rules, ratelimit.WithStore(s), ratelimit.FailOpen(), ratelimit.WithStoreTimeout(timeout),
		ratelimit.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	closedL := open // redisLimiter defaults to FailClosed
	ctx := context.Background()
	if d, err := closedL.Allow(ctx, "k"); err != nil || !d.Allowed {
		t.Fatalf("before kill: %+v %v", d, err)
	}
	srv.Kill()
	for range 3 {
		start := time.Now()
		d, err := openL.Allow(ctx, "k")
		if !d.Allowed || !d.FailedOpen || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
			t.Fatalf("fail open: %+v %v", d, err)
		}
		d, err = closedL.Allow(ctx, "k")
		if d.Allowed || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
			t.Fatalf("fail closed: %+v %v", d, err)
		}
		if el := time.Since(start); el > 2*timeout+2*time.Second { // generous: loaded machine
			t.Fatalf("two decisions took %v with a %v timeout", el, timeout)
		}
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for { // the pool reconnects; scripts are reloaded (NOSCRIPT) transparently
		d, err := closedL.Allow(ctx, "k")
		if err == nil {
			if !d.Allowed || d.Remaining != 1 {
				t.Fatalf("after restart (empty data): %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d, err := openL.Allow(ctx, "k"); err != nil || !d.Allowed || d.FailedOpen || d.Remaining != 0 {
		t.Fatalf("second instance after restart: %+v %v", d, err)
	}
}

// TestRedisWindowsClockGoesBack: the state was written by a Redis server whose clock ran ahead (a
// failover to a server whose clock lags looks the same): the stored window has not begun on the
// current server's clock. The scripts keep counting in it instead of admitting a fresh quota.
func TestRedisWindowsClockGoesBack(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	store, _ := ratelimit.NewRedisStore(c)
	ctx := context.Background()
	for _, alg := range []ratelimit.Algorithm{ratelimit.FixedWindow, ratelimit.SlidingWindow} {
		t.Run(alg.String(), func(t *testing.T) {
			lim := ratelimit.PerMinute(5)
			l := redisLimiter(t, c, []ratelimit.Rule{{Name: "r", Limit: lim, Key: ratelimit.Constant("x"), Algorithm: alg}})
			now, err := c.Time(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			us, p := now.UnixMicro(), lim.Period.Microseconds()
			next := us - us%p + p // the next window, full
			key := store.Key("r", "back", alg)
			if err := c.HSet(ctx, key, "w", next, "c", 5, "p", 0).Err(); err != nil {
				t.Fatal(err)
			}
			d, err := l.Allow(ctx, "back")
			if err != nil || d.Allowed {
				t.Fatalf("a full window ahead of the clock admitted: %+v %v", d, err)
			}
			if lag := time.Duration(next-us) * time.Microsecond; d.RetryAfter < lag {
				t.Fatalf("RetryAfter %v shorter than the lag %v", d.RetryAfter, lag)
			}
		})
	}
}

// TestRedisUnresponsiveTimesOut: a Redis that accepts connections but does not answer (CLIENT
// PAUSE, as under a long blocking command or a stalled host) must not hang decisions: FailClosed
// rejects and FailOpen admits within the store timeout, long before Redis answers again.
func TestRedisUnresponsiveTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	rules := []ratelimit.Rule{{Name: "r", Limit: ratelimit.PerHour(100), Key: ratelimit.Constant("x")}}
	const timeout, pause = 200 * time.Millisecond, 6 * time.Second
	closedL := redisLimiter(t, srv.Client(), rules, ratelimit.WithStoreTimeout(timeout))
	s, _ := ratelimit.NewRedisStore(srv.Client())
	openL, err := ratelimit.New(rules, ratelimit.WithStore(s), ratelimit.FailOpen(), ratelimit.WithStoreTimeout(timeout),
		ratelimit.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, l := range []*ratelimit.Limiter{closedL, openL} { // warm both pools
		if d, err := l.Allow(ctx, "k"); err != nil || !d.Allowed {
			t.Fatalf("before pause: %+v %v", d, err)
		}
	}
	if err := srv.Client().Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		start := time.Now()
		d, err := closedL.Allow(ctx, "k")
		if d.Allowed || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
			t.Fatalf("fail closed %d: %+v %v", i, d, err)
		}
		d, err = openL.Allow(ctx, "k")
		if !d.Allowed || !d.FailedOpen || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
			t.Fatalf("fail open %d: %+v %v", i, d, err)
		}
		// 2x200ms expected; generous for a loaded machine, yet 3 rounds stay within the pause
		if el := time.Since(start); el > pause/4 {
			t.Fatalf("two decisions took %v with a %v timeout: waited for the paused Redis", el, timeout)
		}
	}
	deadline := time.Now().Add(pause + 20*time.Second)
	for { // recovery once Redis answers again (and the abandoned calls finish, for goleak)
		if d, err := closedL.Allow(ctx, "k"); err == nil && d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no recovery after the pause")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisRingEmptyKeysOnTheirShards: with EmptyKeyShared the key is empty, so the Redis keys
// carry an empty hash tag and Ring shards each rule's key by its whole name. The store must send
// each key's script to the shard Ring routes that key to, or two limiters with different rule
// sets would count the same rule on different shards.
func TestRedisRingEmptyKeysOnTheirShards(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": a.Addr, "b": b.Addr}})
	t.Cleanup(func() { _ = ring.Close() })
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for ring.Ping(ctx).Err() != nil { // shards start as down until the first health check
		if time.Now().After(deadline) {
			t.Fatal("ring not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var rules []ratelimit.Rule
	for _, name := range []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"} {
		rules = append(rules, ratelimit.Rule{Name: name, Limit: ratelimit.PerHour(10), Key: ratelimit.Constant(""),
			EmptyKey: ratelimit.EmptyKeyShared})
	}
	l := redisLimiter(t, ring, rules)
	if d, err := l.Allow(ctx, ""); err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	}
	store, _ := ratelimit.NewRedisStore(ring)
	for _, r := range rules {
		key := store.Key(r.Name, "", r.Algorithm)
		if n, err := ring.Exists(ctx, key).Result(); err != nil || n != 1 {
			t.Errorf("rule %s: key %s not on the shard Ring routes it to (%d, %v)", r.Name, key, n, err)
		}
	}
}

// startCluster starts a one-node Redis Cluster holding every slot. The cluster bus gets a port
// known to be free: Redis' default (the client port + 10000) often lands on a port in use on a busy
// machine (or past 65535), and redistest retries only the client port.
func startCluster(t *testing.T) (*redistest.Server, *redis.ClusterClient) {
	t.Helper()
	bus, err := testservice.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus[0]))
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatal(err)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr}})
	t.Cleanup(func() { _ = cc.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for cc.Set(ctx, "probe", "1", time.Second).Err() != nil { // wait for the cluster state to become ok
		if time.Now().After(deadline) {
			t.Fatal("cluster did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
		cc.ReloadState(ctx)
	}
	return srv, cc
}

// TestRedisClusterFailedSlotConsumesNothing: when one slot's script fails (here a key of the wrong
// type; in production a node down) while another slot admits, the decision fails and the admitted
// slot is refunded: a failed decision consumes from no rule.
func TestRedisClusterFailedSlotConsumesNothing(t *testing.T) {
	_, cc := startCluster(t)
	ctx := context.Background()
	rules := []ratelimit.Rule{
		{Name: "user", Limit: ratelimit.PerHour(100), Key: ratelimit.Constant("x")},
		{Name: "service", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("x")},
	}
	l := redisLimiter(t, cc, rules)
	store, _ := ratelimit.NewRedisStore(cc)
	if err := cc.LPush(ctx, store.Key("user", "broken", ratelimit.GCRA), "x").Err(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if d, err := l.Allow(ctx, "broken", "svc"); d.Allowed || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
			t.Fatalf("decision with a failing slot: %+v %v", d, err)
		}
	}
	for i := range 5 {
		if d, err := l.Allow(ctx, "u"+strconv.Itoa(i), "svc"); err != nil || !d.Allowed {
			t.Fatalf("request %d: %+v %v (failed decisions consumed the service quota)", i, d, err)
		}
	}
}
