package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/internal/redistest"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// evalCalls reads the number of EVALSHA and EVAL calls from INFO commandstats.
func evalCalls(b *testing.B, srv *redistest.Server) int64 {
	info, err := srv.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha:") || strings.HasPrefix(line, "cmdstat_eval:") {
			f := strings.TrimPrefix(strings.SplitN(line, ",", 2)[0], strings.SplitN(line, ":", 2)[0]+":calls=")
			v, _ := strconv.ParseInt(f, 10, 64)
			n += v
		}
	}
	return n
}

var serviceRules = []ratelimit.Rule{
	{Name: "user", Limit: ratelimit.PerMinute(1 << 30), Key: ratelimit.Constant("x")},
	{Name: "tier", Limit: ratelimit.PerDay(1 << 30), Key: ratelimit.Constant("x")},
	{Name: "service", Limit: ratelimit.PerMinute(1 << 30), Key: ratelimit.Constant("x")},
}

// BenchmarkRedisDecision: one decision of three rules (user, tier, service) against a loopback
// Redis, at 1 and 32 concurrent callers. Reports decisions/s, round trips per decision (go-redis
// hook) and scripts per decision (INFO commandstats): both must be 1.
func BenchmarkRedisDecision(b *testing.B) {
	for _, callers := range []int{1, 32} {
		b.Run("callers="+strconv.Itoa(callers), func(b *testing.B) {
			srv := redistest.Start(b)
			var h roundTrips
			l := redisLimiter(b, countedClient(srv, &h), serviceRules)
			ctx := context.Background()
			warm := make(chan struct{}) // load the script and open the pool's connections
			for range 64 {
				go func() { _, _ = l.Allow(ctx, "warm", "free", "orders"); warm <- struct{}{} }()
			}
			for range 64 {
				<-warm
			}
			h.trips.Store(0)
			evals := evalCalls(b, srv)
			var users atomic.Int64
			b.SetParallelism(max(1, callers/2)) // GOMAXPROCS 2 here: 16*2 = 32 goroutines
			start := time.Now()
			b.ResetTimer()
			if callers == 1 {
				for i := range b.N {
					_, _ = l.Allow(ctx, "u"+strconv.Itoa(i%1000), "free", "orders")
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					u := "u" + strconv.FormatInt(users.Add(1), 10)
					for pb.Next() {
						_, _ = l.Allow(ctx, u, "free", "orders")
					}
				})
			}
			b.StopTimer()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "decisions/s")
			b.ReportMetric(float64(h.trips.Load())/float64(b.N), "roundtrips/decision")
			b.ReportMetric(float64(evalCalls(b, srv)-evals)/float64(b.N), "scripts/decision")
		})
	}
}

// BenchmarkLeaseMode: two leasing instances share one Redis, 32 callers on one hot key, batch 50.
// "under-limit": a limit never reached (round trips per 1,000 admitted decisions). "over-limit":
// GCRA 20,000/s with burst 1,000 under more load than that; reports round trips per 1,000
// decisions and the measured over-admission (admitted beyond the exact bound
// burst + rate*elapsed; negative means under the bound).
func BenchmarkLeaseMode(b *testing.B) {
	for _, c := range []struct {
		name string
		lim  ratelimit.Limit
	}{{"under-limit", ratelimit.PerSecond(1 << 30)}, {"over-limit", ratelimit.PerSecond(20000).WithBurst(1000)}} {
		b.Run(c.name, func(b *testing.B) {
			srv := redistest.Start(b)
			var h roundTrips
			rules := []ratelimit.Rule{{Name: "user", Limit: c.lim, Key: ratelimit.Constant("x")}}
			ls := []*ratelimit.Limiter{
				leaseLimiter(b, countedClient(srv, &h), rules, ratelimit.LeaseBatch(50)),
				leaseLimiter(b, countedClient(srv, &h), rules, ratelimit.LeaseBatch(50)),
			}
			var admitted, which atomic.Int64
			ctx := context.Background()
			b.SetParallelism(16)
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				l := ls[which.Add(1)%2]
				for pb.Next() {
					if d, err := l.Allow(ctx, "hot"); err == nil && d.Allowed {
						admitted.Add(1)
					}
				}
			})
			b.StopTimer()
			el := time.Since(start)
			b.ReportMetric(float64(b.N)/el.Seconds(), "decisions/s")
			b.ReportMetric(1000*float64(h.trips.Load())/float64(b.N), "roundtrips/1000")
			if c.lim.Burst > 0 {
				bound := float64(c.lim.Burst) + float64(c.lim.Count)*el.Seconds()
				b.ReportMetric(float64(admitted.Load())-bound, "over-admitted")
				b.ReportMetric(100*(float64(admitted.Load())-bound)/bound, "over-admitted-%")
			}
		})
	}
}
