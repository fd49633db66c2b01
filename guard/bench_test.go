package guard_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/guard"
)

// benchWriter is a ResponseWriter that discards output and reuses its header map, so the
// benchmark measures the guards, not the recorder.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *benchWriter) WriteHeader(int)             {}

func benchGuards(b *testing.B) map[string]gatewaykit.Middleware {
	return map[string]gatewaykit.Middleware{
		"path":        must(guard.NewPathSafety()).Wrap,
		"ip":          must(guard.NewIPFilter(guard.DenyCIDRs("10.0.0.0/8", "172.16.0.0/12", "2001:db8::/32"))).Wrap,
		"limits":      must(guard.NewLimits()).Wrap,
		"concurrency": must(guard.NewConcurrency(1024)).Wrap,
		"headers":     must(guard.NewSecurityHeaders()).Wrap,
		"cors":        must(guard.NewCORS([]string{"https://shop.example.com"})).Wrap,
	}
}

// BenchmarkGuardChain measures the whole guard chain against a bare handler in the same run.
func BenchmarkGuardChain(b *testing.B) {
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	g := benchGuards(b)
	chain := gatewaykit.Chain(g["path"], g["ip"], g["limits"], g["concurrency"], g["headers"], g["cors"])
	cases := []struct {
		name string
		h    http.Handler
	}{{"baseline", noop}, {"chain", chain(noop)}}
	for _, name := range []string{"path", "ip", "limits", "concurrency", "headers", "cors"} {
		cases = append(cases, struct {
			name string
			h    http.Handler
		}{name, g[name](noop)})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/orders/12345?expand=items", nil)
			req.RemoteAddr = "203.0.113.7:40000"
			req.Header.Set("Origin", "https://shop.example.com")
			req.Header.Set("Authorization", "Bearer x")
			req.Header.Set("Accept", "application/json")
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				c.h.ServeHTTP(w, req)
			}
		})
	}
}
