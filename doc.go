// Package gatewaykit is the shared vocabulary of the gatewaykit module: a toolkit that turns any
// net/http service into an API gateway, one concern at a time.
//
// Each gateway concern lives in its own package (auth, ratelimit, breaker, transcode, aggregate,
// discovery, bff, cache, guard) as an http.Handler wrapper built by a validating constructor with
// functional options. Concern packages never import each other; they meet here:
//
//   - Middleware and Chain compose wrappers (the first listed runs outermost).
//   - Identity, WithIdentity and IdentityFrom carry the authenticated caller through the context:
//     auth writes it, rate limits, authorization, aggregation and shaping read it.
//   - Problem, WriteProblem and ErrorHandler give every rejection an RFC 9457
//     application/problem+json body that never leaks internal error text.
//   - ClientIPResolver finds the client address, trusting X-Forwarded-For only from configured
//     proxy CIDRs.
//   - RequestID (and NewRequestID) give every request an ID in the context, the response and
//     upstream requests.
//
// The root package depends on the standard library only, holds no package-level mutable state and
// has no init side effects.
package gatewaykit
