package telemetry_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gatewaykit/gatewaykit/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// capture is a slog.Handler that keeps the records it is given.
type capture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *capture) WithGroup(string) slog.Handler            { return c }

func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}

// lines returns each record's attributes as strings (absent keys are absent from the map).
func (c *capture) lines() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, r := range c.recs {
		m := map[string]string{"msg": r.Message}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	return out
}

// Personal data and secrets the test requests carry in their paths, queries and hosts.
var secrets = []string{"alice", "bob", "example.com", "8675309", "s3cr3t"}

// routedMux has a route with two path values and a prefix route.
func routedMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/users/{user}/orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /files/", func(w http.ResponseWriter, r *http.Request) {})
	return mux
}

// The requests of TestAccessLogPath, in order, and what each mode logs as path for each.
var pathRequests = []struct {
	name, method, target string
	status               int
}{
	{"matched", "GET", "/api/users/alice@example.com/orders/8675309?token=s3cr3t&q=x", 200},
	{"prefix", "GET", "/files/alice/8675309.pdf?sig=s3cr3t", 200},
	{"unmatched", "GET", "/v0/users/bob@example.com?token=s3cr3t", 404},
	{"wrong method", "POST", "/api/users/alice@example.com/orders/8675309", 405},
}

func TestAccessLogPath(t *testing.T) {
	keepID := func(r *http.Request) string {
		return strings.Replace(telemetry.Route(r.Pattern), "{id}", r.PathValue("id"), 1)
	}
	for _, tt := range []struct {
		name  string
		opts  []telemetry.Option
		paths []string // per pathRequests entry
		query bool     // the query field is expected (when the request has a query)
		clean bool     // no secret anywhere in the line
	}{
		{"default: route only", nil,
			[]string{"/api/users/{user}/orders/{id}", "/files/", "", ""}, false, true},
		{"RoutePath", []telemetry.Option{telemetry.WithPathRedaction(telemetry.RoutePath)},
			[]string{"/api/users/{user}/orders/{id}", "/files/", "", ""}, false, true},
		{"RouteOrRawPath", []telemetry.Option{telemetry.WithPathRedaction(telemetry.RouteOrRawPath)},
			[]string{"/api/users/{user}/orders/{id}", "/files/", "/v0/users/bob@example.com",
				"/api/users/alice@example.com/orders/8675309"}, false, false},
		{"RawPath", []telemetry.Option{telemetry.WithPathRedaction(telemetry.RawPath)},
			[]string{"/api/users/alice@example.com/orders/8675309", "/files/alice/8675309.pdf", "/v0/users/bob@example.com",
				"/api/users/alice@example.com/orders/8675309"}, false, false},
		{"custom: keep the order ID", []telemetry.Option{telemetry.WithPathRedaction(keepID)},
			[]string{"/api/users/{user}/orders/8675309", "/files/", "", ""}, false, false},
		{"LogQuery", []telemetry.Option{telemetry.LogQuery()},
			[]string{"/api/users/{user}/orders/{id}", "/files/", "", ""}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &capture{}
			tel, err := telemetry.New(append(tt.opts, telemetry.WithLogger(slog.New(logs)))...)
			if err != nil {
				t.Fatal(err)
			}
			h := tel.Wrap(routedMux())
			for _, req := range pathRequests {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(req.method, req.target, nil))
				if rec.Code != req.status {
					t.Fatalf("%s: status %d, want %d", req.name, rec.Code, req.status)
				}
			}
			lines := logs.lines()
			if len(lines) != len(pathRequests) {
				t.Fatalf("%d lines, want %d", len(lines), len(pathRequests))
			}
			for i, req := range pathRequests {
				l := lines[i]
				if p, ok := l["path"]; !ok || p != tt.paths[i] {
					t.Errorf("%s: path %q (present %v), want %q", req.name, p, ok, tt.paths[i])
				}
				wantQuery := ""
				if _, q, ok := strings.Cut(req.target, "?"); ok && tt.query {
					wantQuery = q
				}
				if q, ok := l["query"]; q != wantQuery || ok != (wantQuery != "") {
					t.Errorf("%s: query %q (present %v), want %q", req.name, q, ok, wantQuery)
				}
				if !tt.query {
					for _, v := range l {
						if strings.Contains(v, "s3cr3t") {
							t.Errorf("%s: the query string was logged: %v", req.name, l)
						}
					}
				}
				if tt.clean {
					for k, v := range l {
						for _, s := range secrets {
							if strings.Contains(v, s) {
								t.Errorf("%s: %s=%q carries %q", req.name, k, v, s)
							}
						}
					}
				}
			}
		})
	}
}

// TestServerMetricsBounded: whatever the access log mode, the HTTP server metrics carry the
// route pattern and never a raw path, query or client-chosen host: a request with new IDs, an
// unknown path or a made-up Host header adds no time series. The control shows what the Host
// header does to otelhttp's metrics without Setup's view.
func TestServerMetricsBounded(t *testing.T) {
	for _, tt := range []struct {
		name    string
		setup   bool // Setup's provider (with ServerMetricsView) rather than a bare one
		bounded bool
	}{{"Setup", true, true}, {"control: bare MeterProvider", false, false}} {
		t.Run(tt.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			var mp *sdkmetric.MeterProvider
			if tt.setup {
				sdk, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.WithMetricReader(reader),
					telemetry.WithRegistry(prometheus.NewRegistry()))
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = sdk.Shutdown(context.Background()) }()
				mp = sdk.MeterProvider
			} else {
				mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				defer func() { _ = mp.Shutdown(context.Background()) }()
			}
			tel, err := telemetry.New(telemetry.WithMeterProvider(mp), telemetry.WithPathRedaction(telemetry.RawPath),
				telemetry.LogQuery(), telemetry.WithLogger(slog.New(&capture{})))
			if err != nil {
				t.Fatal(err)
			}
			h := tel.Wrap(routedMux())
			for i := range 20 {
				for _, req := range pathRequests {
					r := httptest.NewRequest(req.method, strings.Replace(req.target, "8675309", strconv.Itoa(8675309+i), 1), nil)
					r.Host = "bob-" + strconv.Itoa(i) + ".example.com"
					h.ServeHTTP(httptest.NewRecorder(), r)
				}
			}
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, sm := range rm.ScopeMetrics {
				if sm.Scope.Name != otelhttp.ScopeName {
					continue
				}
				for _, m := range sm.Metrics {
					sets := attributeSets(t, m)
					seen++
					leaky := false
					for _, set := range sets {
						for _, a := range set.ToSlice() {
							switch a.Key {
							case "url.path", "url.full", "url.query", "server.address", "server.port":
								leaky = true
							}
							for _, s := range secrets {
								leaky = leaky || strings.Contains(a.Value.String(), s)
							}
						}
					}
					// Routes: two patterns (200) and none (404, 405).
					if tt.bounded && (leaky || len(sets) != 4) {
						t.Errorf("%s: %d attribute sets (want 4), leaky %v", m.Name, len(sets), leaky)
					}
					if !tt.bounded && (!leaky || len(sets) < 20) {
						t.Errorf("control %s: %d attribute sets, leaky %v: the Host header did not reach the metric", m.Name, len(sets), leaky)
					}
				}
			}
			if seen != 3 {
				t.Fatalf("%d otelhttp server metrics, want 3 (duration, request and response body size)", seen)
			}
		})
	}
}

// attributeSets returns the attribute sets of m's data points.
func attributeSets(t *testing.T, m metricdata.Metrics) []attribute.Set {
	t.Helper()
	var out []attribute.Set
	switch d := m.Data.(type) {
	case metricdata.Histogram[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Histogram[int64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Sum[int64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	case metricdata.Sum[float64]:
		for _, dp := range d.DataPoints {
			out = append(out, dp.Attributes)
		}
	default:
		t.Fatalf("%s: unexpected data %T", m.Name, m.Data)
	}
	return out
}

// TestConnectRedirectIsNoRoute: for a CONNECT request, ServeMux's trailing-slash redirect sets
// r.Pattern to the client's own path plus "/" (not a pattern). That path must reach neither the
// default access log (path, route) nor the http.route metric attribute, where every new path
// would open new time series.
func TestConnectRedirectIsNoRoute(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	logs := &capture{}
	tel, err := telemetry.New(telemetry.WithMeterProvider(mp), telemetry.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/docs/{name}/", func(w http.ResponseWriter, r *http.Request) {})
	h := tel.Wrap(mux)
	for i := range 5 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodConnect, "/docs/alice-"+strconv.Itoa(i)+"@example.com", nil))
		if rec.Code != http.StatusTemporaryRedirect {
			t.Fatalf("status %d, want the mux's 307", rec.Code)
		}
	}
	// A CONNECT that genuinely matched keeps its route.
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodConnect, "/docs/bob/", nil))

	lines := logs.lines()
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6", len(lines))
	}
	for i, l := range lines[:5] {
		if l["path"] != "" || l["route"] != "" {
			t.Errorf("request %d: path %q, route %q, want both empty", i, l["path"], l["route"])
		}
	}
	if l := lines[5]; l["path"] != "/docs/{name}/" || l["route"] != "/docs/{name}/" {
		t.Errorf("matched CONNECT: path %q, route %q, want the pattern", l["path"], l["route"])
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range attributeSets(t, m) {
				if v, ok := set.Value("http.route"); ok && strings.Contains(v.AsString(), "alice") {
					t.Errorf("%s: http.route %q is the client's path", m.Name, v.AsString())
				}
			}
		}
	}
}
