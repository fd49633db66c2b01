package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultServiceName is the service.name resource attribute Setup uses without ServiceName.
const DefaultServiceName = "gatewaykit"

// SetupOption configures Setup.
type SetupOption func(*setupConfig) error

type setupConfig struct {
	service    string
	processors []sdktrace.SpanProcessor
	readers    []sdkmetric.Reader
	sampler    sdktrace.Sampler
	registry   *prometheus.Registry
	noGlobals  bool
}

// ServiceName sets the service.name resource attribute (default "gatewaykit").
func ServiceName(name string) SetupOption {
	return func(c *setupConfig) error {
		if name == "" {
			return errors.New("telemetry: ServiceName: empty name")
		}
		c.service = name
		return nil
	}
}

// WithSpanExporter exports spans through a batching processor (default: none; spans are still
// created, sampled and propagated). Use an OTLP exporter from go.opentelemetry.io/otel/exporters
// in production.
func WithSpanExporter(exp sdktrace.SpanExporter) SetupOption {
	return func(c *setupConfig) error {
		if exp == nil {
			return errors.New("telemetry: WithSpanExporter: nil exporter")
		}
		c.processors = append(c.processors, sdktrace.NewBatchSpanProcessor(exp))
		return nil
	}
}

// WithSpanProcessor adds a span processor (tests use
// sdktrace.NewSimpleSpanProcessor(tracetest.NewInMemoryExporter())).
func WithSpanProcessor(sp sdktrace.SpanProcessor) SetupOption {
	return func(c *setupConfig) error {
		if sp == nil {
			return errors.New("telemetry: WithSpanProcessor: nil processor")
		}
		c.processors = append(c.processors, sp)
		return nil
	}
}

// WithMetricReader adds a metric reader beside the Prometheus exporter (tests use
// sdkmetric.NewManualReader()).
func WithMetricReader(r sdkmetric.Reader) SetupOption {
	return func(c *setupConfig) error {
		if r == nil {
			return errors.New("telemetry: WithMetricReader: nil reader")
		}
		c.readers = append(c.readers, r)
		return nil
	}
}

// WithSampler sets the sampler (default sdktrace.ParentBased(sdktrace.AlwaysSample())).
func WithSampler(s sdktrace.Sampler) SetupOption {
	return func(c *setupConfig) error {
		if s == nil {
			return errors.New("telemetry: WithSampler: nil sampler")
		}
		c.sampler = s
		return nil
	}
}

// WithRegistry makes the Prometheus exporter register with reg (default: a new registry owned by
// the SDK, holding the OTel metrics and the Go and process collectors; never the global
// prometheus.DefaultRegisterer).
func WithRegistry(reg *prometheus.Registry) SetupOption {
	return func(c *setupConfig) error {
		if reg == nil {
			return errors.New("telemetry: WithRegistry: nil registry")
		}
		c.registry = reg
		return nil
	}
}

// NoGlobals keeps Setup from installing its providers and propagator as the OpenTelemetry
// globals (default: installed, so every gatewaykit package picks them up at construction).
// Pass the SDK's fields to each package's WithTracerProvider / WithMeterProvider instead.
func NoGlobals() SetupOption {
	return func(c *setupConfig) error { c.noGlobals = true; return nil }
}

// SDK is an installed OpenTelemetry SDK. Its fields are safe for concurrent use.
type SDK struct {
	// TracerProvider creates the spans; its processors export them.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider holds every instrument; the Prometheus exporter reads it.
	MeterProvider *sdkmetric.MeterProvider
	// Propagator is W3C trace context plus baggage.
	Propagator propagation.TextMapPropagator
	// Registry is the Prometheus registry behind Metrics.
	Registry *prometheus.Registry
	// Metrics serves the Prometheus text format (and OpenMetrics on request): mount it at
	// /metrics, on an internal listener or behind auth.
	Metrics http.Handler
}

// Setup builds the OpenTelemetry SDK: a tracer provider (parent-based always-on sampling, the
// given span processors), a meter provider read by a Prometheus exporter on its own registry
// (metric names translated to Prometheus style: gatewaykit.guard.rejections becomes
// gatewaykit_guard_rejections_total, http.server.request.duration becomes
// http_server_request_duration_seconds), and the W3C trace-context and baggage propagator. Unless
// NoGlobals, it installs them as the OpenTelemetry globals. Call Shutdown when the program ends
// to flush spans.
func Setup(opts ...SetupOption) (*SDK, error) {
	c := &setupConfig{service: DefaultServiceName, sampler: sdktrace.ParentBased(sdktrace.AlwaysSample())}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("telemetry: nil setup option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", c.service)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	reg := c.registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(exp)}
	for _, r := range c.readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(c.sampler)}
	for _, p := range c.processors {
		topts = append(topts, sdktrace.WithSpanProcessor(p))
	}
	s := &SDK{
		TracerProvider: sdktrace.NewTracerProvider(topts...),
		MeterProvider:  sdkmetric.NewMeterProvider(mopts...),
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registry:       reg,
		Metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}),
	}
	if !c.noGlobals {
		otel.SetTracerProvider(s.TracerProvider)
		otel.SetMeterProvider(s.MeterProvider)
		otel.SetTextMapPropagator(s.Propagator)
	}
	return s, nil
}

// Shutdown flushes and stops the providers; later spans and measurements are dropped. It
// returns the errors of both providers, joined.
func (s *SDK) Shutdown(ctx context.Context) error {
	return errors.Join(s.TracerProvider.Shutdown(ctx), s.MeterProvider.Shutdown(ctx))
}
