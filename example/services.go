package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth/authtest"
	"github.com/gatewaykit/gatewaykit/discovery"
	"github.com/gatewaykit/gatewaykit/telemetry"
	"github.com/hashicorp/consul/api"
)

// demoServices are the in-process upstreams and identity provider of demo mode.
type demoServices struct {
	users     *grpcDemo        // nil when -upstream users=...
	instances []*demoServer    // HTTP services, in start order
	idp       *authtest.Issuer // nil with an external identity provider
	idpSrv    *http.Server
	log       *slog.Logger
}

// startDemoServices starts every demo service that no -upstream replaces, and the demo identity
// provider unless an external one is configured.
func startDemoServices(cfg Config, log *slog.Logger) (_ *demoServices, err error) {
	d := &demoServices{log: log}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if len(cfg.Upstreams["users"]) == 0 {
		if d.users, err = startUsers(); err != nil {
			return nil, err
		}
	}
	store := newOrderStore()
	specs := []struct {
		service, instance string
		tags              []string
		h                 http.Handler
	}{
		{"orders", "orders-1", nil, ordersHandler(store)},
		{"orders", "orders-2", nil, ordersHandler(store)},
		{"products", "products-1", []string{"v1"}, productsHandler("v1")},
		{"products", "products-2", []string{"v2"}, productsHandler("v2")},
		{"payments", "payments-1", nil, paymentsHandler()},
		{"recommendations", "recommendations-1", nil, recommendationsHandler()},
	}
	for _, s := range specs {
		if len(cfg.Upstreams[s.service]) > 0 {
			continue
		}
		inst, err := startDemo(s.service, s.instance, s.tags, s.h)
		if err != nil {
			return nil, err
		}
		d.instances = append(d.instances, inst)
	}
	if cfg.demoIdP() {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("demo identity provider: %w", err)
		}
		d.idp, err = authtest.New("http://"+ln.Addr().String(), "ES256")
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("demo identity provider: %w", err)
		}
		d.idpSrv = &http.Server{Handler: d.idp, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = d.idpSrv.Serve(ln) }()
		log.Warn("DEMO MODE: in-process identity provider enabled; GET /demo/token mints tokens for anyone and POST /demo/instances/{id}/stop stops demo instances", "issuer", d.idp.URL())
		if host, _, err := net.SplitHostPort(cfg.Addr); err != nil || !isLoopback(host) {
			log.Warn("DEMO MODE on a non-loopback address: anyone who can reach it can mint tokens; use -issuer or -jwks-url outside a demo", "addr", cfg.Addr)
		}
	}
	return d, nil
}

func (d *demoServices) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, inst := range d.instances {
		_ = inst.close(ctx)
	}
	if d.users != nil {
		d.users.close()
	}
	if d.idpSrv != nil {
		_ = d.idpSrv.Shutdown(ctx)
	}
}

// instancesOf returns the instances of every service: demo ones and -upstream ones.
func (d *demoServices) instancesOf(cfg Config) (map[string][]discovery.Instance, error) {
	out := map[string][]discovery.Instance{}
	for _, inst := range d.instances {
		host, port, _ := net.SplitHostPort(inst.addr())
		p, _ := strconv.Atoi(port)
		out[inst.name] = append(out[inst.name], discovery.Instance{ID: inst.instance, Address: host, Port: p, Tags: inst.tags, Meta: map[string]string{"demo": "true"}})
	}
	if d.users != nil {
		host, port, _ := net.SplitHostPort(d.users.addr())
		p, _ := strconv.Atoi(port)
		out["users"] = append(out["users"], discovery.Instance{ID: "users-1", Address: host, Port: p})
	}
	for name, urls := range cfg.Upstreams {
		for i, raw := range urls {
			u, err := parseUpstream(raw)
			if err != nil {
				return nil, err
			}
			p, _ := strconv.Atoi(u.Port())
			// An external products upstream serves both versions unless tagged by the operator.
			out[name] = append(out[name], discovery.Instance{ID: name + "-ext-" + strconv.Itoa(i+1), Address: u.Hostname(), Port: p, Tags: []string{"v1", "v2"}})
		}
	}
	return out, nil
}

// newResolver returns a static resolver over the instances, or with -consul registers them in
// Consul (with health checks) and resolves through Consul.
func newResolver(ctx context.Context, cfg Config, demo *demoServices, sdk *telemetry.SDK, log *slog.Logger, done *cleanup) (discovery.Resolver, error) {
	services, err := demo.instancesOf(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Consul == "" {
		res, err := discovery.NewStatic(services, discovery.WithMeterProvider(sdk.MeterProvider), discovery.WithLogger(log))
		if err != nil {
			return nil, err
		}
		done.add(func() { _ = res.Close() })
		return res, nil
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	done.add(tr.CloseIdleConnections)
	client, err := api.NewClient(&api.Config{Address: cfg.Consul, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("-consul: %w", err)
	}
	agent := client.Agent()
	for name, list := range services {
		for _, in := range list {
			id := "gatewaykit-example-" + in.ID
			check := &api.AgentServiceCheck{
				Interval: "2s", Timeout: "1s", Status: api.HealthPassing,
				DeregisterCriticalServiceAfter: "1m",
			}
			if name == "users" || in.Meta["demo"] != "true" { // gRPC, or an -upstream without a known /healthz
				check.TCP = in.HostPort()
			} else {
				check.HTTP = "http://" + in.HostPort() + "/healthz"
			}
			reg := &api.AgentServiceRegistration{ID: id, Name: name, Address: in.Address, Port: in.Port, Tags: in.Tags, Check: check}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := agent.ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(rctx))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("-consul: register %s: %w", in.ID, err)
			}
			done.add(func() { _ = agent.ServiceDeregister(id) })
		}
	}
	log.Info("registered services in Consul", "agent", cfg.Consul, "services", len(services))
	res, err := discovery.NewConsul(client, discovery.WithWaitTime(30*time.Second),
		discovery.WithMeterProvider(sdk.MeterProvider), discovery.WithLogger(log))
	if err != nil {
		return nil, err
	}
	done.add(func() { _ = res.Close() })
	return res, nil
}

// routes adds the demo-mode endpoints: a token minter and instance stop/start switches for the
// failover tour. They exist only with the demo identity provider.
func (d *demoServices) routes(mux *http.ServeMux, log *slog.Logger) {
	mux.HandleFunc("GET /demo/token", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		sub := q.Get("sub")
		roles, tier := q.Get("roles"), q.Get("tier")
		if !demoClaimValue(sub) || (roles != "" && !demoClaimValue(roles)) || (tier != "" && !demoClaimValue(tier)) {
			gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusBadRequest,
				"sub is required; sub, roles and tier must be printable UTF-8 of at most 64 bytes"))
			return
		}
		claims := map[string]any{"sub": sub, "aud": "gatewaykit-example", "exp": time.Now().Add(15 * time.Minute).Unix()}
		if roles != "" {
			claims["roles"] = strings.Split(roles, ",")
		}
		if tier != "" {
			claims["tier"] = tier
		}
		tok, err := d.idp.Mint(claims)
		if err != nil {
			gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusInternalServerError, "cannot mint a token"))
			return
		}
		log.Info("demo token minted", "sub", sub)
		if strings.HasPrefix(r.Header.Get("Accept"), "text/plain") { // TOKEN=$(curl -H 'Accept: text/plain' ...)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, tok+"\n")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 900})
	})
	mux.HandleFunc("GET /demo/instances", func(w http.ResponseWriter, r *http.Request) {
		out := []map[string]any{}
		for _, inst := range d.instances {
			out = append(out, map[string]any{"instance": inst.instance, "service": inst.name, "addr": inst.addr(), "running": inst.running()})
		}
		writeJSON(w, http.StatusOK, map[string]any{"instances": out})
	})
	mux.HandleFunc("POST /demo/instances/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var inst *demoServer
		for _, in := range d.instances {
			if in.instance == r.PathValue("id") {
				inst = in
			}
		}
		if inst == nil {
			gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusNotFound, "no such demo instance"))
			return
		}
		var err error
		switch r.PathValue("action") {
		case "stop":
			err = inst.stop()
		case "start":
			err = inst.start()
		default:
			gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusNotFound, "action is stop or start"))
			return
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			gatewaykit.WriteProblem(w, r, gatewaykit.NewProblem(http.StatusInternalServerError, "cannot change the instance"))
			return
		}
		log.Info("demo instance "+r.PathValue("action"), "instance", inst.instance)
		writeJSON(w, http.StatusOK, map[string]any{"instance": inst.instance, "running": inst.running()})
	})
}

// demoClaimValue reports whether a /demo/token query value may become a claim: 1 to 64 bytes of
// valid UTF-8 without control characters.
func demoClaimValue(v string) bool {
	if v == "" || len(v) > 64 || !utf8.ValidString(v) {
		return false
	}
	return !strings.ContainsFunc(v, unicode.IsControl)
}

// isLoopback reports whether host (from a listen address) is a loopback name or address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
