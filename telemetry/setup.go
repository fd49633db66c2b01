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
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
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
	processors []spanProcessor
	readers    []sdkmetric.Reader
	sampler    sdktrace.Sampler
	registry   *prometheus.Registry
	noGlobals  bool
}

// spanProcessor is a processor given with WithSpanProcessor, or an exporter given with
// WithSpanExporter whose batching processor (and its goroutine) Setup starts once it cannot fail.
type spanProcessor struct {
	processor sdktrace.SpanProcessor
	exporter  sdktrace.SpanExporter
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
		c.processors = append(c.processors, spanProcessor{exporter: exp})
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
		c.processors = append(c.processors, spanProcessor{processor: sp})
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
// http_server_request_duration_seconds) with ServerMetricsView installed, and the W3C
// trace-context and baggage propagator. Unless
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
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(exp), sdkmetric.WithView(ServerMetricsView())}
	for _, r := range c.readers {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(c.sampler)}
	for _, p := range c.processors {
		sp := p.processor
		if sp == nil {
			// Started only now that nothing can fail: its goroutine ends with Shutdown.
			sp = sdktrace.NewBatchSpanProcessor(p.exporter)
		}
		topts = append(topts, sdktrace.WithSpanProcessor(sp))
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

// ServerMetricsView returns the metric view Setup installs: it removes server.address and
// server.port from otelhttp's HTTP server metrics (http.server.*). otelhttp takes both from the
// request's Host header, which the client chooses, so every made-up host would start new time
// series until the SDK's cardinality limit (2000 attribute sets per instrument) sends the
// gateway's real series into the overflow series; the OpenTelemetry semantic conventions make
// both attributes opt-in on server metrics for that reason. What stays is bounded: method
// (unknown methods become "_OTHER"), status code, http.route (the ServeMux pattern, never the raw
// path), scheme and protocol. Spans keep both attributes. Pass it to sdkmetric.WithView when you
// build your own MeterProvider instead of calling Setup.
func ServerMetricsView() sdkmetric.View {
	return sdkmetric.NewView(
		sdkmetric.Instrument{Name: "http.server.*", Scope: instrumentation.Scope{Name: otelhttp.ScopeName}},
		sdkmetric.Stream{AttributeFilter: attribute.NewDenyKeysFilter("server.address", "server.port")})
}

// Shutdown flushes and stops the providers; later spans and measurements are dropped. It
// returns the errors of both providers, joined.
func (s *SDK) Shutdown(ctx context.Context) error {
	return errors.Join(s.TracerProvider.Shutdown(ctx), s.MeterProvider.Shutdown(ctx))
}
