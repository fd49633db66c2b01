package aggregate_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/aggregate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func jsonHandler(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func newAgg(t *testing.T, parts []aggregate.Part, opts ...aggregate.Option) *aggregate.Aggregator {
	t.Helper()
	a, err := aggregate.New(parts, append([]aggregate.Option{aggregate.WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func server(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, h http.Handler, target string, id *gatewaykit.Identity) (*httptest.ResponseRecorder, map[string]json.RawMessage) {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	if id != nil {
		r = r.WithContext(gatewaykit.WithIdentity(r.Context(), id))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]json.RawMessage
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("body %s: %v", w.Body.String(), err)
		}
	}
	return w, m
}

var alice = &gatewaykit.Identity{Subject: "alice", Roles: []string{"customer", "beta"}}

// dashboard is the design brief's aggregate over network upstreams.
func TestDashboard(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]*http.Request{}
	mux := http.NewServeMux()
	record := func(name string, h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen[name] = r
			mu.Unlock()
			h(w, r)
		}
	}
	mux.HandleFunc("GET /users/{id}", record("user", func(w http.ResponseWriter, r *http.Request) {
		jsonHandler(`{"id":"`+r.PathValue("id")+`","name":"Alice"}`)(w, r)
	}))
	mux.HandleFunc("GET /orders", record("orders", jsonHandler(`[{"id":1}]`)))
	mux.HandleFunc("GET /recommendations", record("recommendations", jsonHandler(`{"items":["book"]}`)))
	base := server(t, mux)
	a := newAgg(t, []aggregate.Part{
		{Name: "user", URL: base + "/users/{sub}", Required: true},
		{Name: "orders", URL: base + "/orders?user_id={sub}"},
		{Name: "recommendations", URL: base + "/recommendations?user_id={sub}&limit=5"},
	}, aggregate.WithVars(aggregate.IdentityVars))

	r := httptest.NewRequest("GET", "/api/dashboard", nil)
	r.Header.Set("X-User-ID", "mallory") // spoofed: must not reach the parts
	r.Header.Set("X-User-Roles", "admin")
	ctx := gatewaykit.WithIdentity(gatewaykit.WithRequestID(r.Context(), "req-1"), alice)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: trace.FlagsSampled})
	ctx = trace.ContextWithSpanContext(ctx, sc)
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r.WithContext(ctx))

	want := `{"user":{"id":"alice","name":"Alice"},"orders":[{"id":1}],"recommendations":{"items":["book"]}}`
	if w.Code != 200 || w.Body.String() != want {
		t.Fatalf("got %d %s, want %s", w.Code, w.Body.String(), want)
	}
	if w.Header().Get(aggregate.PartialHeader) != "" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", w.Header())
	}
	for name, req := range seen {
		if got := req.Header.Get("X-User-ID"); got != "alice" {
			t.Errorf("%s: X-User-ID %q", name, got)
		}
		if got := req.Header.Get("X-User-Roles"); got != "customer,beta" {
			t.Errorf("%s: X-User-Roles %q", name, got)
		}
		if got := req.Header.Get("X-Request-ID"); got != "req-1" {
			t.Errorf("%s: X-Request-ID %q", name, got)
		}
		if tp := req.Header.Get("Traceparent"); !strings.HasPrefix(tp, "00-"+sc.TraceID().String()+"-") {
			t.Errorf("%s: traceparent %q does not continue trace %s", name, tp, sc.TraceID())
		}
	}
	if got := seen["orders"].URL.RawQuery; got != "user_id=alice" {
		t.Errorf("orders query %q", got)
	}
	if len(seen) != 3 {
		t.Fatalf("parts called: %v", seen)
	}
}

// TestPartsRunConcurrently proves concurrency without timing: every part waits until all three
// have started, which can only happen if they run at the same time.
func TestPartsRunConcurrently(t *testing.T) {
	var arrived sync.WaitGroup
	arrived.Add(3)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	barrier := func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		select {
		case <-all:
			jsonHandler(`{"ok":true}`)(w, r)
		case <-r.Context().Done():
		}
	}
	a := newAgg(t, []aggregate.Part{
		{Name: "a", Handler: http.HandlerFunc(barrier), Required: true},
		{Name: "b", Handler: http.HandlerFunc(barrier), Required: true},
		{Name: "c", URL: server(t, http.HandlerFunc(barrier)) + "/", Required: true},
	}, aggregate.WithTimeout(10*time.Second))
	w, m := get(t, a, "/", nil)
	if w.Code != 200 || len(m) != 3 {
		t.Fatalf("got %d %s", w.Code, w.Body.String())
	}
}

// TestTotalTimeIsTheSlowestPart is the timing check, with generous margins: three parts
// of 300 ms each finish well under their 900 ms sum.
func TestTotalTimeIsTheSlowestPart(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(300 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		jsonHandler(`{}`)(w, r)
	})
	base := server(t, slow)
	a := newAgg(t, []aggregate.Part{
		{Name: "a", URL: base + "/a", Required: true},
		{Name: "b", URL: base + "/b", Required: true},
		{Name: "c", Handler: slow, Required: true},
	})
	start := time.Now()
	w, _ := get(t, a, "/", nil)
	if took := time.Since(start); w.Code != 200 || took >= 850*time.Millisecond {
		t.Fatalf("status %d after %v; three 300 ms parts must overlap", w.Code, took)
	}
}

func TestFailures(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", jsonHandler(`{"v":1}`))
	mux.HandleFunc("/boom", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database password is hunter2", http.StatusInternalServerError)
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<h1>hi</h1>")
	})
	mux.HandleFunc("/badjson", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"v":`)
	})
	mux.HandleFunc("/big", jsonHandler(`{"v":"`+strings.Repeat("x", 4096)+`"}`))
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	base := server(t, mux)
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name     string
		part     aggregate.Part
		status   int    // for Required
		metaErr  string // for optional
		optsTime time.Duration
	}{
		{name: "status", part: aggregate.Part{URL: base + "/boom"}, status: 502, metaErr: "upstream status 500"},
		{name: "not json", part: aggregate.Part{URL: base + "/html"}, status: 502, metaErr: "response is not JSON"},
		{name: "invalid json", part: aggregate.Part{URL: base + "/badjson"}, status: 502, metaErr: "response is not valid JSON"},
		{name: "too large", part: aggregate.Part{URL: base + "/big"}, status: 502, metaErr: "response too large"},
		{name: "redirect not followed", part: aggregate.Part{URL: base + "/redirect"}, status: 502, metaErr: "upstream status 302"},
		{name: "unreachable", part: aggregate.Part{URL: closedURL + "/x"}, status: 502, metaErr: "upstream unreachable"},
		{name: "part timeout", part: aggregate.Part{URL: base + "/hang", Timeout: 100 * time.Millisecond}, status: 504, metaErr: "timed out"},
		{name: "in-process timeout", part: aggregate.Part{Handler: hang, Timeout: 100 * time.Millisecond}, status: 504, metaErr: "timed out"},
		{name: "overall deadline", part: aggregate.Part{URL: base + "/hang"}, optsTime: 150 * time.Millisecond, status: 504, metaErr: "timed out"},
		{name: "in-process not json", part: aggregate.Part{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "plain") })},
			status: 502, metaErr: "response is not JSON"},
		{name: "in-process panic", part: aggregate.Part{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("secret detail") })},
			status: 502, metaErr: "handler failed"},
		{name: "in-process too large", part: aggregate.Part{Handler: jsonHandler(`{"v":"` + strings.Repeat("x", 4096) + `"}`)}, status: 502, metaErr: "response too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []aggregate.Option{aggregate.WithMaxPartBody(1024)}
			if tt.optsTime > 0 {
				opts = append(opts, aggregate.WithTimeout(tt.optsTime))
			}
			ok := aggregate.Part{Name: "ok", URL: base + "/ok"}
			tt.part.Name = "flaky"

			// Required: the whole response fails with a clean problem.
			req := tt.part
			req.Required = true
			w, _ := get(t, newAgg(t, []aggregate.Part{ok, req}, opts...), "/", nil)
			if w.Code != tt.status || w.Header().Get("Content-Type") != gatewaykit.ProblemContentType {
				t.Fatalf("required: got %d %s, want %d problem", w.Code, w.Body.String(), tt.status)
			}
			if body := w.Body.String(); !strings.Contains(body, `required part \"flaky\" failed: `+tt.metaErr) ||
				strings.Contains(body, "hunter2") || strings.Contains(body, "secret") || strings.Contains(body, "127.0.0.1") {
				t.Fatalf("required: problem body %s", body)
			}

			// Optional: a partial response.
			w, m := get(t, newAgg(t, []aggregate.Part{ok, tt.part}, opts...), "/", nil)
			if w.Code != 200 || w.Header().Get(aggregate.PartialHeader) != "true" || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("optional: got %d %v %s", w.Code, w.Header(), w.Body.String())
			}
			if string(m["ok"]) != `{"v":1}` || m["flaky"] != nil {
				t.Fatalf("optional: body %s", w.Body.String())
			}
			want := `{"partial":true,"errors":[{"part":"flaky","error":"` + tt.metaErr + `"}]}`
			if string(m["_meta"]) != want {
				t.Fatalf("optional: _meta %s, want %s", m["_meta"], want)
			}
		})
	}
}

func TestRequiredFailureCancelsOthers(t *testing.T) {
	canceled := make(chan struct{})
	a := newAgg(t, []aggregate.Part{
		{Name: "slow", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
				close(canceled)
			case <-time.After(10 * time.Second):
			}
		})},
		{Name: "broken", Required: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		})},
	})
	w, _ := get(t, a, "/", nil)
	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d", w.Code)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow part was not canceled after the required part failed")
	}
}

func TestDependency(t *testing.T) {
	var productPath string
	products := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		productPath = r.URL.EscapedPath()
		jsonHandler(`{"sku":"`+r.PathValue("id")+`","title":"Book"}`)(w, r)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /products/{id}", products)
	orders := func(body string) http.Handler { return jsonHandler(body) }
	tests := []struct {
		name      string
		orderBody string
		want      string
		meta      string
	}{
		{name: "string field", orderBody: `{"id":"o1","item":{"product_id":"p/1 x"}}`,
			want: `{"product":{"sku":"p/1 x","title":"Book"},"order":{"id":"o1","item":{"product_id":"p/1 x"}}}`},
		{name: "number field", orderBody: `{"id":"o1","item":{"product_id":42}}`,
			want: `{"product":{"sku":"42","title":"Book"},"order":{"id":"o1","item":{"product_id":42}}}`},
		{name: "missing field", orderBody: `{"id":"o1"}`,
			meta: `{"partial":true,"errors":[{"part":"product","error":"dependency result lacks order.item.product_id"}]}`},
		{name: "object field", orderBody: `{"id":"o1","item":{"product_id":{"x":1}}}`,
			meta: `{"partial":true,"errors":[{"part":"product","error":"dependency field order.item.product_id is not a string, number or boolean"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAgg(t, []aggregate.Part{
				{Name: "product", Handler: mux, URL: "/products/{order.item.product_id}"},
				{Name: "order", Handler: orders(tt.orderBody), Required: true},
			})
			w, m := get(t, a, "/", nil)
			if tt.want != "" {
				if w.Body.String() != tt.want {
					t.Fatalf("got %s, want %s", w.Body.String(), tt.want)
				}
				if tt.name == "string field" && productPath != "/products/p%2F1%20x" {
					t.Fatalf("product path %q: value not path-escaped", productPath)
				}
				return
			}
			if string(m["_meta"]) != tt.meta {
				t.Fatalf("_meta %s, want %s", m["_meta"], tt.meta)
			}
		})
	}
}

func TestDependencyFailurePropagates(t *testing.T) {
	var called bool
	a := newAgg(t, []aggregate.Part{
		{Name: "order", Handler: http.NotFoundHandler()},
		{Name: "audit", DependsOn: "order", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })},
		{Name: "user", Handler: jsonHandler(`{"id":1}`)},
	})
	_, m := get(t, a, "/", nil)
	if called {
		t.Fatal("a part ran although its dependency failed")
	}
	want := `{"partial":true,"errors":[{"part":"order","error":"upstream status 404"},{"part":"audit","error":"dependency \"order\" failed"}]}`
	if string(m["_meta"]) != want || string(m["user"]) != `{"id":1}` {
		t.Fatalf("got %s", m)
	}
}

func TestEscapingAndVariableSources(t *testing.T) {
	var gotPath, gotQuery string
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.EscapedPath(), r.URL.RawQuery
		jsonHandler(`{}`)(w, r)
	})
	base := server(t, echo)
	parts := []aggregate.Part{{Name: "p", URL: base + "/items/{id}/{sub}?q={q}&sub={sub}", Required: true}}
	a := newAgg(t, parts, aggregate.WithVars(aggregate.IdentityVars), aggregate.WithQueryVars("q"))
	mux := http.NewServeMux()
	mux.Handle("GET /api/items/{id}", a)

	tests := []struct {
		name, target string
		id           *gatewaykit.Identity
		status       int
		path, query  string
	}{
		{name: "plain", target: "/api/items/42?q=books", id: alice, status: 200, path: "/items/42/alice", query: "q=books&sub=alice"},
		{name: "path value escaped", target: "/api/items/a%2Fb%20c%3Fd?q=x", id: alice, status: 200, path: "/items/a%2Fb%20c%3Fd/alice", query: "q=x&sub=alice"},
		{name: "query escaped", target: "/api/items/1?q=" + "a%26admin%3Dtrue%20%23x", id: alice, status: 200, path: "/items/1/alice", query: "q=a%26admin%3Dtrue+%23x&sub=alice"},
		{name: "subject escaped", target: "/api/items/1?q=x", id: &gatewaykit.Identity{Subject: "../../admin?x=1"}, status: 200,
			path: "/items/1/..%2F..%2Fadmin%3Fx=1", query: "q=x&sub=..%2F..%2Fadmin%3Fx%3D1"},
		{name: "dot-dot path value", target: "/api/items/1?q=x", id: &gatewaykit.Identity{Subject: ".."}, status: 400},
		{name: "anonymous", target: "/api/items/1?q=x", status: 400},
		{name: "missing query", target: "/api/items/1", id: alice, status: 400},
		{name: "sub from query is ignored", target: "/api/items/1?q=x&sub=victim", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotPath, gotQuery = "", ""
			w, _ := get(t, mux, tt.target, tt.id)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body.String())
			}
			if tt.status == 200 && (gotPath != tt.path || gotQuery != tt.query) {
				t.Fatalf("upstream saw %q ? %q, want %q ? %q", gotPath, gotQuery, tt.path, tt.query)
			}
			if tt.status != 200 && gotPath != "" {
				t.Fatal("upstream called despite a bad variable")
			}
		})
	}
}

func TestRootMergeAndHead(t *testing.T) {
	a := newAgg(t, []aggregate.Part{
		{Name: "profile", Handler: jsonHandler(`{"id":1,"name":"Ada","_meta":"x","orders":"shadowed"}`), AtRoot: true},
		{Name: "orders", Handler: jsonHandler(`[1,2]`)},
		{Name: "extra", Handler: jsonHandler(`{"name":"second","plan":"pro"}`), AtRoot: true},
	})
	w, _ := get(t, a, "/", nil)
	if want := `{"id":1,"name":"Ada","orders":[1,2],"plan":"pro"}`; w.Body.String() != want {
		t.Fatalf("got %s, want %s", w.Body.String(), want)
	}
	r := httptest.NewRequest("HEAD", "/", nil)
	hw := httptest.NewRecorder()
	a.ServeHTTP(hw, r)
	if hw.Code != 200 || hw.Body.Len() != 0 || hw.Header().Get("Content-Length") != w.Header().Get("Content-Length") {
		t.Fatalf("HEAD: %d %q %v", hw.Code, hw.Body.String(), hw.Header())
	}

	notObject := newAgg(t, []aggregate.Part{{Name: "list", Handler: jsonHandler(`[1]`), AtRoot: true, Required: true}})
	if w, _ := get(t, notObject, "/", nil); w.Code != http.StatusBadGateway {
		t.Fatalf("root part returning an array: %d %s", w.Code, w.Body.String())
	}
}

func TestForwardHeaders(t *testing.T) {
	var got http.Header
	a := newAgg(t, []aggregate.Part{{Name: "p", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		jsonHandler(`{}`)(w, r)
	})}}, aggregate.WithForwardHeaders("Accept-Language", "X-User-ID"), aggregate.WithIdentityHeaders("X-Subject", ""))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "fr")
	r.Header.Set("X-User-ID", "spoofed")
	r.Header.Set("X-Subject", "spoofed")
	r.Header.Set("X-Request-ID", "client-id-1")
	r.Header.Set("Cookie", "session=secret")
	a.ServeHTTP(httptest.NewRecorder(), r.WithContext(gatewaykit.WithIdentity(r.Context(), alice)))
	if got.Get("Accept-Language") != "fr" || got.Get("X-Subject") != "alice" || got.Get("X-User-Roles") != "" ||
		got.Get("Cookie") != "" || got.Get("X-Request-ID") != "client-id-1" || got.Get("X-User-ID") != "spoofed" {
		t.Fatalf("part headers %v", got)
	}
	// X-User-ID is only an ordinary forwarded header here because WithIdentityHeaders renamed the
	// identity headers; the identity header itself is never taken from the client:
	r2 := httptest.NewRequest("GET", "/", nil)
	r2.Header.Set("X-Subject", "spoofed")
	a.ServeHTTP(httptest.NewRecorder(), r2)
	if v, ok := got["X-Subject"]; ok {
		t.Fatalf("anonymous caller: X-Subject %q forwarded", v)
	}
}

func TestNewErrors(t *testing.T) {
	h := jsonHandler(`{}`)
	tests := map[string]struct {
		parts []aggregate.Part
		opts  []aggregate.Option
	}{
		"no parts":          {},
		"empty name":        {parts: []aggregate.Part{{URL: "http://u/"}}},
		"dotted name":       {parts: []aggregate.Part{{Name: "a.b", URL: "http://u/"}}},
		"meta name":         {parts: []aggregate.Part{{Name: "_meta", URL: "http://u/"}}},
		"duplicate":         {parts: []aggregate.Part{{Name: "a", URL: "http://u/"}, {Name: "a", URL: "http://v/"}}},
		"no target":         {parts: []aggregate.Part{{Name: "a"}}},
		"relative url":      {parts: []aggregate.Part{{Name: "a", URL: "/users/{sub}"}}},
		"ftp url":           {parts: []aggregate.Part{{Name: "a", URL: "ftp://u/{sub}"}}},
		"var in host":       {parts: []aggregate.Part{{Name: "a", URL: "http://{host}/x"}}},
		"var in host 2":     {parts: []aggregate.Part{{Name: "a", URL: "http://users{sub}/x"}}},
		"unclosed var":      {parts: []aggregate.Part{{Name: "a", URL: "http://u/{sub"}}},
		"stray brace":       {parts: []aggregate.Part{{Name: "a", URL: "http://u/}"}}},
		"bad var name":      {parts: []aggregate.Part{{Name: "a", URL: "http://u/{s b}"}}},
		"fragment":          {parts: []aggregate.Part{{Name: "a", URL: "http://u/x#{sub}"}}},
		"handler abs url":   {parts: []aggregate.Part{{Name: "a", Handler: h, URL: "http://u/x"}}},
		"bad method":        {parts: []aggregate.Part{{Name: "a", URL: "http://u/", Method: "GE T"}}},
		"negative timeout":  {parts: []aggregate.Part{{Name: "a", URL: "http://u/", Timeout: -1}}},
		"unknown dep":       {parts: []aggregate.Part{{Name: "a", URL: "http://u/", DependsOn: "b"}}},
		"self dep":          {parts: []aggregate.Part{{Name: "a", URL: "http://u/{a.id}"}}},
		"cycle":             {parts: []aggregate.Part{{Name: "a", URL: "http://u/{b.id}"}, {Name: "b", URL: "http://u/", DependsOn: "a"}}},
		"array dep path":    {parts: []aggregate.Part{{Name: "a", URL: "http://u/"}, {Name: "b", URL: "http://u/{a.x[]}"}}},
		"nil option":        {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{nil}},
		"timeout":           {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithTimeout(0)}},
		"part timeout":      {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithPartTimeout(-1)}},
		"max body":          {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithMaxPartBody(0)}},
		"nil client":        {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithClient(nil)}},
		"client+transport":  {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithClient(http.DefaultClient), aggregate.WithTransport(http.DefaultTransport)}},
		"nil vars":          {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithVars(nil)}},
		"bad query var":     {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithQueryVars("a b")}},
		"bad forward":       {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithForwardHeaders("a:b")}},
		"bad identity hdr":  {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithIdentityHeaders("a b", "")}},
		"nil propagator":    {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithPropagator(nil)}},
		"nil error handler": {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithErrorHandler(nil)}},
		"nil meter":         {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithMeterProvider(nil)}},
		"nil tracer":        {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithTracerProvider(nil)}},
		"nil logger":        {parts: []aggregate.Part{{Name: "a", Handler: h}}, opts: []aggregate.Option{aggregate.WithLogger(nil)}},
	}
	for name, tt := range tests {
		if a, err := aggregate.New(tt.parts, tt.opts...); err == nil {
			_ = a.Close()
			t.Errorf("%s: New accepted %+v", name, tt.parts)
		} else if !strings.HasPrefix(err.Error(), "aggregate: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
}

func TestClientDisconnect(t *testing.T) {
	a := newAgg(t, []aggregate.Part{{Name: "p", Required: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })}})
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.ServeHTTP(httptest.NewRecorder(), r) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("aggregate kept running after the client went away")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTransportAndClient(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String())
		mu.Unlock()
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"host":"` + r.URL.Host + `"}`)), Request: r}, nil
	})
	parts := []aggregate.Part{
		{Name: "a", URL: "http://users.internal/users/{sub}", Method: "POST"},
		{Name: "b", URL: "https://orders.internal/orders?user_id={sub}"},
	}
	for name, opt := range map[string]aggregate.Option{
		"transport": aggregate.WithTransport(rt),
		"client":    aggregate.WithClient(&http.Client{Transport: rt}),
	} {
		t.Run(name, func(t *testing.T) {
			seen = nil
			a := newAgg(t, parts, opt, aggregate.WithVars(aggregate.IdentityVars))
			w, _ := get(t, a, "/", alice)
			if want := `{"a":{"host":"users.internal"},"b":{"host":"orders.internal"}}`; w.Body.String() != want {
				t.Fatalf("got %s, want %s", w.Body.String(), want)
			}
			slices.Sort(seen)
			if want := []string{"GET https://orders.internal/orders?user_id=alice", "POST http://users.internal/users/alice"}; !slices.Equal(seen, want) {
				t.Fatalf("requests %q, want %q", seen, want)
			}
		})
	}
}

func TestDefaultPartTimeout(t *testing.T) {
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	a := newAgg(t, []aggregate.Part{
		{Name: "slow", Handler: hang},
		{Name: "fast", Handler: jsonHandler(`1`)},
	}, aggregate.WithPartTimeout(100*time.Millisecond), aggregate.WithTimeout(time.Minute))
	done := make(chan struct{})
	var w *httptest.ResponseRecorder
	go func() {
		defer close(done)
		w = httptest.NewRecorder()
		a.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the part timeout did not apply")
	}
	if want := `{"fast":1,"_meta":{"partial":true,"errors":[{"part":"slow","error":"timed out"}]}}`; w.Body.String() != want {
		t.Fatalf("got %s, want %s", w.Body.String(), want)
	}
}
