package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is an io.Writer safe for the gateway's concurrent log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gw is one running example gateway.
type gw struct {
	t      *testing.T
	base   string
	out    *syncBuffer
	client *http.Client
}

// testConfig is the default configuration on a free port, with a per-user limit small enough to
// reach quickly.
func testConfig() Config {
	cfg := Config{Addr: "127.0.0.1:0", Limits: DefaultLimits(), ShutdownTimeout: 10 * time.Second}
	cfg.Limits.PerUser.Count = 25
	return cfg
}

// launch runs the example with cfg and waits until it serves. Cancelling ctx stops it (as SIGINT
// would); run's result arrives on the returned channel.
func launch(t *testing.T, ctx context.Context, cfg Config) (*gw, <-chan error) {
	t.Helper()
	out := &syncBuffer{}
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, cfg, out, func(addr string) { addrc <- addr }) }()
	g := &gw{t: t, out: out, client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
	select {
	case addr := <-addrc:
		g.base = "http://" + addr
	case err := <-errc:
		t.Fatalf("run: %v\n%s", err, out)
	case <-time.After(60 * time.Second):
		t.Fatalf("gateway did not start\n%s", out)
	}
	return g, errc
}

// start runs the example with cfg until the test ends, then stops it (as SIGINT would) and checks
// that run returned nil.
func start(t *testing.T, cfg Config) *gw {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g, errc := launch(t, ctx, cfg)
	t.Cleanup(func() {
		g.client.CloseIdleConnections()
		cancel()
		if err := stopped(errc); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.out)
		}
	})
	return g
}

// stopped waits for run's result after its context was cancelled.
func stopped(errc <-chan error) error {
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("run returned %w", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		return errors.New("run did not return after cancel")
	}
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	body []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v: %q", r.Request.URL, err, r.body)
	}
	return m
}

// do sends a request with headers given as "Name: value" strings.
func (g *gw) do(method, path, body string, headers ...string) resp {
	g.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, g.base+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := g.client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		g.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp{res, b}
}

func (g *gw) get(path string, headers ...string) resp {
	g.t.Helper()
	return g.do(http.MethodGet, path, "", headers...)
}

// expect fails the test unless r has the status.
func expect(t *testing.T, r resp, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
}

// token mints a demo token and returns the Authorization header.
func (g *gw) token(query string) string {
	g.t.Helper()
	r := g.get("/demo/token?" + query)
	expect(g.t, r, http.StatusOK)
	tok, _ := r.json(g.t)["access_token"].(string)
	if strings.Count(tok, ".") != 2 {
		g.t.Fatalf("token endpoint returned %q", r.body)
	}
	return "Authorization: Bearer " + tok
}

var keyRe = regexp.MustCompile(`(?m)^\s+API keys: free (\S+)\n\s+premium (\S+)`)

// apiKeys returns the demo API keys printed in the banner.
func (g *gw) apiKeys() (free, premium string) {
	g.t.Helper()
	m := keyRe.FindStringSubmatch(g.out.String())
	if m == nil {
		g.t.Fatalf("no API keys in the banner:\n%s", g.out)
	}
	return "X-API-Key: " + m[1], "X-API-Key: " + m[2]
}

// eventually retries f until it returns nil or the (generous) deadline passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tour performs the README tour against g with assertions. consul says that instances are
// resolved through Consul (a stopped instance also leaves the healthy set there).
func tour(t *testing.T, g *gw, consul bool) {
	// The banner says where and how.
	if out := g.out.String(); !strings.Contains(out, "gatewaykit example gateway on "+g.base) || !strings.Contains(out, "/demo/token?sub=alice") || !strings.Contains(out, "DEMO MODE") {
		t.Fatalf("banner or demo-mode log missing:\n%s", out)
	}

	// No credential: 401 with a Bearer challenge.
	r := g.get("/api/users/alice")
	expect(t, r, http.StatusUnauthorized)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("401 headers: %v", r.Header)
	}

	// The token as the README gets it: plain text.
	r = g.get("/demo/token?sub=alice&roles=customer&tier=free", "Accept: text/plain")
	expect(t, r, http.StatusOK)
	alice := "Authorization: Bearer " + strings.TrimSpace(string(r.body))

	// A user, through transcode and gRPC; guard, request ID and rate-limit headers on the way.
	r = g.get("/api/users/alice", alice)
	expect(t, r, http.StatusOK)
	if u := r.json(t); u["displayName"] != "Alice Martin" || u["email"] != "alice@example.com" {
		t.Fatalf("user: %s", r.body)
	}
	for _, h := range []string{"X-Request-Id", "X-Content-Type-Options", "Content-Security-Policy", "X-Ratelimit-Limit", "X-Ratelimit-Remaining"} {
		if r.Header.Get(h) == "" {
			t.Errorf("response lacks %s: %v", h, r.Header)
		}
	}
	if r.Header.Get("X-Ratelimit-Limit") != "25" {
		t.Errorf("X-RateLimit-Limit = %q, want the per-user 25", r.Header.Get("X-Ratelimit-Limit"))
	}
	expect(t, g.get("/api/users/nobody", alice), http.StatusNotFound)

	// Dashboard twice: MISS then HIT with the same body.
	d1 := g.get("/api/dashboard", alice)
	expect(t, d1, http.StatusOK)
	d2 := g.get("/api/dashboard", alice)
	expect(t, d2, http.StatusOK)
	if d1.Header.Get("X-Cache") != "MISS" || d2.Header.Get("X-Cache") != "HIT" || !bytes.Equal(d1.body, d2.body) {
		t.Fatalf("dashboard X-Cache %q then %q (bodies equal: %v)", d1.Header.Get("X-Cache"), d2.Header.Get("X-Cache"), bytes.Equal(d1.body, d2.body))
	}
	dash := d1.json(t)
	user, _ := dash["user"].(map[string]any)
	orders, _ := dash["orders"].([]any)
	recs, _ := dash["recommendations"].(map[string]any)
	if user["id"] != "alice" || len(orders) == 0 || recs["user_id"] != "alice" {
		t.Fatalf("dashboard: %s", d1.body)
	}
	for _, o := range orders {
		if o.(map[string]any)["user_id"] != "alice" {
			t.Fatalf("dashboard has another user's order: %s", d1.body)
		}
	}
	// Another user gets their own dashboard, not alice's cached one.
	bobDash := g.get("/api/dashboard", g.token("sub=bob&roles=customer"))
	expect(t, bobDash, http.StatusOK)
	if bobDash.Header.Get("X-Cache") != "MISS" || !strings.Contains(string(bobDash.body), `"id":"bob"`) {
		t.Fatalf("bob's dashboard (%s): %s", bobDash.Header.Get("X-Cache"), bobDash.body)
	}

	// Mobile vs web: the same data, mobile smaller; web hides e-mail addresses.
	mobile := g.get("/mobile/api/dashboard", alice)
	web := g.get("/web/api/dashboard", alice)
	expect(t, mobile, http.StatusOK)
	expect(t, web, http.StatusOK)
	if len(mobile.body) >= len(web.body) || strings.Contains(string(mobile.body), "created_at") || !strings.Contains(string(web.body), "created_at") {
		t.Fatalf("mobile (%d bytes) vs web (%d bytes):\n%s\n%s", len(mobile.body), len(web.body), mobile.body, web.body)
	}
	if strings.Contains(string(web.body), "@example.com") || !strings.Contains(string(mobile.body), `"displayName":"Alice Martin"`) {
		t.Fatalf("shapes: mobile %s web %s", mobile.body, web.body)
	}

	// Admin variant: 403 for a customer, 200 (with e-mail) for an admin.
	r = g.get("/admin/api/users/alice", alice)
	expect(t, r, http.StatusForbidden)
	admin := g.token("sub=carol&roles=admin&tier=premium")
	r = g.get("/admin/api/users/alice", admin)
	expect(t, r, http.StatusOK)
	if r.json(t)["email"] != "alice@example.com" {
		t.Fatalf("admin view: %s", r.body)
	}

	// Header routing: v2 only when asked.
	r = g.get("/api/products/p1", alice)
	expect(t, r, http.StatusOK)
	if v := r.json(t)["api_version"]; v != "v1" {
		t.Fatalf("default products version %v", v)
	}
	r = g.get("/api/products/p1", alice, "X-Service-Version: v2")
	expect(t, r, http.StatusOK)
	if v := r.json(t)["api_version"]; v != "v2" || r.Header.Get("X-Instance") != "products-2" {
		t.Fatalf("v2 products: %s (%s)", r.body, r.Header.Get("X-Instance"))
	}

	// The dashboard is still cached...
	if d := g.get("/api/dashboard", alice); d.Header.Get("X-Cache") != "HIT" {
		t.Fatalf("dashboard before the order: X-Cache %q", d.Header.Get("X-Cache"))
	}
	// A spoofed identity header is not trusted: the order belongs to the token's subject.
	r = g.do(http.MethodPost, "/api/orders", `{"product_id":"p2","quantity":1,"total":89.9}`, alice, "Content-Type: application/json", "X-User-ID: mallory", "X-User-Roles: admin")
	expect(t, r, http.StatusCreated)
	newOrder := r.json(t)
	if newOrder["user_id"] != "alice" {
		t.Fatalf("spoofed X-User-ID reached the service: %s", r.body)
	}
	// ...until the order invalidates it: fetched again, with the new order.
	d3 := g.get("/api/dashboard", alice)
	expect(t, d3, http.StatusOK)
	if id, _ := newOrder["id"].(string); d3.Header.Get("X-Cache") != "MISS" || id == "" || !strings.Contains(string(d3.body), `"id":"`+id+`"`) {
		t.Fatalf("dashboard after order %v: X-Cache %q: %s", newOrder["id"], d3.Header.Get("X-Cache"), d3.body)
	}
	// Admin routes ignore a spoofed role header too.
	expect(t, g.get("/admin/api/orders", alice, "X-User-Roles: admin"), http.StatusForbidden)

	// API keys authenticate too, with their tier.
	free, premium := g.apiKeys()
	expect(t, g.get("/api/orders", free), http.StatusOK)
	expect(t, g.get("/api/payments/pay1", premium), http.StatusNotFound) // reaches payments: its own 404
	expect(t, g.get("/api/orders", "X-API-Key: gk_0000000000000000_notakey"), http.StatusUnauthorized)

	// Path traversal and ambiguous encodings: 400 before anything else.
	for _, p := range []string{"/api/%2e%2e/admin/api/users/alice", "/api/orders/../users/alice", "/api/users/alice%2f..%2fbob", "//api/users/alice"} {
		r = g.get(p, alice)
		if r.StatusCode != http.StatusBadRequest || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("GET %s: %d %s, want a 400 problem", p, r.StatusCode, r.body)
		}
	}

	// Rate limit: a fresh user gets 25 requests, then 429 with Retry-After and the quota headers.
	rl := g.token("sub=hasty&roles=customer&tier=free")
	var limited resp
	for i := 0; i < 60 && limited.Response == nil; i++ {
		if r := g.get("/api/products", rl); r.StatusCode == http.StatusTooManyRequests {
			if i < 25 {
				t.Fatalf("429 after %d requests, want at least 25", i)
			}
			limited = r
		} else {
			expect(t, r, http.StatusOK)
		}
	}
	if limited.Response == nil {
		t.Fatal("no 429 within 60 requests")
	}
	if limited.Header.Get("Retry-After") == "" || limited.Header.Get("X-Ratelimit-Remaining") != "0" || limited.Header.Get("X-Ratelimit-Limit") != "25" ||
		!strings.Contains(limited.Header.Get("Ratelimit-Policy"), `"user"`) || limited.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("429 headers: %v %s", limited.Header, limited.body)
	}
	// Other users are not affected.
	expect(t, g.get("/api/products", alice), http.StatusOK)

	// Failover: stop orders-1; after a few failed attempts (502/503 problems) it is ejected and
	// orders-2 answers everything.
	bob := g.token("sub=bob&roles=customer")
	expect(t, g.do(http.MethodPost, "/demo/instances/orders-1/stop", ""), http.StatusOK)
	failures, streak := 0, 0
	for i := 0; i < 40 && streak < 6; i++ {
		r := g.get("/api/orders", bob)
		switch r.StatusCode {
		case http.StatusOK:
			if got := r.Header.Get("X-Instance"); got != "orders-2" {
				t.Fatalf("orders answered by %q with orders-1 stopped", got)
			}
			streak++
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			if r.Header.Get("Content-Type") != "application/problem+json" || strings.Contains(string(r.body), "refused") {
				t.Fatalf("failure response: %v %s", r.Header, r.body)
			}
			failures++
			streak = 0
		default:
			t.Fatalf("orders with one instance down: %d %s", r.StatusCode, r.body)
		}
	}
	if streak < 6 || failures > 4 {
		t.Fatalf("failover: %d failures, final streak %d", failures, streak)
	}
	ordersHealth := func() (healthy, routable float64) {
		o := g.get("/healthz").json(t)["services"].(map[string]any)["orders"].(map[string]any)
		return o["healthy"].(float64), o["routable"].(float64)
	}
	if _, routable := ordersHealth(); routable != 1 {
		t.Fatalf("orders routable after the failover: %v, want 1 (orders-1 ejected)", routable)
	}
	if consul {
		eventually(t, "Consul's health check drops the stopped instance", func() error {
			if healthy, _ := ordersHealth(); healthy != 1 {
				return fmt.Errorf("orders healthy in Consul: %v", healthy)
			}
			return nil
		})
	}
	expect(t, g.do(http.MethodPost, "/demo/instances/orders-1/start", ""), http.StatusOK)
	if consul {
		eventually(t, "Consul's health check readmits the restarted instance", func() error {
			if healthy, _ := ordersHealth(); healthy != 2 {
				return fmt.Errorf("orders healthy in Consul: %v", healthy)
			}
			return nil
		})
	}

	// A single instance cannot be ejected: its breaker opens after 3 failures and answers 503 with
	// Retry-After without calling it (with Consul, its health check may remove it first: also a
	// 503 with Retry-After).
	expect(t, g.do(http.MethodPost, "/demo/instances/payments-1/stop", ""), http.StatusOK)
	var open resp
	for i := 0; i < 8 && open.Response == nil; i++ {
		switch r := g.get("/api/payments/pay1", bob); r.StatusCode {
		case http.StatusBadGateway:
		case http.StatusServiceUnavailable:
			open = r
		default:
			t.Fatalf("payments down: %d %s", r.StatusCode, r.body)
		}
	}
	if open.Response == nil || open.Header.Get("Retry-After") == "" || open.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("no 503 with Retry-After once payments-1 failed: %+v", open.Response)
	}
	if !consul && !strings.Contains(string(g.get("/metrics").body), `gatewaykit_breaker_transitions_total{from="closed",`) {
		t.Error("/metrics shows no breaker transition")
	}
	expect(t, g.do(http.MethodPost, "/demo/instances/payments-1/start", ""), http.StatusOK)

	// Metrics: gatewaykit's own and the HTTP server metrics.
	r = g.get("/metrics")
	expect(t, r, http.StatusOK)
	for _, m := range []string{"gatewaykit_ratelimit_decisions_total", "gatewaykit_auth_decisions_total", "gatewaykit_cache_requests_total",
		"gatewaykit_breaker_state", "gatewaykit_discovery_picks_total", "gatewaykit_guard_rejections_total", "gatewaykit_transcode_calls_total",
		"http_server_request_duration_seconds_bucket", `outcome="rejected"`} {
		if !strings.Contains(string(r.body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if !consul && !strings.Contains(string(r.body), `gatewaykit_discovery_ejections_total{`) {
		t.Errorf("/metrics shows no ejection")
	}
	expect(t, g.get("/healthz"), http.StatusOK)
	if !strings.Contains(g.out.String(), "msg=request") {
		t.Error("no access log lines")
	}
}

func TestTour(t *testing.T) {
	g := start(t, testConfig())
	tour(t, g, false)
}

// TestGracefulShutdown: a request in flight when the gateway is told to stop completes, and run
// returns nil. The orders service is an external upstream (-upstream) that answers slowly.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		writeJSON(w, http.StatusOK, map[string]any{"orders": []any{}, "slow": true})
	})}
	ln := listen(t)
	go func() { _ = slow.Serve(ln) }()
	defer func() { _ = slow.Close() }()

	cfg := testConfig()
	cfg.Upstreams = map[string][]string{"orders": {"http://" + ln.Addr().String()}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, errc := launch(t, ctx, cfg)
	out := g.out
	defer g.client.CloseIdleConnections()
	if strings.Contains(out.String(), "orders-1") {
		t.Fatal("a demo orders instance started although -upstream replaces it")
	}
	alice := g.token("sub=alice")
	done := make(chan resp, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, g.base+"/api/orders", nil)
		req.Header.Set("Authorization", strings.TrimPrefix(alice, "Authorization: "))
		res, err := g.client.Do(req)
		if err != nil {
			done <- resp{}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		done <- resp{res, b}
	}()
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("request did not reach the upstream")
	}
	cancel() // SIGINT
	select {
	case err := <-errc:
		t.Fatalf("run returned (%v) with a request in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	r := <-done
	if r.Response == nil || r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"slow":true`) {
		t.Fatalf("in-flight request: %+v %s", r.Response, r.body)
	}
	if err := stopped(errc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "msg=stopped") {
		t.Fatalf("no stop log:\n%s", out)
	}
}

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"-addr", "127.0.0.1:0", "-redis", "redis://127.0.0.1:6379/0", "-consul", "127.0.0.1:8500",
		"-upstream", "orders=http://10.0.0.1:8080", "-upstream", "orders=http://10.0.0.2:8080", "-issuer", "https://idp.example"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:0" || cfg.Redis == "" || cfg.Consul == "" || len(cfg.Upstreams["orders"]) != 2 || cfg.demoIdP() {
		t.Fatalf("%+v", cfg)
	}
	if cfg.Limits.PerUser.Count != 100 || cfg.Limits.Services["payments"].Count != 2000 {
		t.Fatalf("default limits: %+v", cfg.Limits)
	}
	for _, bad := range [][]string{{"-upstream", "orders"}, {"-upstream", "orders=ftp://x:1"}, {"-upstream", "orders=http://host"}, {"-upstream", "shipping=http://10.0.0.1:80"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// listen returns a loopback listener on a free port, closed when the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// TestAddressInUse: run fails at once, with the listen error, when the address is taken.
func TestAddressInUse(t *testing.T) {
	ln := listen(t)
	cfg := testConfig()
	cfg.Addr = ln.Addr().String()
	err := run(t.Context(), cfg, io.Discard, func(string) { t.Error("ready called") })
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("run on a busy address: %v", err)
	}
}

// TestLimitsApply: the tier and service limits of Limits are enforced as configured (small values
// here): a free API key runs out while the premium one does not, and a service's limit is shared
// by all callers.
func TestLimitsApply(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.Tiers = map[string]ratelimit.Limit{"free": ratelimit.PerDay(3), "premium": ratelimit.PerDay(1000)}
	cfg.Limits.Services = map[string]ratelimit.Limit{"payments": ratelimit.PerMinute(4)}
	g := start(t, cfg)
	free, premium := g.apiKeys()
	for range 3 {
		expect(t, g.get("/api/products", free), http.StatusOK)
	}
	r := g.get("/api/products", free)
	expect(t, r, http.StatusTooManyRequests)
	if !strings.Contains(r.Header.Get("Ratelimit-Policy"), `"tier";q=3;w=86400`) {
		t.Fatalf("tier rejection policy %q", r.Header.Get("Ratelimit-Policy"))
	}
	expect(t, g.get("/api/products", premium), http.StatusOK)

	// payments: 4 a minute for all callers together.
	alice, bob := g.token("sub=alice"), g.token("sub=bob")
	for _, who := range []string{alice, bob, alice, bob} {
		expect(t, g.get("/api/payments/none", who), http.StatusNotFound) // the service's own 404
	}
	r = g.get("/api/payments/none", premium)
	expect(t, r, http.StatusTooManyRequests)
	if !strings.Contains(r.Header.Get("Ratelimit-Policy"), `"service-payments";q=4;w=60`) {
		t.Fatalf("service rejection policy %q", r.Header.Get("Ratelimit-Policy"))
	}
	expect(t, g.get("/api/orders", premium), http.StatusOK) // other services are unaffected
}
