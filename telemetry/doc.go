// Package telemetry is the gateway's OpenTelemetry setup: server spans and HTTP metrics from
// otelhttp named after the ServeMux pattern, a structured slog access log line per request, an
// upstream http.RoundTripper that propagates W3C trace context, and Setup, which installs the
// OTel SDK with a Prometheus exporter on its own registry.
//
// # Composition
//
//	sdk, err := telemetry.Setup(telemetry.ServiceName("shop-gateway"))  // installs the globals
//	defer sdk.Shutdown(context.Background())
//	tel, err := telemetry.New()                          // otelhttp + access log
//	upstream, err := telemetry.NewTransport(nil)         // client spans + traceparent
//	handler := gatewaykit.Chain(guards..., gatewaykit.RequestID, tel.Wrap)(mux)
//	admin.Handle("GET /metrics", sdk.Metrics)
//
// The middleware must wrap the ServeMux directly: it reads r.Pattern after routing (span name
// "GET /api/orders/{id}", http.route on the span and the metrics). Unmatched requests get the
// span name "GET" and no route: raw paths never become span names or metric attributes.
//
// The gateway is treated as a public endpoint: a client's traceparent does not make the server
// span its child (the span starts a new trace and links to the client's context), so callers can
// neither join your traces nor force sampling. The client's W3C baggage is not taken into the
// request context either, so NewTransport never injects client-chosen baggage into upstream
// calls. TrustIncomingTrace turns both off for internal callers.
//
// # Access log
//
// One line per request at slog.LevelInfo (AccessLogLevel), message "request", with: method,
// route (the pattern's path, "" when unmatched), path (see below), query (only with LogQuery),
// status, duration, bytes (response body bytes), and when known request_id
// (gatewaykit.RequestIDFrom), subject (the gatewaykit.Identity, see RecordIdentity and
// SetSubject), upstream (SetUpstream; several are joined with ","), trace_id and span_id (the
// server span).
//
// Paths carry personal data and secrets (/users/alice@example.com, /reset/{token}), so the raw
// path is not logged by default: path holds what WithPathRedaction's function returns, by
// default RoutePath, the matched pattern's path ("/api/users/{id}") or "" for a request no
// pattern matched. RouteOrRawPath logs the raw path of unmatched requests (to find broken
// clients), RawPath logs r.URL.Path always, and a function of your own can keep chosen path
// values. The query string is never logged unless LogQuery is given.
//
// Traces are not redacted: following the OpenTelemetry conventions, the server span carries
// url.path (the raw path), client.address and user_agent.original, and NewTransport's client
// spans carry url.full (the upstream URL with its query). Scrub them in a span processor or
// the collector if your trace backend must not hold them.
//
// # Metric names
//
// Every gatewaykit metric is named gatewaykit.<package>.<what>, with a UCUM unit and a few
// documented low-cardinality attributes (never raw paths, user IDs, keys or tokens); each
// package documents its own in its package doc, for example gatewaykit.guard.rejections
// {guard.check, guard.reason}. Meter and tracer names are the package import paths. HTTP metrics
// follow the OpenTelemetry semantic conventions as otelhttp records them:
//
//   - http.server.request.duration (s, histogram), http.server.request.body.size and
//     http.server.response.body.size (By): attributes http.request.method,
//     http.response.status_code, http.route (the pattern's path, absent when unmatched; never
//     the raw path), url.scheme, network.protocol.*. Setup's ServerMetricsView removes the
//     server.address and server.port that otelhttp takes from the client's Host header.
//   - http.client.request.duration (s), http.client.request.body.size (By) from NewTransport:
//     http.request.method, http.response.status_code, server.address, server.port.
//
// The Prometheus exporter translates names with underscores and unit and type suffixes:
// gatewaykit.guard.rejections becomes gatewaykit_guard_rejections_total and
// http.server.request.duration becomes http_server_request_duration_seconds (_bucket, _sum,
// _count); the resource is exposed as target_info{service_name=...}. Setup's registry also holds
// the Go runtime (go_*) and process (process_*) collectors.
package telemetry
