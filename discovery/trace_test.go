package discovery_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxyAnnotatesCurrentSpan(t *testing.T) {
	up := upstream(t, echo("a"))
	inst := instanceOf(t, up)
	p, _ := newProxy(t, []discovery.Instance{inst})
	_, got := tracedGet(t, p)
	if got["gatewaykit.discovery.service"] != "svc" || got["gatewaykit.discovery.instance"] != inst.HostPort() || got["gatewaykit.discovery.attempts"] != "1" {
		t.Fatalf("span attributes %v", got)
	}
}

// tracedGet sends one GET through p under a recording server span and returns that span (which
// must be the only one) and its attributes as strings.
func tracedGet(t *testing.T, p http.Handler) (sdktrace.ReadOnlySpan, map[string]string) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tp.Tracer("test").Start(r.Context(), "server")
		defer span.End()
		p.ServeHTTP(w, r.WithContext(ctx))
	}))
	defer front.Close()
	if code := get(t, front.URL); code != 200 {
		t.Fatalf("status %d", code)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	got := map[string]string{}
	for _, kv := range spans[0].Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	return spans[0], got
}
