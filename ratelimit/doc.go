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
// The default store is a private MemoryStore: sharded flat hash tables of 64-bit keyed hashes,
// expiring, bounded by MemoryMaxKeys (default 262,144 keys, at most MemoryBytesPerKey = 128 bytes
// each; 64 measured), 0 allocations per decision. WithStore shares one store between limiters (one per
// route, say) or puts the counters where every gateway instance sees them:
//
//   - RedisStore (go-redis UniversalClient): one Lua script per decision decides all rules
//     atomically with the server's clock (TIME), one round trip; keys carry {hash tags} and TTLs;
//     Redis Cluster gets one script per slot in one pipeline, with a documented refund.
//   - LeaseStore over a RedisStore: the approximate mode for high rates. Each instance leases
//     batches of quota and spends them locally; over any interval it admits at most
//     instances*batch requests beyond the exact algorithm, and saves 10x to 40x round trips.
//
// A store that can fail (anything but *MemoryStore) requires an explicit FailOpen() or
// FailClosed(): New returns an error rather than pick one. Each decision against such a store is
// bounded by WithStoreTimeout (default 100ms), even when the client ignores context deadlines.
// FailOpen admits (Decision.FailedOpen); FailClosed answers 503 with Retry-After: 1.
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
// A LeaseStore reports its own metrics (provider LeaseMeterProvider, default the global one):
// gatewaykit.ratelimit.lease.decisions by source (lease: decided locally; store: a round trip to
// the shared store) and outcome, gatewaykit.ratelimit.lease.acquired (batches granted, by rule) and
// gatewaykit.ratelimit.lease.tokens (by rule and state: leased, expired or evicted unspent).
//
// When the request's span is recording (otelhttp upstream), each decision also sets the span
// attributes ratelimit.rule and ratelimit.outcome (same values as the metric's attributes).
//
// Store failures are logged with log/slog at error level at most once per WithLogInterval
// (default 10s), with the number of failures suppressed since the previous line.
package ratelimit
