package gatewaykit_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
)

func TestClientIP(t *testing.T) {
	none, err := gatewaykit.NewClientIPResolver()
	if err != nil {
		t.Fatal(err)
	}
	lb, err := gatewaykit.NewClientIPResolver("10.0.0.0/8", "2001:db8::/32", "192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		res    *gatewaykit.ClientIPResolver
		remote string
		xff    []string
		extra  map[string]string
		want   string
	}{
		{"no trust: peer", none, "203.0.113.9:5555", nil, nil, "203.0.113.9"},
		{"no trust: spoofed XFF ignored", none, "203.0.113.9:5555", []string{"1.1.1.1"}, nil, "203.0.113.9"},
		{"no trust: X-Real-IP and Forwarded ignored", none, "203.0.113.9:5555", nil,
			map[string]string{"X-Real-IP": "1.1.1.1", "Forwarded": "for=1.1.1.1"}, "203.0.113.9"},
		{"nil resolver: peer", nil, "203.0.113.9:1", []string{"1.1.1.1"}, nil, "203.0.113.9"},
		{"trusted: untrusted peer ignores XFF", lb, "203.0.113.9:5555", []string{"1.1.1.1"}, nil, "203.0.113.9"},
		{"trusted: one hop", lb, "10.1.2.3:5555", []string{"198.51.100.4"}, nil, "198.51.100.4"},
		{"trusted: spoof left of real client", lb, "10.1.2.3:5555", []string{"1.1.1.1, 198.51.100.4"}, nil, "198.51.100.4"},
		{"trusted: multi-hop through proxies", lb, "10.1.2.3:5555", []string{"1.1.1.1, 198.51.100.4, 10.9.9.9, 192.0.2.7"}, nil, "198.51.100.4"},
		{"trusted: multiple header lines", lb, "10.1.2.3:5555", []string{"1.1.1.1, 198.51.100.4", "10.9.9.9"}, nil, "198.51.100.4"},
		{"trusted: all hops trusted returns leftmost", lb, "10.1.2.3:5555", []string{"10.0.0.1, 10.0.0.2"}, nil, "10.0.0.1"},
		{"trusted: empty XFF gives peer", lb, "10.1.2.3:5555", nil, nil, "10.1.2.3"},
		{"trusted: malformed hop stops at last good", lb, "10.1.2.3:5555", []string{"1.1.1.1, garbage"}, nil, "10.1.2.3"},
		{"trusted: malformed behind trusted hop", lb, "10.1.2.3:5555", []string{"1.1.1.1, not-an-ip, 10.4.4.4"}, nil, "10.4.4.4"},
		{"trusted: unknown token", lb, "10.1.2.3:5555", []string{"unknown"}, nil, "10.1.2.3"},
		{"trusted: empty entries tolerated", lb, "10.1.2.3:5555", []string{"198.51.100.4, ,"}, nil, "198.51.100.4"},
		{"trusted: XFF entry with port", lb, "10.1.2.3:5555", []string{"198.51.100.4:1234"}, nil, "198.51.100.4"},
		{"trusted: XFF bad port", lb, "10.1.2.3:5555", []string{"198.51.100.4:99999"}, nil, "10.1.2.3"},
		{"ipv6 peer with zone", none, "[fe80::1%eth0]:443", nil, nil, "fe80::1"},
		{"ipv6 peer", none, "[2001:db8::1]:443", nil, nil, "2001:db8::1"},
		{"ipv4-mapped peer unmapped", none, "[::ffff:203.0.113.9]:80", nil, nil, "203.0.113.9"},
		{"ipv6 trusted proxy, ipv6 client", lb, "[2001:db8::5]:443", []string{"2606:4700::1111"}, nil, "2606:4700::1111"},
		{"ipv6 bracketed XFF with port", lb, "[2001:db8::5]:443", []string{"[2606:4700::1111]:8443"}, nil, "2606:4700::1111"},
		{"ipv6 XFF with odd zone stripped", lb, "[2001:db8::5]:443", []string{"fe80::2%25eth0"}, nil, "fe80::2"},
		{"ipv6 XFF zone raw", lb, "[2001:db8::5]:443", []string{"fe80::2%eth0"}, nil, "fe80::2"},
		{"mapped XFF hop trusted by v4 rule", lb, "10.1.2.3:1", []string{"198.51.100.4, ::ffff:10.0.0.9"}, nil, "198.51.100.4"},
		{"unterminated bracket", lb, "10.1.2.3:1", []string{"[2001:db8::1"}, nil, "10.1.2.3"},
		{"overlong entry", lb, "10.1.2.3:1", []string{strings.Repeat("1", 200)}, nil, "10.1.2.3"},
		{"single address trusted proxy", lb, "192.0.2.7:80", []string{"198.51.100.4"}, nil, "198.51.100.4"},
		{"neighbour of single trusted address not trusted", lb, "192.0.2.8:80", []string{"198.51.100.4"}, nil, "192.0.2.8"},
		{"non-IP remote", none, "pipe", nil, nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for k, v := range tt.extra {
				r.Header.Set(k, v)
			}
			if got := tt.res.ClientIP(r).String(); got != tt.want {
				t.Fatalf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestClientIPHopLimit(t *testing.T) {
	all, err := gatewaykit.NewClientIPResolver("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	hops := make([]string, 100)
	for i := range hops {
		hops[i] = "10.0.0.2"
	}
	hops[0] = "198.51.100.4"
	r.Header.Set("X-Forwarded-For", strings.Join(hops, ","))
	if got := all.ClientIP(r); got.String() != "10.0.0.2" {
		t.Fatalf("walk past the hop limit: %s", got)
	}
}

func TestNewClientIPResolverErrors(t *testing.T) {
	for _, bad := range []string{"", "10.0.0.0/33", "example.com", "fe80::1%eth0", "10.0.0.1/8/1"} {
		if _, err := gatewaykit.NewClientIPResolver(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	r, err := gatewaykit.NewClientIPResolver(" 10.0.0.0/8 ", "::ffff:192.0.2.0/120")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Trusted(netip.MustParseAddr("192.0.2.200")) || !r.Trusted(netip.MustParseAddr("10.255.0.1")) {
		t.Fatal("trusted prefixes not applied")
	}
}

func FuzzClientIP(f *testing.F) {
	for _, s := range []string{
		"1.1.1.1", "1.1.1.1, 10.0.0.1", "[::1]:80", "fe80::1%eth0", "::ffff:1.2.3.4", "unknown", ",,,", "[", "]",
		"1.2.3.4:", ":80", "[::1]x", "1.1.1.1:65536", "2001:db8::1, 10.0.0.1:443, [::1]:1",
	} {
		f.Add("10.0.0.1:1234", s)
		f.Add("[2001:db8::1]:443", s)
	}
	res, err := gatewaykit.NewClientIPResolver("10.0.0.0/8", "2001:db8::/32")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		got := res.ClientIP(r)
		peer, ok := gatewaykit.ParseHostAddr(remote)
		if !ok {
			if got.IsValid() {
				t.Fatalf("invalid peer %q gave %s", remote, got)
			}
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("bad result %v for %q %q", got, remote, xff)
		}
		if !res.Trusted(peer) && got != peer {
			t.Fatalf("untrusted peer %s but result %s", peer, got)
		}
		if got != peer && !strings.Contains(xff, strings.SplitN(got.String(), ":", 2)[0]) && !strings.Contains(xff, "ffff") {
			// a result other than the peer must come from the header
			if _, ok := gatewaykit.ParseHostAddr(got.String()); !ok {
				t.Fatalf("result %s from nowhere", got)
			}
		}
	})
}

func TestParsePrefixSet(t *testing.T) {
	set, err := gatewaykit.ParsePrefixSet("10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "::ffff:198.51.100.0/120")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"10.9.8.7": true, "11.0.0.1": false, "2001:db8::1": true, "2001:db9::1": false, "192.0.2.7": true,
		"192.0.2.8": false, "198.51.100.9": true, "::ffff:10.1.1.1": true, "fe80::1%eth0": false,
	} {
		if got := set.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	var empty gatewaykit.PrefixSet
	if empty.Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Fatal("empty set contains an address")
	}
	if _, err := gatewaykit.ParsePrefixSet("10.0.0.0/8", "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("error does not name the bad entry: %v", err)
	}
}
