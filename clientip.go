package gatewaykit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIPResolver finds the address of the client that made a request, trusting forwarding
// headers only from configured proxies.
//
// With no trusted proxies (the default, and the nil *ClientIPResolver) it returns the TCP peer
// address and ignores X-Forwarded-For, Forwarded and X-Real-IP entirely: those headers are
// client-controlled. With trusted proxies it starts at the peer and, while the current hop is a
// trusted proxy, steps one entry to the left in X-Forwarded-For (all header lines, comma-separated,
// read right to left). It returns the first hop that is not a trusted proxy. A malformed entry
// stops the walk: the last well-formed hop is returned, so a garbled header can never choose the
// answer. Addresses are returned without port or IPv6 zone, and IPv4-mapped IPv6 addresses are
// unmapped.
//
// A ClientIPResolver is immutable and safe for concurrent use.
type ClientIPResolver struct {
	trusted PrefixSet
	maxHops int
}

// DefaultMaxForwardedHops bounds how many X-Forwarded-For entries a resolver examines.
const DefaultMaxForwardedHops = 32

// PrefixSet is an immutable list of IP prefixes (CIDR blocks), as used for trusted proxies and IP
// allow/deny lists. The zero value (and nil) contains nothing. Safe for concurrent use.
type PrefixSet []netip.Prefix

// ParsePrefixSet parses CIDR prefixes ("10.0.0.0/8", "2001:db8::/32") and single addresses
// ("192.0.2.7", a /32 or /128). IPv4-mapped IPv6 prefixes are stored as IPv4. It returns an error
// naming the first entry that is not a prefix or address, or that carries an IPv6 zone.
func ParsePrefixSet(entries ...string) (PrefixSet, error) {
	set := make(PrefixSet, 0, len(entries))
	for _, s := range entries {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(s)
			if err == nil && a.Zone() != "" {
				return nil, fmt.Errorf("gatewaykit: %q: zones are not allowed in IP prefixes", s)
			}
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, fmt.Errorf("gatewaykit: %q is not a CIDR prefix or IP address", s)
		}
		p = p.Masked()
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		set = append(set, p)
	}
	return set, nil
}

// Contains reports whether addr (zone ignored, IPv4-mapped IPv6 unmapped) is in the set. It scans
// linearly: fast for the tens of entries such lists usually hold.
func (s PrefixSet) Contains(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, p := range s {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// NewClientIPResolver returns a resolver that trusts forwarding headers set by peers in the given
// CIDR prefixes ("10.0.0.0/8", "::1/128") or single addresses ("192.0.2.7"), parsed as by
// ParsePrefixSet. It returns an error naming the first entry that does not parse.
func NewClientIPResolver(trustedProxies ...string) (*ClientIPResolver, error) {
	set, err := ParsePrefixSet(trustedProxies...)
	if err != nil {
		return nil, fmt.Errorf("%w (trusted proxy)", err)
	}
	return &ClientIPResolver{trusted: set, maxHops: DefaultMaxForwardedHops}, nil
}

// Trusted reports whether addr belongs to a trusted proxy. A nil resolver trusts nobody.
func (c *ClientIPResolver) Trusted(addr netip.Addr) bool {
	return c != nil && c.trusted.Contains(addr)
}

// ClientIP returns the client's address for r, as described on ClientIPResolver. It returns the
// zero netip.Addr (IsValid false) only when r.RemoteAddr itself is not an IP address, as with some
// in-memory transports. Safe to call on a nil resolver.
func (c *ClientIPResolver) ClientIP(r *http.Request) netip.Addr {
	peer, ok := ParseHostAddr(r.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if c == nil || len(c.trusted) == 0 || !c.Trusted(peer) {
		return peer
	}
	cur := peer
	hops := 0
	lines := r.Header.Values("X-Forwarded-For")
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for line != "" {
			var entry string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				entry, line = line[j+1:], line[:j]
			} else {
				entry, line = line, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue // tolerate "a, , b" and trailing commas
			}
			hops++
			if hops > c.maxHops {
				return cur
			}
			a, ok := ParseHostAddr(entry)
			if !ok {
				return cur
			}
			cur = a
			if !c.Trusted(cur) {
				return cur
			}
		}
	}
	return cur
}

// ParseHostAddr parses "ip", "ip:port", "[ipv6]" or "[ipv6]:port" into an address without zone,
// with IPv4-mapped IPv6 unmapped. It never panics; ok is false for anything else (host names,
// "unknown", obfuscated identifiers, empty input, overlong input).
func ParseHostAddr(s string) (addr netip.Addr, ok bool) {
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	host := s
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = s[1:end]
		rest := s[end+1:]
		if rest != "" && !validPort(rest) {
			return netip.Addr{}, false
		}
	} else if strings.Count(s, ":") == 1 { // IPv4 with port; bare IPv6 has at least two colons
		h, port, err := net.SplitHostPort(s)
		if err != nil || !validPort(":"+port) {
			return netip.Addr{}, false
		}
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

func validPort(s string) bool {
	if len(s) < 2 || len(s) > 6 || s[0] != ':' {
		return false
	}
	n := 0
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}
