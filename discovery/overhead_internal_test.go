package discovery

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type memTransport struct{}

func (memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, ProtoMajor: 1, ProtoMinor: 1, Request: r, ContentLength: 2,
		Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("ok"))}, nil
}

// BenchmarkOwnOverhead isolates the proxy's own per-request work: "endpoint" calls the chosen
// endpoint's ReverseProxy directly (Rewrite included), "proxy" goes through ServeHTTP (checks,
// pick, in-flight accounting, metrics, span lookup). The difference is the proxy's own cost
// outside the Rewrite.
func BenchmarkOwnOverhead(b *testing.B) {
	res, err := NewStatic(map[string][]Instance{"svc": {{Address: "10.0.0.1", Port: 80}, {Address: "10.0.0.2", Port: 80}}})
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	p, err := NewProxy(res, "svc", WithBalancer(P2C()), WithTransport(memTransport{}), StripPrefix("/api"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	e := p.table.Load().admitted[0]
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"endpoint", e.rp}, {"proxy", p}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest("GET", "http://gw.example/api/orders/7", nil)
			req.RemoteAddr = "192.0.2.10:4242"
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			req.Header.Set("X-Request-Id", "abc")
			rec := httptest.NewRecorder()
			for b.Loop() {
				rec.Body.Reset()
				clear(rec.Header())
				tc.h.ServeHTTP(rec, req)
			}
		})
	}
}
