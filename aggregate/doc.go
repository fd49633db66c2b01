// Package aggregate composes one JSON response from several upstream requests ("parts") made
// concurrently: the design brief's dashboard is the user, their orders and their recommendations
// in one round trip.
//
//	dash, err := aggregate.New([]aggregate.Part{
//		{Name: "user", URL: "http://users/users/{sub}", Required: true},
//		{Name: "orders", URL: "http://orders/orders?user_id={sub}"},
//		{Name: "recommendations", URL: "http://recs/recommendations?user_id={sub}"},
//	}, aggregate.WithVars(aggregate.IdentityVars), aggregate.WithTimeout(2*time.Second))
//	mux.Handle("GET /api/dashboard", dash)
//
// # Parts
//
// A part is a network request (absolute http(s) URL template) or an in-process http.Handler (a
// path template, no network). Template variables come, in this order, from another part's JSON
// result ("{order.product_id}", which makes the part wait for "order"), the WithVars function
// (such as the identity subject), the route's path values (r.PathValue) and, only for names
// listed in WithQueryVars, the caller's query. Values are escaped for where they stand:
// url.PathEscape in the path ("a/b" -> "a%2Fb"; "." and ".." are refused), url.QueryEscape in the
// query; variables can never choose the scheme or host. A missing variable fails the part.
//
// Parts run concurrently on an errgroup under one overall deadline (WithTimeout, default 10 s),
// each with its own timeout (Part.Timeout, WithPartTimeout). A part with dependencies (DependsOn,
// or variables reading another part) starts when they succeed and fails ("dependency failed")
// when one does not. Each part's body is capped (WithMaxPartBody, default 1 MiB), must be 2xx and
// declared and valid JSON. Redirects are not followed by the default client.
//
// # Merging and failures
//
// The response is a JSON object with each part's value under its name, in the order given, or,
// for AtRoot parts, the members of its object at the root (first wins on a clash). A failed
// Required part cancels the rest and gives a problem response: 504 on timeout, 400 when the
// caller's request lacked or had an invalid value for a variable, 502 otherwise, with a detail
// such as `required part "user" failed: upstream status 503`. Failed optional parts are left out;
// the response then carries "X-Gateway-Partial: true", "Cache-Control: no-store" and
// "_meta":{"partial":true,"errors":[{"part":"orders","error":"timed out"}]}. Error words are
// built from part names, variable names and status codes only, never from upstream bodies or Go
// errors (which go to the log).
//
// # What reaches the parts
//
// Each part request carries the caller's identity as headers built from the gatewaykit.Identity
// in the context (WithIdentityHeaders, default X-User-ID and X-User-Roles; never copied from the
// client), the request ID (gatewaykit.RequestIDFrom, else a well-formed incoming X-Request-ID),
// W3C trace context (WithPropagator, default propagation.TraceContext) for the part's own span,
// "Accept: application/json", and the headers listed in WithForwardHeaders (default none).
//
// # Telemetry
//
// Metrics (meter "github.com/gatewaykit/gatewaykit/aggregate"):
//
//   - gatewaykit.aggregate.parts (counter, {part}): part requests, attributes part (configured
//     name) and outcome (ok, timeout, unreachable, status, not_json, too_large, dependency,
//     missing_value, invalid_value, canceled).
//   - gatewaykit.aggregate.part.duration (histogram, s): duration of part requests that were
//     sent, attribute part.
//   - gatewaykit.aggregate.responses (counter, {response}): attribute outcome (complete,
//     partial, failed).
//
// Spans (tracer "github.com/gatewaykit/gatewaykit/aggregate"): one "aggregate <part>" span per
// part sent (client kind for network parts), with attributes gatewaykit.aggregate.part and
// gatewaykit.aggregate.outcome. Part failures are logged with log/slog at most once per 10 s.
//
// An Aggregator is immutable after New and safe for concurrent use. Close releases the idle
// connections of the default client.
package aggregate
