package guard

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/gatewaykit/gatewaykit"
)

// AllowCIDRs adds CIDR prefixes ("10.0.0.0/8", "2001:db8::/32") or single addresses to the IP
// filter's allow list. With a non-empty allow list, only clients inside it pass. Applies to
// NewIPFilter.
func AllowCIDRs(cidrs ...string) Option {
	return func(c *config) error {
		if err := c.applies("AllowCIDRs", kindIP); err != nil {
			return err
		}
		c.allow = append(c.allow, cidrs...)
		return nil
	}
}

// DenyCIDRs adds CIDR prefixes or single addresses to the IP filter's deny list. Deny wins over
// allow. Applies to NewIPFilter.
func DenyCIDRs(cidrs ...string) Option {
	return func(c *config) error {
		if err := c.applies("DenyCIDRs", kindIP); err != nil {
			return err
		}
		c.deny = append(c.deny, cidrs...)
		return nil
	}
}

// IPFilter admits or rejects requests by client address. See NewIPFilter. An IPFilter is
// immutable and safe for concurrent use.
type IPFilter struct {
	allow, deny *gatewaykit.ClientIPResolver // used as CIDR sets: Trusted is membership
	ips         *gatewaykit.ClientIPResolver
	onErr       gatewaykit.ErrorHandler
	m           rejections
	rDeny       reason
	rNotAllowed reason
	rUnknown    reason
}

// NewIPFilter returns a filter over the client address found by the WithClientIP resolver
// (default: the TCP peer; X-Forwarded-For is honoured only from the resolver's trusted proxies,
// so a spoofed header cannot choose the address). A client in the deny list, outside a non-empty
// allow list, or whose address cannot be determined is rejected with a 403 problem: the filter
// fails closed. IPv4-mapped IPv6 addresses match IPv4 prefixes. Lists are scanned linearly,
// which is fast for the tens of entries they usually hold.
//
// At least one of AllowCIDRs or DenyCIDRs is required. Options: AllowCIDRs, DenyCIDRs,
// WithClientIP, WithErrorHandler, WithMeterProvider.
func NewIPFilter(opts ...Option) (*IPFilter, error) {
	c, err := newConfig(kindIP, opts)
	if err != nil {
		return nil, err
	}
	if len(c.allow) == 0 && len(c.deny) == 0 {
		return nil, errors.New("guard: NewIPFilter: no AllowCIDRs or DenyCIDRs given")
	}
	f := &IPFilter{ips: c.ips, onErr: c.onErr,
		rDeny: newReason("ip", "denied"), rNotAllowed: newReason("ip", "not_allowed"), rUnknown: newReason("ip", "unknown_address")}
	if f.allow, err = prefixSet("AllowCIDRs", c.allow); err != nil {
		return nil, err
	}
	if f.deny, err = prefixSet("DenyCIDRs", c.deny); err != nil {
		return nil, err
	}
	if f.m, err = newRejections(c.meter); err != nil {
		return nil, err
	}
	return f, nil
}

// prefixSet reuses the root's prefix parsing and matching (the semantics of trusted proxies are
// exactly those of a CIDR list): an empty list is nil.
func prefixSet(opt string, ss []string) (*gatewaykit.ClientIPResolver, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	set, err := gatewaykit.NewClientIPResolver(ss...)
	if err != nil {
		return nil, fmt.Errorf("guard: %s: %w", opt, err)
	}
	return set, nil
}

// Allowed reports whether the filter admits addr (without zone; IPv4-mapped IPv6 is unmapped).
func (f *IPFilter) Allowed(addr netip.Addr) bool {
	ok, _ := f.decide(addr)
	return ok
}

func (f *IPFilter) decide(addr netip.Addr) (bool, reason) {
	if !addr.IsValid() {
		return false, f.rUnknown
	}
	if f.deny.Trusted(addr) {
		return false, f.rDeny
	}
	if f.allow == nil || f.allow.Trusted(addr) {
		return true, nil
	}
	return false, f.rNotAllowed
}

// Wrap returns next behind the IP filter.
func (f *IPFilter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, why := f.decide(f.ips.ClientIP(r)); !ok {
			f.m.add(r.Context(), why)
			f.onErr(w, r, gatewaykit.NewProblem(http.StatusForbidden, "Requests from this address are not allowed."))
			return
		}
		next.ServeHTTP(w, r)
	})
}
