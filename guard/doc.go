// Package guard holds the gateway's threat protection, meant to run first, before routing and
// every policy: path safety (PathSafety), client IP allow and deny lists (IPFilter), request
// size limits (Limits), a concurrency limit (Concurrency), security response headers
// (SecurityHeaders) and CORS (CORS). HardenedServer returns an http.Server with every timeout set.
//
// Every guard is an http.Handler wrapper built by a validating constructor with functional
// options, and rejects with an RFC 9457 problem through gatewaykit.WriteProblem (or the
// WithErrorHandler replacement).
//
// # Metrics
//
// Meter name: github.com/gatewaykit/gatewaykit/guard.
//
//   - gatewaykit.guard.rejections (counter, {request}): requests a guard rejected. Attributes:
//     guard.check ("path", "ip", "size", "concurrency", "cors") and guard.reason (path: "malformed_encoding",
//     "control_bytes", "encoded_dot_segment", "double_encoding", "encoded_slash", "backslash",
//     "dot_segment", "empty_segment", "semicolon"; ip: "denied", "not_allowed",
//     "unknown_address"; size: "url", "header_count", "header_bytes", "body"; concurrency: "queue_full",
//     "wait_timeout", "key_queue_full", "key_wait_timeout"; cors: "origin", "method", "header").
package guard
