package ratelimit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHeadersConsistentWithDecisions(t *testing.T) {
	clk := newClock()
	l, err := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerMinute(3), Key: ratelimit.ByHeader("X-User"), Algorithm: ratelimit.FixedWindow}},
		ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	h := l.Wrap(okHandler)
	clk.Advance(15 * time.Second)
	req := func() *http.Request {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("X-User", "alice")
		return r
	}
	windowEnd := clk.Now().Truncate(time.Minute).Add(time.Minute).Unix()
	for i := 1; i <= 3; i++ {
		w := serve(h, req())
		if w.Code != 200 {
			t.Fatalf("request %d: status %d", i, w.Code)
		}
		want := map[string]string{
			"X-RateLimit-Limit":     "3",
			"X-RateLimit-Remaining": strconv.Itoa(3 - i),
			"X-RateLimit-Reset":     strconv.FormatInt(windowEnd, 10),
			"RateLimit-Policy":      `"user";q=3;w=60`,
			"RateLimit":             `"user";r=` + strconv.Itoa(3-i) + ";t=45",
		}
		for k, v := range want {
			if got := w.Header().Get(k); got != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, got, v)
			}
		}
	}
	w := serve(h, req())
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("4th request: status %d", w.Code)
	}
	if w.Header().Get("Retry-After") != "45" || w.Header().Get("X-RateLimit-Remaining") != "0" || w.Header().Get("RateLimit") != `"user";r=0;t=45` {
		t.Fatalf("429 headers: %v", w.Header())
	}
	if ct := w.Header().Get("Content-Type"); ct != gatewaykit.ProblemContentType {
		t.Fatalf("content type %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["status"] != float64(429) {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	// Retry-After is when a retry succeeds
	clk.Advance(44 * time.Second)
	if serve(h, req()).Code != 429 {
		t.Fatal("admitted before Retry-After")
	}
	clk.Advance(time.Second)
	if w := serve(h, req()); w.Code != 200 || w.Header().Get("X-RateLimit-Remaining") != "2" {
		t.Fatalf("after Retry-After: %d %v", w.Code, w.Header())
	}
}

func TestHeaderSelection(t *testing.T) {
	for _, c := range []struct {
		sel          ratelimit.Headers
		legacy, ietf bool
	}{{ratelimit.HeadersNone, false, false}, {ratelimit.HeadersLegacy, true, false}, {ratelimit.HeadersIETF, false, true}, {ratelimit.HeadersBoth, true, true}} {
		l, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(1), Key: ratelimit.Constant("x")}}, ratelimit.WithHeaders(c.sel))
		for _, code := range []int{200, 429} {
			w := serve(l.Wrap(okHandler), httptest.NewRequest("GET", "/", nil))
			if w.Code != code {
				t.Fatalf("status %d, want %d", w.Code, code)
			}
			if (w.Header().Get("X-RateLimit-Limit") != "") != c.legacy || (w.Header().Get("RateLimit") != "") != c.ietf ||
				(w.Header().Get("RateLimit-Policy") != "") != c.ietf {
				t.Errorf("selection %d status %d: headers %v", c.sel, code, w.Header())
			}
			if code == 429 && w.Header().Get("Retry-After") == "" {
				t.Errorf("selection %d: no Retry-After on 429", c.sel)
			}
		}
	}
}

func TestHTTPEmptyKeyAndFailClosed(t *testing.T) {
	deny, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(1), Key: ratelimit.BySubject()}})
	if w := serve(deny.Wrap(okHandler), httptest.NewRequest("GET", "/", nil)); w.Code != http.StatusForbidden ||
		w.Header().Get("Content-Type") != gatewaykit.ProblemContentType {
		t.Fatalf("no identity: %d %v", w.Code, w.Header())
	}
	var logs bytes.Buffer
	closed, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(1), Key: ratelimit.Constant("x")}},
		ratelimit.WithStore(failingStore{}), ratelimit.FailClosed(), ratelimit.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		ratelimit.WithLogInterval(time.Hour))
	for range 50 {
		w := serve(closed.Wrap(okHandler), httptest.NewRequest("GET", "/", nil))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
			t.Fatalf("fail closed: %d %v", w.Code, w.Header())
		}
		if strings.Contains(w.Body.String(), "refused") {
			t.Fatal("store error leaked into the body")
		}
	}
	if n := strings.Count(logs.String(), "store failed"); n != 1 {
		t.Fatalf("logged %d times in one interval, want 1:\n%s", n, logs.String())
	}
	open, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(1), Key: ratelimit.Constant("x")}},
		ratelimit.WithStore(failingStore{}), ratelimit.FailOpen(), ratelimit.WithLogger(slog.New(slog.DiscardHandler)))
	if w := serve(open.Wrap(okHandler), httptest.NewRequest("GET", "/", nil)); w.Code != 200 {
		t.Fatalf("fail open: %d", w.Code)
	}
}

func TestKeyFuncs(t *testing.T) {
	res, err := gatewaykit.NewClientIPResolver("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	withID := func(r *http.Request, id *gatewaykit.Identity) *http.Request {
		return r.WithContext(gatewaykit.WithIdentity(r.Context(), id))
	}
	req := func(remote string, hdr ...string) *http.Request {
		r := httptest.NewRequest("POST", "/p", nil)
		r.RemoteAddr = remote
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	cases := []struct {
		name string
		f    ratelimit.KeyFunc
		r    *http.Request
		want string
	}{
		{"ip peer", ratelimit.ByClientIP(nil), req("192.0.2.1:1234", "X-Forwarded-For", "203.0.113.9"), "192.0.2.1"},
		{"ip via trusted proxy", ratelimit.ByClientIP(res), req("10.1.2.3:1234", "X-Forwarded-For", "203.0.113.9"), "203.0.113.9"},
		{"ipv6 /64", ratelimit.ByClientIP(nil), req("[2001:db8:1:2:3:4:5:6]:443"), "2001:db8:1:2::/64"},
		{"ip prefix", ratelimit.ByClientIPPrefix(nil, 24, 48), req("192.0.2.77:1"), "192.0.2.0/24"},
		{"ip not an ip", ratelimit.ByClientIP(nil), req("pipe"), ""},
		{"header", ratelimit.ByHeader("x-api-key"), req("1.2.3.4:1", "X-Api-Key", "k1"), "k1"},
		{"header missing", ratelimit.ByHeader("x-api-key"), req("1.2.3.4:1"), ""},
		{"subject", ratelimit.BySubject(), withID(req("1.2.3.4:1"), &gatewaykit.Identity{Subject: "u1"}), "u1"},
		{"identity tier", ratelimit.ByIdentity(func(id *gatewaykit.Identity) string { return id.Tier }), withID(req("1.2.3.4:1"), &gatewaykit.Identity{Tier: "free"}), "free"},
		{"anonymous", ratelimit.BySubject(), req("1.2.3.4:1"), ""},
		{"method", ratelimit.ByMethod(), req("1.2.3.4:1"), "POST"},
		{"constant", ratelimit.Constant("orders"), req("1.2.3.4:1"), "orders"},
		{"composite", ratelimit.Composite(ratelimit.ByMethod(), ratelimit.ByHeader("X-Api-Key")), req("1.2.3.4:1", "X-Api-Key", "k"), "POST\x1fk"},
		{"composite empty part", ratelimit.Composite(ratelimit.ByMethod(), ratelimit.ByHeader("X-Api-Key")), req("1.2.3.4:1"), ""},
	}
	for _, c := range cases {
		if got := c.f(c.r); got != c.want {
			t.Errorf("%s: key %q, want %q", c.name, got, c.want)
		}
	}
	// ByRoute reads the pattern ServeMux matched
	mux := http.NewServeMux()
	var got string
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) { got = ratelimit.ByRoute()(r) })
	serve(mux, httptest.NewRequest("GET", "/orders/42", nil))
	if got != "GET /orders/{id}" {
		t.Errorf("route key %q", got)
	}
}

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	l, _ := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerMinute(2), Key: ratelimit.Constant("x")}}, ratelimit.WithMeterProvider(mp))
	for range 5 {
		_, _ = l.Allow(context.Background(), "k")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/gatewaykit/gatewaykit/ratelimit" {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			if m.Name != "gatewaykit.ratelimit.decisions" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				rule, _ := dp.Attributes.Value(attribute.Key("rule"))
				outcome, _ := dp.Attributes.Value(attribute.Key("outcome"))
				got[rule.AsString()+"/"+outcome.AsString()] = dp.Value
			}
		}
	}
	if got["user/allowed"] != 2 || got["user/rejected"] != 3 {
		t.Fatalf("decisions %v", got)
	}
}

func TestSpanAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	l, _ := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerMinute(1), Key: ratelimit.Constant("x")}})
	for _, want := range []string{"allowed", "rejected"} {
		ctx, span := tp.Tracer("test").Start(context.Background(), "req")
		_, _ = l.Allow(ctx, "k")
		span.End()
		ended := rec.Ended()
		got := map[string]string{}
		for _, kv := range ended[len(ended)-1].Attributes() {
			got[string(kv.Key)] = kv.Value.AsString()
		}
		if got["ratelimit.rule"] != "user" || got["ratelimit.outcome"] != want {
			t.Fatalf("span attributes %v, want outcome %s", got, want)
		}
	}
}
