// Package ratelimit limits request rates per user, per API-key tier, per service or per anything
// a request carries, in memory or in Redis shared by every gateway instance.
//
// A Limiter holds one or more Rules. Each rule has a name, a Limit (PerSecond(n), PerMinute(n),
// PerHour(n), PerDay(n), Every(n, d), with WithBurst for the bucket algorithms) or a LimitFunc
// that picks the limit per request (ByTier picks it from the caller's gatewaykit.Identity), a
// KeyFunc (ByClientIP, ByHeader, ByIdentity, BySubject, ByRoute, ByMethod, Composite, Constant)
// and an Algorithm (GCRA, the default; TokenBucket; FixedWindow; SlidingWindow; SlidingLog). A
// request is admitted only when every rule admits it, and a request rejected by any rule is
// counted by none. An empty key is never unlimited: EmptyKeyDeny (the default) rejects with 403,
// EmptyKeyShared counts all keyless requests in one shared counter.
//
//	lim, err := ratelimit.New([]ratelimit.Rule{
//		{Name: "user", Limit: ratelimit.PerMinute(100), Key: ratelimit.BySubject()},
//		{Name: "orders", Limit: ratelimit.PerMinute(5000), Key: ratelimit.Constant("orders")},
//	})
//	mux.Handle("/api/orders/", gatewaykit.Chain(authn.Wrap, lim.Wrap)(orders))
//
// Wrap is the HTTP middleware; Allow is the same decision for code that is not an HTTP handler
// (gRPC interceptors, jobs, inside handlers).
//
// # Responses
//
// Rejected requests get 429 application/problem+json with Retry-After: the whole seconds after
// which the same request would be admitted. Admitted and rejected requests carry, for the binding
// rule (the rejecting one, or the one with the least quota left), X-RateLimit-Limit,
// X-RateLimit-Remaining, X-RateLimit-Reset (Unix seconds when the quota is fully restored) and the
// IETF fields RateLimit-Policy (`"user";q=100;w=60`) and RateLimit (`"user";r=42;t=17`);
// WithHeaders selects either family, both (the default) or none.
//
// # Stores and failures
//
// The default store is a private MemoryStore (sharded, expiring, bounded; 0 allocations per
// decision). WithStore shares a store between limiters or puts counters in Redis (RedisStore). A
// store that can fail requires an explicit FailOpen() or FailClosed(): New refuses to guess. Each
// decision against such a store is bounded by WithStoreTimeout (default 100ms).
//
// # Telemetry
//
// Metrics (meter "github.com/gatewaykit/gatewaykit/ratelimit"):
//
//   - gatewaykit.ratelimit.decisions ({decision}): one per decision. Attributes: rule (the binding
//     rule's name; empty for outcomes that concern no single rule) and outcome: allowed, rejected,
//     no_key (empty key under EmptyKeyDeny), invalid_limit (a LimitFunc returned an invalid
//     Limit), fail_open, fail_closed (the store failed).
//   - gatewaykit.ratelimit.store.errors ({error}): store failures and timeouts. Attribute policy:
//     fail_open or fail_closed.
//
// Store failures are logged with log/slog at error level at most once per WithLogInterval
// (default 10s), with the number of failures suppressed since the previous line.
package ratelimit
