package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit/auth/authtest"
	"github.com/gatewaykit/gatewaykit/internal/consultest"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"

	usersv1 "github.com/gatewaykit/gatewaykit/example/proto/users/v1"
)

// TestTourRedis is the tour with rate limits, API keys and the response cache in a real Redis.
func TestTourRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig()
	cfg.Redis = "redis://" + srv.Addr + "/0"
	g := start(t, cfg)
	tour(t, g, false)

	// The state really is in Redis.
	keys, err := srv.Client().Keys(t.Context(), "gatewaykit:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var rl, apikey, cached bool
	for _, k := range keys {
		rl = rl || strings.HasPrefix(k, "gatewaykit:rl:")
		apikey = apikey || strings.HasPrefix(k, "gatewaykit:apikey:")
		cached = cached || strings.HasPrefix(k, "gatewaykit:cache:")
	}
	if !rl || !apikey || !cached {
		t.Fatalf("Redis keys (rate limit %v, API keys %v, cache %v): %q", rl, apikey, cached, keys)
	}
}

// TestTwoGatewaysShareRedisLimit: two gateway processes on one Redis enforce one per-user limit
// together, and an API key created by one is accepted by the other.
func TestTwoGatewaysShareRedisLimit(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig()
	cfg.Redis = "redis://" + srv.Addr + "/0"
	cfg.Limits.PerUser.Count = 6
	a := start(t, cfg)
	b := start(t, cfg)
	free, _ := a.apiKeys() // created by a, stored in Redis

	for i := range 6 {
		g := a
		if i%2 == 1 {
			g = b
		}
		r := g.get("/api/products", free)
		expect(t, r, http.StatusOK)
		if rem, _ := strconv.Atoi(r.Header.Get("X-Ratelimit-Remaining")); rem != 5-i {
			t.Fatalf("request %d: X-RateLimit-Remaining %q, want %d (one counter for both gateways)", i, r.Header.Get("X-Ratelimit-Remaining"), 5-i)
		}
	}
	for _, g := range []*gw{a, b} {
		r := g.get("/api/products", free)
		if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Fatalf("7th request: %d %v %s", r.StatusCode, r.Header, r.body)
		}
	}
}

// TestTourConsul is the tour with the demo services registered in a real Consul agent and
// resolved through it.
func TestTourConsul(t *testing.T) {
	agent := consultest.Start(t)
	cfg := testConfig()
	cfg.Consul = agent.Addr
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, errc := launch(t, ctx, cfg)
	defer g.client.CloseIdleConnections()
	if !strings.Contains(g.out.String(), "registered services in Consul") {
		t.Fatalf("no registration log:\n%s", g.out)
	}
	tour(t, g, true)

	// On shutdown the demo services leave Consul.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client, err := api.NewClient(&api.Config{Address: agent.Addr, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	services, err := client.Agent().Services()
	if err != nil || len(services) < 7 {
		t.Fatalf("registered services: %d, %v", len(services), err)
	}
	cancel()
	if err := stopped(errc); err != nil {
		t.Fatal(err)
	}
	services, err = client.Agent().Services()
	if err != nil || len(services) != 0 {
		t.Fatalf("services left in Consul after shutdown: %v, %v", services, err)
	}
}

// TestExternalIssuer: with -issuer the demo identity provider and /demo endpoints are off, and
// tokens of the external issuer are accepted.
func TestExternalIssuer(t *testing.T) {
	iss := authtest.Start(t, "ES256")
	cfg := testConfig()
	cfg.Issuer = iss.URL()
	g := start(t, cfg)
	expect(t, g.get("/demo/token?sub=alice"), http.StatusNotFound)
	if strings.Contains(g.out.String(), "DEMO MODE") {
		t.Fatal("demo mode logged with an external issuer")
	}
	tok := iss.Token(t, map[string]any{"sub": "alice", "aud": "gatewaykit-example", "roles": []string{"customer"}})
	r := g.get("/api/users/alice", "Authorization: Bearer "+tok)
	expect(t, r, http.StatusOK)
	wrongAud := iss.Token(t, map[string]any{"sub": "alice", "aud": "elsewhere"})
	expect(t, g.get("/api/users/alice", "Authorization: Bearer "+wrongAud), http.StatusUnauthorized)

	// -jwks-url (with -issuer checked against "iss"): the same tokens, and only from that issuer.
	cfg.Issuer, cfg.JWKSURL = "https://other.example", iss.JWKSURL()
	g2 := start(t, cfg)
	expect(t, g2.get("/api/users/alice", "Authorization: Bearer "+tok), http.StatusUnauthorized)
	cfg.Issuer = ""
	g3 := start(t, cfg)
	expect(t, g3.get("/api/users/alice", "Authorization: Bearer "+tok), http.StatusOK)
}

// TestUpstreamUsers: -upstream users=... sends the gRPC calls to an external UserService found
// through the discovery resolver instead of the demo one.
func TestUpstreamUsers(t *testing.T) {
	ext := newUserService()
	if _, err := ext.CreateUser(t.Context(), &usersv1.CreateUserRequest{DisplayName: "External Zed"}); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	srv := grpc.NewServer()
	usersv1.RegisterUserServiceServer(srv, ext)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	cfg := testConfig()
	cfg.Upstreams = map[string][]string{"users": {"grpc://" + ln.Addr().String()}}
	g := start(t, cfg)
	alice := g.token("sub=alice")
	r := g.get("/api/users/u1", alice)
	expect(t, r, http.StatusOK)
	if r.json(t)["displayName"] != "External Zed" {
		t.Fatalf("user from the external service: %s", r.body)
	}
}
