package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit/telemetry"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}

// BenchmarkTelemetry measures the per-request cost of the middleware over a routed ServeMux, in
// the same run as the bare mux and as bare otelhttp (same SDK): with the full SDK (spans recorded to a no-op exporter, metrics
// aggregated, JSON access log to io.Discard), with the access log off, and with the no-op
// OpenTelemetry globals.
func BenchmarkTelemetry(b *testing.B) {
	sdk, err := telemetry.Setup(telemetry.NoGlobals(),
		telemetry.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())),
		telemetry.WithMetricReader(sdkmetric.NewManualReader()))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	providers := []telemetry.Option{telemetry.WithTracerProvider(sdk.TracerProvider),
		telemetry.WithMeterProvider(sdk.MeterProvider), telemetry.WithPropagators(sdk.Propagator)}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	full := must(telemetry.New(append(providers, telemetry.WithLogger(logger))...))
	noLog := must(telemetry.New(append(providers, telemetry.WithoutAccessLog())...))
	noop := must(telemetry.New(telemetry.WithLogger(logger)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"id":"42"}`))
	})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"baseline-mux", mux},
		{"otelhttp-only", otelhttp.NewHandler(mux, "gateway", otelhttp.WithTracerProvider(sdk.TracerProvider),
			otelhttp.WithMeterProvider(sdk.MeterProvider), otelhttp.WithPropagators(sdk.Propagator))},
		{"sdk+log", full.Wrap(mux)}, {"sdk-nolog", noLog.Wrap(mux)}, {"noop+log", noop.Wrap(mux)},
	} {
		b.Run(c.name, func(b *testing.B) {
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/api/orders/42", nil)
				clear(w.h)
				c.h.ServeHTTP(w, req)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
