package discovery

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// PassiveHealth configures outlier ejection: the proxy watches the outcome of real requests and
// takes an instance out of rotation after ConsecutiveFailures failures in a row. A failure is a
// transport error (refused connection, reset, timeout, an error from a WithTransport round
// tripper such as an open breaker) or a 5xx response; any other response resets the count.
// Requests the client cancelled, or whose body the client failed to send (malformed, cut short,
// over a size limit set by an earlier middleware), do not count.
//
// An ejected instance is readmitted after BaseEjection; an instance ejected again soon after
// (within MaxEjection of its readmission) stays out twice as long as the previous time, up to
// MaxEjection. At most MaxEjectedPercent of the instances are ejected at once, rounded down, and
// never the last one: with two instances and the default 50%, one can be ejected; a single
// instance never is. The limits also hold when the resolver removes instances: ejected ones
// beyond the limit for the new set are readmitted at once, soonest-ending first.
type PassiveHealth struct {
	// ConsecutiveFailures ejects an instance after this many failures in a row, 1..1000 (use
	// WithoutPassiveHealth to disable ejection).
	ConsecutiveFailures int
	// BaseEjection is the first ejection's duration. Must be positive.
	BaseEjection time.Duration
	// MaxEjection caps the doubling ejection duration. At least BaseEjection.
	MaxEjection time.Duration
	// MaxEjectedPercent caps the share of instances ejected at once, 1..100.
	MaxEjectedPercent int
}

// DefaultPassiveHealth returns the default passive health: 5 consecutive failures eject for 30s,
// doubling up to 5m, at most 50% of the instances ejected.
func DefaultPassiveHealth() PassiveHealth {
	return PassiveHealth{ConsecutiveFailures: 5, BaseEjection: 30 * time.Second, MaxEjection: 5 * time.Minute, MaxEjectedPercent: 50}
}

func (ph PassiveHealth) enabled() bool { return ph.ConsecutiveFailures > 0 }

// maxEjected is how many of total instances may be ejected at once: MaxEjectedPercent, rounded
// down, and never all of them.
func (ph PassiveHealth) maxEjected(total int) int {
	return max(0, min(total*ph.MaxEjectedPercent/100, total-1))
}

// enforceEjectionLimit readmits, soonest-ending first, the ejected endpoints beyond the limit for
// the current instance set: an update that removed admitted instances must not leave the
// proxy with only ejected ones. p.mu must be held.
func (p *Proxy) enforceEjectionLimit(now int64) {
	var out []*Endpoint
	for _, e := range p.endpoints {
		if e.ejected && now < e.ejectedUntil {
			out = append(out, e)
		}
	}
	extra := len(out) - p.passive.maxEjected(len(p.endpoints))
	if extra <= 0 {
		return
	}
	slices.SortFunc(out, func(a, b *Endpoint) int { return cmp.Compare(a.ejectedUntil, b.ejectedUntil) })
	for _, e := range out[:extra] {
		e.ejectedUntil = now // rebuild readmits it
	}
}

func (ph PassiveHealth) validate() error {
	switch {
	case ph.ConsecutiveFailures < 1 || ph.ConsecutiveFailures > 1000:
		return fmt.Errorf("discovery: PassiveHealth.ConsecutiveFailures %d out of range 1..1000 (use WithoutPassiveHealth to disable)", ph.ConsecutiveFailures)
	case ph.BaseEjection <= 0:
		return fmt.Errorf("discovery: PassiveHealth.BaseEjection %v must be positive", ph.BaseEjection)
	case ph.MaxEjection < ph.BaseEjection:
		return fmt.Errorf("discovery: PassiveHealth.MaxEjection %v is below BaseEjection %v", ph.MaxEjection, ph.BaseEjection)
	case ph.MaxEjectedPercent < 1 || ph.MaxEjectedPercent > 100:
		return fmt.Errorf("discovery: PassiveHealth.MaxEjectedPercent %d out of range 1..100", ph.MaxEjectedPercent)
	}
	return nil
}

// failure records a failed request to e and ejects it when it has failed often enough.
func (p *Proxy) failure(e *Endpoint) {
	if !p.passive.enabled() || int(e.fails.Add(1)) < p.passive.ConsecutiveFailures {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || e.ejected || p.byKey[e.inst.key()] != e || int(e.fails.Load()) < p.passive.ConsecutiveFailures {
		return
	}
	ejected := 0
	for _, o := range p.endpoints {
		if o.ejected {
			ejected++
		}
	}
	if ejected+1 > p.passive.maxEjected(len(p.endpoints)) {
		return // keep the minimum share in rotation
	}
	now := p.clock.Now().UnixNano()
	if e.ejections > 0 && now-e.readmittedAt < int64(p.passive.MaxEjection) {
		e.ejections++
	} else {
		e.ejections = 1
	}
	d := p.passive.BaseEjection
	for i := 1; i < e.ejections && d < p.passive.MaxEjection; i++ {
		d *= 2
	}
	d = min(d, p.passive.MaxEjection)
	e.ejected = true
	e.ejectedUntil = now + int64(d)
	p.m.ejections.Add(p.m.ctx, 1, e.pickOpts...)
	p.logger.Warn("discovery: instance ejected after consecutive failures", "service", p.service,
		"instance", e.hostport, "failures", e.fails.Load(), "for", d)
	p.rebuild()
}

// readmit republishes the table once an ejection is over and returns it.
func (p *Proxy) readmit() *table {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.table.Load(); t.nextReadmit == 0 || p.closed || p.clock.Now().UnixNano() < t.nextReadmit {
		return t
	}
	p.rebuild()
	return p.table.Load()
}
