package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestServerAddress(t *testing.T) {
	for _, tc := range []struct {
		target string
		host   string
		port   int
	}{
		{"127.0.0.1:9090", "127.0.0.1", 9090},
		{"localhost:50051", "localhost", 50051},
		{"users", "users", 0},
		{"dns:///users:9090", "users", 9090},
		{"dns://8.8.8.8/users.internal:443", "users.internal", 443},
		{"passthrough:///[::1]:8080", "::1", 8080},
		{"gatewaykit:///users", "users", 0},
		{"unix:///run/users.sock", "/run/users.sock", 0},
		{"unix:run/users.sock", "run/users.sock", 0},
		{"unix-abstract:users", "users", 0},
		{"dns:users:9090", "users", 9090}, // a registered scheme without "//": gRPC's endpoint is the rest
		{"passthrough:10.0.0.7:8080", "10.0.0.7", 8080},
		{"dns:[::1]:443", "::1", 443},
		{"users:http", "users", 0},
		{"users:99999", "users", 0},
		{"dns:///", "", 0},
		{"", "", 0},
	} {
		host, port := serverAddress(tc.target)
		if host != tc.host || port != tc.port {
			t.Errorf("serverAddress(%q) = %q, %d; want %q, %d", tc.target, host, port, tc.host, tc.port)
		}
	}
}

// fakeStream is a grpc.ClientStream whose calls return preset errors.
type fakeStream struct {
	grpc.ClientStream
	recv, send error
}

func (f *fakeStream) RecvMsg(any) error { return f.recv }
func (f *fakeStream) SendMsg(any) error { return f.send }

type endChan chan sdktrace.ReadOnlySpan

func (c endChan) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (c endChan) OnEnd(s sdktrace.ReadOnlySpan)                   { c <- s }
func (c endChan) Shutdown(context.Context) error                  { return nil }
func (c endChan) ForceFlush(context.Context) error                { return nil }

// The stream span ends at the first of: the end of the stream, a send error, the
// single response of a non-server-streaming call, or the context's end.
func TestTracedStreamEnds(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	ended := make(chan sdktrace.ReadOnlySpan, 1)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSpanProcessor(endChan(ended)))
	defer tp.Shutdown(context.Background())
	ct := newClientTracer(tp, propagation.TraceContext{})

	type step func(cs grpc.ClientStream, f *fakeStream, cancel context.CancelFunc)
	recv := func(err error) step {
		return func(cs grpc.ClientStream, f *fakeStream, _ context.CancelFunc) { f.recv = err; _ = cs.RecvMsg(nil) }
	}
	send := func(err error) step {
		return func(cs grpc.ClientStream, f *fakeStream, _ context.CancelFunc) { f.send = err; _ = cs.SendMsg(nil) }
	}
	cancel := func(cs grpc.ClientStream, _ *fakeStream, cancel context.CancelFunc) { cancel() }
	for _, tc := range []struct {
		name          string
		serverStreams bool
		steps         []step
		ended         bool
		code          codes.Code
	}{
		{"messages then EOF", true, []step{recv(nil), recv(nil), recv(io.EOF), cancel}, true, codes.OK},
		{"messages only", true, []step{recv(nil), send(nil), send(io.EOF)}, false, 0},
		{"receive error", true, []step{recv(nil), recv(status.Error(codes.NotFound, "x")), cancel}, true, codes.NotFound},
		{"send error", true, []step{send(status.Error(codes.Internal, "x")), recv(io.EOF)}, true, codes.Internal},
		{"single response", false, []step{send(nil), recv(nil)}, true, codes.OK},
		{"context canceled", true, []step{recv(nil), cancel, recv(errors.New("late"))}, true, codes.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.Ended())
			ctx, cancelCtx := context.WithCancel(context.Background())
			defer cancelCtx()
			f := &fakeStream{}
			cs, err := ct.stream(ctx, &grpc.StreamDesc{ServerStreams: tc.serverStreams}, nil, "/p.S/M",
				func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
					return f, nil
				})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.steps {
				s(cs, f, cancelCtx)
			}
			if !tc.ended {
				if len(rec.Ended()) != before {
					t.Fatal("span ended while the stream is open")
				}
				cancelCtx() // the context's end ends it
			}
			var s sdktrace.ReadOnlySpan
			select {
			case s = <-ended:
			case <-time.After(30 * time.Second):
				t.Fatal("span not ended")
			}
			if !tc.ended {
				return
			}
			var got attribute.Value
			for _, kv := range s.Attributes() {
				if kv.Key == "rpc.grpc.status_code" {
					got = kv.Value
				}
			}
			if got.AsInt64() != int64(tc.code) {
				t.Fatalf("status code %v, want %d", got.String(), tc.code)
			}
			if (s.Status().Code == otelcodes.Error) != (tc.code != codes.OK) {
				t.Fatalf("span status %v", s.Status())
			}
		})
	}
}

// BenchmarkClientTracer is the interceptor's own cost around a call that does nothing: "noop" with
// the global (no SDK) tracer provider and propagator, "sdk" a recording span from an SDK provider
// with no exporter plus W3C trace-context injection into the metadata.
func BenchmarkClientTracer(b *testing.B) {
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, v := range []struct {
		name string
		ct   *clientTracer
	}{
		{"noop", newClientTracer(otel.GetTracerProvider(), otel.GetTextMapPropagator())},
		{"sdk", newClientTracer(sdk, propagation.TraceContext{})},
	} {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_ = v.ct.unary(ctx, "/gatewaykit.test.v1.EchoService/Echo", nil, nil, nil, invoker)
			}
		})
	}
}

// The per-method cache does not grow with the method names of calls: a connection made with
// TracingDialOptions may carry calls whose method comes from a client (a gRPC proxy forwarding
// unknown services). Past the bound, spans are still named and attributed right.
func TestClientTracerMethodsBounded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	ct := newClientTracer(tp, propagation.TraceContext{})
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for i := range 3 * maxMethods {
		_ = ct.unary(context.Background(), fmt.Sprintf("/pkg.S%d/M", i), nil, nil, nil, invoker)
	}
	ct.mu.RLock()
	n := len(ct.methods)
	ct.mu.RUnlock()
	if n > maxMethods {
		t.Fatalf("%d methods cached, want at most %d", n, maxMethods)
	}
	spans := rec.Ended()
	last := spans[len(spans)-1]
	if want := fmt.Sprintf("pkg.S%d/M", 3*maxMethods-1); last.Name() != want {
		t.Fatalf("span %q, want %q", last.Name(), want)
	}
	for _, kv := range last.Attributes() {
		if kv.Key == "rpc.service" && kv.Value.AsString() != fmt.Sprintf("pkg.S%d", 3*maxMethods-1) {
			t.Fatalf("rpc.service %q", kv.Value.AsString())
		}
	}
}
