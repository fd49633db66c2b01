package telemetry

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/gatewaykit/gatewaykit"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope name of the package.
const ScopeName = "github.com/gatewaykit/gatewaykit/telemetry"

// Operation is the operation name passed to otelhttp; span names are "METHOD /route" once the
// ServeMux matched, and "METHOD" otherwise.
const Operation = "gateway"

// Middleware gives every request an otelhttp server span and HTTP server metrics named after the
// ServeMux pattern, and writes one structured access log line. See New. It is immutable and
// safe for concurrent use.
type Middleware struct {
	otel   func(http.Handler) http.Handler
	logger *slog.Logger
	level  slog.Level
	access bool
	path   func(*http.Request) string
	query  bool
}

// New returns the telemetry middleware. Place it directly around the http.ServeMux (after the
// guards and gatewaykit.RequestID): it reads r.Pattern after routing to name the span, set the
// http.route span attribute and the http.route metric attribute, and log the route. Handlers
// inside the mux's routes may copy the request freely.
//
// The access log's path field is the matched pattern's path by default, never the raw path, and
// the query string is not logged: see WithPathRedaction and LogQuery.
//
// Options: WithTracerProvider, WithMeterProvider, WithPropagators, WithLogger, AccessLogLevel,
// WithoutAccessLog, WithPathRedaction, LogQuery, TrustIncomingTrace.
func New(opts ...Option) (*Middleware, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	prop := c.prop
	if !c.trustIn {
		prop = publicPropagator{prop}
	}
	oopts := []otelhttp.Option{
		otelhttp.WithTracerProvider(c.tp),
		otelhttp.WithMeterProvider(c.mp),
		otelhttp.WithPropagators(prop),
	}
	if !c.trustIn {
		oopts = append(oopts, otelhttp.WithPublicEndpointFn(func(*http.Request) bool { return true }))
	}
	return &Middleware{
		otel:   otelhttp.NewMiddleware(Operation, oopts...),
		logger: c.logger,
		level:  c.level,
		access: !c.noAccess,
		path:   c.path,
		query:  c.query,
	}, nil
}

// publicPropagator reads a client's request as a public endpoint must: the trace context is
// extracted (otelhttp only links the new root span to it), but the client's W3C baggage is not,
// since every upstream transport would inject it into internal calls. Baggage already in the
// context (set by the gateway's own code) is kept.
type publicPropagator struct{ propagation.TextMapPropagator }

// Extract implements propagation.TextMapPropagator.
func (p publicPropagator) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	own := baggage.FromContext(ctx)
	return baggage.ContextWithBaggage(p.TextMapPropagator.Extract(ctx, carrier), own)
}

// Wrap returns next with spans, metrics and the access log.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return m.otel(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ann := &annotations{}
		r2 := r.WithContext(context.WithValue(r.Context(), annotationsKey{}, ann))
		rec := recorder{}
		next.ServeHTTP(rec.wrap(w), r2)
		if connectRedirect(r2) {
			r2.Pattern = "" // the client's path, not a pattern: unmatched for the log and metrics
		}
		// otelhttp reads the pattern from the request it passed us: hand the route back.
		r.Pattern = r2.Pattern
		route := Route(r2.Pattern)
		if route != "" {
			trace.SpanFromContext(r.Context()).SetAttributes(attribute.String("http.route", route))
		}
		if m.access && m.logger.Enabled(r.Context(), m.level) {
			m.log(r2, ann, &rec, route, time.Since(start))
		}
	}))
}

func (m *Middleware) log(r *http.Request, ann *annotations, rec *recorder, route string, d time.Duration) {
	ctx := r.Context()
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", m.path(r)))
	if m.query && r.URL.RawQuery != "" {
		attrs = append(attrs, slog.String("query", r.URL.RawQuery))
	}
	attrs = append(attrs,
		slog.Int("status", rec.status()),
		slog.Duration("duration", d),
		slog.Int64("bytes", rec.bytes))
	if id := gatewaykit.RequestIDFrom(ctx); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	subject, upstream := ann.get()
	if subject == "" {
		if id, ok := gatewaykit.IdentityFrom(ctx); ok {
			subject = id.Subject
		}
	}
	if subject != "" {
		attrs = append(attrs, slog.String("subject", subject))
	}
	if upstream != "" {
		attrs = append(attrs, slog.String("upstream", upstream))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	m.logger.LogAttrs(ctx, m.level, "request", attrs...)
}

// connectRedirect reports whether r.Pattern is not a pattern but the target of ServeMux's
// trailing-slash redirect of a CONNECT request: the mux does not clean CONNECT paths, and for them
// it stores the redirect's path (the client's path plus "/") in r.Pattern.
func connectRedirect(r *http.Request) bool {
	p := r.URL.Path
	if r.Method != http.MethodConnect || r.Pattern == "" || p == "" || strings.HasSuffix(p, "/") {
		return false
	}
	if p[0] != '/' {
		p = "/" + p
	}
	return r.Pattern == path.Clean(p)+"/"
}

// Route returns the path part of a ServeMux pattern ("GET example.com/api/{id}" ->
// "/api/{id}"), as otelhttp reports it in http.route; "" for no pattern.
func Route(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

// recorder captures the status and size of a response.
type recorder struct {
	code  int
	bytes int64
}

func (c *recorder) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

func (c *recorder) wrap(w http.ResponseWriter) http.ResponseWriter {
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				if c.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
					c.code = code
				}
				next(code)
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(p []byte) (int, error) {
				if c.code == 0 {
					c.code = http.StatusOK
				}
				n, err := next(p)
				c.bytes += int64(n)
				return n, err
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				if c.code == 0 {
					c.code = http.StatusOK
				}
				n, err := next(src)
				c.bytes += n
				return n, err
			}
		},
	})
}

// annotations is what handlers tell the access log about a request.
type annotations struct {
	mu        sync.Mutex
	subject   string
	upstreams []string
}

type annotationsKey struct{}

// maxUpstreams bounds the upstreams recorded for one request (an aggregate fans out).
const maxUpstreams = 16

func (a *annotations) get() (subject, upstream string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subject, strings.Join(a.upstreams, ",")
}

// SetUpstream records, for the access log line of the request carrying ctx, the upstream that
// served it ("orders@127.0.0.1:9001"). Calls with different values accumulate (an aggregate
// records each part), up to 16; repeats are ignored. Safe to call from any goroutine; a no-op
// outside the telemetry middleware.
func SetUpstream(ctx context.Context, upstream string) {
	a, ok := ctx.Value(annotationsKey{}).(*annotations)
	if !ok || upstream == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, u := range a.upstreams {
		if u == upstream {
			return
		}
	}
	if len(a.upstreams) < maxUpstreams {
		a.upstreams = append(a.upstreams, upstream)
	}
}

// SetSubject records the caller's subject for the access log line. The middleware logs the
// subject of a gatewaykit.Identity in the request context by itself when authentication runs
// outside it; authentication inside the mux's routes adds a copy of the request the middleware
// never sees, so use RecordIdentity (or SetSubject) after it. Safe for concurrent use.
func SetSubject(ctx context.Context, subject string) {
	if a, ok := ctx.Value(annotationsKey{}).(*annotations); ok {
		a.mu.Lock()
		a.subject = subject
		a.mu.Unlock()
	}
}

// RecordIdentity is a middleware for after authentication: it records the subject of the
// request's gatewaykit.Identity for the access log line (see SetSubject).
func RecordIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := gatewaykit.IdentityFrom(r.Context()); ok {
			SetSubject(r.Context(), id.Subject)
		}
		next.ServeHTTP(w, r)
	})
}
