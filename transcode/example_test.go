package transcode_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

// exampleBackend starts the echo gRPC service on a loopback port.
func exampleBackend() (addr string, stop func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterEchoServiceServer(srv, echoServer{})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	return lis.Addr().String(), func() { srv.Stop(); <-done }
}

// Serve a gRPC service described only by its .proto files: no generated code in the gateway.
func ExampleNewDynamic() {
	addr, stop := exampleBackend()
	defer stop()

	tr, err := transcode.NewDynamic(addr, transcode.ProtoFiles("internal/testpb", "echo.proto"),
		transcode.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()

	r := httptest.NewRequest("GET", "/v1/echo/hello?count=2&color=COLOR_RED", nil)
	r = r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "alice"}))
	w := httptest.NewRecorder()
	tr.ServeHTTP(w, r)

	var resp testpb.EchoResponse
	_ = protojson.Unmarshal(w.Body.Bytes(), &resp)
	fmt.Println(w.Code, resp.GetRequest().GetId(), resp.GetRequest().GetCount(), resp.GetRequest().GetColor())
	fmt.Println("backend saw x-user-id:", resp.GetMetadata()["x-user-id"])
	// Output:
	// 200 hello 2 COLOR_RED
	// backend saw x-user-id: alice
}

// Serve generated grpc-gateway handlers with the gateway's conventions; Wrap passes every request
// no route matches to the next handler.
func ExampleNew() {
	addr, stop := exampleBackend()
	defer stop()

	tr, err := transcode.New(
		transcode.Register(addr, testpb.RegisterEchoServiceHandler),
		transcode.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		transcode.ForwardHeaders("X-Tenant"),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "site") })
	h := tr.Wrap(site)

	for _, target := range []string{"/v1/echo/x", "/index.html"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		fmt.Println(target, w.Code, w.Header().Get("Content-Type"))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/fail", nil))
	fmt.Println("/v1/fail", w.Code) // an empty FailRequest succeeds
	// Output:
	// /v1/echo/x 200 application/json
	// /index.html 200 text/plain; charset=utf-8
	// /v1/fail 200
}

// Trace every gRPC call: a client span per call, and its trace context sent to the backend as
// W3C traceparent metadata. A client's own traceparent header is never forwarded.
func ExampleWithTracerProvider() {
	addr, stop := exampleBackend()
	defer stop()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	tr, err := transcode.NewDynamic(addr, transcode.ProtoFiles("internal/testpb", "echo.proto"),
		transcode.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())),
		transcode.WithTracerProvider(tp),                     // default: otel.GetTracerProvider()
		transcode.WithPropagator(propagation.TraceContext{})) // default: otel.GetTextMapPropagator()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()

	r := httptest.NewRequest("GET", "/v1/echo/hello", nil)
	r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") // ignored
	w := httptest.NewRecorder()
	tr.ServeHTTP(w, r)

	var resp testpb.EchoResponse
	_ = protojson.Unmarshal(w.Body.Bytes(), &resp)
	span := spans.Ended()[0]
	fmt.Println(span.Name(), span.SpanKind())
	fmt.Println("backend joined the span's trace:",
		strings.Contains(resp.GetMetadata()["traceparent"], span.SpanContext().TraceID().String()))
	// Output:
	// gatewaykit.test.v1.EchoService/Echo client
	// backend joined the span's trace: true
}
