package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/telemetry"
)

// Example installs the SDK, puts the telemetry middleware around the ServeMux, traces upstream
// calls with NewTransport, and serves /metrics. The access log line is printed without its
// time, duration and trace IDs so the output is stable.
func Example() {
	sdk, err := telemetry.Setup(telemetry.ServiceName("shop-gateway"), telemetry.NoGlobals())
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	providers := []telemetry.Option{telemetry.WithTracerProvider(sdk.TracerProvider),
		telemetry.WithMeterProvider(sdk.MeterProvider), telemetry.WithPropagators(sdk.Propagator)}

	upstreamTransport, err := telemetry.NewTransport(http.DefaultTransport, providers...)
	if err != nil {
		log.Fatal(err)
	}
	_ = upstreamTransport // give it to the proxy: httputil.ReverseProxy{Transport: upstreamTransport}

	stable := func(_ []string, a slog.Attr) slog.Attr {
		switch a.Key {
		case slog.TimeKey, "duration", "trace_id", "span_id":
			return slog.Attr{}
		}
		return a
	}
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: stable}))
	tel, err := telemetry.New(append(providers, telemetry.WithLogger(logger))...)
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		telemetry.SetUpstream(r.Context(), "orders@10.0.0.5:9001")
		_, _ = io.WriteString(w, `{"id":"`+r.PathValue("id")+`"}`)
	})
	gateway := http.NewServeMux()
	gateway.Handle("GET /metrics", sdk.Metrics) // better on an internal listener
	gateway.Handle("/", gatewaykit.Chain(gatewaykit.RequestID, tel.Wrap)(mux))

	req := httptest.NewRequest("GET", "/api/orders/42", nil)
	req.Header.Set("X-Request-ID", "req-1")
	gateway.ServeHTTP(httptest.NewRecorder(), req)

	rec := httptest.NewRecorder()
	gateway.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output:
	// level=INFO msg=request method=GET route=/api/orders/{id} path=/api/orders/{id} status=200 bytes=11 request_id=req-1 upstream=orders@10.0.0.5:9001
	// 200 text/plain; version=0.0.4; charset=utf-8; escaping=underscores
}
