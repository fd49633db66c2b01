package transcode

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

const instrumentationName = "github.com/gatewaykit/gatewaykit/transcode"

// traceHeaders are the W3C trace-context and baggage headers. A client's copy is never forwarded as
// metadata (ForwardHeaders refuses them): the backend receives the trace context the propagator
// injects from the gateway's own client span, so internet clients cannot join internal traces.
var traceHeaders = map[string]bool{"traceparent": true, "tracestate": true, "baggage": true}

// TracingDialOptions returns the dial options that give a connection created by the caller the
// client spans and trace-context injection a Transcoder adds to the connections it dials itself
// (see Tracing in the package documentation). A Transcoder cannot add interceptors to a connection
// lent with WithClientConn, so calls through such a connection are traced only if it was created
// with these options; they then trace every call made through it, whoever makes it. tp nil means
// otel.GetTracerProvider() and prop nil otel.GetTextMapPropagator(), read now (both follow globals
// installed later). Put them before other interceptor options so that those run inside the span
// (chained ones only: gRPC runs the one of grpc.WithUnaryInterceptor or grpc.WithStreamInterceptor
// ahead of every chained interceptor, so outside the span).
// A call whose outgoing metadata already holds keys of the propagator (a proxy copying its incoming
// metadata, say) has them replaced by the client span's context. The interceptors are safe for
// concurrent use and may serve several connections.
func TracingDialOptions(tp trace.TracerProvider, prop propagation.TextMapPropagator) []grpc.DialOption {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	return newClientTracer(tp, prop).dialOptions()
}

// clientTracer makes one client span per gRPC call and injects the call's trace context into the
// outgoing metadata. It is installed as unary and stream client interceptors.
type clientTracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	fields []string // the propagator's keys at creation, lower case

	mu      sync.RWMutex
	methods map[methodKey]*methodInfo // distinct (target, method) pairs, at most maxMethods
}

type methodKey struct{ target, method string }

// maxMethods bounds clientTracer.methods: far above the methods of any Transcoder's routes, it
// keeps a connection made with TracingDialOptions from growing the map with every method name a
// caller sends (a gRPC proxy forwarding its clients' methods). Past it, each call builds its own.
const maxMethods = 4096

// methodInfo is what every span of one method on one target shares, built once.
type methodInfo struct {
	name  string
	start []trace.SpanStartOption
}

func newClientTracer(tp trace.TracerProvider, prop propagation.TextMapPropagator) *clientTracer {
	ct := &clientTracer{
		tracer:  tp.Tracer(instrumentationName),
		prop:    prop,
		methods: map[methodKey]*methodInfo{},
	}
	for _, f := range prop.Fields() {
		ct.fields = append(ct.fields, strings.ToLower(f))
	}
	return ct
}

func (ct *clientTracer) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(ct.unary),
		grpc.WithChainStreamInterceptor(ct.stream),
	}
}

// method returns the span name and start options for a call of method ("/pkg.Service/Method") on cc.
func (ct *clientTracer) method(cc *grpc.ClientConn, method string) *methodInfo {
	var target string
	if cc != nil {
		target = cc.Target()
	}
	key := methodKey{target, method}
	ct.mu.RLock()
	mi := ct.methods[key]
	ct.mu.RUnlock()
	if mi != nil {
		return mi
	}
	mi = newMethodInfo(target, method)
	ct.mu.Lock()
	if prev := ct.methods[key]; prev != nil {
		mi = prev
	} else if len(ct.methods) < maxMethods {
		ct.methods[key] = mi
	}
	ct.mu.Unlock()
	return mi
}

// newMethodInfo follows the OpenTelemetry RPC conventions: the span is named "pkg.Service/Method"
// and carries rpc.system, rpc.service, rpc.method, and server.address/server.port when the target
// names them.
func newMethodInfo(target, method string) *methodInfo {
	name := strings.TrimPrefix(method, "/")
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, attribute.String("rpc.system", "grpc"))
	if i := strings.LastIndexByte(name, '/'); i > 0 && i < len(name)-1 {
		attrs = append(attrs, attribute.String("rpc.service", name[:i]), attribute.String("rpc.method", name[i+1:]))
	}
	if host, port := serverAddress(target); host != "" {
		attrs = append(attrs, attribute.String("server.address", host))
		if port > 0 {
			attrs = append(attrs, attribute.Int("server.port", port))
		}
	}
	return &methodInfo{name: name, start: []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...),
	}}
}

// serverAddress returns the logical server name and port of a grpc.NewClient target: "host:port",
// "dns:///host:port", "passthrough:///host:port", "scheme:///name" (a custom resolver's service
// name, no port), "unix:path" or "unix:///path" (the socket path, no port), and "scheme:endpoint"
// for a globally registered resolver ("dns:host:port"), whose endpoint gRPC takes as for
// "scheme:///endpoint".
func serverAddress(target string) (string, int) {
	endpoint, scheme := target, ""
	if i := strings.Index(target, "://"); i > 0 {
		scheme, endpoint = target[:i], target[i+3:]
		if j := strings.IndexByte(endpoint, '/'); j >= 0 { // skip the authority
			endpoint = endpoint[j+1:]
		}
		if scheme == "unix" {
			endpoint = "/" + endpoint
		}
	} else if i := strings.IndexByte(target, ':'); i > 0 && (strings.HasPrefix(target[:i], "unix") || resolver.Get(target[:i]) != nil) {
		scheme, endpoint = target[:i], target[i+1:]
	}
	if endpoint == "" {
		return "", 0
	}
	if strings.HasPrefix(scheme, "unix") {
		return endpoint, 0
	}
	host, p, err := net.SplitHostPort(endpoint)
	if err != nil {
		return endpoint, 0
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return host, 0
	}
	return host, port
}

// start starts the call's span as a child of the span in ctx and injects its context into the
// outgoing metadata.
func (ct *clientTracer) start(ctx context.Context, cc *grpc.ClientConn, method string) (context.Context, trace.Span) {
	mi := ct.method(cc, method)
	ctx, span := ct.tracer.Start(ctx, mi.name, mi.start...)
	c := carriers.Get().(*mdCarrier)
	ct.prop.Inject(ctx, c)
	if len(c.kv) > 0 {
		ctx = ct.withTraceContext(ctx, c.kv)
	}
	c.kv = c.kv[:0]
	carriers.Put(c)
	return ctx, span
}

// withTraceContext puts the injected pairs kv into ctx's outgoing metadata. A Transcoder's own
// calls carry none of the propagator's keys (ForwardHeaders and the identity keys refuse them),
// so kv is appended (AppendToOutgoingContext copies it). A call through a connection made with
// TracingDialOptions may come from code whose metadata already holds trace context (a proxy
// copying its incoming metadata): then the propagator's keys are replaced, since a backend reads
// the first value and would otherwise continue that foreign context instead of the client span.
func (ct *clientTracer) withTraceContext(ctx context.Context, kv []string) context.Context {
	present := false
	for _, k := range ct.fields {
		if present = metadata.ValueFromOutgoingContext(ctx, k) != nil; present {
			break
		}
	}
	for i := 0; !present && i < len(kv); i += 2 {
		present = metadata.ValueFromOutgoingContext(ctx, kv[i]) != nil
	}
	if !present {
		return metadata.AppendToOutgoingContext(ctx, kv...)
	}
	md, _ := metadata.FromOutgoingContext(ctx) // a copy, keys in lower case
	for _, k := range ct.fields {
		delete(md, k)
	}
	for _, k := range ct.prop.Fields() { // a global propagator may have been replaced since
		delete(md, strings.ToLower(k))
	}
	for i := 0; i < len(kv); i += 2 {
		md[kv[i]] = []string{kv[i+1]} // kv's keys are lower case (mdCarrier.Set)
	}
	return metadata.NewOutgoingContext(ctx, md)
}

func (ct *clientTracer) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, span := ct.start(ctx, cc, method)
	err := invoker(ctx, method, req, reply, cc, opts...)
	endSpan(span, err)
	return err
}

func (ct *clientTracer) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, span := ct.start(ctx, cc, method)
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		endSpan(span, err)
		return nil, err
	}
	s := &tracedStream{ClientStream: cs, span: span, serverStreams: desc.ServerStreams}
	// A caller that stops reading (the HTTP client went away) cancels the context instead of
	// reading to the end: the span ends then. No goroutine: ctx derives from a cancelable context
	// in every transcode call, and stop unregisters the function when the stream ends first.
	s.stop = context.AfterFunc(ctx, func() { s.finish(status.FromContextError(ctx.Err()).Err()) })
	return s, nil
}

// tracedStream ends its span when the stream ends: io.EOF or an error from RecvMsg, an error from
// SendMsg, the single response of a non-server-streaming call, or the context's end.
type tracedStream struct {
	grpc.ClientStream
	span          trace.Span
	serverStreams bool
	done          atomic.Bool
	stop          func() bool
}

func (s *tracedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == nil && !s.serverStreams:
		s.end(nil)
	case errors.Is(err, io.EOF):
		s.end(nil)
	case err != nil:
		s.end(err)
	}
	return err
}

func (s *tracedStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err != nil && !errors.Is(err, io.EOF) { // io.EOF: the status comes from RecvMsg
		s.end(err)
	}
	return err
}

// end is called on the stream's goroutines. When the context function has already started (the
// context ended first), it records the end, as CANCELLED or DEADLINE_EXCEEDED.
func (s *tracedStream) end(err error) {
	if !s.done.Load() && s.stop() {
		s.finish(err)
	}
}

func (s *tracedStream) finish(err error) {
	if s.done.CompareAndSwap(false, true) {
		endSpan(s.span, err)
	}
}

// endSpan records the call's gRPC status and ends the span. A non-OK code sets the span status to
// Error with the code's canonical name (NOT_FOUND) as description: the status message is not
// recorded, since a backend's message may carry internal detail.
func endSpan(span trace.Span, err error) {
	if span.IsRecording() {
		code := status.Code(err)
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
		if code != codes.OK {
			span.SetStatus(otelcodes.Error, info(code).name)
		}
	}
	span.End()
}

// mdCarrier collects the propagator's fields as metadata key/value pairs.
type mdCarrier struct{ kv []string }

var carriers = sync.Pool{New: func() any { return &mdCarrier{kv: make([]string, 0, 6)} }}

// Get implements propagation.TextMapCarrier.
func (c *mdCarrier) Get(key string) string {
	key = strings.ToLower(key)
	for i := 0; i+1 < len(c.kv); i += 2 {
		if c.kv[i] == key {
			return c.kv[i+1]
		}
	}
	return ""
}

// Set implements propagation.TextMapCarrier. Values that are not valid metadata text are dropped.
func (c *mdCarrier) Set(key, value string) {
	key = strings.ToLower(key)
	if !validMetadataKey(key) || !printableASCII(value) {
		return
	}
	for i := 0; i+1 < len(c.kv); i += 2 {
		if c.kv[i] == key {
			c.kv[i+1] = value
			return
		}
	}
	c.kv = append(c.kv, key, value)
}

// Keys implements propagation.TextMapCarrier.
func (c *mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c.kv)/2)
	for i := 0; i < len(c.kv); i += 2 {
		keys = append(keys, c.kv[i])
	}
	return keys
}
