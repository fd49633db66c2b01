// Package discovery finds the instances of upstream services and forwards requests to them: the
// gateway's reverse proxy.
//
// A Resolver reports the healthy instances of a service and watches for changes. Static serves a
// fixed list (optionally probed with active HTTP health checks, WithHealthCheck); Consul follows
// Consul's health API with blocking queries and keeps serving the last good set while Consul is
// unreachable.
//
// A Proxy is an http.Handler over httputil.ReverseProxy (with Rewrite, not Director) that picks an
// instance per request with a Balancer (RoundRobin, WeightedRoundRobin, P2C least-requests, or
// ConsistentHash on a header, cookie or identity), ejects instances that fail repeatedly (passive
// health, PassiveHealth), strips hop-by-hop headers, sets X-Forwarded-* under the trusted-proxy
// rules of a gatewaykit.ClientIPResolver, rewrites path prefixes, streams (server-sent events are
// flushed at once), passes trailers and tunnels WebSocket upgrades. RouteByHeader sends, say,
// "X-Service-Version: v2" to the instances tagged v2. WithTransport slots in a circuit breaker's
// RoundTripper and WithErrorMapper turns its sentinel errors into problems.
//
// When the connection to an instance fails before any response header arrived (refused, reset,
// closed), a request that is safe to send twice (an idempotent method or an Idempotency-Key, with
// no body or a small one the proxy buffers) is retried on another instance it has not tried, by
// default once, within a retry budget (20% of requests plus 3 per second over 10 seconds) so
// retries cannot multiply an outage: a dead instance costs no client an error while passive
// health ejects it. Responses, 5xx included, timeouts and client cancellations are never retried.
// See RetryPolicy, WithRetry and WithoutRetry.
//
//	res, err := discovery.NewConsul(consulClient)
//	orders, err := discovery.NewProxy(res, "orders",
//		discovery.WithBalancer(discovery.P2C()),
//		discovery.WithTransport(breakerTransport),
//		discovery.StripPrefix("/api"))
//	mux.Handle("/api/orders/", orders)
//
// Failures are RFC 9457 problems written by the error handler (default gatewaykit.WriteProblem):
// 503 with Retry-After when no instance is available, 504 when the upstream timed out, 502 when it
// failed otherwise; 400 or 413 when the client is at fault (a body that cannot be read or is over
// an earlier middleware's limit, an invalid Upgrade header, a path with dot segments when a prefix
// is rewritten), which never counts against an instance. Upstream error text never reaches the
// client.
//
// # Telemetry
//
// Meter name "github.com/gatewaykit/gatewaykit/discovery". Attributes are bounded: "service" is a
// configured service name, "instance" an instance's host:port (bounded by the instance set).
//
//   - gatewaykit.discovery.picks (counter, {request}): attempts forwarded (requests, plus their
//     retries), by service and instance.
//   - gatewaykit.discovery.retries (counter, {retry}): retries on another instance, by service and
//     outcome: retried, budget_exhausted (the retry budget refused it), no_instance (no untried
//     instance was left in the request's group).
//   - gatewaykit.discovery.ejections (counter, {ejection}): passive-health ejections, by service
//     and instance.
//   - gatewaykit.discovery.errors (counter, {request}): requests the proxy failed, by service and
//     error.type: no_instance, timeout, upstream, canceled (the client went away), client (the
//     client sent a body that could not be read, or an invalid Upgrade: answered 400 or 413).
//   - gatewaykit.discovery.endpoints (gauge, {instance}): instances known to a proxy, by service and
//     state: admitted, ejected.
//   - gatewaykit.discovery.resolver.staleness (gauge, s): for Consul, how long the served instance
//     set of a service has gone without a successful refresh; 0 while Consul answers.
//   - gatewaykit.discovery.resolver.errors (counter, {error}): failed Consul queries, by service.
//   - gatewaykit.discovery.resolver.instances (gauge, {instance}): healthy instances Consul reports,
//     by service.
//   - gatewaykit.discovery.health_checks (counter, {check}): active checks of static instances, by
//     service and result: success, failure.
//
// The proxy also sets "gatewaykit.discovery.service", "gatewaykit.discovery.instance" and
// "gatewaykit.discovery.attempts" on the request's current span (for example otelhttp's server
// span) when it is recording; after a retry the instance is the one that answered or failed last,
// and a "gatewaykit.discovery.retry" event names each failed instance. It starts no spans of its
// own, so it has no tracer provider option.
//
// Logs go to slog (WithLogger): ejections and readmissions, Consul becoming unreachable and coming
// back, upstream failures and an exhausted retry budget, at most one line per second for what can
// repeat per request; each retry at debug level.
package discovery
