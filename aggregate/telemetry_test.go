package aggregate_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewaykit/gatewaykit/aggregate"
)

func counterValue(t *testing.T, rm metricdata.ResourceMetrics, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	want := attribute.NewSet(attrs...)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/gatewaykit/gatewaykit/aggregate" {
			continue
		}
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if dp.Attributes.Equals(&want) {
					return dp.Value
				}
			}
		}
	}
	return 0
}

func TestTelemetry(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) }()

	var traceparent string
	a := newAgg(t, []aggregate.Part{
		{Name: "user", Required: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			traceparent = r.Header.Get("Traceparent")
			jsonHandler(`{"id":1}`)(w, r)
		})},
		{Name: "orders", Handler: http.NotFoundHandler()},
	}, aggregate.WithMeterProvider(mp), aggregate.WithTracerProvider(tp))
	for range 2 {
		a.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		attrs []attribute.KeyValue
		want  int64
	}{
		{"gatewaykit.aggregate.parts", []attribute.KeyValue{attribute.String("part", "user"), attribute.String("outcome", "ok")}, 2},
		{"gatewaykit.aggregate.parts", []attribute.KeyValue{attribute.String("part", "orders"), attribute.String("outcome", "status")}, 2},
		{"gatewaykit.aggregate.responses", []attribute.KeyValue{attribute.String("outcome", "partial")}, 2},
		{"gatewaykit.aggregate.responses", []attribute.KeyValue{attribute.String("outcome", "complete")}, 0},
	} {
		if got := counterValue(t, rm, c.name, c.attrs...); got != c.want {
			t.Errorf("%s%v = %d, want %d", c.name, c.attrs, got, c.want)
		}
	}

	ended := spans.Ended()
	if len(ended) != 4 {
		t.Fatalf("%d spans, want 4 (2 parts x 2 requests)", len(ended))
	}
	var userSpan sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Name() == "aggregate user" {
			userSpan = s
		}
		if s.Name() == "aggregate orders" && s.Status().Description != "status" {
			t.Errorf("orders span status %+v", s.Status())
		}
	}
	if userSpan == nil || !strings.Contains(traceparent, userSpan.SpanContext().SpanID().String()) {
		t.Fatalf("traceparent %q does not name the part span", traceparent)
	}
}
