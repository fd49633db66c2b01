// Package breaker protects a gateway from failing upstreams: per-upstream circuit breakers
// (github.com/sony/gobreaker/v2), a gradual recovery ramp, per-request upstream timeouts and safe,
// budgeted retries, as a middleware (Wrap) or an http.RoundTripper (Transport).
//
// # Breakers
//
// A Breaker is a set of breakers keyed by upstream, created on first use and bounded in number
// (MaxUpstreams; the breaker idle the longest is evicted, closed ones first; IdleTimeout drops
// breakers unused for 10 minutes). Transport keys by the request URL's host:port, so one
// Transport inside a reverse proxy keeps one breaker per instance; Wrap uses one breaker
// (WithName) unless WithKey says otherwise. Keys are metric attributes: keep them to a set the
// gateway controls.
//
// Each breaker counts the outcomes of attempts over a rolling window (ten buckets) and opens on
// TripAfter (n consecutive failures) or TripRatio (a failure share over at least N completed
// attempts); the default is TripAfter(5, 10*time.Second). An open breaker rejects every request
// for OpenTimeout (30s), then turns half-open and admits HalfOpenProbes (1) probes; as many
// successes in a row close it, a failure opens it again.
//
// What counts as a failure is a FailureFunc (DefaultFailure: transport errors, timeouts, panics and
// 5xx except 501). A request whose client canceled it is never counted, whatever happened.
//
// # Recovery ramp
//
// A breaker that just closed after a probe does not get all the traffic at once. gobreaker has no
// such state, so the ramp is built on its state-change callback: on half-open -> closed the entry
// records the time (from the injectable Clock) and becomes Recovering; during each RecoveryRamp
// step it admits the next share of requests (default 10% then 50%, each for 10s, so the sequence is
// 1 probe -> 10% -> 50% -> 100%) and rejects the others like an open breaker, before they reach
// gobreaker (they are not counted). The admission is deterministic, not random: with share p the
// first of every 1/p requests passes, so the upstream sees exactly the share even at low rates.
// Failures during the ramp still count in gobreaker, which reopens the breaker (ending the ramp)
// when a trip condition holds. The ramp ends on the first request after its last step.
//
// # Rejections, timeouts, fallbacks
//
// Wrap answers a rejected request with a 503 application/problem+json and Retry-After (time until
// half-open when open, until the next ramp step when recovering, 1s when half-open with probes in
// flight), through WithErrorHandler, or serves WithFallback's handler instead (RejectionFrom tells
// it why). With Timeout, the request context gets a deadline that propagates to the upstream call
// (optionally also as a header, DeadlineHeader); Wrap answers 504 when it expires before the
// response started.
//
// Transport cannot write responses, so it returns errors: *OpenError (errors.Is(err, ErrOpen),
// with RetryAfter) and *TimeoutError (errors.Is(err, ErrTimeout)). ProblemFor maps any transport
// error to the right problem (503 + Retry-After, 504, 502) and ProxyErrorHandler plugs that into
// httputil.ReverseProxy.ErrorHandler:
//
//	brk, _ := breaker.New(breaker.TripAfter(5, 10*time.Second), breaker.Timeout(2*time.Second))
//	proxy := &httputil.ReverseProxy{
//		Rewrite:      func(r *httputil.ProxyRequest) { r.SetURL(target) },
//		Transport:    brk.Transport(nil),
//		ErrorHandler: breaker.ProxyErrorHandler(nil),
//	}
//
// # Retries
//
// Retries(n) enables retries of idempotent requests (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or an
// Idempotency-Key header) after connection errors and RetryOn statuses (502, 503, 504), with
// jittered exponential backoff (RetryBackoff), never past the deadline, never after any part of
// the response reached the caller (Wrap holds back the header of a retryable status; Transport
// retries before returning), and only when the body can be replayed (Request.GetBody, or a body
// buffered up to MaxReplayBody). A per-upstream RetryBudget caps retries at floor + ratio of the
// requests over 10 seconds, so retries cannot multiply the load of an outage.
//
// # Time
//
// gobreaker reads the real clock for its window and open timeout. The Clock (WithClock) drives
// what this package adds: the recovery ramp, Retry-After and the retry budget. Tests use short real
// open timeouts and a fake Clock for the ramp and the budget.
//
// # Telemetry
//
// Meter "github.com/gatewaykit/gatewaykit/breaker" (WithMeterProvider, default the global):
//
//   - gatewaykit.breaker.state (gauge, {state}; attribute upstream): 0 closed, 1 recovering,
//     2 half-open, 3 open.
//   - gatewaykit.breaker.transitions (counter, {transition}; upstream, from, to): state changes.
//   - gatewaykit.breaker.rejections (counter, {request}; upstream, state): requests rejected
//     without reaching the upstream, by the state that rejected them (open, half_open,
//     recovering).
//   - gatewaykit.breaker.timeouts (counter, {request}; upstream): expired upstream timeouts.
//   - gatewaykit.breaker.retries (counter, {retry}; upstream, decision): retryable failures, by
//     decision (retried, budget_exhausted).
//
// Off the happy path, the request's span (if recording) gets events: gatewaykit.breaker.rejected
// (upstream, state), gatewaykit.breaker.timeout, gatewaykit.breaker.retry (upstream, retry) and
// gatewaykit.breaker.retry_budget_exhausted. The package starts no spans of its own.
//
// State changes are logged through log/slog (WithLogger): Warn when a breaker opens, Info
// otherwise. They are rare by construction (at most one open per OpenTimeout), so the log needs
// no further rate limit.
//
// A Breaker owns no goroutines; Close unregisters the gauge callback.
package breaker
