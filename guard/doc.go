// Package guard holds the gateway's threat protection, meant to run first, before routing and
// every policy: path safety (PathSafety), client IP allow and deny lists (IPFilter), request
// size limits (Limits), a concurrency limit (Concurrency), security response headers
// (SecurityHeaders) and CORS (CORS). HardenedServer returns an http.Server with every timeout set.
//
// Every guard is an http.Handler wrapper built by a validating constructor with functional
// options (shared by the constructors; an option that does not apply to a constructor is an
// error), is immutable after construction and safe for concurrent use, and rejects with an
// RFC 9457 problem through gatewaykit.WriteProblem or the WithErrorHandler replacement: 400 for
// an ambiguous path, 403 for a refused address or cross-origin preflight, 413, 414 and 431 for
// sizes, 503 with Retry-After when the concurrency limit and its queue are full.
//
// # Order
//
//	gatewaykit.Chain(paths.Wrap, ips.Wrap, limits.Wrap, busy.Wrap, headers.Wrap, cors.Wrap,
//	    gatewaykit.RequestID, tel.Wrap)(mux)
//
// PathSafety goes first so that every later handler, the ServeMux included, sees one cleaned
// path; IPFilter and Limits refuse cheaply before a concurrency slot is taken; SecurityHeaders
// before CORS so CORS answers carry them too. A preflight is answered by CORS before auth, as
// browsers send preflights without credentials.
//
// # Path safety and what it does not do
//
// The path-safety rules target the disagreements behind real gateway bypasses: the gateway
// routes one path and the backend serves another (/public/../admin, /api/%2e%2e/admin,
// %252e double encoding, ..%2f and %5c separators, backslashes, //admin, /admin;x path
// parameters, NUL). Letter case is not normalized: /ADMIN is a different path on the ServeMux
// and on case-sensitive backends, so it is not a bypass there; if a backend folds case,
// route it with case-insensitive rules of your own. Query strings are not inspected.
//
// # Concurrency and fairness
//
// Concurrency bounds the requests in flight and queues a few more for a short while. With
// PerKey (a client IP, a subject, an API key), the queue is fair across keys: when a slot frees,
// the keys with waiters take turns (round robin, each key's own waiters in arrival order), and
// when the queue is full, a request whose key has at least two fewer waiters than the key with
// the most displaces that key's newest waiter. A flooding key therefore fills only what nobody
// else needs: a quiet key's request is admitted to the queue and is granted a slot after at most
// one grant per key that was waiting before it. Without PerKey the queue is one FIFO.
//
// # Server hardening
//
// The zero http.Server has no timeouts: a client that sends its headers one byte a minute holds
// a connection and a goroutine forever (Slowloris). HardenedServer sets ReadHeaderTimeout 5s,
// ReadTimeout 30s, WriteTimeout 60s, IdleTimeout 120s and MaxHeaderBytes 64 KiB. Routes that
// stream (SSE, WebSocket, large downloads) extend their own deadline with
// http.NewResponseController(w).SetWriteDeadline / SetReadDeadline rather than raising the
// server-wide values. Also: serve TLS with the standard library defaults (TLS 1.2+), and on
// shutdown call srv.Shutdown(ctx) with a deadline so in-flight requests finish. The example
// gateway uses HardenedServer.
//
// # Metrics
//
// Meter name: github.com/gatewaykit/gatewaykit/guard (ScopeName).
//
//   - gatewaykit.guard.rejections (counter, {request}): requests a guard rejected. Attributes:
//     guard.check ("path", "ip", "size", "concurrency", "cors") and guard.reason (path:
//     "malformed_encoding", "control_bytes", "encoded_dot_segment", "double_encoding",
//     "encoded_slash", "backslash", "dot_segment", "empty_segment", "semicolon"; ip: "denied",
//     "not_allowed", "unknown_address"; size: "url", "header_count", "header_bytes", "body";
//     concurrency: "queue_full", "wait_timeout", "key_queue_full", "key_wait_timeout" (key_:
//     the request's own PerKey limit held it back), "displaced" (a full queue made room for a
//     key with fewer waiters); cors: "origin", "method", "header").
//
// Concurrency.InFlight and Concurrency.Waiting expose the limiter's state for an observable
// gauge of your own. Guards log nothing per request.
package guard
