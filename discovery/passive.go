package discovery

import (
	"fmt"
	"time"
)

// PassiveHealth configures outlier ejection: the proxy watches the outcome of real requests and
// takes an instance out of rotation after ConsecutiveFailures failures in a row. A failure is a
// transport error (refused connection, reset, timeout, an error from a WithTransport round
// tripper such as an open breaker) or a 5xx response; any other response resets the count.
// Requests the client cancelled do not count.
//
// An ejected instance is readmitted after BaseEjection; an instance ejected again soon after
// (within MaxEjection of its readmission) stays out twice as long as the previous time, up to
// MaxEjection. At most MaxEjectedPercent of the instances are ejected at once, rounded down, and
// never the last one: with two instances and the default 50%, one can be ejected; a single
// instance never is.
type PassiveHealth struct {
	// ConsecutiveFailures ejects an instance after this many failures in a row. Zero disables
	// ejection.
	ConsecutiveFailures int
	// BaseEjection is the first ejection's duration.
	BaseEjection time.Duration
	// MaxEjection caps the doubling ejection duration.
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
	total := len(p.endpoints)
	if ejected+1 > total*p.passive.MaxEjectedPercent/100 || total-ejected-1 < 1 {
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
