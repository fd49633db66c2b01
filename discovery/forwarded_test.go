package discovery_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxyForwardedHeaders(t *testing.T) {
	up := upstream(t, echo("a"))
	trustLoopback, err := gatewaykit.NewClientIPResolver("127.0.0.0/8", "::1")
	if err != nil {
		t.Fatal(err)
	}
	trustOther, err := gatewaykit.NewClientIPResolver("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	spoof := map[string]string{
		"X-Forwarded-For":   "203.0.113.9",
		"X-Forwarded-Host":  "evil.example",
		"X-Forwarded-Proto": "https",
		"Forwarded":         "for=203.0.113.9",
		"X-Real-Ip":         "203.0.113.9",
	}
	tests := []struct {
		name     string
		resolver *gatewaykit.ClientIPResolver
		send     map[string]string
		want     map[string]string // "" means absent
	}{
		{"untrusted peer: spoofed headers replaced", nil, spoof, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http",
			"Forwarded": "", "X-Real-Ip": "",
		}},
		{"peer outside the trusted ranges", trustOther, spoof, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http",
			"Forwarded": "", "X-Real-Ip": "",
		}},
		{"trusted peer: chain kept and extended", trustLoopback, spoof, map[string]string{
			"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
			"Forwarded": "for=203.0.113.9", "X-Real-Ip": "203.0.113.9",
		}},
		{"trusted peer without forwarding headers", trustLoopback, nil, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []discovery.Option{}
			if tt.resolver != nil {
				opts = append(opts, discovery.WithClientIPResolver(tt.resolver))
			}
			_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, opts...)
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			req.Host = "gw.example"
			for k, v := range tt.send {
				req.Header.Set(k, v)
			}
			s := doSeen(t, req)
			for k, want := range tt.want {
				if got := strings.Join(s.Header.Values(k), " | "); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if s.Host != instanceOf(t, up).HostPort() {
				t.Errorf("upstream Host = %q, want the instance address", s.Host)
			}
		})
	}
}

func TestProxyPreserveHost(t *testing.T) {
	up := upstream(t, echo("a"))
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, discovery.PreserveHost())
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Host = "shop.example"
	if s := doSeen(t, req); s.Host != "shop.example" {
		t.Fatalf("Host = %q, want shop.example", s.Host)
	}
}
