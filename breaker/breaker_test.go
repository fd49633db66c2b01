package breaker_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/breaker"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestNewValidation(t *testing.T) {
	cases := []struct {
		name string
		opt  breaker.Option
		want string
	}{
		{"trip count", breaker.TripAfter(0, time.Second), "TripAfter count"},
		{"trip window", breaker.TripAfter(5, 0), "window"},
		{"ratio", breaker.TripRatio(1.5, 10), "ratio"},
		{"ratio NaN", breaker.TripRatio(nanFloat(), 10), "ratio"},
		{"ratio min", breaker.TripRatio(0.5, 0), "minimum requests"},
		{"open timeout", breaker.OpenTimeout(0), "open timeout"},
		{"probes", breaker.HalfOpenProbes(0), "probes"},
		{"ramp shares order", breaker.RecoveryRamp(time.Second, 0.5, 0.1), "strictly increasing"},
		{"ramp share 1", breaker.RecoveryRamp(time.Second, 1), "strictly increasing"},
		{"ramp no shares", breaker.RecoveryRamp(time.Second), "shares"},
		{"ramp off with shares", breaker.RecoveryRamp(0, 0.5), "no shares"},
		{"max upstreams", breaker.MaxUpstreams(0), "max upstreams"},
		{"idle timeout", breaker.IdleTimeout(-1), "idle timeout"},
		{"name", breaker.WithName(""), "name"},
		{"key", breaker.WithKey(nil), "key function"},
		{"failure", breaker.WithFailure(nil), "failure function"},
		{"timeout", breaker.Timeout(-time.Second), "timeout"},
		{"deadline header", breaker.DeadlineHeader("bad header"), "header name"},
		{"retries", breaker.Retries(11), "retries"},
		{"retry status", breaker.RetryOn(200), "retry status"},
		{"backoff", breaker.RetryBackoff(time.Second, time.Millisecond), "backoff"},
		{"budget ratio", breaker.RetryBudget(-1, 0), "budget ratio"},
		{"budget floor", breaker.RetryBudget(0.1, -1), "budget floor"},
		{"replay", breaker.MaxReplayBody(-1), "replay"},
		{"fallback", breaker.WithFallback(nil), "fallback"},
		{"error handler", breaker.WithErrorHandler(nil), "error handler"},
		{"clock", breaker.WithClock(nil), "clock"},
		{"meter", breaker.WithMeterProvider(nil), "meter provider"},
		{"logger", breaker.WithLogger(nil), "logger"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := breaker.New(c.opt)
			if err == nil {
				_ = b.Close()
				t.Fatal("New accepted an invalid option")
			}
			if !strings.HasPrefix(err.Error(), "breaker: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := breaker.New(breaker.TripAfter(5, time.Second), breaker.WithWindow(2*time.Second)); err == nil {
		t.Fatal("two different windows accepted")
	}
	b, err := breaker.New(breaker.TripAfter(5, time.Second), breaker.WithWindow(time.Second), breaker.RecoveryRamp(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func nanFloat() float64 {
	zero := 0.0
	return zero / zero
}

func TestStateString(t *testing.T) {
	for s, want := range map[breaker.State]string{breaker.Closed: "closed", breaker.Recovering: "recovering",
		breaker.HalfOpen: "half_open", breaker.Open: "open", breaker.State(42): "unknown"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
}

func TestDefaultFailure(t *testing.T) {
	cases := []struct {
		status int
		err    error
		want   bool
	}{
		{200, nil, false}, {404, nil, false}, {499, nil, false}, {500, nil, true}, {501, nil, false},
		{502, nil, true}, {503, nil, true}, {504, nil, true}, {0, breaker.ErrTimeout, true}, {0, breaker.ErrPanic, true},
	}
	for _, c := range cases {
		if got := breaker.DefaultFailure(c.status, c.err); got != c.want {
			t.Errorf("DefaultFailure(%d, %v) = %v", c.status, c.err, got)
		}
	}
}

func TestEvictionIsBoundedAndSparesOpenBreakers(t *testing.T) {
	brk := mustNew(t, breaker.MaxUpstreams(3), breaker.TripAfter(1, time.Minute), breaker.OpenTimeout(time.Hour),
		breaker.WithKey(func(r *http.Request) string { return r.URL.Path }))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	hit := func(path string) { serve(h, httptest.NewRequest(http.MethodGet, path, nil)) }
	hit("/bad") // the oldest entry, open
	hit("/a")
	hit("/b")
	for i := 0; i < 20; i++ { // a stream of new keys evicts closed breakers, never the open one
		hit("/new" + strings.Repeat("x", i))
		if n := brk.Len(); n > 3 {
			t.Fatalf("%d breakers kept, bound is 3", n)
		}
	}
	if s := brk.State("/bad"); s != breaker.Open {
		t.Fatalf("the open breaker was evicted (state %v)", s)
	}
	if rec := serve(h, httptest.NewRequest(http.MethodGet, "/bad", nil)); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("open breaker answered %d", rec.Code)
	}
}

func TestTelemetry(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	brk := mustNew(t, breaker.WithName("pay"), breaker.TripAfter(2, time.Minute), breaker.OpenTimeout(time.Hour),
		breaker.WithMeterProvider(mp), breaker.WithLogger(logger))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	for i := 0; i < 5; i++ {
		serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/gatewaykit/gatewaykit/breaker" {
			t.Fatalf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					up, _ := p.Attributes.Value("upstream")
					if up.AsString() != "pay" {
						t.Fatalf("%s upstream attribute %q", m.Name, up.AsString())
					}
					got[m.Name] += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			}
		}
	}
	want := map[string]int64{
		"gatewaykit.breaker.state":       int64(breaker.Open),
		"gatewaykit.breaker.transitions": 1,
		"gatewaykit.breaker.rejections":  3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "upstream=pay") || !strings.Contains(logs.String(), "to=open") {
		t.Fatalf("state change log: %q", logs.String())
	}
	// After Close the gauge callback is gone.
	if err := brk.Close(); err != nil {
		t.Fatal(err)
	}
	rm = metricdata.ResourceMetrics{}
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && len(g.DataPoints) > 0 {
				t.Fatal("state gauge still reported after Close")
			}
		}
	}
}

func TestSpanEvents(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	brk := mustNew(t, breaker.WithName("pay"), breaker.TripAfter(1, time.Minute), breaker.OpenTimeout(time.Hour))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	for i := 0; i < 2; i++ {
		ctx, span := tp.Tracer("test").Start(context.Background(), "req")
		serve(h, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		span.End()
	}
	spans := rec.Ended()
	if len(spans) != 2 || len(spans[0].Events()) != 0 || len(spans[1].Events()) != 1 {
		t.Fatalf("want one event on the second (rejected) request; spans %d", len(spans))
	}
	ev := spans[1].Events()[0]
	if ev.Name != "gatewaykit.breaker.rejected" || len(ev.Attributes) != 2 || ev.Attributes[1].Value.AsString() != "open" {
		t.Fatalf("event %+v", ev)
	}
}

func TestIdleBreakersAreDropped(t *testing.T) {
	clk := newFakeClock()
	brk := mustNew(t, breaker.IdleTimeout(time.Minute), breaker.WithClock(clk), breaker.TripAfter(1, time.Minute),
		breaker.OpenTimeout(time.Hour), breaker.WithKey(func(r *http.Request) string { return r.URL.Path }))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	hit := func(path string) { serve(h, httptest.NewRequest(http.MethodGet, path, nil)) }
	hit("/a")
	hit("/b")
	hit("/bad")
	clk.Advance(61 * time.Second)
	hit("/c") // first sweep: marks everything as unused since now
	hit("/b")
	clk.Advance(61 * time.Second)
	hit("/d") // second sweep: /a was not used for a whole interval; /bad is open, so kept
	if n := brk.Len(); n != 4 {
		t.Fatalf("%d breakers kept, want 4 (/b, /bad, /c, /d)", n)
	}
	if brk.State("/bad") != breaker.Open {
		t.Fatal("an idle open breaker was dropped")
	}
}
