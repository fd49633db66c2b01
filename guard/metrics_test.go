package guard_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit/guard"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestRejectionMetrics proves each guard counts its rejections in gatewaykit.guard.rejections
// with the documented guard.check and guard.reason attributes, and nothing else.
func TestRejectionMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	m := guard.WithMeterProvider(mp)

	paths := must(guard.NewPathSafety(m))
	ips := must(guard.NewIPFilter(guard.DenyCIDRs("192.0.2.0/24"), m))
	limits := must(guard.NewLimits(guard.MaxURLLength(32), m))
	cors := must(guard.NewCORS([]string{"https://a.example"}, m))
	busy := must(guard.NewConcurrency(1, guard.QueueSize(0), m))

	serve := func(h http.Handler, req *http.Request) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	serve(paths.Wrap(okHandler), httptest.NewRequest("GET", "/a/%2e%2e/b", nil))
	serve(paths.Wrap(okHandler), httptest.NewRequest("GET", "/a/%2e%2e/c", nil))
	serve(paths.Wrap(okHandler), httptest.NewRequest("GET", "//x", nil))
	serve(paths.Wrap(okHandler), httptest.NewRequest("GET", "/fine", nil))
	denied := httptest.NewRequest("GET", "/", nil)
	denied.RemoteAddr = "192.0.2.1:1"
	serve(ips.Wrap(okHandler), denied)
	serve(limits.Wrap(okHandler), httptest.NewRequest("GET", "/"+strings.Repeat("a", 40), nil))
	pre := httptest.NewRequest("OPTIONS", "/", nil)
	pre.Header.Set("Origin", "https://evil.example")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	serve(cors.Wrap(okHandler), pre)
	g := newGate()
	first := serveAsync(busy.Wrap(g), httptest.NewRequest("GET", "/", nil))
	waitFor(t, "first in flight", func() bool { return g.now.Load() == 1 })
	if c := serve(busy.Wrap(g), httptest.NewRequest("GET", "/", nil)); c != 503 {
		t.Fatalf("concurrency: %d", c)
	}
	close(g.release)
	<-first

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != guard.ScopeName {
			t.Fatalf("scope %q", sm.Scope.Name)
		}
		for _, mt := range sm.Metrics {
			if mt.Name != "gatewaykit.guard.rejections" || mt.Unit != "{request}" {
				t.Fatalf("unexpected metric %q unit %q", mt.Name, mt.Unit)
			}
			for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				if dp.Attributes.Len() != 2 {
					t.Fatalf("attributes %v", dp.Attributes.ToSlice())
				}
				check, _ := dp.Attributes.Value(attribute.Key("guard.check"))
				reason, _ := dp.Attributes.Value(attribute.Key("guard.reason"))
				got[[2]string{check.AsString(), reason.AsString()}] += dp.Value
			}
		}
	}
	want := map[[2]string]int64{
		{"path", "encoded_dot_segment"}: 2,
		{"path", "empty_segment"}:       1,
		{"ip", "denied"}:                1,
		{"size", "url"}:                 1,
		{"cors", "origin"}:              1,
		{"concurrency", "queue_full"}:   1,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%v = %d, want %d", k, got[k], v)
		}
	}
}
