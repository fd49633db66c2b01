package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/aggregate"
	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/bff"
	"github.com/gatewaykit/gatewaykit/breaker"
	"github.com/gatewaykit/gatewaykit/cache"
	"github.com/gatewaykit/gatewaykit/discovery"
	usersv1 "github.com/gatewaykit/gatewaykit/example/proto/users/v1"
	"github.com/gatewaykit/gatewaykit/guard"
	"github.com/gatewaykit/gatewaykit/ratelimit"
	"github.com/gatewaykit/gatewaykit/telemetry"
	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/grpcresolver"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// proxied are the services behind a discovery proxy (users is reached over gRPC instead).
var proxied = []string{"orders", "products", "payments", "recommendations"}

// cleanup runs the release functions registered during start-up in reverse order.
type cleanup []func()

func (c *cleanup) add(f func()) { *c = append(*c, f) }

func (c *cleanup) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// run starts the demo services and the gateway, calls ready with the gateway's address once it
// accepts connections, and serves until ctx is done; then it shuts down gracefully (in-flight
// requests finish, watchers and connections close) and returns nil. Logs, the access log and the
// banner go to out.
func run(ctx context.Context, cfg Config, out io.Writer, ready func(addr string)) (err error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.Limits.PerUser.IsZero() {
		cfg.Limits = DefaultLimits()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Audience == "" {
		cfg.Audience = "gatewaykit-example"
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: cfg.LogLevel}))

	var done cleanup
	defer done.run()

	// Listen first: a busy address fails before anything starts.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	done.add(func() { _ = ln.Close() })

	sdk, err := telemetry.Setup(telemetry.NoGlobals(), telemetry.ServiceName("gatewaykit-example"))
	if err != nil {
		return err
	}
	done.add(func() { _ = sdk.Shutdown(context.Background()) })

	var rdb redis.UniversalClient
	if cfg.Redis != "" {
		opt, err := redis.ParseURL(cfg.Redis)
		if err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
		rdb = redis.NewClient(opt)
		done.add(func() { _ = rdb.Close() })
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
	}

	demo, err := startDemoServices(cfg, log)
	if err != nil {
		return err
	}
	done.add(demo.close)

	res, err := newResolver(ctx, cfg, demo, sdk, log, &done)
	if err != nil {
		return err
	}

	g, err := newGateway(ctx, cfg, sdk, rdb, res, demo, log, &done)
	if err != nil {
		return err
	}

	srv := guard.HardenedServer(cfg.Addr, g.handler)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	addr := ln.Addr().String()
	printBanner(out, addr, cfg, g)
	if ready != nil {
		ready(addr)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return err
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	<-serveErr
	log.Info("stopped")
	return nil
}

// gateway is the composed handler and what the banner and the demo endpoints need.
type gateway struct {
	handler http.Handler
	keys    map[string]string // demo API keys by tier
	idpURL  string
}

func newGateway(ctx context.Context, cfg Config, sdk *telemetry.SDK, rdb redis.UniversalClient,
	res discovery.Resolver, demo *demoServices, log *slog.Logger, done *cleanup) (*gateway, error) {
	mp, tp := sdk.MeterProvider, sdk.TracerProvider
	g := &gateway{keys: map[string]string{}}

	// Upstream transport: a circuit breaker per instance (host:port) over a client span and
	// trace propagation over the discovery package's tuned transport.
	base := discovery.DefaultTransport()
	done.add(base.CloseIdleConnections)
	traced, err := telemetry.NewTransport(base, telemetry.WithMeterProvider(mp), telemetry.WithTracerProvider(tp), telemetry.WithPropagators(sdk.Propagator))
	if err != nil {
		return nil, err
	}
	brk, err := breaker.New(
		breaker.TripAfter(3, 10*time.Second), // 3 failures in a row within 10 s open an instance's breaker
		breaker.OpenTimeout(15*time.Second),  // then one probe after 15 s
		breaker.Timeout(5*time.Second),       // per upstream request
		breaker.WithMeterProvider(mp), breaker.WithLogger(log))
	if err != nil {
		return nil, err
	}
	done.add(func() { _ = brk.Close() })
	upstream := brk.Transport(traced)

	proxies := map[string]*discovery.Proxy{}
	for _, name := range proxied {
		opts := []discovery.Option{
			discovery.WithTransport(upstream),
			discovery.WithErrorMapper(breaker.ProblemFor), // open breaker 503 + Retry-After, timeout 504
			discovery.WithPassiveHealth(discovery.PassiveHealth{
				ConsecutiveFailures: 2, BaseEjection: 30 * time.Second, MaxEjection: 5 * time.Minute, MaxEjectedPercent: 50,
			}),
			discovery.StripPrefix("/api"),
			discovery.WithMeterProvider(mp), discovery.WithLogger(log),
		}
		if name == "products" {
			opts = append(opts, discovery.RouteByHeader("X-Service-Version", discovery.FallbackTag("v1")))
		}
		p, err := discovery.NewProxy(res, name, opts...)
		if err != nil {
			return nil, err
		}
		done.add(func() { _ = p.Close() })
		proxies[name] = p
	}

	// users: REST/JSON to gRPC through the generated grpc-gateway code; the gRPC connection finds
	// the users instances through the same discovery resolver (static or Consul).
	grpcRes, err := grpcresolver.New("gatewaykit", func(ctx context.Context, service string) ([]string, error) {
		ins, err := res.Instances(ctx, service)
		addrs := make([]string, 0, len(ins))
		for _, in := range ins {
			addrs = append(addrs, in.HostPort())
		}
		return addrs, err
	}, grpcresolver.WithLogger(log))
	if err != nil {
		return nil, err
	}
	users, err := transcode.New(
		transcode.Register("gatewaykit:///users", usersv1.RegisterUserServiceHandler),
		transcode.WithDialOptions(grpc.WithResolvers(grpcRes), grpc.WithTransportCredentials(insecure.NewCredentials())),
		transcode.Timeout(5*time.Second),
		transcode.WithMeterProvider(mp), transcode.WithLogger(log))
	if err != nil {
		return nil, err
	}
	done.add(func() { _ = users.Close() })
	usersREST := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /api/users/{id} -> the annotated route /v1/users/{id}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/v1/users/" + r.PathValue("id")
		r2.URL.RawPath = ""
		users.ServeHTTP(w, r2)
	})

	// Identity: JWT (demo or external IdP) or API key.
	jwt, err := newJWT(cfg, demo, mp, log)
	if err != nil {
		return nil, err
	}
	done.add(func() { _ = jwt.Close() })
	if demo.idp != nil {
		g.idpURL = demo.idp.URL()
	}
	keyStore := auth.MemoryKeyStore()
	if rdb != nil {
		keyStore = auth.RedisKeyStore(rdb)
	}
	keys, err := auth.NewAPIKeys(keyStore, auth.WithMeterProvider(mp), auth.WithLogger(log))
	if err != nil {
		return nil, err
	}
	for _, tier := range []string{"free", "premium"} {
		info := auth.KeyInfo{Subject: "demo-" + tier, Tier: tier, Roles: []string{"customer"}, ExpiresAt: time.Now().Add(24 * time.Hour)}
		key, _, err := keys.Create(ctx, info)
		if err != nil {
			return nil, fmt.Errorf("demo API key: %w", err)
		}
		g.keys[tier] = key
	}
	gate, err := auth.NewMiddleware(auth.First(jwt, keys), auth.WithMeterProvider(mp), auth.WithLogger(log))
	if err != nil {
		return nil, err
	}

	// Rate limits (limits.go): one limiter per service, all over one store so the per-user and
	// per-tier counters are shared by every route.
	limiter, err := newLimiters(cfg.Limits, rdb, mp, log, done)
	if err != nil {
		return nil, err
	}

	// Dashboard: user (gRPC via transcode), recent orders (discovery proxy) and recommendations,
	// in parallel, cached 60 s per identity.
	dash, err := aggregate.New([]aggregate.Part{
		{Name: "user", Handler: users, URL: "/v1/users/{sub}", Required: true},
		{Name: "orders", Handler: proxies["orders"], URL: "/api/orders?user_id={sub}&limit=5", AtRoot: true},
		{Name: "recommendations", Handler: proxies["recommendations"], URL: "/api/recommendations?user_id={sub}"},
	}, aggregate.WithVars(aggregate.IdentityVars), aggregate.WithTimeout(5*time.Second),
		aggregate.WithMeterProvider(mp), aggregate.WithTracerProvider(tp), aggregate.WithLogger(log))
	if err != nil {
		return nil, err
	}
	done.add(func() { _ = dash.Close() })
	// A new order changes the dashboard: a successful POST (PUT, DELETE...) under /api/orders
	// invalidates /api/dashboard for every user (the variants share the path: bff strips their
	// prefix before the cache).
	cacheOpts := []cache.Option{cache.TTL(60 * time.Second), cache.PerIdentity(), cache.WithMeterProvider(mp), cache.WithLogger(log),
		cache.Invalidates(func(r *http.Request) []string {
			if r.URL.Path == "/api/orders" || strings.HasPrefix(r.URL.Path, "/api/orders/") {
				return []string{"/api/dashboard"}
			}
			return nil
		})}
	if rdb != nil {
		cacheOpts = append(cacheOpts, cache.WithStore(cache.RedisStore(rdb)))
	}
	cached, err := cache.New(cacheOpts...)
	if err != nil {
		return nil, err
	}
	done.add(func() { _ = cached.Close() })

	// Client variants: mobile gets a few fields, web everything but e-mail addresses, admin all.
	shape, err := bff.New(
		bff.Variant("mobile", bff.PathPrefix("/mobile"), bff.Allow(
			"id", "displayName", "name", "price", "status", "total",
			"user.id", "user.displayName",
			"orders[].id", "orders[].status", "orders[].total",
			"products[].id", "products[].name", "products[].price",
			"recommendations.items[].product_id", "recommendations.items[].name")),
		bff.Variant("web", bff.PathPrefix("/web"), bff.Deny("email", "user.email")),
		bff.Variant("admin", bff.PathPrefix("/admin")),
		bff.WithMeterProvider(mp), bff.WithLogger(log))
	if err != nil {
		return nil, err
	}

	// Routes. Each API route exists at /api (plain), /mobile/api, /web/api and /admin/api (shaped).
	type route struct {
		method, path, service string
		h                     http.Handler
	}
	routes := []route{
		{"GET", "/users/{id}", "users", usersREST},
		{"", "/orders", "orders", cached.InvalidateOnSuccess(proxies["orders"])},
		{"", "/orders/", "orders", cached.InvalidateOnSuccess(proxies["orders"])},
		{"", "/products", "products", proxies["products"]},
		{"", "/products/", "products", proxies["products"]},
		{"", "/payments", "payments", proxies["payments"]},
		{"", "/payments/", "payments", proxies["payments"]},
		{"GET", "/dashboard", "dashboard", cached.Wrap(dash)},
	}
	mux := http.NewServeMux()
	for _, variant := range []string{"", "mobile", "web", "admin"} {
		prefix := "/api"
		mws := []gatewaykit.Middleware{gate.Wrap, telemetry.RecordIdentity}
		if variant != "" {
			prefix = "/" + variant + "/api"
		}
		if variant == "admin" {
			mws = append(mws, auth.RequireRole("admin"))
		}
		for _, rt := range routes {
			chain := append(append([]gatewaykit.Middleware{}, mws...), limiter(rt.service).Wrap)
			if variant != "" {
				chain = append(chain, shape.Wrap)
			}
			pattern := strings.TrimSpace(rt.method + " " + prefix + rt.path)
			mux.Handle(pattern, gatewaykit.Chain(chain...)(rt.h))
		}
	}
	mux.Handle("GET /metrics", sdk.Metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Per service: instances the resolver reports healthy, and those the proxy routes to
		// (healthy and not ejected by passive health checks).
		services := map[string]map[string]int{}
		for name, p := range proxies {
			ictx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			healthy, _ := res.Instances(ictx, name)
			cancel()
			services[name] = map[string]int{"healthy": len(healthy), "routable": len(p.Instances())}
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "services": services})
	})
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusNotFound, "no route for this path"))
	}))
	if demo.idp != nil {
		demo.routes(mux, log)
	}

	// Everything: path safety first, then size limits, security headers, request IDs, and
	// telemetry (spans, HTTP metrics, access log) directly around the mux.
	paths, err := guard.NewPathSafety(guard.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	sizes, err := guard.NewLimits(guard.MaxBodyBytes(1<<20), guard.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	sec, err := guard.NewSecurityHeaders(guard.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	tel, err := telemetry.New(telemetry.WithMeterProvider(mp), telemetry.WithTracerProvider(tp),
		telemetry.WithPropagators(sdk.Propagator), telemetry.WithLogger(log))
	if err != nil {
		return nil, err
	}
	g.handler = gatewaykit.Chain(paths.Wrap, sizes.Wrap, sec.Wrap, gatewaykit.RequestID, tel.Wrap)(mux)
	return g, nil
}

// newLimiters returns the limiter for a service (built once per service, all sharing one store).
func newLimiters(l Limits, rdb redis.UniversalClient, mp metric.MeterProvider, log *slog.Logger, done *cleanup) (func(service string) *ratelimit.Limiter, error) {
	opts := []ratelimit.Option{ratelimit.WithMeterProvider(mp), ratelimit.WithLogger(log)}
	if rdb != nil {
		store, err := ratelimit.NewRedisStore(rdb)
		if err != nil {
			return nil, err
		}
		opts = append(opts, ratelimit.WithStore(store), ratelimit.WithStoreTimeout(l.StoreTimeout))
		if l.FailOpen {
			opts = append(opts, ratelimit.FailOpen())
		} else {
			opts = append(opts, ratelimit.FailClosed())
		}
	} else {
		store, err := ratelimit.NewMemoryStore()
		if err != nil {
			return nil, err
		}
		opts = append(opts, ratelimit.WithStore(store))
	}
	limiters := map[string]*ratelimit.Limiter{}
	for _, svc := range []string{"users", "orders", "products", "payments", "dashboard"} {
		lim, err := ratelimit.New(l.rules(svc), opts...)
		if err != nil {
			return nil, fmt.Errorf("limits for %s: %w", svc, err)
		}
		done.add(func() { _ = lim.Close() })
		limiters[svc] = lim
	}
	return func(service string) *ratelimit.Limiter { return limiters[service] }, nil
}

// newJWT verifies tokens of the demo identity provider or of the external one.
func newJWT(cfg Config, demo *demoServices, mp metric.MeterProvider, log *slog.Logger) (*auth.JWT, error) {
	opts := []auth.Option{auth.WithMeterProvider(mp), auth.WithLogger(log)}
	if cfg.Audience != "-" {
		opts = append(opts, auth.WithAudience(cfg.Audience))
	}
	switch {
	case demo.idp != nil:
		opts = append(opts, auth.WithOIDC(demo.idp.URL()), auth.WithAlgorithms("ES256"), auth.AllowInsecureHTTP())
	case cfg.JWKSURL != "":
		opts = append(opts, auth.WithJWKS(cfg.JWKSURL), auth.WithAlgorithms("RS256", "PS256", "ES256", "ES384", "EdDSA"))
		if cfg.Issuer != "" {
			opts = append(opts, auth.WithIssuer(cfg.Issuer))
		}
	default:
		opts = append(opts, auth.WithOIDC(cfg.Issuer), auth.WithAlgorithms("RS256", "PS256", "ES256", "ES384", "EdDSA"))
	}
	if strings.HasPrefix(cfg.Issuer, "http://") || strings.HasPrefix(cfg.JWKSURL, "http://") {
		opts = append(opts, auth.AllowInsecureHTTP())
	}
	jwt, err := auth.NewJWT(opts...)
	if err != nil {
		return nil, fmt.Errorf("identity provider: %w", err)
	}
	return jwt, nil
}
