// Package bff is the backend-for-frontend concern: it shapes the same upstream JSON for different
// clients and transforms requests and responses on their way through the gateway.
//
// # Variants
//
// A Variant is chosen per request by path prefix (PathPrefix("/mobile/api"), stripped before the
// next handler), by header (Header("X-Client-Type", "mobile")) or by a func (When); the first
// matching variant in the order given wins, else the DefaultVariant, else none. A variant shapes
// 2xx JSON responses (application/json or application/*+json, identity or gzip encoded) with:
//
//   - Allow("id", "user.name", "orders[].total"): keep only these paths (a path keeps its subtree);
//   - Deny("password", "orders[].cost"): remove these paths (applied after Allow);
//   - Rename("avatar_url", "avatar"): rename the last segment of a path;
//   - VisibleTo("admin", "internal_notes"): only callers whose gatewaykit.Identity holds the role
//     see the field (shown to them even outside the Allow list; Deny still wins).
//
// Arrays are traversed transparently, "[]" is accepted as a readability marker. Shaping works on
// the raw bytes (package internal/jsonpath): member order and untouched values are preserved.
//
// What is not shaped passes through untouched and streams (Flush works): non-JSON, non-2xx, 204,
// 206, HEAD and responses of a variant without rules. A shaped response is buffered up to
// WithMaxBody (default 1 MiB), decoded from gzip if needed, shaped, re-encoded with gzip when it
// came that way, and sent with a corrected Content-Length and without its ETag. Shaping fails
// closed: a body over the limit, invalid JSON or an encoding the shaper cannot read gives a 502
// problem, never the unshaped fields. For shaped variants the upstream request's Accept-Encoding
// is narrowed to gzip (when the client accepts it) or removed.
//
// # Transformations and enrichment
//
// Without any variant, the same middleware sets, removes and renames request headers
// (SetRequestHeader, RemoveRequestHeader, RenameRequestHeader) and response headers
// (SetResponseHeader, ...), and enriches requests: EnrichHeader and Enrich (X-User-ID from the
// identity subject, X-Request-Timestamp, X-Request-ID) replace whatever the client sent, and
// EnrichBody("user_id", Subject()) rewrites the top-level member of JSON request bodies, removing
// every client-sent occurrence first (so a duplicated key cannot smuggle a value). Malformed JSON
// gets a 400 problem, a body over WithMaxRequestBody a 413, a compressed or non-JSON body a 415.
//
// # Telemetry
//
// Metrics (meter "github.com/gatewaykit/gatewaykit/bff"):
//
//   - gatewaykit.bff.responses (counter, {response}): responses of a chosen variant, attributes
//     variant (configured name) and outcome (shaped, passthrough, too_large, invalid).
//   - gatewaykit.bff.bytes_removed (counter, By): uncompressed bytes removed by shaping, attribute
//     variant.
//   - gatewaykit.bff.enrichments (counter, {request}): JSON bodies enriched, attribute outcome
//     (enriched, rejected).
//
// The chosen variant is set as attribute gatewaykit.bff.variant on the request's current span.
// Shaping failures are logged with log/slog at most once per 10 seconds.
//
// A BFF is immutable after New and safe for concurrent use; it starts no goroutines.
package bff
