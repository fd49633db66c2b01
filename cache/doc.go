// Package cache is a response-cache middleware for GET and HEAD requests, with an in-memory store
// (bounded by bytes, github.com/maypok86/otter/v2) and a Redis store shared by gateway instances.
// Successful unsafe requests invalidate what they changed.
//
//	c, err := cache.New(cache.TTL(time.Minute), cache.PerIdentity(),
//		cache.WithStore(cache.MemoryStore(256<<20)),
//		cache.Invalidates(func(*http.Request) []string { return []string{"/api/dashboard"} }))
//	mux.Handle("GET /api/dashboard", c.Wrap(dashboard))
//	mux.Handle("POST /api/orders", c.InvalidateOnSuccess(orders))
//
// # Keys
//
// An entry's key is the SHA-256 of the method (HEAD is looked up as GET), Host, escaped path, the
// query parameters (all of them by default, decoded and sorted; see Query and IgnoreQuery), the
// request headers chosen with KeyHeaders and, with PerIdentity, the caller's identity
// (gatewaykit.IdentityFrom: method, "iss" claim and subject). A query that does not decode bypasses
// the cache.
//
// Per-user responses never leak across users: without PerIdentity, a request that has an identity
// or carries credentials (Authorization, Proxy-Authorization, Cookie) bypasses the cache unless
// ShareCredentialed says the responses are the same for everyone. With PerIdentity, such a
// request without an identity bypasses the cache.
//
// # What is stored, and for how long
//
// A GET response is stored when its status is cacheable (200, 203, 204, 300, 301, 404, 410, or see Statuses), its body
// fits MaxEntryBytes (bigger ones stream through), and it has a lifetime: Cache-Control s-maxage,
// else max-age, else Expires minus Date, else TTL (capped by MaxTTL). It is not stored with
// Cache-Control no-store or no-cache, with private (unless keyed PerIdentity), with Set-Cookie
// (unless StripSetCookie), with Vary: *, with trailers, when the body is shorter than its
// Content-Length, when the client went away or the handler panicked. Fields named by
// no-cache="..." or private="...", hop-by-hop fields and fields set by outer middleware (present on
// the ResponseWriter before the cache called next, such as X-Request-ID) are not stored.
// Request Cache-Control directives are ignored, so clients cannot force upstream traffic.
//
// Vary is respected: a Vary marker under the primary key lists the header names, and the response
// is stored under a secondary key that adds the request's values of those headers.
//
// Hits carry the stored header, Age (seconds since the upstream generated the response: its
// initial age is the larger of its Age header and the time from its Date to its arrival, RFC 9111
// §4.2.3; a Date in the future counts as 0) and X-Cache: HIT; other responses carry X-Cache: MISS, STALE, REVALIDATED or
// BYPASS. A 200 entry answers If-None-Match, If-Modified-Since and Range requests itself
// (http.ServeContent); such requests that miss go upstream unchanged, alone. With
// StaleWhileRevalidate an expired entry is served (STALE) while one background request refreshes
// it. A refresh (or a miss of a stored entry) whose answer may not be stored (no-store, private
// for a shared key, an uncached status, too big) drops the stored entry, so it is no longer served
// STALE; a 5xx, 408 or 429 keeps it.
//
// # Conditional revalidation
//
// A 200 response with a validator (ETag or Last-Modified) is kept past the time it may be served
// (its freshness and any stale-while-revalidate window) for RevalidateWindow, by default its
// freshness lifetime again. A request for it in that time asks upstream whether it changed (RFC
// 9111 §4.3): the request next receives carries If-None-Match with the stored ETag (weak ones
// included) and If-Modified-Since with the stored Last-Modified. A 304 Not Modified refreshes the
// stored entry (the 304's header fields replace the stored ones, except Content-Length,
// Content-Encoding and Content-Range; the freshness is computed again from them) and the client
// gets the stored body as a 200 with X-Cache: REVALIDATED and an Age from the 304; a 304 for
// another validator is ignored and the request sent again without validators; any other response
// replaces the entry as on a miss. Concurrent requests for the entry share one revalidation (they
// get X-Cache: HIT). A request with conditional headers of its own (If-None-Match,
// If-Modified-Since, If-Match, If-Unmodified-Since, Range) goes upstream as it is and gets the
// upstream's answer. The background refresh of StaleWhileRevalidate sends the validators too.
//
// # Invalidation
//
// When a request with an unsafe method (anything but GET, HEAD, OPTIONS and TRACE) gets a 2xx or
// 3xx response, the cache invalidates its path (RFC 9111 §4.4): every entry under that path, for
// every query string, Vary variant and identity, in every instance sharing the store. It also
// invalidates the paths of the response's Location and Content-Location when they name the
// request's host, and the paths the Invalidates option returns (a POST /api/orders that changes
// /api/dashboard). Wrap does this for the unsafe requests it sees; InvalidateOnSuccess adds it to
// routes that are not cached; Cache.Invalidate invalidates paths from code.
//
// There is no index of a path's entries. A path with entries has a generation, a random 64-bit
// number kept in the store; entries record it and are served only while it is current, and
// invalidating replaces it with a fresh one. A hit reads the entry and the generation together
// (one MGET in Redis). A miss writes nothing before it fetches: the path's first stored entry
// creates the generation, in the same atomic step, so a scan of paths whose responses are never
// stored writes nothing to the store. A GET whose fetch started before an invalidation never
// stores its response over it, and a GET sent after it never shares that fetch (a fetch that takes
// more than 5 minutes, or RevalidateTimeout if longer, is neither stored nor shared). No clocks
// are compared, so clock skew between instances does not matter; a generation lost to eviction or
// expiry means misses, never stale hits. (A custom Store, without compare-and-set, creates the
// generation on the path's first miss instead.)
//
// The invalidation runs before the unsafe response's status is sent, bounded by StoreTimeout.
// If it fails, the response is still the upstream's, the failure is counted and logged, and the
// path's entries stay until they expire (fail open, like every store failure). Paths are matched
// without the host: a Cache serving several hosts invalidates the path on all of them. They are
// matched decoded and cleaned (path.Clean): a write to /a/b also invalidates the entries stored
// for /a/%62, /a/./b or /a//b, and those for /a%2Fb and /a/b/ (an extra miss, never a stale hit).
//
// # Stampedes
//
// Concurrent GET misses for one key in one Cache share one upstream request
// (golang.org/x/sync/singleflight): the first request records the response; the others wait for
// the upstream to finish and replay it with X-Cache: HIT, or, if it may not be stored (or their
// Vary values differ), each fetch for themselves. A storable response reaches the first
// request's client only when the upstream is done, so a client that reads slowly holds no one
// else; a response that cannot be stored (status, size over MaxEntryBytes) or that the upstream
// flushes streams to that client at once. Coalescing is per
// process; instances sharing a Redis store each send at most one request per key at a time.
//
// # Failures
//
// Every call of a store that is not in-process is bounded by StoreTimeout (50 ms by default). A
// failed lookup serves the request without the cache (X-Cache: BYPASS); a failed write only loses
// the entry; a failed invalidation leaves the entries until their TTL. The request never fails
// because of the store. Failures are counted and logged at most once per 10 seconds per Cache.
//
// # Metrics
//
// Meter "github.com/gatewaykit/gatewaykit/cache":
//
//   - gatewaykit.cache.requests (counter, {request}): requests by attribute outcome = hit, miss,
//     stale, revalidated (a stored entry confirmed by a 304) or bypass. Requests served from a
//     coalesced fetch count as hit.
//   - gatewaykit.cache.store.errors (counter, {error}): failed, timed-out or corrupt store calls by
//     attribute op = get (lookups, and, in a custom Store, creating a path's generation on its
//     first miss), set or invalidate.
//   - gatewaykit.cache.invalidations (counter, {path}): paths invalidated.
//
// The outcome is also set as attribute gatewaykit.cache.outcome on the request's current span (the
// server span of otelhttp), when it is recording; the cache starts no spans of its own.
package cache
