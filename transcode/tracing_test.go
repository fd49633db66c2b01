package transcode_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

// tracing is an SDK tracer provider whose ended spans are recorded and announced on a channel.
type tracing struct {
	tp    *sdktrace.TracerProvider
	rec   *tracetest.SpanRecorder
	ended chan sdktrace.ReadOnlySpan
}

type endNotifier chan sdktrace.ReadOnlySpan

func (n endNotifier) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (n endNotifier) OnEnd(s sdktrace.ReadOnlySpan)                   { n <- s }
func (n endNotifier) Shutdown(context.Context) error                  { return nil }
func (n endNotifier) ForceFlush(context.Context) error                { return nil }

func newTracing(t *testing.T) *tracing {
	t.Helper()
	tr := &tracing{rec: tracetest.NewSpanRecorder(), ended: make(chan sdktrace.ReadOnlySpan, 64)}
	tr.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tr.rec), sdktrace.WithSpanProcessor(endNotifier(tr.ended)))
	t.Cleanup(func() { _ = tr.tp.Shutdown(context.Background()) })
	return tr
}

// opts are the options that make a Transcoder trace into tr with W3C trace context.
func (tr *tracing) opts() []transcode.Option {
	return []transcode.Option{transcode.WithTracerProvider(tr.tp), transcode.WithPropagator(propagation.TraceContext{})}
}

// next waits for the next ended span.
func (tr *tracing) next(t *testing.T) sdktrace.ReadOnlySpan {
	t.Helper()
	select {
	case s := <-tr.ended:
		return s
	case <-time.After(30 * time.Second):
		t.Fatal("no span ended")
		return nil
	}
}

// none checks that no span ended (beyond those already taken).
func (tr *tracing) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-tr.ended:
		t.Fatalf("unexpected span %q", s.Name())
	default:
	}
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// checkSpan verifies a client span of EchoService/method on the backend at addr.
func checkSpan(t *testing.T, s sdktrace.ReadOnlySpan, addr, method string, code int64, desc string) {
	t.Helper()
	if want := "gatewaykit.test.v1.EchoService/" + method; s.Name() != want {
		t.Fatalf("span name %q, want %q", s.Name(), want)
	}
	if s.SpanKind() != trace.SpanKindClient {
		t.Fatalf("span kind %v", s.SpanKind())
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	a := attrs(s)
	want := map[attribute.Key]attribute.Value{
		"rpc.system":           attribute.StringValue("grpc"),
		"rpc.service":          attribute.StringValue("gatewaykit.test.v1.EchoService"),
		"rpc.method":           attribute.StringValue(method),
		"server.address":       attribute.StringValue(host),
		"server.port":          attribute.IntValue(p),
		"rpc.grpc.status_code": attribute.Int64Value(code),
	}
	if len(a) != len(want) {
		t.Fatalf("attributes %v, want %v", a, want)
	}
	for k, v := range want {
		if a[k] != v {
			t.Fatalf("attribute %s = %v, want %v (all: %v)", k, a[k].String(), v.String(), a)
		}
	}
	wantCode := otelcodes.Unset
	if desc != "" {
		wantCode = otelcodes.Error
	}
	if st := s.Status(); st.Code != wantCode || st.Description != desc {
		t.Fatalf("span status %v %q, want %v %q", st.Code, st.Description, wantCode, desc)
	}
	if len(s.Events()) != 0 {
		t.Fatalf("span events %v", s.Events())
	}
}

// sentContext is the trace context the backend extracted from its incoming metadata.
func sentContext(md map[string]string) trace.SpanContext {
	carrier := propagation.MapCarrier{}
	for k, v := range md {
		carrier[k] = v
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

const forgedTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestTracingUnary(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			addr := startBackend(t)
			tr := newTracing(t)
			h := m.build(t, addr, tr.opts()...)

			// A root span: the request context has none. The client's forged traceparent header
			// does not reach the backend; the gateway's own span context does.
			resp := echoResponse(t, do(h, "GET", "/v1/echo/abc", "", "Traceparent", forgedTraceparent, "Tracestate", "k=v", "Baggage", "user=x"))
			s := tr.next(t)
			checkSpan(t, s, addr, "Echo", 0, "")
			if s.Parent().IsValid() {
				t.Fatalf("span has parent %v", s.Parent())
			}
			sent := sentContext(resp.GetMetadata())
			if sent.TraceID() != s.SpanContext().TraceID() || sent.SpanID() != s.SpanContext().SpanID() || !sent.IsSampled() {
				t.Fatalf("backend got traceparent %q, span %v", resp.GetMetadata()["traceparent"], s.SpanContext())
			}
			if sent.TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
				t.Fatal("forged trace id forwarded")
			}
			for _, k := range []string{"tracestate", "baggage"} {
				if v, ok := resp.GetMetadata()[k]; ok {
					t.Fatalf("client's %s forwarded: %q", k, v)
				}
			}

			// A child of the server span in the request context (what otelhttp puts there).
			ctx, parent := tr.tp.Tracer("test").Start(context.Background(), "server")
			r := httptest.NewRequest("GET", "/v1/echo/child", nil).WithContext(ctx)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			parent.End()
			resp = echoResponse(t, w)
			s = tr.next(t)
			if p := tr.next(t); p.Name() != "server" {
				t.Fatalf("span %q", p.Name())
			}
			checkSpan(t, s, addr, "Echo", 0, "")
			if s.Parent().SpanID() != parent.SpanContext().SpanID() || s.SpanContext().TraceID() != parent.SpanContext().TraceID() {
				t.Fatalf("span parent %v, want %v", s.Parent(), parent.SpanContext())
			}
			if sent := sentContext(resp.GetMetadata()); sent.SpanID() != s.SpanContext().SpanID() || sent.TraceID() != parent.SpanContext().TraceID() {
				t.Fatalf("backend got %v, span %v", sent, s.SpanContext())
			}

			// An error code: status Error with the code's name, never the backend's message.
			w = do(h, "POST", "/v1/fail", `{"code":5,"message":"secret detail"}`)
			if w.Code != http.StatusNotFound {
				t.Fatalf("status %d", w.Code)
			}
			s = tr.next(t)
			checkSpan(t, s, addr, "Fail", 5, "NOT_FOUND")
			for _, kv := range s.Attributes() {
				if strings.Contains(kv.Value.String(), "secret") {
					t.Fatalf("status message recorded in %s", kv.Key)
				}
			}

			// Rejected before any call: no span.
			do(h, "POST", "/v1/echo/x", `{"nope":1}`)
			do(h, "GET", "/not/routed", "")
			tr.none(t)
			if n := len(tr.rec.Started()); n != len(tr.rec.Ended()) {
				t.Fatalf("%d spans started, %d ended", n, len(tr.rec.Ended()))
			}
		})
	}
}

func TestTracingStream(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			addr := startBackend(t)
			tr := newTracing(t)
			srv := httptest.NewServer(m.build(t, addr, tr.opts()...))
			defer srv.Close()
			get := func(ctx context.Context, path string) *http.Response {
				t.Helper()
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
				req.Header.Set("Traceparent", forgedTraceparent)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}

			resp := get(context.Background(), "/v1/stream/3")
			lines := streamLines(t, resp)
			resp.Body.Close()
			s := tr.next(t)
			checkSpan(t, s, addr, "Stream", 0, "")
			if len(lines) != 3 {
				t.Fatalf("%d lines", len(lines))
			}
			for _, l := range lines {
				var msg testpb.EchoResponse
				if err := protojson.Unmarshal(l["result"], &msg); err != nil {
					t.Fatal(err)
				}
				if sent := sentContext(msg.GetMetadata()); sent.SpanID() != s.SpanContext().SpanID() || sent.TraceID() != s.SpanContext().TraceID() {
					t.Fatalf("backend got %v, span %v", sent, s.SpanContext())
				}
			}

			resp = get(context.Background(), "/v1/stream/2?failCode=5")
			if lines := streamLines(t, resp); len(lines) != 3 {
				t.Fatalf("%d lines", len(lines))
			}
			resp.Body.Close()
			checkSpan(t, tr.next(t), addr, "Stream", 5, "NOT_FOUND")

			// The span stays open while the backend holds the stream, and ends (CANCELLED) when the
			// client goes away mid-stream. goleak (TestMain) checks nothing is left behind.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp = get(ctx, "/v1/stream/2?intervalMs=60000")
			defer resp.Body.Close()
			first := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(resp.Body).ReadString('\n')
				first <- line
			}()
			select {
			case line := <-first:
				if !strings.HasPrefix(line, `{"result":`) {
					t.Fatalf("first line %q", line)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("first message not flushed")
			}
			tr.none(t)
			if started, ended := len(tr.rec.Started()), len(tr.rec.Ended()); started != ended+1 {
				t.Fatalf("%d spans started, %d ended: the open stream's span should be open", started, ended)
			}
			cancel()
			checkSpan(t, tr.next(t), addr, "Stream", 1, "CANCELLED")
		})
	}
}

func TestTracingDisabled(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			tr := newTracing(t)
			h := m.build(t, startBackend(t), append(tr.opts(), transcode.WithTracing(false))...)
			ctx, parent := tr.tp.Tracer("test").Start(context.Background(), "server")
			r := httptest.NewRequest("GET", "/v1/echo/abc", nil).WithContext(ctx)
			r.Header.Set("Traceparent", forgedTraceparent)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			parent.End()
			resp := echoResponse(t, w)
			if s := tr.next(t); s.Name() != "server" {
				t.Fatalf("span %q", s.Name())
			}
			tr.none(t)
			if md := resp.GetMetadata(); len(md) != 0 {
				t.Fatalf("backend got metadata %v", md)
			}
		})
	}
}

// Without an SDK (a no-op tracer provider) the calls still carry the request's trace context.
func TestTracingNoopProvider(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			h := m.build(t, startBackend(t), transcode.WithTracerProvider(noop.NewTracerProvider()),
				transcode.WithPropagator(propagation.TraceContext{}))
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled})
			r := httptest.NewRequest("GET", "/v1/echo/abc", nil).WithContext(trace.ContextWithSpanContext(context.Background(), sc))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if sent := sentContext(echoResponse(t, w).GetMetadata()); sent.TraceID() != sc.TraceID() || sent.SpanID() != sc.SpanID() {
				t.Fatalf("backend got %v, want %v", sent, sc)
			}
		})
	}
}

// The caller's chained interceptors (WithDialOptions) run inside the client span.
func TestTracingInterceptorOrder(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			tr := newTracing(t)
			seen := make(chan trace.SpanContext, 1)
			inner := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				seen <- trace.SpanContextFromContext(ctx)
				return invoker(ctx, method, req, reply, cc, opts...)
			})
			h := m.build(t, startBackend(t), append(tr.opts(), transcode.WithDialOptions(inner))...)
			echoResponse(t, do(h, "GET", "/v1/echo/abc", ""))
			if s := tr.next(t); (<-seen).SpanID() != s.SpanContext().SpanID() {
				t.Fatal("the caller's interceptor did not see the client span")
			}
		})
	}
	// gRPC runs the single interceptor of grpc.WithUnaryInterceptor ahead of every chained one,
	// so it runs outside the client span (as documented at WithDialOptions), and does not
	// replace the tracing interceptor.
	for _, m := range modes {
		t.Run(m.name+"/WithUnaryInterceptor", func(t *testing.T) {
			tr := newTracing(t)
			seen := make(chan trace.SpanContext, 1)
			outer := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				seen <- trace.SpanContextFromContext(ctx)
				return invoker(ctx, method, req, reply, cc, opts...)
			})
			h := m.build(t, startBackend(t), append(tr.opts(), transcode.WithDialOptions(outer))...)
			echoResponse(t, do(h, "GET", "/v1/echo/abc", ""))
			tr.next(t) // the client span still ends
			if sc := <-seen; sc.IsValid() {
				t.Fatalf("the single interceptor saw span %v", sc.SpanID())
			}
		})
	}
}

// A connection lent with WithClientConn is traced when it was created with TracingDialOptions, and
// not otherwise: the Transcoder cannot add interceptors to it.
func TestTracingLentConnection(t *testing.T) {
	addr := startBackend(t)
	tr := newTracing(t)
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	for _, traced := range []bool{true, false} {
		opts := []grpc.DialOption{creds}
		if traced {
			opts = append(transcode.TracingDialOptions(tr.tp, propagation.TraceContext{}), creds)
		}
		cc, err := grpc.NewClient(addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		static, err := transcode.New(transcode.Register(addr, testpb.RegisterEchoServiceHandler), transcode.WithClientConn(addr, cc))
		if err != nil {
			t.Fatal(err)
		}
		defer static.Close()
		dynamic, err := transcode.NewDynamic(addr, transcode.ProtoFiles("internal/testpb", "echo.proto"), transcode.WithClientConn(addr, cc))
		if err != nil {
			t.Fatal(err)
		}
		defer dynamic.Close()
		for _, h := range []http.Handler{static, dynamic} {
			resp := echoResponse(t, do(h, "GET", "/v1/echo/abc", "", "Traceparent", forgedTraceparent))
			if !traced {
				tr.none(t)
				if md := resp.GetMetadata(); len(md) != 0 {
					t.Fatalf("backend got metadata %v", md)
				}
				continue
			}
			s := tr.next(t)
			checkSpan(t, s, addr, "Echo", 0, "")
			if sent := sentContext(resp.GetMetadata()); sent.SpanID() != s.SpanContext().SpanID() {
				t.Fatalf("backend got %v, span %v", sent, s.SpanContext())
			}
		}
	}
}

// fieldsPropagator propagates nothing but claims the keys it would set.
type fieldsPropagator struct{ propagation.TextMapPropagator }

func (fieldsPropagator) Fields() []string { return []string{"X-Trace-Id"} }

func TestTracingConstructionErrors(t *testing.T) {
	addr := startBackend(t)
	for _, tc := range []struct {
		name string
		opts []transcode.Option
		want string
	}{
		{"traceparent", []transcode.Option{transcode.ForwardHeaders("X-Tenant", "Traceparent")}, `"Traceparent" cannot be forwarded`},
		{"tracestate", []transcode.Option{transcode.ForwardHeaders("tracestate")}, `"tracestate" cannot be forwarded`},
		{"baggage", []transcode.Option{transcode.ForwardHeaders("Baggage")}, `"Baggage" cannot be forwarded`},
		{"traceparent with tracing off", []transcode.Option{transcode.WithTracing(false), transcode.ForwardHeaders("Traceparent")}, `"Traceparent" cannot be forwarded`},
		{"propagator field", []transcode.Option{transcode.ForwardHeaders("X-Trace-ID"), transcode.WithPropagator(fieldsPropagator{propagation.TraceContext{}})}, `"X-Trace-Id" is set by the trace-context propagator`},
		// The gateway's own metadata keys cannot carry trace context either: the request ID may be
		// the client's X-Request-ID, and it would reach the backend ahead of the gateway's.
		{"request ID key", []transcode.Option{transcode.RequestIDKey("traceparent")}, `request ID metadata key "traceparent" is a trace-context key`},
		{"subject key", []transcode.Option{transcode.SubjectKey("tracestate")}, `subject metadata key "tracestate" is a trace-context key`},
		{"roles key", []transcode.Option{transcode.WithTracing(false), transcode.RolesKey("baggage")}, `roles metadata key "baggage" is a trace-context key`},
		{"tier key as propagator field", []transcode.Option{transcode.TierKey("x-trace-id"), transcode.WithPropagator(fieldsPropagator{propagation.TraceContext{}})}, `tier metadata key "x-trace-id" is a trace-context key`},
		{"nil tracer provider", []transcode.Option{transcode.WithTracerProvider(nil)}, "nil tracer provider"},
		{"nil propagator", []transcode.Option{transcode.WithPropagator(nil)}, "nil propagator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := transcode.New(append([]transcode.Option{insecureDial, transcode.Register(addr, testpb.RegisterEchoServiceHandler)}, tc.opts...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("static: error %v, want %q", err, tc.want)
			}
			_, err = transcode.NewDynamic(addr, transcode.ProtoFiles("internal/testpb", "echo.proto"), append([]transcode.Option{insecureDial}, tc.opts...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dynamic: error %v, want %q", err, tc.want)
			}
		})
	}
}

// A connection created with TracingDialOptions may carry calls whose outgoing metadata already
// holds trace context (a gRPC proxy copying its incoming metadata, say). The client span's context
// replaces it: appended after it, the backend would read the first, foreign value as its parent.
func TestTracingDialOptionsReplaceTraceContext(t *testing.T) {
	addr := startBackend(t)
	tr := newTracing(t)
	cc, err := grpc.NewClient(addr, append(transcode.TracingDialOptions(tr.tp, propagation.TraceContext{}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testpb.NewEchoServiceClient(cc)
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
	}{
		{"set", func() context.Context {
			return metadata.NewOutgoingContext(context.Background(), metadata.MD{
				"traceparent": {forgedTraceparent}, "tracestate": {"evil=1"}, "x-tenant": {"a"}})
		}},
		{"appended", func() context.Context {
			return metadata.AppendToOutgoingContext(context.Background(), "traceparent", forgedTraceparent, "x-tenant", "a")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Echo(tc.ctx(), &testpb.EchoRequest{Id: "abc"})
			if err != nil {
				t.Fatal(err)
			}
			s := tr.next(t)
			md := resp.GetMetadata()
			want := fmt.Sprintf("00-%s-%s-01", s.SpanContext().TraceID(), s.SpanContext().SpanID())
			if md["traceparent"] != want {
				t.Fatalf("backend got traceparent %q, want %q", md["traceparent"], want)
			}
			if _, ok := md["tracestate"]; ok {
				t.Fatalf("backend got tracestate %q", md["tracestate"])
			}
			if md["x-tenant"] != "a" {
				t.Fatalf("backend got x-tenant %q: other metadata must be kept", md["x-tenant"])
			}
		})
	}
}
