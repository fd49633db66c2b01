package aggregate

import (
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
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/gatewaykit/gatewaykit"
)

const scope = "github.com/gatewaykit/gatewaykit/aggregate"

const (
	// DefaultTimeout is the default overall deadline of an aggregate request (WithTimeout).
	DefaultTimeout = 10 * time.Second
	// DefaultMaxPartBody is the default cap, in bytes, of each part's body (WithMaxPartBody).
	DefaultMaxPartBody = 1 << 20
	// MetaKey is the member of a partial response that lists the failed parts.
	MetaKey = "_meta"
	// PartialHeader marks a partial response ("true").
	PartialHeader = "X-Gateway-Partial"
)

// Part is one named piece of an aggregate response: an upstream request (URL) or an in-process
// http.Handler.
type Part struct {
	// Name is the member under which the part's JSON is merged, and how other parts and the
	// _meta errors refer to it. Letters, digits, '_' and '-'; unique; not "_meta".
	Name string
	// URL is the request target template. For a network part it is an absolute http(s) URL such
	// as "http://orders/orders?user_id={sub}"; for a Handler part a path such as "/users/{sub}"
	// (default "/"). Variables ({name}) may appear in the path and query, never the scheme or
	// host, and are escaped for their position (path or query). A variable "other.field" reads
	// the field from part other's JSON result and makes this part depend on it.
	URL string
	// Handler, when set, serves the part in-process (no network). It must honour its request's
	// context: a handler still running at its timeout is abandoned and its result discarded.
	Handler http.Handler
	// Method is the request method (default GET). Parts send no body.
	Method string
	// Required makes the whole response fail (502, or 504 on timeout) when this part fails.
	// An optional part that fails is left out and listed in _meta.errors.
	Required bool
	// Timeout bounds this part (default WithPartTimeout, itself at most the overall deadline).
	Timeout time.Duration
	// DependsOn names a part that must succeed before this one starts (in addition to the parts
	// its URL variables read from).
	DependsOn string
	// AtRoot merges the members of this part's JSON object into the root of the response instead
	// of under Name. The part must return a JSON object. On a member-name clash the first part
	// listed wins.
	AtRoot bool
}

// Option configures New.
type Option func(*config) error

type config struct {
	timeout, partTimeout time.Duration
	maxPartBody          int64
	client               *http.Client
	transport            http.RoundTripper
	vars                 func(*http.Request) map[string]string
	queryVars            []string
	forward              []string
	subjectHeader        string
	rolesHeader          string
	propagator           propagation.TextMapPropagator
	errorHandler         gatewaykit.ErrorHandler
	meter                metric.MeterProvider
	tracer               trace.TracerProvider
	logger               *slog.Logger
}

// WithTimeout sets the overall deadline of an aggregate request (default 10 s).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("aggregate: timeout %v must be positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithPartTimeout sets the default per-part timeout (default: the overall deadline).
func WithPartTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("aggregate: part timeout %v must be positive", d)
		}
		c.partTimeout = d
		return nil
	}
}

// WithMaxPartBody caps each part's response body, in bytes (default 1 MiB); a larger body fails
// the part ("too large").
func WithMaxPartBody(n int64) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("aggregate: max part body %d must be positive", n)
		}
		c.maxPartBody = n
		return nil
	}
}

// WithClient sets the HTTP client for network parts. Its redirect policy is the caller's; Close
// does not close it. Default: a client over a clone of http.DefaultTransport that does not follow
// redirects (a 3xx fails the part), closed by Close.
func WithClient(c *http.Client) Option {
	return func(cfg *config) error {
		if c == nil {
			return errors.New("aggregate: nil client")
		}
		cfg.client = c
		return nil
	}
}

// WithTransport sets the RoundTripper of the default client (which does not follow redirects).
func WithTransport(rt http.RoundTripper) Option {
	return func(c *config) error {
		if rt == nil {
			return errors.New("aggregate: nil transport")
		}
		c.transport = rt
		return nil
	}
}

// WithVars sets the function that supplies template variables for a request, such as the
// identity's subject (see IdentityVars). Its values win over path values and query parameters.
// It is called once per request and must be safe for concurrent use.
func WithVars(f func(*http.Request) map[string]string) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("aggregate: nil vars func")
		}
		c.vars = f
		return nil
	}
}

// WithQueryVars lets the named template variables come from the caller's query parameters
// (default: none, since the query is client-controlled; path values of the route pattern, such as
// {id} in "GET /api/orders/{id}", are always available).
func WithQueryVars(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if !validVarName(n) || strings.Contains(n, ".") {
				return fmt.Errorf("aggregate: invalid query variable name %q", n)
			}
		}
		c.queryVars = append(c.queryVars, names...)
		return nil
	}
}

// WithForwardHeaders copies the named headers of the caller's request to every part (default
// none). Identity headers are not copied from the caller: see WithIdentityHeaders.
func WithForwardHeaders(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if n == "" || strings.ContainsAny(n, " \t\r\n:") {
				return fmt.Errorf("aggregate: invalid header name %q", n)
			}
			c.forward = append(c.forward, textproto.CanonicalMIMEHeaderKey(n))
		}
		return nil
	}
}

// WithIdentityHeaders names the headers that carry the caller's gatewaykit.Identity to every
// part: subject and comma-joined roles (default X-User-ID and X-User-Roles; "" disables one).
// They are always set from the Identity in the request context, never copied from the caller, and
// are absent for anonymous callers.
func WithIdentityHeaders(subject, roles string) Option {
	return func(c *config) error {
		for _, n := range []string{subject, roles} {
			if strings.ContainsAny(n, " \t\r\n:") {
				return fmt.Errorf("aggregate: invalid header name %q", n)
			}
		}
		c.subjectHeader, c.rolesHeader = subject, roles
		if subject != "" {
			c.subjectHeader = textproto.CanonicalMIMEHeaderKey(subject)
		}
		if roles != "" {
			c.rolesHeader = textproto.CanonicalMIMEHeaderKey(roles)
		}
		return nil
	}
}

// WithPropagator sets how trace context reaches the parts (default propagation.TraceContext{},
// the W3C traceparent and tracestate headers; pass otel.GetTextMapPropagator() to use the
// global one).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) error {
		if p == nil {
			return errors.New("aggregate: nil propagator")
		}
		c.propagator = p
		return nil
	}
}

// WithErrorHandler sets the writer of problem responses (default gatewaykit.WriteProblem).
func WithErrorHandler(h gatewaykit.ErrorHandler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("aggregate: nil error handler")
		}
		c.errorHandler = h
		return nil
	}
}

// WithMeterProvider sets the OpenTelemetry meter provider (default otel.GetMeterProvider() at New).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) error {
		if mp == nil {
			return errors.New("aggregate: nil meter provider")
		}
		c.meter = mp
		return nil
	}
}

// WithTracerProvider sets the OpenTelemetry tracer provider (default otel.GetTracerProvider() at
// New). Each part gets a span named "aggregate <part>".
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		if tp == nil {
			return errors.New("aggregate: nil tracer provider")
		}
		c.tracer = tp
		return nil
	}
}

// WithLogger sets the logger for part failures, at most one line per 10 seconds (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("aggregate: nil logger")
		}
		c.logger = l
		return nil
	}
}

// IdentityVars is a WithVars function supplying "sub", the subject of the caller's
// gatewaykit.Identity (nothing for anonymous callers).
func IdentityVars(r *http.Request) map[string]string {
	id, ok := gatewaykit.IdentityFrom(r.Context())
	if !ok || id.Anonymous() {
		return nil
	}
	return map[string]string{"sub": id.Subject}
}

// Aggregator serves one aggregate endpoint. It is immutable after New and safe for concurrent
// use; Close releases the idle connections of its default client.
type Aggregator struct {
	parts       []*part
	client      *http.Client
	ownClient   bool
	timeout     time.Duration
	maxPartBody int64
	vars        func(*http.Request) map[string]string
	queryVars   map[string]bool
	forward     []string
	subjectHdr  string
	rolesHdr    string
	propagator  propagation.TextMapPropagator
	onError     gatewaykit.ErrorHandler
	tracer      trace.Tracer
	logger      *slog.Logger
	logEvery    *rate.Sometimes

	partsCounter metric.Int64Counter
	partDuration metric.Float64Histogram
	responses    metric.Int64Counter
	respAttrs    map[string]metric.MeasurementOption
}

type part struct {
	Part
	index    int
	tmpl     *template
	deps     []int
	timeout  time.Duration
	spanName string
	spanKind trace.SpanKind
	attrs    map[string]metric.MeasurementOption // by outcome
	nameAttr metric.MeasurementOption
	spanAttr attribute.KeyValue
}

func validPartName(s string) bool {
	if s == "" || s == MetaKey {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// New builds an Aggregator from its parts (at least one) and options. It validates names, URL
// templates, dependencies (unknown parts and cycles are errors) and options.
func New(parts []Part, opts ...Option) (*Aggregator, error) {
	c := config{timeout: DefaultTimeout, maxPartBody: DefaultMaxPartBody, subjectHeader: "X-User-Id", rolesHeader: "X-User-Roles"}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("aggregate: nil option")
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if len(parts) == 0 {
		return nil, errors.New("aggregate: no parts")
	}
	if c.client != nil && c.transport != nil {
		return nil, errors.New("aggregate: WithClient and WithTransport are mutually exclusive")
	}
	if c.partTimeout == 0 || c.partTimeout > c.timeout {
		c.partTimeout = c.timeout
	}
	a := &Aggregator{
		timeout: c.timeout, maxPartBody: c.maxPartBody, vars: c.vars, forward: c.forward,
		subjectHdr: c.subjectHeader, rolesHdr: c.rolesHeader, propagator: c.propagator,
		onError: c.errorHandler.Or(), logger: c.logger, logEvery: &rate.Sometimes{First: 1, Interval: 10 * time.Second},
		queryVars: map[string]bool{},
	}
	for _, n := range c.queryVars {
		a.queryVars[n] = true
	}
	if a.propagator == nil {
		a.propagator = propagation.TraceContext{}
	}
	if a.logger == nil {
		a.logger = slog.Default()
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if c.tracer == nil {
		c.tracer = otel.GetTracerProvider()
	}
	a.tracer = c.tracer.Tracer(scope)

	index := map[string]int{}
	for i, p := range parts {
		if !validPartName(p.Name) {
			return nil, fmt.Errorf("aggregate: part %d: invalid name %q (letters, digits, '_', '-'; not %q)", i, p.Name, MetaKey)
		}
		if _, dup := index[p.Name]; dup {
			return nil, fmt.Errorf("aggregate: part %q defined twice", p.Name)
		}
		index[p.Name] = i
	}
	network := false
	for i, p := range parts {
		cp := &part{Part: p, index: i, timeout: c.partTimeout}
		if cp.Method == "" {
			cp.Method = http.MethodGet
		}
		if !validMethod(cp.Method) {
			return nil, fmt.Errorf("aggregate: part %q: invalid method %q", p.Name, p.Method)
		}
		if p.Timeout < 0 {
			return nil, fmt.Errorf("aggregate: part %q: negative timeout", p.Name)
		}
		if p.Timeout > 0 && p.Timeout < cp.timeout {
			cp.timeout = p.Timeout
		}
		tmplText := p.URL
		if p.Handler == nil {
			if p.URL == "" {
				return nil, fmt.Errorf("aggregate: part %q has neither URL nor Handler", p.Name)
			}
			network = true
			cp.spanKind = trace.SpanKindClient
		} else {
			if tmplText == "" {
				tmplText = "/"
			}
			cp.spanKind = trace.SpanKindInternal
		}
		t, err := parseTemplate(tmplText, p.Handler == nil, index)
		if err != nil {
			return nil, fmt.Errorf("aggregate: part %q: %w", p.Name, err)
		}
		cp.tmpl = t
		if p.DependsOn != "" {
			d, ok := index[p.DependsOn]
			if !ok {
				return nil, fmt.Errorf("aggregate: part %q depends on unknown part %q", p.Name, p.DependsOn)
			}
			cp.deps = append(cp.deps, d)
		}
		for _, sg := range t.segs {
			if sg.dep >= 0 && !containsInt(cp.deps, sg.dep) {
				cp.deps = append(cp.deps, sg.dep)
			}
		}
		for _, d := range cp.deps {
			if d == i {
				return nil, fmt.Errorf("aggregate: part %q depends on itself", p.Name)
			}
		}
		cp.spanName = "aggregate " + p.Name
		a.parts = append(a.parts, cp)
	}
	if err := checkCycles(a.parts); err != nil {
		return nil, err
	}
	if network {
		switch {
		case c.client != nil:
			a.client = c.client
		default:
			rt := c.transport
			if rt == nil {
				rt = http.DefaultTransport.(*http.Transport).Clone()
				a.ownClient = true
			}
			a.client = &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		}
	}
	if err := a.initMetrics(c.meter); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Aggregator) initMetrics(mp metric.MeterProvider) error {
	meter := mp.Meter(scope)
	var err error
	if a.partsCounter, err = meter.Int64Counter("gatewaykit.aggregate.parts", metric.WithUnit("{part}"),
		metric.WithDescription("Part requests by part name and outcome")); err != nil {
		return fmt.Errorf("aggregate: metric: %w", err)
	}
	if a.partDuration, err = meter.Float64Histogram("gatewaykit.aggregate.part.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of part requests by part name")); err != nil {
		return fmt.Errorf("aggregate: metric: %w", err)
	}
	if a.responses, err = meter.Int64Counter("gatewaykit.aggregate.responses", metric.WithUnit("{response}"),
		metric.WithDescription("Aggregate responses by outcome (complete, partial, failed)")); err != nil {
		return fmt.Errorf("aggregate: metric: %w", err)
	}
	a.respAttrs = map[string]metric.MeasurementOption{}
	for _, o := range []string{"complete", "partial", "failed"} {
		a.respAttrs[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))
	}
	for _, p := range a.parts {
		p.attrs = map[string]metric.MeasurementOption{}
		for _, k := range allKinds {
			p.attrs[k] = metric.WithAttributeSet(attribute.NewSet(attribute.String("part", p.Name), attribute.String("outcome", k)))
		}
		p.nameAttr = metric.WithAttributeSet(attribute.NewSet(attribute.String("part", p.Name)))
		p.spanAttr = attribute.String("gatewaykit.aggregate.part", p.Name)
	}
	return nil
}

// Close releases the idle connections of the default client. The Aggregator stays usable.
func (a *Aggregator) Close() error {
	if a.ownClient && a.client != nil {
		a.client.CloseIdleConnections()
	}
	return nil
}

func checkCycles(parts []*part) error {
	state := make([]int, len(parts)) // 0 new, 1 visiting, 2 done
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			return fmt.Errorf("aggregate: dependency cycle through part %q", parts[i].Name)
		case 2:
			return nil
		}
		state[i] = 1
		for _, d := range parts[i].deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[i] = 2
		return nil
	}
	for i := range parts {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
