package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// NewTransport returns an http.RoundTripper over base (nil means http.DefaultTransport) that
// makes a client span per upstream request, child of the span in the request's context, records
// otelhttp's HTTP client metrics, and injects the trace context (W3C traceparent with Setup's
// propagator) into the upstream request headers. Give it to the proxy, the aggregate parts and
// any other upstream client. Options: WithTracerProvider, WithMeterProvider, WithPropagators.
// The transport is safe for concurrent use.
func NewTransport(base http.RoundTripper, opts ...Option) (http.RoundTripper, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(c.tp),
		otelhttp.WithMeterProvider(c.mp),
		otelhttp.WithPropagators(c.prop)), nil
}
