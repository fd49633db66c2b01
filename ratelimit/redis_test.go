package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit/internal/redistest"
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
	srv := redistest.Start(t, "--cluster-enabled", "yes")
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
		l := redisLimiter(t, c, []ratelimit.Rule{{Name: "r", Limit: ratelimit.Every(5, 200*time.Millisecond), Key: ratelimit.Constant("x"), Algorithm: alg}})
		if d, err := l.Allow(ctx, "exp"); err != nil || !d.Allowed {
			t.Fatalf("%v: %+v %v", alg, d, err)
		}
		key := store.Key("r", "exp", alg)
		ttl, err := c.PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > 400*time.Millisecond {
			t.Fatalf("%v: key %s has TTL %v (%v)", alg, key, ttl, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
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
