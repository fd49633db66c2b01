package telemetry

import "net/http"

// The access log's path field is chosen by a function of the routed request (WithPathRedaction).
// These three are the built-in choices; each is safe for concurrent use.

// RoutePath returns the path of the ServeMux pattern that matched r ("/api/users/{id}"), or ""
// when none did (r.Pattern is empty). It is the default of WithPathRedaction: a logged path then
// holds only what the gateway's own routes spell out, never a client-chosen ID, e-mail address
// or token, and it has the low cardinality of the route table.
func RoutePath(r *http.Request) string { return Route(r.Pattern) }

// RouteOrRawPath returns RoutePath(r), or r.URL.Path when no pattern matched: the 404s and 405s
// of unknown paths are logged as the client sent them (after guard's canonicalization), which
// helps to find broken clients but logs whatever those paths carry. Use it with
// WithPathRedaction.
func RouteOrRawPath(r *http.Request) string {
	if route := Route(r.Pattern); route != "" {
		return route
	}
	return r.URL.Path
}

// RawPath returns r.URL.Path, the path as received (decoded, without the query string), IDs and
// all: the behaviour before path redaction existed. Use it with WithPathRedaction where the logs
// are allowed to hold the personal data and secrets that paths may carry.
func RawPath(r *http.Request) string { return r.URL.Path }
