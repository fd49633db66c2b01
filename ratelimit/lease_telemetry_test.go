package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
	"weak"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// leaseMetrics collects the lease instruments: "decisions source/outcome", "acquired rule" and
// "tokens rule/state" to their values.
func leaseMetrics(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	attr := func(s attribute.Set, k string) string { v, _ := s.Value(attribute.Key(k)); return v.AsString() }
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/gatewaykit/gatewaykit/ratelimit" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
				t.Fatalf("%s: %T, want a cumulative monotonic int64 sum", m.Name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				var k string
				switch m.Name {
				case "gatewaykit.ratelimit.lease.decisions":
					k = "decisions " + attr(dp.Attributes, "source") + "/" + attr(dp.Attributes, "outcome")
				case "gatewaykit.ratelimit.lease.acquired":
					k = "acquired " + attr(dp.Attributes, "rule")
				case "gatewaykit.ratelimit.lease.tokens":
					k = "tokens " + attr(dp.Attributes, "rule") + "/" + attr(dp.Attributes, "state")
				default:
					t.Fatalf("unexpected metric %s", m.Name)
				}
				got[k] = dp.Value
			}
		}
	}
	return got
}

func newLeaseReader(t *testing.T) (*sdkmetric.ManualReader, *sdkmetric.MeterProvider) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return reader, mp
}

func leaseLimiterOver(t *testing.T, ls *ratelimit.LeaseStore, clk *fakeClock, rule ratelimit.Rule) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New([]ratelimit.Rule{rule}, ratelimit.WithStore(ls), ratelimit.FailClosed(),
		ratelimit.WithClock(clk.Now), ratelimit.WithStoreTimeout(30*time.Second), ratelimit.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// expectMetrics compares the metrics named in want (others may exist).
func expectMetrics(t *testing.T, step string, got, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %d, want %d (all: %v)", step, k, got[k], v, got)
		}
	}
}

// TestLeaseMetrics walks one lease through its life and reads every count through a
// ManualReader: a fetch per batch, local decisions in between, expired tokens counted at the
// next fetch, a rejection by the shared store remembered and then answered locally, a failing
// shared store.
func TestLeaseMetrics(t *testing.T) {
	reader, mp := newLeaseReader(t)
	ms, _ := ratelimit.NewMemoryStore()
	ls, err := ratelimit.NewLeaseStore(ms, ratelimit.LeaseBatch(10), ratelimit.LeaseMaxAge(time.Second), ratelimit.LeaseMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	ctx := context.Background()
	user := leaseLimiterOver(t, ls, clk, ratelimit.Rule{Name: "user", Limit: ratelimit.PerHour(160), Key: ratelimit.Constant("x")}) // batch 10
	allow := func(l *ratelimit.Limiter, n int, want bool) {
		t.Helper()
		for range n {
			if d, err := l.Allow(ctx, "k"); err != nil || d.Allowed != want {
				t.Fatalf("Allow: %+v, %v; want allowed=%v", d, err, want)
			}
		}
	}

	allow(user, 10, true) // one fetch of 10, nine decisions from the lease
	expectMetrics(t, "first batch", leaseMetrics(t, reader), map[string]int64{
		"decisions store/allowed": 1, "decisions lease/allowed": 9, "decisions store/rejected": 0,
		"decisions lease/rejected": 0, "decisions store/error": 0, "decisions lease/error": 0,
		"acquired user": 1, "tokens user/leased": 10, "tokens user/expired": 0, "tokens user/evicted": 0,
	})
	allow(user, 1, true) // the batch is spent: a second fetch
	clk.Advance(2 * time.Second)
	allow(user, 1, true) // the second batch's nine tokens expired unspent: counted at this fetch
	expectMetrics(t, "expiry", leaseMetrics(t, reader), map[string]int64{
		"decisions store/allowed": 3, "decisions lease/allowed": 9,
		"acquired user": 3, "tokens user/leased": 30, "tokens user/expired": 9, "tokens user/evicted": 0,
	})

	small := leaseLimiterOver(t, ls, clk, ratelimit.Rule{Name: "small", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("x")}) // batch 1
	allow(small, 2, true)                                                                                                           // two fetches of one token each
	allow(small, 1, false)                                                                                                          // the shared store rejects: remembered
	allow(small, 3, false)                                                                                                          // answered from the remembered rejection
	expectMetrics(t, "rejection", leaseMetrics(t, reader), map[string]int64{
		"decisions store/allowed": 5, "decisions lease/allowed": 9,
		"decisions store/rejected": 1, "decisions lease/rejected": 3,
		"acquired small": 2, "tokens small/leased": 2, "tokens small/expired": 0,
		"acquired user": 3, "tokens user/leased": 30,
	})

	// A failing shared store: counted as a store error by this LeaseStore.
	broken, err := ratelimit.NewLeaseStore(failingStore{}, ratelimit.LeaseMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	bl := leaseLimiterOver(t, broken, clk, ratelimit.Rule{Name: "user", Limit: ratelimit.PerHour(160), Key: ratelimit.Constant("x")})
	if _, err := bl.Allow(ctx, "k"); !errors.Is(err, ratelimit.ErrStoreUnavailable) {
		t.Fatalf("broken store: %v", err)
	}
	// Two stores on one provider add up: the first store's counts plus the second's error.
	expectMetrics(t, "store error", leaseMetrics(t, reader), map[string]int64{
		"decisions store/error": 1, "decisions store/allowed": 5, "decisions lease/allowed": 9, "acquired user": 3,
	})
}

// TestLeaseMetricsEvicted: when LeaseMaxKeys is reached, the unspent tokens of the evicted leases
// are counted as evicted, and every leased token is accounted for.
func TestLeaseMetricsEvicted(t *testing.T) {
	reader, mp := newLeaseReader(t)
	ms, _ := ratelimit.NewMemoryStore()
	ls, err := ratelimit.NewLeaseStore(ms, ratelimit.LeaseBatch(10), ratelimit.LeaseMaxAge(time.Minute),
		ratelimit.LeaseMaxKeys(1024), ratelimit.LeaseMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock() // stands still: no lease expires
	l := leaseLimiterOver(t, ls, clk, ratelimit.Rule{Name: "user", Limit: ratelimit.PerHour(160), Key: ratelimit.Constant("x")})
	const keys = 4096
	for i := range keys {
		if d, err := l.Allow(context.Background(), "key-"+strconv.Itoa(i)); err != nil || !d.Allowed {
			t.Fatalf("key %d: %+v, %v", i, d, err)
		}
	}
	got := leaseMetrics(t, reader)
	leased, evicted := got["tokens user/leased"], got["tokens user/evicted"]
	if got["acquired user"] != keys || leased != 10*keys || got["decisions store/allowed"] != keys {
		t.Fatalf("one fetch of 10 per key expected: %v", got)
	}
	// each key spent one token; at most 1024 leases (9 tokens each) are still held
	if evicted%9 != 0 || evicted < 9*(keys-1024) || evicted > 9*keys || got["tokens user/expired"] != 0 {
		t.Fatalf("evicted %d tokens, want a multiple of 9 in [%d, %d]; %v", evicted, 9*(keys-1024), 9*keys, got)
	}
}

// TestLeaseMetricsDoNotPinTheStore: the metric callback holds the LeaseStore weakly, so a store
// that is dropped is collected, and its callback is unregistered, while the MeterProvider lives.
func TestLeaseMetricsDoNotPinTheStore(t *testing.T) {
	reader, mp := newLeaseReader(t)
	ws := func() weak.Pointer[ratelimit.LeaseStore] {
		ms, _ := ratelimit.NewMemoryStore()
		ls, err := ratelimit.NewLeaseStore(ms, ratelimit.LeaseMeterProvider(mp))
		if err != nil {
			t.Fatal(err)
		}
		l := leaseLimiterOver(t, ls, newClock(), ratelimit.Rule{Name: "user", Limit: ratelimit.PerHour(160), Key: ratelimit.Constant("x")})
		if _, err := l.Allow(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		if got := leaseMetrics(t, reader); got["decisions store/allowed"] != 1 {
			t.Fatalf("before: %v", got)
		}
		return weak.Make(ls)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		if ws.Value() == nil && len(leaseMetrics(t, reader)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store collected: %v; metrics still reported: %v", ws.Value() == nil, leaseMetrics(t, reader))
		}
		runtime.Gosched()
	}
}

// TestLeaseTakeWithoutRequests: Take is public, and a call with no requests has no shard whose
// lock it holds. It decides nothing and counts nothing, so concurrent calls and collections do not
// race on a shard's decision counts (go test -race) and the metrics stay exact.
func TestLeaseTakeWithoutRequests(t *testing.T) {
	reader, mp := newLeaseReader(t)
	ms, _ := ratelimit.NewMemoryStore()
	ls, err := ratelimit.NewLeaseStore(ms, ratelimit.LeaseMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				if err := ls.Take(context.Background(), time.Now(), nil, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 20 {
		leaseMetrics(t, reader)
	}
	wg.Wait()
	for k, v := range leaseMetrics(t, reader) {
		if v != 0 {
			t.Errorf("%s = %d after Takes without requests, want 0", k, v)
		}
	}
}
