// Package transcode serves REST/JSON clients from gRPC backends, following the google.api.http
// annotations, in two modes with the same conventions:
//
//   - Static (New): a grpc-gateway v2 runtime.ServeMux onto which generated
//     Register<Service>Handler functions are registered with Register.
//   - Dynamic (NewDynamic): no generated code. The .proto sources are compiled at start-up with
//     protocompile (ProtoFiles, ProtoFS), or a binary descriptor set is read (DescriptorSet); every
//     method's google.api.http rule (get, put, post, patch, delete, custom; body; response_body;
//     additional_bindings) becomes a route, requests are bound into dynamicpb messages, sent with
//     grpc.ClientConn.Invoke and answered with protojson.
//
// # Conventions
//
// Metadata: only what the gateway decides reaches the backend. The caller's identity
// (gatewaykit.IdentityFrom) is sent as x-user-id, x-user-roles (one value per role) and x-user-tier,
// the request ID (gatewaykit.RequestIDFrom) as x-request-id (keys configurable), plus the request
// headers allow-listed with ForwardHeaders. Nothing else: not Authorization, Cookie, Host or
// X-Forwarded-For (grpc-gateway would forward some of these on its own; static mode hands its mux a
// request without them). A client header named like one of the gateway's keys is never forwarded:
// allow-listing such a name fails construction.
//
// Deadlines: the call ends with the request context (client gone, outer timeout); Timeout adds an
// upper bound. An expired deadline answers 504.
//
// Errors: a gRPC status is answered with the HTTP status of HTTPStatus and an RFC 9457 problem
// (gatewaykit.WriteProblem or WithErrorHandler) whose detail is a fixed text per code (the backend's
// message with ExposeStatusMessages) and whose "grpc_status" member is the code's name.
// GatewayErrors keeps grpc-gateway's {"code","message","details"} body instead. What the gateway
// rejects itself: malformed JSON, bad path or query values and unknown fields 400, body over
// MaxBodyBytes 413, no route 404, wrong method 405.
//
// Responses: protojson, lowerCamelCase names (UseProtoNames for .proto names), zero values omitted
// (EmitUnpopulated to write them). Response header metadata allow-listed with ResponseHeaders
// becomes HTTP headers; trailer metadata allow-listed with ResponseTrailers becomes HTTP trailers
// when the client sent "TE: trailers".
//
// Unknown fields: a JSON body field or (dynamic mode) query parameter the request message does not
// have is rejected with 400 unless DiscardUnknownFields is set. In static mode grpc-gateway's query
// parser, which is process-global, always ignores unknown query parameters.
//
// # Server streaming
//
// A server-streaming method answers newline-delimited JSON (Content-Type application/x-ndjson),
// one {"result": <message>} line per message, flushed as it arrives. An error ends the stream with
// one last line
//
//	{"error": {"code": 5, "status": "NOT_FOUND", "http_status": 404, "message": "..."}}
//
// (see StreamError). If the error comes before the first message, the response status is
// http_status; after it the status is already 200, so clients must read the last line.
//
// # Connections
//
// One grpc.ClientConn per target, dialed lazily at construction with WithDialOptions and reused by
// every route of that target; WithClientConn supplies a connection the caller owns (for example one
// whose target is resolved by a discovery adapter registered with grpc.WithResolvers). Close closes
// the connections the Transcoder dialed.
//
// # Tracing
//
// Every gRPC call gets an OpenTelemetry client span, a child of the span in the request context
// (the server span otelhttp or the telemetry package started), named "package.Service/Method" as
// the RPC semantic conventions say, with rpc.system "grpc", rpc.service, rpc.method,
// server.address and server.port (when the target names them) and rpc.grpc.status_code. A non-OK
// code sets the span status to Error with the code's name ("NOT_FOUND") as description; the
// backend's status message is never recorded, since it may carry internal detail. A
// server-streaming call's span ends with the stream: its end, its error, or the end of the request
// context when the client goes away. Requests rejected before a call (bad JSON, no route) get no
// span.
//
// The span's context is injected into the outgoing metadata by the propagator (W3C traceparent,
// tracestate and baggage with the propagator telemetry.Setup installs), so a backend that extracts
// it continues the trace. The client's own traceparent, tracestate and baggage headers never reach
// the backend: ForwardHeaders refuses them and every key of the propagator, and SubjectKey,
// RolesKey, TierKey and RequestIDKey cannot name them either. What the backend joins is the
// gateway's trace, whose server span does not take the client's traceparent as its parent unless
// the telemetry middleware is told to trust it.
//
// WithTracerProvider and WithPropagator default to the OpenTelemetry globals; with no SDK
// installed, a call costs three small allocations more. The spans come from client interceptors,
// first in the chain, on the connections the Transcoder dials (an interceptor set with
// grpc.WithUnaryInterceptor, which gRPC runs ahead of the chain, is outside the span); a connection lent with
// WithClientConn keeps the interceptors it was created with, so create it with TracingDialOptions
// to trace its calls. WithTracing(false) adds no interceptor at all: no span, no trace context, no
// cost.
//
// # Metrics
//
// gatewaykit.transcode.calls (counter, {call}): transcoded calls and requests rejected after routing,
// with attributes transcode.mode ("static", "dynamic") and rpc.grpc.status_code (0..16).
//
// A Transcoder is safe for concurrent use.
package transcode
