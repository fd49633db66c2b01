package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/gatewaykit/gatewaykit"
)

const scope = "github.com/gatewaykit/gatewaykit/bff"

// DefaultMaxBody is the default limit, in bytes, of a response body buffered for shaping and of a
// request body read for enrichment.
const DefaultMaxBody = 1 << 20

// Option configures New. Options are applied in order; an invalid option makes New fail.
type Option func(*config) error

type config struct {
	variants     []*variant
	defaultName  string
	maxBody      int64
	maxReqBody   int64
	errorHandler gatewaykit.ErrorHandler
	meter        metric.MeterProvider
	logger       *slog.Logger
	now          func() time.Time
	reqOps       []headerOp
	respOps      []headerOp
	enrichHdr    []enrichment
	enrichBody   []enrichment
}

// BFF is the backend-for-frontend middleware: it picks a client variant per request and shapes
// JSON responses for it, and applies header transformations and request enrichment. It is
// immutable after New and safe for concurrent use.
type BFF struct {
	variants    []*variant
	def         *variant
	maxBody     int64
	maxReqBody  int64
	onError     gatewaykit.ErrorHandler
	logger      *slog.Logger
	now         func() time.Time
	reqOps      []headerOp
	respOps     []headerOp
	enrichHdr   []enrichment
	enrichBody  []enrichment
	varyHeaders []string
	logEvery    *rate.Sometimes
	pools       pools

	responses    metric.Int64Counter
	bytesRemoved metric.Int64Counter
	enrichments  metric.Int64Counter
	enrichOK     metric.MeasurementOption
	enrichReject metric.MeasurementOption
}

// New builds a BFF from variants (Variant) and transformations (SetRequestHeader, EnrichHeader,
// EnrichBody, ...). At least one variant or transformation is required. Variants are tried in the
// order given; the first whose selector matches is used. Without a match the DefaultVariant is
// used, or the response passes through unshaped.
func New(opts ...Option) (*BFF, error) {
	c := config{maxBody: DefaultMaxBody, maxReqBody: DefaultMaxBody, now: time.Now}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("bff: nil option")
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if len(c.variants) == 0 && len(c.reqOps) == 0 && len(c.respOps) == 0 && len(c.enrichHdr) == 0 && len(c.enrichBody) == 0 {
		return nil, errors.New("bff: no variant and no transformation configured")
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	b := &BFF{
		variants: c.variants, maxBody: c.maxBody, maxReqBody: c.maxReqBody, onError: c.errorHandler.Or(),
		logger: c.logger, now: c.now, reqOps: c.reqOps, respOps: c.respOps,
		enrichHdr: c.enrichHdr, enrichBody: c.enrichBody,
		logEvery: &rate.Sometimes{First: 1, Interval: 10 * time.Second},
	}
	names := map[string]bool{}
	for _, v := range c.variants {
		if names[v.name] {
			return nil, fmt.Errorf("bff: variant %q defined twice", v.name)
		}
		names[v.name] = true
		if v.name == c.defaultName {
			b.def = v
		} else if len(v.prefixes) == 0 && len(v.headers) == 0 && len(v.funcs) == 0 {
			return nil, fmt.Errorf("bff: variant %q has no selector (PathPrefix, Header or When) and is not the default", v.name)
		}
		for _, h := range v.headers {
			if !containsFold(b.varyHeaders, h.name) {
				b.varyHeaders = append(b.varyHeaders, h.name)
			}
		}
	}
	if c.defaultName != "" && b.def == nil {
		return nil, fmt.Errorf("bff: default variant %q is not defined", c.defaultName)
	}
	meter := c.meter.Meter(scope)
	var err error
	if b.responses, err = meter.Int64Counter("gatewaykit.bff.responses", metric.WithUnit("{response}"),
		metric.WithDescription("Responses seen by a BFF variant, by variant and outcome")); err != nil {
		return nil, fmt.Errorf("bff: metric: %w", err)
	}
	if b.bytesRemoved, err = meter.Int64Counter("gatewaykit.bff.bytes_removed", metric.WithUnit("By"),
		metric.WithDescription("Bytes removed from response bodies by shaping (uncompressed), by variant")); err != nil {
		return nil, fmt.Errorf("bff: metric: %w", err)
	}
	if b.enrichments, err = meter.Int64Counter("gatewaykit.bff.enrichments", metric.WithUnit("{request}"),
		metric.WithDescription("Requests whose JSON body was enriched, by outcome (enriched, rejected)")); err != nil {
		return nil, fmt.Errorf("bff: metric: %w", err)
	}
	b.enrichOK = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "enriched")))
	b.enrichReject = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "rejected")))
	for _, v := range b.variants {
		v.attrs = make(map[string]metric.MeasurementOption, 4)
		for _, o := range []string{outcomeShaped, outcomePassthrough, outcomeTooLarge, outcomeInvalid} {
			v.attrs[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("variant", v.name), attribute.String("outcome", o)))
		}
		v.nameAttr = metric.WithAttributeSet(attribute.NewSet(attribute.String("variant", v.name)))
	}
	return b, nil
}

// DefaultVariant names the variant used when no selector matches (default: none, the response
// passes through unshaped). The variant needs no selector of its own.
func DefaultVariant(name string) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("bff: default variant name is empty")
		}
		c.defaultName = name
		return nil
	}
}

// WithMaxBody sets the largest response body, in bytes, buffered for shaping (default 1 MiB). A
// larger shaped-variant response is not sent unshaped: the client gets a 502 problem (fail
// closed), because passing it through would leak the fields the variant hides. The rest of such a
// body is accepted from next and discarded, so next sees no write error.
func WithMaxBody(n int64) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("bff: max body %d must be positive", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithMaxRequestBody sets the largest request body, in bytes, read for body enrichment (default
// 1 MiB); larger bodies get a 413 problem.
func WithMaxRequestBody(n int64) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("bff: max request body %d must be positive", n)
		}
		c.maxReqBody = n
		return nil
	}
}

// WithErrorHandler sets the writer of problem responses (default gatewaykit.WriteProblem).
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("bff: nil error handler")
		}
		c.errorHandler = h
		return nil
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider (default otel.GetMeterProvider() at
// New).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("bff: nil meter provider")
		}
		c.meter = mp
		return nil
	}
}

// WithLogger sets the logger for shaping failures, at most one line per 10 seconds (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("bff: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithClock sets the clock used for enrichment timestamps (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("bff: nil clock")
		}
		c.now = now
		return nil
	}
}

type variantKey struct{}

// VariantFrom returns the name of the variant chosen for the request, and false when none was.
func VariantFrom(ctx context.Context) (string, bool) {
	v, ok := ctx.Value(variantKey{}).(string)
	return v, ok
}

// Wrap returns next behind the BFF: the request is matched to a variant (its path prefix
// stripped), transformed and enriched, and the response is shaped for the variant.
func (b *BFF) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, prefix := b.choose(r)
		r2 := r
		if v != nil {
			ctx := context.WithValue(r.Context(), variantKey{}, v.name)
			if span := trace.SpanFromContext(ctx); span.IsRecording() {
				span.SetAttributes(attribute.String("gatewaykit.bff.variant", v.name))
			}
			r2 = r.WithContext(ctx)
			if prefix != "" {
				strip(r2, prefix)
			}
		} else if len(b.reqOps) > 0 || len(b.enrichHdr) > 0 || len(b.enrichBody) > 0 {
			r2 = r.WithContext(r.Context()) // never mutate the caller's request
		}
		for _, name := range b.varyHeaders {
			w.Header().Add("Vary", name)
		}
		if !b.transformRequest(w, r2) {
			return
		}
		shape := v != nil && !v.shaper.Identity()
		if !shape && len(b.respOps) == 0 {
			next.ServeHTTP(w, r2)
			return
		}
		if shape {
			prepareAcceptEncoding(r2)
		}
		sw := &responseWriter{w: w, r: r2, b: b}
		if shape {
			sw.v = v
		}
		next.ServeHTTP(sw, r2)
		sw.finish()
	})
}

// prepareAcceptEncoding limits the upstream to gzip or identity, the encodings the shaper reads.
func prepareAcceptEncoding(r *http.Request) {
	ae := r.Header.Values("Accept-Encoding")
	if len(ae) == 0 {
		return
	}
	r.Header = r.Header.Clone()
	if acceptsGzip(ae) {
		r.Header.Set("Accept-Encoding", "gzip")
	} else {
		r.Header.Del("Accept-Encoding")
	}
}

func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			params = strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return params != "q=0" && params != "q=0.0" && params != "q=0.00" && params != "q=0.000"
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func canonical(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n:") {
		return "", fmt.Errorf("bff: %q is not a valid header name", name)
	}
	return textproto.CanonicalMIMEHeaderKey(name), nil
}
