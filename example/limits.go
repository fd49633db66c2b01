package main

import (
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// Limits is every rate limit of the example gateway, in one place. Each /api, /mobile/api,
// /web/api and /admin/api request is counted once against the caller's user limit, the caller's
// tier limit and, for the services that have one, the service's limit; it is admitted only when
// all of them admit it (ratelimit counts a rejected request against none of them).
type Limits struct {
	// PerUser is the quota of one authenticated subject (JWT "sub" or API-key owner), across every
	// route and, with -redis, across every gateway process sharing the Redis.
	PerUser ratelimit.Limit
	// Tiers is the daily quota of a caller by plan (Identity.Tier: the JWT "tier" claim or the
	// API key's tier). TierFallback applies to callers without a tier or with an unknown one.
	Tiers        map[string]ratelimit.Limit
	TierFallback ratelimit.Limit
	// Services is the quota of one upstream service for all callers together; services not
	// listed have none.
	Services map[string]ratelimit.Limit
	// FailOpen admits requests when the shared store (Redis) fails or times out (counted in
	// gatewaykit.ratelimit.store.errors and logged) rather than refusing them with 503.
	// The in-memory store cannot fail.
	FailOpen bool
	// StoreTimeout bounds each decision against Redis.
	StoreTimeout time.Duration
}

// DefaultLimits returns the limits of the design brief: 100 requests a minute per user; 1,000 a
// day on the free tier and 100,000 on premium; users 10,000, orders 5,000 and payments 2,000
// requests a minute.
func DefaultLimits() Limits {
	return Limits{
		PerUser: ratelimit.PerMinute(100),
		Tiers: map[string]ratelimit.Limit{
			"free":    ratelimit.PerDay(1_000),
			"premium": ratelimit.PerDay(100_000),
		},
		TierFallback: ratelimit.PerDay(1_000),
		Services: map[string]ratelimit.Limit{
			"users":    ratelimit.PerMinute(10_000),
			"orders":   ratelimit.PerMinute(5_000),
			"payments": ratelimit.PerMinute(2_000),
		},
		FailOpen:     true,
		StoreTimeout: 100 * time.Millisecond,
	}
}

// rules returns the rules applied to a request for service: user, tier and, when the service has
// a limit, the service's own. Limiters built from these rules share one store, so the user and
// tier counters are the same whichever route a request takes.
func (l Limits) rules(service string) []ratelimit.Rule {
	rules := []ratelimit.Rule{
		{Name: "user", Limit: l.PerUser, Key: ratelimit.BySubject()},
		{Name: "tier", LimitFunc: ratelimit.ByTier(l.Tiers, l.TierFallback), Key: ratelimit.BySubject()},
	}
	if lim, ok := l.Services[service]; ok {
		rules = append(rules, ratelimit.Rule{Name: "service-" + service, Limit: lim, Key: ratelimit.Constant(service)})
	}
	return rules
}
