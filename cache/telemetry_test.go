package cache_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewaykit/gatewaykit/cache"
)

// counts returns the sums of a counter by the value of one attribute.
func counts(t *testing.T, reader *sdkmetric.ManualReader, name, attr string) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/gatewaykit/gatewaykit/cache" {
			continue
		}
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key(attr))
				out[v.AsString()] += dp.Value
			}
		}
	}
	return out
}

func TestMetricsByOutcome(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	clk := newClock()
	o := newOrigin("Cache-Control", "max-age=10")
	h := newCache(t, cache.WithMeterProvider(mp), cache.WithClock(clk.Now), cache.StaleWhileRevalidate(60e9)).Wrap(o)
	get(h, "/m")                                   // miss
	get(h, "/m")                                   // hit
	get(h, "/m")                                   // hit
	get(h, "/m", header("Authorization", "Basic")) // bypass
	clk.Advance(20e9)
	get(h, "/m")                                           // stale
	waitFor(t, func() bool { return o.calls.Load() == 3 }) // miss, bypass, revalidation
	got := counts(t, reader, "gatewaykit.cache.requests", "outcome")
	want := map[string]int64{"miss": 1, "hit": 2, "bypass": 1, "stale": 1}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("outcomes = %v, want %v", got, want)
		}
	}
}

func TestStoreFailuresCountedAndLogRateLimited(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	h := newCache(t, cache.WithStore(&failingStore{}), cache.WithMeterProvider(mp), cache.WithLogger(logger)).Wrap(newOrigin())
	for range 20 {
		get(h, "/f")
	}
	if got := counts(t, reader, "gatewaykit.cache.store.errors", "op"); got["get"] != 20 {
		t.Fatalf("store errors = %v", got)
	}
	if n := strings.Count(logs.String(), "store failed"); n != 1 {
		t.Fatalf("%d log records for 20 failures:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "token") {
		t.Fatal("log leaks request data")
	}
}

func TestOutcomeOnServerSpan(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	h := newCache(t).Wrap(newOrigin("Cache-Control", "max-age=60"))
	for range 2 {
		ctx, span := tp.Tracer("test").Start(context.Background(), "server")
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/span", nil))
		span.End()
	}
	var outcomes []string
	for _, s := range sr.Ended() {
		for _, kv := range s.Attributes() {
			if kv.Key == "gatewaykit.cache.outcome" {
				outcomes = append(outcomes, kv.Value.AsString())
			}
		}
	}
	if strings.Join(outcomes, ",") != "miss,hit" {
		t.Fatalf("span outcomes = %v", outcomes)
	}
}
