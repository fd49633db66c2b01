package breaker_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/breaker"
	"github.com/sony/gobreaker/v2"
)

// discardWriter is a reusable ResponseWriter, so that the benchmarks measure the middleware and
// not a recorder's allocations.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

var okBody = []byte("ok")

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
})

// staticTransport answers every request with the same response, without I/O.
type staticTransport struct{ resp *http.Response }

func (t staticTransport) RoundTrip(*http.Request) (*http.Response, error) { return t.resp, nil }

func benchBreaker(b *testing.B, opts ...breaker.Option) *breaker.Breaker {
	brk, err := breaker.New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = brk.Close() })
	return brk
}

// BenchmarkWrap compares a bare handler with the same handler behind a closed breaker.
func BenchmarkWrap(b *testing.B) {
	brk := benchBreaker(b)
	run := func(name string, h http.Handler) {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					h.ServeHTTP(w, r)
				}
			})
		})
	}
	run("bare", okHandler)
	run("breaker", brk.Wrap(okHandler))
	run("breaker+retries", benchBreaker(b, breaker.Retries(2)).Wrap(okHandler))
	run("breaker+timeout", benchBreaker(b, breaker.Timeout(time.Second)).Wrap(okHandler))
}

// BenchmarkTransport compares a bare RoundTripper with the same one behind per-host breakers.
func BenchmarkTransport(b *testing.B) {
	resp := &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(""))}
	base := staticTransport{resp: resp}
	brk := benchBreaker(b)
	run := func(name string, rt http.RoundTripper) {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "http://orders-1:8080/orders", nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rt.RoundTrip(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest(http.MethodGet, "http://orders-1:8080/orders", nil)
				for pb.Next() {
					if _, err := rt.RoundTrip(r); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	run("bare", base)
	run("breaker", brk.Transport(base))
	run("breaker+retries", benchBreaker(b, breaker.Retries(2)).Transport(base))
}

// BenchmarkTimeNow is the cost of one time.Now on this machine, for reading the figures above:
// gobreaker reads the clock twice per request.
func BenchmarkTimeNow(b *testing.B) {
	for b.Loop() {
		_ = time.Now()
	}
}

// BenchmarkGobreaker is gobreaker's own Execute on a closed breaker (with the same rolling
// window), the floor under both forms.
func BenchmarkGobreaker(b *testing.B) {
	cb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{Interval: 10 * time.Second, BucketPeriod: time.Second})
	for b.Loop() {
		_, _ = cb.Execute(func() (struct{}, error) { return struct{}{}, nil })
	}
}
