package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// BenchmarkLeaseLocal is lease mode's fast path: a decision served from the local lease, no round
// trip (a batch of 100,000 from an in-memory shared store, a clock that stands still so the lease
// never expires: one fetch per 100,000 decisions). "Allow" is the limiter's whole decision,
// "Take" the LeaseStore alone; "noop" measures without a meter, "sdk" with the OpenTelemetry SDK
// (a ManualReader never collected), for the limiter and the lease store.
func BenchmarkLeaseLocal(b *testing.B) {
	for _, meter := range []string{"noop", "sdk"} {
		var mp metric.MeterProvider = noop.NewMeterProvider()
		if meter == "sdk" {
			smp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { _ = smp.Shutdown(context.Background()) })
			mp = smp
		}
		ms, err := ratelimit.NewMemoryStore()
		if err != nil {
			b.Fatal(err)
		}
		ls, err := ratelimit.NewLeaseStore(ms, ratelimit.LeaseBatch(100000), ratelimit.LeaseMaxAge(time.Minute), ratelimit.LeaseMeterProvider(mp))
		if err != nil {
			b.Fatal(err)
		}
		now := time.Unix(1_700_006_400, 0)
		lim := ratelimit.PerSecond(1 << 30)
		l, err := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: lim, Key: ratelimit.Constant("x")}},
			ratelimit.WithStore(ls), ratelimit.FailClosed(), ratelimit.WithStoreTimeout(30*time.Second), ratelimit.WithMeterProvider(mp),
			ratelimit.WithClock(func() time.Time { return now }))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.Run("Allow/"+meter, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d, err := l.Allow(ctx, "user-1"); err != nil || !d.Allowed {
					b.Fatal(d, err)
				}
			}
		})
		b.Run("Take/"+meter, func(b *testing.B) {
			reqs := []ratelimit.Request{{Rule: "user", Key: "user-2", Limit: lim, Cost: 1}}
			res := make([]ratelimit.Result, 1)
			b.ReportAllocs()
			for b.Loop() {
				if err := ls.Take(ctx, now, reqs, res); err != nil || !res[0].Allowed {
					b.Fatal(res[0], err)
				}
			}
		})
	}
}
