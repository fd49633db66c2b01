package transcode_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatewaykit/gatewaykit/transcode/internal/testpb"
)

// BenchmarkUnary compares, against the same in-process gRPC server in the same run, a direct call
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
		for b.Loop() {
			if _, err := client.Echo(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			h := m.build(b, addr)
			r := httptest.NewRequest("GET", target, nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body)
				}
			}
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
			for b.Loop() {
				r := httptest.NewRequest("POST", "/v1/echo/abc", strings.NewReader(body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body)
				}
			}
		})
	}
}
