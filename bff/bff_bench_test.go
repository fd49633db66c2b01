package bff_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit/bff"
)

func twentyFieldObject() []byte {
	var b strings.Builder
	b.WriteString(`{"id":12345,"name":"Ada Lovelace","avatar":"https://cdn.example.com/a/12345.png"`)
	for i := range 17 {
		b.WriteString(`,"field_`)
		b.WriteByte(byte('a' + i))
		b.WriteString(`":"some value that a mobile client does not need"`)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// discardWriter is a reusable ResponseWriter, so the benchmark measures the middleware.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func benchVariant(b *testing.B, path string) {
	doc := twentyFieldObject()
	shape, err := bff.New(
		bff.Variant("mobile", bff.PathPrefix("/mobile"), bff.Allow("id", "name", "avatar")),
		bff.Variant("web", bff.PathPrefix("/web")),
	)
	if err != nil {
		b.Fatal(err)
	}
	h := shape.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(doc)
	}))
	r := httptest.NewRequest("GET", path, nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, r)
	}
}

// BenchmarkShapeMobile20Fields: the mobile variant keeps 3 of 20 fields.
func BenchmarkShapeMobile20Fields(b *testing.B) { benchVariant(b, "/mobile/users/1") }

// BenchmarkPassthroughWeb20Fields is the baseline: the same request through a variant without rules.
func BenchmarkPassthroughWeb20Fields(b *testing.B) { benchVariant(b, "/web/users/1") }
