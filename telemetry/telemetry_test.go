package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
)

// env is a gateway with the full telemetry setup over in-memory exporters.
type env struct {
	sdk      *telemetry.SDK
	spans    *tracetest.InMemoryExporter
	reader   *sdkmetric.ManualReader
	logs     *syncBuffer
	gateway  *httptest.Server
	upstream *httptest.Server

	mu          sync.Mutex
	traceparent string // what the upstream received
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{spans: tracetest.NewInMemoryExporter(), reader: sdkmetric.NewManualReader(), logs: &syncBuffer{}}
	sdk, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.ServiceName("test-gateway"),
		telemetry.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(e.spans)), telemetry.WithMetricReader(e.reader))
	if err != nil {
		t.Fatal(err)
	}
	e.sdk = sdk
	t.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })

	e.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.traceparent = r.Header.Get("Traceparent")
		e.mu.Unlock()
		_, _ = io.WriteString(w, `{"order":"42"}`)
	}))
	t.Cleanup(e.upstream.Close)

	opts := []telemetry.Option{telemetry.WithTracerProvider(sdk.TracerProvider), telemetry.WithMeterProvider(sdk.MeterProvider),
		telemetry.WithPropagators(sdk.Propagator)}
	tr, err := telemetry.NewTransport(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: tr}
	t.Cleanup(client.CloseIdleConnections)
	tel, err := telemetry.New(append(opts, telemetry.WithLogger(slog.New(slog.NewJSONHandler(e.logs, nil))))...)
	if err != nil {
		t.Fatal(err)
	}

	// A stand-in for auth, inside the route as the example composes it.
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "user-7"})))
		})
	}
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", e.upstream.URL+"/orders/"+r.PathValue("id"), nil)
		resp, err := client.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		telemetry.SetUpstream(r.Context(), "orders@"+req.URL.Host)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /api/orders/{id}", gatewaykit.Chain(auth, telemetry.RecordIdentity)(orders))
	mux.HandleFunc("POST /api/teapot", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	e.gateway = httptest.NewServer(gatewaykit.Chain(gatewaykit.RequestID, tel.Wrap)(mux))
	t.Cleanup(e.gateway.Close)
	return e
}

func TestSpansNestAndPropagate(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.gateway.URL + "/api/orders/8675309")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"order":"42"}` {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}

	spans := e.spans.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want server and client: %+v", len(spans), spans)
	}
	var server, client tracetest.SpanStub
	for _, s := range spans {
		switch s.SpanKind {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			client = s
		}
	}
	if server.Name != "GET /api/orders/{id}" {
		t.Fatalf("server span name %q", server.Name)
	}
	if !hasAttr(server.Attributes, "http.route", "/api/orders/{id}") {
		t.Fatalf("server span lacks http.route: %v", server.Attributes)
	}
	if client.SpanKind != trace.SpanKindClient {
		t.Fatal("no client span")
	}
	if client.SpanContext.TraceID() != server.SpanContext.TraceID() {
		t.Fatal("client and server spans are in different traces")
	}
	if client.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Fatal("the client span is not a child of the server span")
	}
	e.mu.Lock()
	tp := e.traceparent
	e.mu.Unlock()
	want := "00-" + client.SpanContext.TraceID().String() + "-" + client.SpanContext.SpanID().String() + "-01"
	if tp != want {
		t.Fatalf("upstream got traceparent %q, want %q", tp, want)
	}

	// The metrics of both sides, with the route and status as attributes.
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	srv := findMetric(rm, "http.server.request.duration")
	if srv == nil {
		t.Fatalf("no http.server.request.duration in %v", metricNames(rm))
	}
	h, ok := srv.Data.(metricdata.Histogram[float64])
	if !ok || len(h.DataPoints) != 1 {
		t.Fatalf("server duration data %T %+v", srv.Data, srv.Data)
	}
	dp := h.DataPoints[0]
	if r, _ := dp.Attributes.Value("http.route"); r.AsString() != "/api/orders/{id}" {
		t.Fatalf("http.route = %q", r.AsString())
	}
	if s, _ := dp.Attributes.Value("http.response.status_code"); s.AsInt64() != 200 || dp.Count != 1 {
		t.Fatalf("status %v count %d", s, dp.Count)
	}
	for _, a := range dp.Attributes.ToSlice() {
		if strings.Contains(a.Value.String(), "8675309") || a.Key == "url.path" {
			t.Fatalf("high-cardinality metric attribute %v", a)
		}
	}
	if findMetric(rm, "http.client.request.duration") == nil {
		t.Fatalf("no client metrics in %v", metricNames(rm))
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.gateway.URL+"/api/orders/42", nil)
	req.Header.Set("X-Request-ID", "req-abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, target := range []struct{ method, path string }{{"POST", "/api/teapot"}, {"GET", "/nowhere/secret-token"}} {
		r, _ := http.NewRequest(target.method, e.gateway.URL+target.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	lines := e.logs.lines(t)
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3", len(lines))
	}
	server := serverSpan(t, e)
	first := lines[0]
	for k, want := range map[string]any{
		"msg": "request", "level": "INFO", "method": "GET", "route": "/api/orders/{id}", "path": "/api/orders/{id}",
		"status": float64(200), "bytes": float64(len(`{"order":"42"}`)), "request_id": "req-abc-123",
		"subject": "user-7", "upstream": "orders@" + strings.TrimPrefix(e.upstream.URL, "http://"),
		"trace_id": server.SpanContext.TraceID().String(), "span_id": server.SpanContext.SpanID().String(),
	} {
		if first[k] != want {
			t.Errorf("%s = %v (%T), want %v", k, first[k], first[k], want)
		}
	}
	if d, ok := first["duration"].(float64); !ok || d <= 0 {
		t.Errorf("duration = %v", first["duration"])
	}
	if l := lines[1]; l["status"] != float64(418) || l["route"] != "/api/teapot" || l["bytes"] != float64(0) || l["subject"] != nil {
		t.Errorf("teapot line %v", l)
	}
	if l := lines[2]; l["status"] != float64(404) || l["route"] != "" || l["path"] != "" || l["request_id"] == nil {
		t.Errorf("unmatched line %v", l)
	}
	// An unmatched route names the span by method only: never the raw path.
	for _, s := range e.spans.GetSpans() {
		if strings.Contains(s.Name, "secret") {
			t.Fatalf("span named after a raw path: %q", s.Name)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t)
	counter, err := e.sdk.MeterProvider.Meter("test").Int64Counter("gatewaykit.test.decisions")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(context.Background(), 3, metricAttr("outcome", "allowed"))
	resp, err := http.Get(e.gateway.URL + "/api/orders/42")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	rec := httptest.NewRecorder()
	e.sdk.Metrics.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{
		`http_server_request_duration_seconds_bucket{`,
		`http_route="/api/orders/{id}"`,
		`http_response_status_code="200"`,
		`http_client_request_duration_seconds_count{`,
		`gatewaykit_test_decisions_total{`,
		`outcome="allowed"`,
		`go_goroutines `,
		`service_name="test-gateway"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
}

func TestResponseRecorder(t *testing.T) {
	logs := &syncBuffer{}
	tel, err := telemetry.New(telemetry.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))), telemetry.AccessLogLevel(slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		h      http.HandlerFunc
		status int
		bytes  int
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}, 200, 0},
		{"write without header", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }, 200, 5},
		{"informational first", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "x")
		}, 201, 1},
		{"read from", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(w, strings.NewReader("abcdef"))
		}, 200, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tel.Wrap(tt.h))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			lines := logs.lines(t)
			l := lines[len(lines)-1]
			if l["status"] != float64(tt.status) || l["bytes"] != float64(tt.bytes) || l["level"] != "WARN" {
				t.Fatalf("line %v, want status %d bytes %d at WARN", l, tt.status, tt.bytes)
			}
		})
	}
}

func TestWithoutAccessLog(t *testing.T) {
	logs := &syncBuffer{}
	tel, err := telemetry.New(telemetry.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))), telemetry.WithoutAccessLog())
	if err != nil {
		t.Fatal(err)
	}
	tel.Wrap(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if len(logs.lines(t)) != 0 {
		t.Fatal("logged with WithoutAccessLog")
	}
}

func TestAnnotationsOutsideMiddleware(t *testing.T) {
	// No-ops, no panics.
	telemetry.SetUpstream(context.Background(), "x")
	telemetry.SetSubject(context.Background(), "y")
	rec := httptest.NewRecorder()
	telemetry.RecordIdentity(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 404 {
		t.Fatal(rec.Code)
	}
}

func TestUpstreamsAccumulate(t *testing.T) {
	logs := &syncBuffer{}
	tel, err := telemetry.New(telemetry.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	h := tel.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var wg sync.WaitGroup
		for _, u := range []string{"users@a:1", "orders@b:2", "users@a:1"} {
			wg.Go(func() { telemetry.SetUpstream(r.Context(), u) })
		}
		wg.Wait()
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	up, _ := logs.lines(t)[0]["upstream"].(string)
	parts := strings.Split(up, ",")
	if len(parts) != 2 || !strings.Contains(up, "users@a:1") || !strings.Contains(up, "orders@b:2") {
		t.Fatalf("upstream %q", up)
	}
}

func TestConstruction(t *testing.T) {
	for name, opt := range map[string]telemetry.Option{
		"nil tracer":     telemetry.WithTracerProvider(nil),
		"nil meter":      telemetry.WithMeterProvider(nil),
		"nil propagator": telemetry.WithPropagators(nil),
		"nil logger":     telemetry.WithLogger(nil),
		"nil redaction":  telemetry.WithPathRedaction(nil),
		"nil option":     nil,
	} {
		if _, err := telemetry.New(opt); err == nil {
			t.Errorf("New: %s accepted", name)
		}
		if _, err := telemetry.NewTransport(nil, opt); err == nil {
			t.Errorf("NewTransport: %s accepted", name)
		}
	}
	for name, opt := range map[string]telemetry.SetupOption{
		"empty service": telemetry.ServiceName(""),
		"nil exporter":  telemetry.WithSpanExporter(nil),
		"nil processor": telemetry.WithSpanProcessor(nil),
		"nil reader":    telemetry.WithMetricReader(nil),
		"nil sampler":   telemetry.WithSampler(nil),
		"nil registry":  telemetry.WithRegistry(nil),
		"nil option":    nil,
	} {
		if _, err := telemetry.Setup(opt); err == nil {
			t.Errorf("Setup: %s accepted", name)
		}
	}
}

func TestRoute(t *testing.T) {
	for in, want := range map[string]string{"": "", "GET /a/{id}": "/a/{id}", "/x/": "/x/", "GET example.com/y": "/y"} {
		if got := telemetry.Route(in); got != want {
			t.Errorf("Route(%q) = %q, want %q", in, got, want)
		}
	}
}

func serverSpan(t *testing.T, e *env) tracetest.SpanStub {
	t.Helper()
	for _, s := range e.spans.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			return s
		}
	}
	t.Fatal("no server span")
	return tracetest.SpanStub{}
}

func hasAttr(attrs []attribute.KeyValue, k, v string) bool {
	for _, a := range attrs {
		if string(a.Key) == k && a.Value.String() == v {
			return true
		}
	}
	return false
}

func findMetric(rm metricdata.ResourceMetrics, name string) *metricdata.Metrics {
	for _, sm := range rm.ScopeMetrics {
		for i := range sm.Metrics {
			if sm.Metrics[i].Name == name {
				return &sm.Metrics[i]
			}
		}
	}
	return nil
}

func metricNames(rm metricdata.ResourceMetrics) []string {
	var out []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out = append(out, m.Name)
		}
	}
	return out
}

func metricAttr(k, v string) metric.AddOption {
	return metric.WithAttributes(attribute.String(k, v))
}

// TestSetupBatchExporterShutdown: the batching processor's goroutine stops on Shutdown (goleak
// checks in TestMain) after flushing what it holds.
func TestSetupBatchExporterShutdown(t *testing.T) {
	exp := &countingExporter{}
	sdk, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.WithSpanExporter(exp),
		telemetry.WithSampler(sdktrace.AlwaysSample()), telemetry.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	_, span := sdk.TracerProvider.Tracer("test").Start(context.Background(), "work")
	span.End()
	if err := sdk.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := exp.n.Load(); n != 1 {
		t.Fatalf("%d spans flushed, want 1", n)
	}
}

// countingExporter counts exported spans (tracetest.InMemoryExporter forgets them on Shutdown).
type countingExporter struct{ n atomic.Int64 }

func (c *countingExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.n.Add(int64(len(spans)))
	return nil
}

func (c *countingExporter) Shutdown(context.Context) error { return nil }

// TestSetupGlobals: by default Setup installs its providers and propagator as the OTel globals.
func TestSetupGlobals(t *testing.T) {
	prevTP, prevMP, prevProp := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	defer func() {
		otel.SetTracerProvider(prevTP)
		otel.SetMeterProvider(prevMP)
		otel.SetTextMapPropagator(prevProp)
	}()
	sdk, err := telemetry.Setup()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sdk.Shutdown(context.Background()) }()
	if otel.GetTracerProvider() != trace.TracerProvider(sdk.TracerProvider) || otel.GetMeterProvider() != metric.MeterProvider(sdk.MeterProvider) {
		t.Fatal("providers not installed")
	}
	if f := otel.GetTextMapPropagator().Fields(); len(f) < 2 {
		t.Fatalf("propagator fields %v", f)
	}
}

func TestIncomingTraceContext(t *testing.T) {
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent := "00-" + clientTrace + "-00f067aa0ba902b7-01"
	for _, tt := range []struct {
		name  string
		trust bool
	}{{"public endpoint by default", false}, {"trusted callers", true}} {
		t.Run(tt.name, func(t *testing.T) {
			spans := tracetest.NewInMemoryExporter()
			sdk, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans)),
				telemetry.WithRegistry(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sdk.Shutdown(context.Background()) }()
			opts := []telemetry.Option{telemetry.WithTracerProvider(sdk.TracerProvider), telemetry.WithMeterProvider(sdk.MeterProvider),
				telemetry.WithPropagators(sdk.Propagator), telemetry.WithoutAccessLog()}
			if tt.trust {
				opts = append(opts, telemetry.TrustIncomingTrace())
			}
			tel, err := telemetry.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Traceparent", traceparent)
			tel.Wrap(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), req)
			got := spans.GetSpans()
			if len(got) != 1 {
				t.Fatalf("%d spans", len(got))
			}
			s := got[0]
			joined := s.SpanContext.TraceID().String() == clientTrace
			if joined != tt.trust {
				t.Fatalf("trace %s, client's %s, want joined=%v", s.SpanContext.TraceID(), clientTrace, tt.trust)
			}
			if !tt.trust && (len(s.Links) != 1 || s.Links[0].SpanContext.TraceID().String() != clientTrace) {
				t.Fatalf("public endpoint span links %+v, want the client's context", s.Links)
			}
		})
	}
}

// A public endpoint must not carry the client's W3C baggage into the request context: the
// gateway's transport would inject it into every upstream call, so a client could set the
// baggage entries internal services trust (tenant, feature flags). Trusted callers keep it.
func TestIncomingBaggage(t *testing.T) {
	for _, tt := range []struct {
		name  string
		trust bool
	}{{"public endpoint by default", false}, {"trusted callers", true}} {
		t.Run(tt.name, func(t *testing.T) {
			sdk, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.WithRegistry(prometheus.NewRegistry()))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sdk.Shutdown(context.Background()) }()
			opts := []telemetry.Option{telemetry.WithTracerProvider(sdk.TracerProvider), telemetry.WithMeterProvider(sdk.MeterProvider),
				telemetry.WithPropagators(sdk.Propagator)}
			var gotBaggage atomic.Value
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotBaggage.Store(r.Header.Get("Baggage"))
			}))
			defer upstream.Close()
			tr, err := telemetry.NewTransport(nil, opts...)
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Transport: tr}
			defer client.CloseIdleConnections()
			var inCtx string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inCtx = baggage.FromContext(r.Context()).Member("tenant").Value()
				req, _ := http.NewRequestWithContext(r.Context(), "GET", upstream.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_ = resp.Body.Close()
			})
			if tt.trust {
				opts = append(opts, telemetry.TrustIncomingTrace())
			}
			tel, err := telemetry.New(append(opts, telemetry.WithoutAccessLog())...)
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Baggage", "tenant=admin")
			tel.Wrap(h).ServeHTTP(httptest.NewRecorder(), req)
			up, _ := gotBaggage.Load().(string)
			if tt.trust {
				if inCtx != "admin" || !strings.Contains(up, "tenant=admin") {
					t.Fatalf("trusted: baggage in context %q, at the upstream %q; want tenant=admin in both", inCtx, up)
				}
				return
			}
			if inCtx != "" || up != "" {
				t.Fatalf("public endpoint: client baggage in context %q, at the upstream %q; want none", inCtx, up)
			}
		})
	}
}

// A Setup that fails must not leave a span exporter's batching goroutine running: the caller
// gets no SDK to shut down.
func TestSetupErrorLeaksNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	if _, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.WithSpanExporter(&countingExporter{}),
		telemetry.ServiceName("")); err == nil {
		t.Fatal("Setup with an empty service name succeeded")
	}
	if err := goleak.Find(before); err != nil {
		t.Fatalf("failed Setup left goroutines behind: %v", err)
	}
}
