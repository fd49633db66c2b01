package transcode_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatewaykit/gatewaykit/transcode"
	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

// BenchmarkUnary compares (wall time per op, and process CPU per op: client, gateway and server
// together, so the difference to "direct" is the gateway's CPU cost), against the same in-process gRPC server in the same run, a direct call
// with the generated client and the same call transcoded from HTTP/JSON in static and dynamic mode
// (the handler is called directly: the difference is what the gateway adds, without the HTTP
// server's own cost).
func BenchmarkUnary(b *testing.B) {
	addr := startBackend(b)
	const target = "/v1/echo/abc?count=3&tags=a&tags=b&label.key=k"
	b.Run("direct", func(b *testing.B) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		client := testpb.NewEchoServiceClient(cc)
		req := &testpb.EchoRequest{Id: "abc", Count: 3, Tags: []string{"a", "b"}, Label: &testpb.Label{Key: "k"}}
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			if _, err := client.Echo(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric((processCPU()-cpu)/float64(b.N), "cpu-us/op")
	})
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			h := m.build(b, addr)
			r := httptest.NewRequest("GET", target, nil)
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body)
				}
			}
			b.ReportMetric((processCPU()-cpu)/float64(b.N), "cpu-us/op")
		})
	}
}

// BenchmarkUnaryPOST is the same with a JSON body bound into the whole request message.
func BenchmarkUnaryPOST(b *testing.B) {
	addr := startBackend(b)
	const body = `{"count":3,"tags":["a","b"],"label":{"key":"k","value":"v"},"at":"2024-01-02T03:04:05Z"}`
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			h := m.build(b, addr)
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/v1/echo/abc", strings.NewReader(body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body)
				}
			}
			b.ReportMetric((processCPU()-cpu)/float64(b.N), "cpu-us/op")
		})
	}
}

// BenchmarkInterleaved runs one direct call, one static and one dynamic transcoded call per
// iteration, so all three see the same machine load, and reports each one's mean time, the
// transcoding overhead in microseconds and the ratio to the direct call.
func BenchmarkInterleaved(b *testing.B) {
	addr := startBackend(b)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := testpb.NewEchoServiceClient(cc)
	req := &testpb.EchoRequest{Id: "abc", Count: 3, Tags: []string{"a", "b"}, Label: &testpb.Label{Key: "k"}}
	static, dynamic := modes[0].build(b, addr), modes[1].build(b, addr)
	r := httptest.NewRequest("GET", "/v1/echo/abc?count=3&tags=a&tags=b&label.key=k", nil)
	var tDirect, tStatic, tDynamic time.Duration
	serve := func(h http.Handler) time.Duration {
		start := time.Now()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body)
		}
		return d
	}
	for b.Loop() {
		start := time.Now()
		if _, err := client.Echo(context.Background(), req); err != nil {
			b.Fatal(err)
		}
		tDirect += time.Since(start)
		tStatic += serve(static)
		tDynamic += serve(dynamic)
	}
	n := float64(b.N)
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	b.ReportMetric(us(tDirect), "direct-us/call")
	b.ReportMetric(us(tStatic), "static-us/call")
	b.ReportMetric(us(tDynamic), "dynamic-us/call")
	b.ReportMetric(us(tStatic-tDirect), "static-overhead-us")
	b.ReportMetric(us(tDynamic-tDirect), "dynamic-overhead-us")
	b.ReportMetric(float64(tStatic)/float64(tDirect), "static-ratio")
	b.ReportMetric(float64(tDynamic)/float64(tDirect), "dynamic-ratio")
}

// BenchmarkTracing measures what the client span costs on the transcoded unary call of
// BenchmarkUnary: "off" is WithTracing(false) (no interceptor: the code path before tracing
// existed), "noop" the defaults with no OpenTelemetry SDK installed (the global no-op tracer
// provider and propagator), "sdk" a recording, sampled span from an SDK provider with no exporter
// plus W3C trace-context injection. The interleaved sub-benchmark runs the three per iteration (in
// rotating order), so they see the same machine load, and reports each one's mean and the ratios
// to "off".
func BenchmarkTracing(b *testing.B) {
	addr := startBackend(b)
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	variants := []struct {
		name string
		opts []transcode.Option
	}{
		{"off", []transcode.Option{transcode.WithTracing(false)}},
		{"noop", nil},
		{"sdk", []transcode.Option{transcode.WithTracerProvider(tp), transcode.WithPropagator(propagation.TraceContext{})}},
	}
	r := httptest.NewRequest("GET", "/v1/echo/abc?count=3&tags=a&tags=b&label.key=k", nil)
	serve := func(b *testing.B, h http.Handler) time.Duration {
		start := time.Now()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		d := time.Since(start)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body)
		}
		return d
	}
	for _, m := range modes {
		hs := make([]http.Handler, len(variants))
		for i, v := range variants {
			hs[i] = m.build(b, addr, v.opts...)
			b.Run(m.name+"/"+v.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					serve(b, hs[i])
				}
			})
		}
		b.Run(m.name+"/interleaved", func(b *testing.B) {
			total := make([]time.Duration, len(hs))
			for n := 0; b.Loop(); n++ {
				for k := range hs { // rotated, so no variant always runs first
					i := (n + k) % len(hs)
					total[i] += serve(b, hs[i])
				}
			}
			for i, v := range variants {
				b.ReportMetric(float64(total[i].Nanoseconds())/1e3/float64(b.N), v.name+"-us/call")
				if i > 0 {
					b.ReportMetric(float64(total[i])/float64(total[0]), v.name+"/off")
				}
			}
		})
	}
}
