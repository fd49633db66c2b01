package discovery_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// seen is what the echo upstream reports about the request it received.
type seen struct {
	Header  http.Header
	Host    string
	Path    string
	RawPath string
	Query   string
	Name    string
}

func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Header: r.Header, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Name: name})
	}
}

func doSeen(t *testing.T, req *http.Request) seen {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var s seen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOptionValidation(t *testing.T) {
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {{Address: "127.0.0.1", Port: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	bad := map[string]discovery.Option{
		"nil balancer":         discovery.WithBalancer(nil),
		"nil hash key":         discovery.WithBalancer(discovery.ConsistentHash(nil)),
		"nil transport":        discovery.WithTransport(nil),
		"empty prefix":         discovery.StripPrefix("/"),
		"relative prefix":      discovery.StripPrefix("api"),
		"dot segment":          discovery.StripPrefix("/api/.."),
		"encoded prefix":       discovery.StripPrefix("/a%2f"),
		"negative flush":       discovery.WithFlushInterval(-2),
		"zero retry after":     discovery.WithRetryAfter(0),
		"bad scheme":           discovery.WithScheme("ftp"),
		"passive zero":         discovery.WithPassiveHealth(discovery.PassiveHealth{}),
		"passive max < base":   discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Minute, MaxEjection: time.Second, MaxEjectedPercent: 50}),
		"passive percent":      discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Second, MaxEjection: time.Second, MaxEjectedPercent: 101}),
		"route header":         discovery.RouteByHeader("bad header", discovery.FallbackAll()),
		"route zero fallback":  discovery.RouteByHeader("X-V", discovery.Fallback{}),
		"route empty tag":      discovery.RouteByHeader("X-V", discovery.FallbackTag("")),
		"route empty allowed":  discovery.RouteByHeader("X-V", discovery.FallbackAll(), "v1", ""),
		"consul-only option":   discovery.WithDatacenter("dc1"),
		"static-only option":   discovery.WithHealthCheck(discovery.HealthCheck{Path: "/h", Interval: time.Second}),
		"nil clock":            discovery.WithClock(nil),
		"nil error handler":    discovery.WithErrorHandler(nil),
		"nil error mapper":     discovery.WithErrorMapper(nil),
		"nil option":           nil,
		"nil meter provider":   discovery.WithMeterProvider(nil),
		"nil logger":           discovery.WithLogger(nil),
		"wait time with proxy": discovery.WithWaitTime(time.Minute),
	}
	for name, opt := range bad {
		t.Run(name, func(t *testing.T) {
			p, err := discovery.NewProxy(res, "svc", opt)
			if err == nil {
				p.Close()
				t.Fatal("NewProxy accepted an invalid option")
			}
			if !strings.HasPrefix(err.Error(), "discovery: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := discovery.NewProxy(res, "svc", discovery.StripPrefix("/a"), discovery.StripPrefix("/b")); err == nil {
		t.Error("two prefix rewrites accepted")
	}
	if _, err := discovery.NewProxy(nil, "svc"); err == nil {
		t.Error("nil resolver accepted")
	}
	if _, err := discovery.NewProxy(res, ""); err == nil {
		t.Error("empty service accepted")
	}
	if _, err := discovery.NewProxy(res, "unknown"); !errors.Is(err, discovery.ErrUnknownService) {
		t.Errorf("unknown service: %v, want ErrUnknownService", err)
	}
}
