package aggregate_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatewaykit/gatewaykit/aggregate"
)

func benchParts() []http.Handler {
	return []http.Handler{
		jsonHandler(`{"id":"alice","name":"Alice","avatar":"a.png"}`),
		jsonHandler(`[{"id":1,"total":10.5},{"id":2,"total":20}]`),
		jsonHandler(`{"items":["book","pen","lamp"]}`),
	}
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkAggregate3InProcess: three in-process parts run concurrently and merged.
func BenchmarkAggregate3InProcess(b *testing.B) {
	h := benchParts()
	a, err := aggregate.New([]aggregate.Part{
		{Name: "user", Handler: h[0], URL: "/users/alice", Required: true},
		{Name: "orders", Handler: h[1], URL: "/orders?user_id=alice"},
		{Name: "recommendations", Handler: h[2], URL: "/recommendations?user_id=alice"},
	})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/dashboard", nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		a.ServeHTTP(w, r)
	}
}

// BenchmarkSequential3InProcess is the baseline: the same three handlers called one after the
// other with recorders, and their bodies concatenated into one object by hand.
func BenchmarkSequential3InProcess(b *testing.B) {
	h := benchParts()
	paths := []string{"/users/alice", "/orders?user_id=alice", "/recommendations?user_id=alice"}
	names := []string{`"user":`, `"orders":`, `"recommendations":`}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		out := []byte{'{'}
		for i, hh := range h {
			rec := httptest.NewRecorder()
			hh.ServeHTTP(rec, httptest.NewRequest("GET", paths[i], nil))
			body, _ := io.ReadAll(rec.Body)
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, names[i]...)
			out = append(out, body...)
		}
		out = append(out, '}')
		_, _ = w.Write(out)
	}
}
