package ratelimit_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gatewaykit/gatewaykit/internal/redistest"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// roundTrips is a go-redis hook counting network round trips (a command or a pipeline) and the
// commands sent.
type roundTrips struct{ trips, cmds atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.trips.Add(1)
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.trips.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

func countedClient(srv *redistest.Server, h *roundTrips) *redis.Client {
	c := srv.Client()
	c.AddHook(h)
	return c
}

func leaseLimiter(t testing.TB, c redis.UniversalClient, rules []ratelimit.Rule, opts ...ratelimit.LeaseOption) *ratelimit.Limiter {
	t.Helper()
	rs, err := ratelimit.NewRedisStore(c)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := ratelimit.NewLeaseStore(rs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ratelimit.New(rules, ratelimit.WithStore(ls), ratelimit.FailClosed(), ratelimit.WithStoreTimeout(5*time.Second),
		ratelimit.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLeaseModeTwoInstances: two leasing instances, 200 goroutines, 2,000 attempts against a
// limit of 1,000 per day: never more than the limit, at most two batches left unspent, and at
// least 10x fewer round trips than decisions.
func TestLeaseModeTwoInstances(t *testing.T) {
	srv := redistest.Start(t)
	var h roundTrips
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			h.trips.Store(0)
			rules := []ratelimit.Rule{{Name: "user", Limit: ratelimit.PerDay(1000), Key: ratelimit.Constant("x"), Algorithm: alg}}
			a := leaseLimiter(t, countedClient(srv, &h), rules, ratelimit.LeaseBatch(20))
			b := leaseLimiter(t, countedClient(srv, &h), rules, ratelimit.LeaseBatch(20))
			got := hammer(t, []*ratelimit.Limiter{a, b}, 200, 10, "k-"+alg.String())
			trips := h.trips.Load()
			t.Logf("admitted %d of 2000 (limit 1000), %d round trips", got, trips)
			if got > 1000 || got < 1000-2*20 {
				t.Fatalf("admitted %d, want 960..1000", got)
			}
			if trips > 2000/10 {
				t.Fatalf("%d round trips for 2000 decisions: less than a 10x saving", trips)
			}
		})
	}
}

func TestLeaseModeMultiLimitNoConsume(t *testing.T) {
	srv := redistest.Start(t)
	for _, alg := range algorithms {
		rules := []ratelimit.Rule{
			{Name: "user", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("x"), Algorithm: alg},
			{Name: "service", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("x"), Algorithm: alg},
		}
		checkNoConsume(t, alg, leaseLimiter(t, srv.Client(), rules))
	}
}

func TestLeaseOptionsValidate(t *testing.T) {
	if _, err := ratelimit.NewLeaseStore(nil); err == nil {
		t.Error("nil remote accepted")
	}
	ms, _ := ratelimit.NewMemoryStore()
	for _, o := range []ratelimit.LeaseOption{ratelimit.LeaseBatch(0), ratelimit.LeaseMaxAge(0), ratelimit.LeaseMaxKeys(10), ratelimit.LeaseMeterProvider(nil)} {
		if _, err := ratelimit.NewLeaseStore(ms, o); err == nil {
			t.Error("invalid option accepted")
		}
	}
}

// TestLeaseTokensExpire: unspent tokens are void after LeaseMaxAge, so the instance goes back to
// the shared store.
func TestLeaseTokensExpire(t *testing.T) {
	ms, _ := ratelimit.NewMemoryStore()
	ls, _ := ratelimit.NewLeaseStore(ms, ratelimit.LeaseBatch(10), ratelimit.LeaseMaxAge(time.Second))
	clk := newClock()
	l, err := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerHour(160), Key: ratelimit.Constant("x")}},
		ratelimit.WithStore(ls), ratelimit.FailClosed(), ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if d, _ := l.Allow(ctx, "k"); !d.Allowed || d.Remaining != 159 {
		t.Fatalf("first: %+v", d) // shared 150 left + 9 local tokens
	}
	clk.Advance(2 * time.Second) // 9 leased tokens expire unspent
	if d, _ := l.Allow(ctx, "k"); !d.Allowed || d.Remaining > 150 {
		t.Fatalf("after expiry: %+v (expired tokens still counted)", d)
	}
}

// TestLeaseRetryAfterIsHonest: a rejection from the shared store is remembered until a whole batch
// has refilled; the first rejection's RetryAfter must say so, or a client retrying at RetryAfter is
// rejected again by the remembered denial.
func TestLeaseRetryAfterIsHonest(t *testing.T) {
	ms, _ := ratelimit.NewMemoryStore()
	ls, _ := ratelimit.NewLeaseStore(ms, ratelimit.LeaseBatch(10))
	clk := newClock()
	l, err := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(160), Key: ratelimit.Constant("x")}},
		ratelimit.WithStore(ls), ratelimit.FailClosed(), ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		n, d := burst(t, l, "k")
		if round == 0 && n != 160 {
			t.Fatalf("admitted %d, want 160", n)
		}
		if d.RetryAfter <= 0 {
			t.Fatalf("round %d: rejection without RetryAfter: %+v", round, d)
		}
		clk.Advance(d.RetryAfter)
		if d2, _ := l.Allow(context.Background(), "k"); !d2.Allowed {
			t.Fatalf("round %d: rejected again at RetryAfter %v: %+v", round, d.RetryAfter, d2)
		}
	}
}
