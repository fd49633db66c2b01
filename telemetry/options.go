package telemetry

import (
	"errors"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures New and NewTransport.
type Option func(*config) error

type config struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	prop     propagation.TextMapPropagator
	logger   *slog.Logger
	level    slog.Level
	noAccess bool
	trustIn  bool
	path     func(*http.Request) string
	query    bool
}

func newConfig(opts []Option) (*config, error) {
	c := &config{level: slog.LevelInfo}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("telemetry: nil option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.path == nil {
		c.path = RoutePath
	}
	return c, nil
}

// WithTracerProvider sets the tracer provider (default otel.GetTracerProvider() at construction).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return errors.New("telemetry: WithTracerProvider: nil provider")
		}
		c.tp = tp
		return nil
	}
}

// WithMeterProvider sets the meter provider (default otel.GetMeterProvider() at construction).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("telemetry: WithMeterProvider: nil provider")
		}
		c.mp = mp
		return nil
	}
}

// WithPropagators sets how trace context is read from requests and written to upstream requests
// (default otel.GetTextMapPropagator() at construction; Setup installs W3C trace context and
// baggage).
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return errors.New("telemetry: WithPropagators: nil propagator")
		}
		c.prop = p
		return nil
	}
}

// WithLogger sets the access logger (default slog.Default()). Applies to New.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("telemetry: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// AccessLogLevel sets the level of access log lines (default slog.LevelInfo). Applies to New.
func AccessLogLevel(level slog.Level) Option {
	return func(c *config) error { c.level = level; return nil }
}

// WithoutAccessLog turns the access log off (spans and metrics stay). Applies to New.
func WithoutAccessLog() Option {
	return func(c *config) error { c.noAccess = true; return nil }
}

// WithPathRedaction sets what the access log records in its path field. f is called once per
// logged request, after the handler returned, with the request the ServeMux received (so
// r.Pattern and r.PathValue are set when a pattern matched); it must be safe for concurrent use.
// The default is RoutePath: the matched pattern's path ("/api/users/{id}"), "" when no pattern
// matched, so the IDs, e-mail addresses and tokens a path may carry never reach the log.
// RouteOrRawPath adds r.URL.Path for unmatched requests, RawPath logs r.URL.Path always; a
// function of your own can keep chosen path values (r.PathValue). The query string is never part
// of the path field: see LogQuery. Only the access log is affected: span attributes follow the
// OpenTelemetry conventions (see the package doc). Applies to New.
func WithPathRedaction(f func(r *http.Request) string) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("telemetry: WithPathRedaction: nil function")
		}
		c.path = f
		return nil
	}
}

// LogQuery adds the request's query string, as sent (r.URL.RawQuery, still percent-encoded), to
// the access log line as the field query, when there is one. By default the query string is
// never logged: it often carries search terms, e-mail addresses, API keys and signed-URL
// tokens. Applies to New.
func LogQuery() Option {
	return func(c *config) error { c.query = true; return nil }
}

// TrustIncomingTrace makes the server span a child of the trace context the client sent
// (traceparent), for a gateway whose callers are your own services. By default the gateway is a
// public endpoint: every request starts a new trace, linked to the client's span context if it
// sent one, so clients can neither join your traces nor force sampling through a parent-based
// sampler; the client's W3C baggage is ignored, so it never reaches upstreams through
// NewTransport. With TrustIncomingTrace the baggage is kept too. Applies to New.
func TrustIncomingTrace() Option {
	return func(c *config) error { c.trustIn = true; return nil }
}
