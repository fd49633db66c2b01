package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/auth"
	"github.com/gatewaykit/gatewaykit/breaker"
	"github.com/gatewaykit/gatewaykit/discovery"
	"github.com/gatewaykit/gatewaykit/guard"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// gatewaykitTarget is a gatewaykit configuration under test, run as its own process (-role name).
type gatewaykitTarget struct {
	name, desc string
	needsToken bool
	build      func(upstreams []string) (http.Handler, func(), error)
}

// gatewaykitTargets lists the gatewaykit configurations measured after "bare", in this order.
func gatewaykitTargets() []gatewaykitTarget {
	return []gatewaykitTarget{
		{name: "gkproxy", desc: "gatewaykit discovery proxy alone (P2C, passive health, two backends)", build: buildProxy},
		{name: "full", desc: "full chain: guard, request ID, JWT ES256 (cached), per-user rate limit, breaker, discovery proxy", needsToken: true, build: buildFull},
	}
}

func lookupTarget(role string) (gatewaykitTarget, bool) {
	for _, t := range gatewaykitTargets() {
		if t.name == role {
			return t, true
		}
	}
	return gatewaykitTarget{}, false
}

func instances(upstreams []string) ([]discovery.Instance, error) {
	var out []discovery.Instance
	for _, u := range upstreams {
		host, port, err := net.SplitHostPort(u)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", u, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: bad port", u)
		}
		out = append(out, discovery.Instance{Address: host, Port: p})
	}
	return out, nil
}

func newProxy(upstreams []string, opts ...discovery.Option) (*discovery.Proxy, *discovery.Static, error) {
	ins, err := instances(upstreams)
	if err != nil {
		return nil, nil, err
	}
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"orders": ins})
	if err != nil {
		return nil, nil, err
	}
	p, err := discovery.NewProxy(res, "orders", append([]discovery.Option{discovery.WithBalancer(discovery.P2C())}, opts...)...)
	if err != nil {
		_ = res.Close()
		return nil, nil, err
	}
	return p, res, nil
}

func buildProxy(upstreams []string) (http.Handler, func(), error) {
	p, res, err := newProxy(upstreams)
	if err != nil {
		return nil, nil, err
	}
	return p, func() { _ = p.Close(); _ = res.Close() }, nil
}

// buildFull is the chain a production gateway would run, with in-memory state.
func buildFull(upstreams []string) (http.Handler, func(), error) {
	return buildFullWith(upstreams, discovery.DefaultTransport())
}

// buildFullWith builds the full chain over base, the transport under the breaker.
func buildFullWith(upstreams []string, base http.RoundTripper) (http.Handler, func(), error) {
	pemBytes, err := os.ReadFile(os.Getenv("BENCH_JWT_PUBKEY"))
	if err != nil {
		return nil, nil, fmt.Errorf("public key: %w", err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, nil, errors.New("public key: no PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	jwtAuth, err := auth.NewJWT(auth.WithKey("bench", "ES256", pub), auth.WithAlgorithms("ES256"),
		auth.WithIssuer(benchIssuer), auth.WithAudience(benchAudience))
	if err != nil {
		return nil, nil, err
	}
	lim, err := ratelimit.New([]ratelimit.Rule{{Name: "user", Limit: ratelimit.PerSecond(1_000_000), Key: ratelimit.BySubject()}})
	if err != nil {
		return nil, nil, err
	}
	brk, err := breaker.New(breaker.PerHost())
	if err != nil {
		return nil, nil, err
	}
	p, res, err := newProxy(upstreams, discovery.WithTransport(brk.Transport(base)),
		discovery.WithErrorMapper(breaker.ProblemFor))
	if err != nil {
		return nil, nil, err
	}
	paths, err := guard.NewPathSafety()
	if err != nil {
		return nil, nil, err
	}
	limits, err := guard.NewLimits()
	if err != nil {
		return nil, nil, err
	}
	h := gatewaykit.Chain(paths.Wrap, limits.Wrap, gatewaykit.RequestID, jwtAuth.Wrap, lim.Wrap)(p)
	return h, func() { _ = p.Close(); _ = res.Close(); _ = jwtAuth.Close(); _ = brk.Close() }, nil
}
