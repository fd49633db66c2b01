package guard_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/guard"
)

func TestIPFilter(t *testing.T) {
	proxies := must(gatewaykit.NewClientIPResolver("192.0.2.0/24", "2001:db8:ffff::/48"))
	filter := must(guard.NewIPFilter(
		guard.AllowCIDRs("10.0.0.0/8", "2001:db8::/32", "198.51.100.7"),
		guard.DenyCIDRs("10.1.0.0/16", "2001:db8:bad::/48"),
	))
	behindProxy := must(guard.NewIPFilter(guard.AllowCIDRs("10.0.0.0/8"), guard.DenyCIDRs("10.1.0.0/16"), guard.WithClientIP(proxies)))
	tests := []struct {
		name   string
		f      *guard.IPFilter
		peer   string
		xff    []string
		status int
	}{
		{"allowed v4", filter, "10.2.3.4:5000", nil, 200},
		{"single address", filter, "198.51.100.7:1", nil, 200},
		{"neighbour of single address", filter, "198.51.100.8:1", nil, 403},
		{"deny wins over allow", filter, "10.1.2.3:5000", nil, 403},
		{"outside allow list", filter, "203.0.113.9:5000", nil, 403},
		{"allowed v6", filter, "[2001:db8::1]:443", nil, 200},
		{"denied v6", filter, "[2001:db8:bad::1]:443", nil, 403},
		{"v6 outside", filter, "[2001:db9::1]:443", nil, 403},
		{"v4-mapped v6 matches v4 prefix", filter, "[::ffff:10.2.3.4]:80", nil, 200},
		{"unknown address fails closed", filter, "pipe", nil, 403},
		{"spoofed XFF from untrusted peer", filter, "203.0.113.9:5000", []string{"10.2.3.4"}, 403},
		{"spoofed XFF cannot escape deny", filter, "10.1.2.3:5000", []string{"10.2.3.4"}, 403},
		{"trusted proxy forwards allowed client", behindProxy, "192.0.2.10:5000", []string{"10.2.3.4"}, 200},
		{"trusted proxy forwards denied client", behindProxy, "192.0.2.10:5000", []string{"10.1.2.3"}, 403},
		{"client spoofs the left entry", behindProxy, "192.0.2.10:5000", []string{"10.2.3.4, 203.0.113.9"}, 403},
		{"client spoofs a second header line", behindProxy, "192.0.2.10:5000", []string{"10.2.3.4", "203.0.113.9"}, 403},
		{"garbage XFF stops at the proxy", behindProxy, "192.0.2.10:5000", []string{"10.2.3.4, not-an-ip"}, 403},
		{"proxy itself is not allowed", behindProxy, "192.0.2.10:5000", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			rec := httptest.NewRecorder()
			tt.f.Wrap(okHandler).ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			if tt.status == 403 {
				p := problemOf(t, rec.Header(), rec.Body.String())
				if d, _ := p["detail"].(string); strings.Contains(d, "10.") || strings.Contains(d, "203.") {
					t.Fatalf("detail leaks the address: %q", d)
				}
			}
		})
	}
	if !filter.Allowed(netip.MustParseAddr("10.9.9.9")) || filter.Allowed(netip.MustParseAddr("10.1.0.1")) {
		t.Fatal("Allowed disagrees with the lists")
	}
}

func TestIPFilterRealServer(t *testing.T) {
	f := must(guard.NewIPFilter(guard.DenyCIDRs("127.0.0.0/8")))
	srv := httptest.NewServer(f.Wrap(okHandler))
	defer srv.Close()
	resp, body := rawGet(t, srv, "/", "X-Forwarded-For: 203.0.113.1")
	if resp.StatusCode != 403 {
		t.Fatalf("loopback peer with spoofed XFF: %d %q, want 403", resp.StatusCode, body)
	}
}

func TestIPFilterConstruction(t *testing.T) {
	for name, opts := range map[string][]guard.Option{
		"no lists":           nil,
		"bad CIDR":           {guard.AllowCIDRs("10.0.0.0/33")},
		"host name":          {guard.DenyCIDRs("example.com")},
		"zone":               {guard.DenyCIDRs("fe80::1%eth0")},
		"misplaced option":   {guard.AllowCIDRs("10.0.0.0/8"), guard.MaxBodyBytes(10)},
		"nil resolver":       {guard.AllowCIDRs("10.0.0.0/8"), guard.WithClientIP(nil)},
		"nil error handler":  {guard.AllowCIDRs("10.0.0.0/8"), guard.WithErrorHandler(nil)},
		"nil meter provider": {guard.AllowCIDRs("10.0.0.0/8"), guard.WithMeterProvider(nil)},
		"nil option":         {guard.AllowCIDRs("10.0.0.0/8"), nil},
	} {
		if _, err := guard.NewIPFilter(opts...); err == nil || !strings.HasPrefix(err.Error(), "guard: ") {
			t.Errorf("%s: err = %v, want a guard: error", name, err)
		}
	}
}

func TestIPFilterErrorHandler(t *testing.T) {
	var got *gatewaykit.Problem
	f := must(guard.NewIPFilter(guard.DenyCIDRs("0.0.0.0/0"), guard.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
		got = p
		w.WriteHeader(451)
	})))
	rec := httptest.NewRecorder()
	f.Wrap(okHandler).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 451 || got == nil || got.Status != 403 {
		t.Fatalf("custom handler: code %d problem %+v", rec.Code, got)
	}
}
