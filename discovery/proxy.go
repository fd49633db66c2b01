package discovery

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/gatewaykit/gatewaykit"
)

// Proxy is an http.Handler that forwards each request to one healthy instance of a service,
// chosen by a Balancer among the instances its Resolver reports, minus those ejected by passive
// health checks. It forwards with httputil.ReverseProxy using Rewrite: hop-by-hop headers (and
// those named in Connection) are removed, X-Forwarded-For/Host/Proto are set under the
// trusted-proxy rules of WithClientIPResolver, responses stream (server-sent events are flushed
// at once), trailers pass through and WebSocket upgrades are tunnelled.
//
// When the connection to the chosen instance fails before any response header arrived, a request
// that is safe to send twice is retried on another instance, within a retry budget (see
// RetryPolicy; default one retry).
//
// Failures are answered with problem+json through the error handler: 503 with Retry-After when no
// instance is available, 504 when the upstream timed out, 502 for other upstream failures (or what
// WithErrorMapper decides), after the retries if any. Failures the client caused are 400 (a
// request body that could not be read, an Upgrade header naming a non-printable protocol) or 413
// (a body over the limit an earlier middleware set with http.MaxBytesReader) and never count
// against the instance. Upstream error text never reaches the client.
//
// A Proxy is safe for concurrent use. Close stops its resolver watch and closes idle connections.
type Proxy struct {
	service      string
	balancer     Balancer
	transport    http.RoundTripper
	ownTransport *http.Transport
	pool         *bufferPool
	errorLog     *log.Logger
	logger       *slog.Logger
	logLimit     logLimiter
	clock        Clock

	scheme        string
	rewriteFrom   string
	rewriteTo     string
	rewriteSet    bool
	preserveHost  bool
	clientIP      *gatewaykit.ClientIPResolver
	errHandler    gatewaykit.ErrorHandler
	errMapper     func(error) *gatewaykit.Problem
	retryAfter    time.Duration
	flushInterval time.Duration
	passive       PassiveHealth
	route         *headerRoute
	retryPolicy   RetryPolicy
	budget        retryBudget
	epoch         time.Time // the retry budget's time origin
	sysClock      bool      // clock is the system clock: the budget reads the monotonic clock alone

	table atomic.Pointer[table]

	mu        sync.Mutex // guards the fields below and the passive-health state of endpoints
	endpoints []*Endpoint
	byKey     map[string]*Endpoint
	closed    bool

	stopWatch func()
	closeOnce sync.Once
	ready     chan struct{}
	readyOnce sync.Once

	m proxyMetrics
}

// table is an immutable snapshot of what the proxy can route to.
type table struct {
	all         []*Endpoint
	admitted    []*Endpoint
	main        group            // every admitted endpoint
	byTag       map[string]group // RouteByHeader: the admitted endpoints by allowed tag
	fallback    group            // RouteByHeader: where requests without a matching tag go
	nextReadmit int64            // unix nanos of the earliest readmission, 0 when nothing is ejected
}

// group is a set of endpoints a request may be routed to and its picker (nil when empty).
type group struct {
	picker Picker
	eps    []*Endpoint
}

// group returns the routing group of r.
func (t *table) group(r *http.Request, route *headerRoute) group {
	if route == nil {
		return t.main
	}
	if v := r.Header[route.header]; len(v) > 0 {
		if g, ok := t.byTag[v[0]]; ok {
			return g
		}
	}
	return t.fallback
}

// NewProxy returns a Proxy for service, watching res for its instances. It accepts the options
// marked "NewProxy". Defaults: RoundRobin, DefaultPassiveHealth, DefaultRetryPolicy,
// DefaultTransport (owned by the proxy), no prefix rewriting, no trusted proxies,
// gatewaykit.WriteProblem, Retry-After 1s.
//
// The first instances arrive through the resolver's Watch; until then requests get 503.
func NewProxy(res Resolver, service string, opts ...Option) (*Proxy, error) {
	if res == nil {
		return nil, errors.New("discovery: NewProxy: resolver is nil")
	}
	if service == "" {
		return nil, errors.New("discovery: NewProxy: service name is empty")
	}
	c := config{kind: kindProxy, balancer: RoundRobin(), retryAfter: time.Second, scheme: "http", passive: DefaultPassiveHealth(),
		retry: DefaultRetryPolicy()}
	if err := c.apply(opts); err != nil {
		return nil, err
	}
	c.defaults()
	p := &Proxy{
		service: service, balancer: c.balancer, transport: c.transport, pool: newBufferPool(),
		logger: c.logger, clock: c.clock, scheme: c.scheme,
		rewriteFrom: c.rewriteFrom, rewriteTo: c.rewriteTo, rewriteSet: c.rewriteSet,
		preserveHost: c.preserveHost, clientIP: c.clientIP, errHandler: c.errHandler.Or(),
		errMapper: c.errMapper, retryAfter: c.retryAfter, flushInterval: c.flushInterval,
		passive: c.passive, route: c.route, retryPolicy: c.retry, budget: newRetryBudget(c.retry),
		byKey: map[string]*Endpoint{}, ready: make(chan struct{}),
	}
	p.epoch = p.clock.Now()
	_, p.sysClock = p.clock.(systemClock)
	if p.transport == nil {
		p.ownTransport = DefaultTransport()
		p.transport = p.ownTransport
	}
	p.errorLog = log.New(logWriter{p}, "", 0)
	if err := p.m.init(c.meter, service, p); err != nil {
		return nil, err
	}
	p.table.Store(&table{})
	stop, err := res.Watch(service, p.update)
	if err != nil {
		p.m.close()
		if p.ownTransport != nil {
			p.ownTransport.CloseIdleConnections()
		}
		return nil, fmt.Errorf("discovery: NewProxy: watch %q: %w", service, err)
	}
	p.mu.Lock()
	p.stopWatch = stop
	p.mu.Unlock()
	return p, nil
}

func (c *config) defaults() {
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if c.meter == nil {
		c.meter = otel.GetMeterProvider()
	}
	if c.clock == nil {
		c.clock = systemClock{}
	}
}

// Close stops watching the resolver and closes the idle connections of the default transport (a
// transport given with WithTransport is left alone). Requests in flight complete; later requests
// are answered 503. Close is idempotent, safe to call concurrently with requests, and returns nil.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		stop := p.stopWatch
		p.mu.Unlock()
		if stop != nil {
			stop() // outside p.mu: a callback in progress needs the lock
		}
		p.mu.Lock()
		p.closed = true
		p.endpoints, p.byKey = nil, nil
		p.table.Store(&table{})
		p.mu.Unlock()
		p.m.close()
		if p.ownTransport != nil {
			p.ownTransport.CloseIdleConnections()
		}
	})
	return nil
}

// Instances returns the instances the proxy currently routes to: healthy according to the
// resolver and not ejected (empty before the first set and after Close). The slice is a fresh
// copy; the Instances in it share Tags and Meta with the resolver (read-only). Safe for
// concurrent use.
func (p *Proxy) Instances() []Instance {
	t := p.table.Load()
	out := make([]Instance, len(t.admitted))
	for i, e := range t.admitted {
		out[i] = e.inst
	}
	return out
}

// InFlight returns the number of requests being forwarded right now, over all instances
// (including open WebSocket and streaming connections). Safe for concurrent use.
func (p *Proxy) InFlight() int64 {
	var n int64
	for _, e := range p.table.Load().all {
		n += e.inflight.Load()
	}
	return n
}

// ServeHTTP forwards r to an instance, or answers the failure as described on Proxy. Safe for
// concurrent use. It adds a body-error tracking wrapper to the outbound request body of requests
// that have one; it does not modify r.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !validUpgrade(r.Header) {
		p.m.errors.Add(r.Context(), 1, p.m.errClient...)
		p.errHandler(w, r, gatewaykit.NewProblem(http.StatusBadRequest, "the Upgrade header names an invalid protocol"))
		return
	}
	if p.rewriteSet && hasDotSegment(r.URL.Path) {
		p.m.errors.Add(r.Context(), 1, p.m.errClient...)
		p.errHandler(w, r, gatewaykit.NewProblem(http.StatusBadRequest, "the request path has dot segments"))
		return
	}
	t := p.table.Load()
	if t.nextReadmit != 0 && p.clock.Now().UnixNano() >= t.nextReadmit {
		t = p.readmit()
	}
	var e *Endpoint
	if pk := t.group(r, p.route).picker; pk != nil {
		e = pk.Pick(r)
	}
	if e == nil || e.proxy != p { // nothing, or (a custom Picker's bug) an endpoint not ours
		if e != nil && p.logLimit.allow() {
			p.logger.Error("discovery: the balancer's picker returned an endpoint this proxy did not give it", "service", p.service)
		}
		p.m.errors.Add(r.Context(), 1, p.m.errNoInstance...)
		p.errHandler(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable,
			"no healthy instance of the upstream service is available").WithRetryAfter(p.retryAfter))
		return
	}
	e.inflight.Add(1)
	defer e.inflight.Add(-1)
	p.m.picks.Add(r.Context(), 1, e.pickOpts...)
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(e.spanAttrs...)
	}
	e.rp.ServeHTTP(w, r)
}

// rewrite is the ReverseProxy Rewrite function of endpoint e. It allocates only the forwarding
// header values.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest, e *Endpoint) {
	in, out := pr.In, pr.Out
	out.URL.Scheme = p.scheme
	out.URL.Host = e.hostport
	if p.rewriteSet {
		p.rewritePath(out.URL)
	}
	if p.preserveHost {
		out.Host = in.Host
	} else {
		out.Host = ""
	}
	if out.Body != nil {
		out.Body = &clientBody{rc: out.Body} // only requests with a body: GETs stay allocation-free
	}
	if in.Trailer != nil {
		// The server fills in.Trailer when the body reaches EOF, and the transport sends
		// out.Trailer after the body: share the map so request trailers reach the upstream
		// (Request.Clone copies it before the values exist).
		out.Trailer = in.Trailer
	}

	peer, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		peer = "" // not an IP transport: no X-Forwarded-For entry, as the standard library does
	}
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	trusted := false
	if p.clientIP != nil {
		if a, ok := gatewaykit.ParseHostAddr(in.RemoteAddr); ok {
			trusted = p.clientIP.Trusted(a)
		}
	}
	h := out.Header
	vals := new([3]string)
	vals[0], vals[1], vals[2] = peer, in.Host, proto
	if trusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			vals[0] = strings.Join(prior, ", ") + ", " + peer
		}
		if v := in.Header["X-Forwarded-Host"]; len(v) > 0 {
			vals[1] = v[0]
		}
		if v := in.Header["X-Forwarded-Proto"]; len(v) > 0 {
			vals[2] = v[0]
		}
		if v := in.Header["Forwarded"]; len(v) > 0 {
			h["Forwarded"] = v
		}
	} else {
		// The client's own forwarding headers are lies until proven otherwise: ReverseProxy drops
		// Forwarded and X-Forwarded-For/Host/Proto; drop the rest of the family too (Port,
		// Prefix, Server, Ssl...: upstream frameworks build URLs and redirects from them).
		delete(h, "X-Real-Ip")
		for k := range h {
			if strings.HasPrefix(k, "X-Forwarded-") {
				delete(h, k)
			}
		}
	}
	if peer != "" {
		h["X-Forwarded-For"] = vals[0:1:1]
	}
	if vals[1] != "" {
		h["X-Forwarded-Host"] = vals[1:2:2]
	}
	h["X-Forwarded-Proto"] = vals[2:3:3]
}

func (p *Proxy) rewritePath(u *url.URL) {
	if u.RawPath != "" && u.EscapedPath() == u.RawPath {
		// The escaped form sent upstream decides where segments end: "/api%2Fx" is the one
		// segment "api/x". (An invalid RawPath is ignored by EscapedPath, and so here.)
		raw, ok := cutSegmentPrefix(u.RawPath, p.rewriteFrom)
		if !ok {
			return
		}
		rest, ok := cutSegmentPrefix(u.Path, p.rewriteFrom)
		if !ok {
			return // RawPath is not an encoding of Path; ServeHTTP never gets here
		}
		u.Path, u.RawPath = p.joinPrefix(rest), p.joinPrefix(raw)
		return
	}
	if rest, ok := cutSegmentPrefix(u.Path, p.rewriteFrom); ok {
		u.Path, u.RawPath = p.joinPrefix(rest), ""
	}
}

// hasDotSegment reports whether path has a "." or ".." segment. Upstreams resolve them, so a
// rewritten "/v1/../admin" would escape the replacement prefix.
func hasDotSegment(path string) bool {
	for {
		i := strings.Index(path, "/.")
		if i < 0 {
			return false
		}
		path = path[i+2:]
		if path == "" || path[0] == '/' || (path[0] == '.' && (len(path) == 1 || path[1] == '/')) {
			return true
		}
	}
}

func (p *Proxy) joinPrefix(rest string) string {
	switch {
	case p.rewriteTo == "" && rest == "":
		return "/"
	case p.rewriteTo == "":
		return rest
	}
	return p.rewriteTo + rest
}

// cutSegmentPrefix returns path without prefix when path is prefix or starts with prefix + "/".
func cutSegmentPrefix(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return path, false
	}
	return rest, true
}

func fallbackGroup(eps []*Endpoint, tag string) []*Endpoint {
	var g []*Endpoint
	for _, e := range eps {
		if e.inst.HasTag(tag) {
			g = append(g, e)
		}
	}
	return g
}

// upstreamError answers a failed forward and records the failure against e, or against the last
// instance tried when retries failed too.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error, e *Endpoint) {
	attempts := 1
	hr := r // what the error handler sees: the last attempt's request
	if re, ok := err.(*retriedError); ok {
		err, e, hr, attempts = re.err, re.e, re.req, re.attempts
	}
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away: not the instance's fault, and nobody reads the answer.
		p.m.errors.Add(r.Context(), 1, p.m.errCanceled...)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	if status, ok := clientFault(r); ok {
		// The client's body failed (malformed, cut, over a size limit): not the instance's fault.
		p.m.errors.Add(r.Context(), 1, p.m.errClient...)
		detail := "the request body could not be read"
		if status == http.StatusRequestEntityTooLarge {
			detail = "the request body is too large"
		}
		p.errHandler(w, hr, gatewaykit.NewProblem(status, detail).WithErr(err))
		return
	}
	p.failure(e)
	var prob *gatewaykit.Problem
	if p.errMapper != nil {
		prob = p.errMapper(err)
	}
	timeout := isTimeout(err)
	if prob == nil {
		if timeout {
			prob = gatewaykit.NewProblem(http.StatusGatewayTimeout, "the upstream service did not answer in time")
		} else {
			prob = gatewaykit.NewProblem(http.StatusBadGateway, "the upstream service failed to answer")
		}
	}
	if prob.Err == nil {
		cp := *prob // the mapper may return a shared problem: never write into it
		cp.Err = err
		prob = &cp
	}
	if timeout {
		p.m.errors.Add(r.Context(), 1, p.m.errTimeout...)
	} else {
		p.m.errors.Add(r.Context(), 1, p.m.errUpstream...)
	}
	if p.logLimit.allow() {
		p.logger.Warn("discovery: upstream request failed", "service", p.service, "instance", e.hostport, "attempts", attempts, "error", err)
	}
	p.errHandler(w, hr, prob)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// update replaces the instance set (the resolver's Watch callback).
func (p *Proxy) update(insts []Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	eps := make([]*Endpoint, 0, len(insts))
	byKey := make(map[string]*Endpoint, len(insts))
	for _, in := range insts {
		k := in.key()
		if _, dup := byKey[k]; dup {
			continue
		}
		e := p.byKey[k]
		if e == nil || !equalInstances([]Instance{e.inst}, []Instance{in}) {
			e = p.newEndpoint(in)
		}
		eps = append(eps, e)
		byKey[k] = e
	}
	p.endpoints, p.byKey = eps, byKey
	p.rebuild()
	p.readyOnce.Do(func() { close(p.ready) })
}

// Ready returns a channel closed once the resolver has delivered the first instance set (which
// may be empty), for readiness probes and start-up ordering: before that, every request is
// answered 503. With Static it is closed when NewProxy returns; with Consul after the first
// query answers. It is never closed when the first set never arrives (Close does not close it).
// Safe for concurrent use.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

func (p *Proxy) newEndpoint(in Instance) *Endpoint {
	e := NewEndpoint(in)
	e.proxy = p
	e.rp = &httputil.ReverseProxy{
		Rewrite:        e.rewrite,
		Transport:      p.transport,
		FlushInterval:  p.flushInterval,
		BufferPool:     p.pool,
		ErrorLog:       p.errorLog,
		ModifyResponse: e.modifyResponse,
		ErrorHandler:   e.handleError,
	}
	if p.retryPolicy.MaxRetries > 0 {
		e.rt.e = e
		e.rp.Transport = &e.rt
	}
	e.pickOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(
		attribute.String("service", p.service), attribute.String("instance", e.hostport)))}
	e.spanAttrs = []attribute.KeyValue{attribute.String("gatewaykit.discovery.service", p.service),
		attribute.String("gatewaykit.discovery.instance", e.hostport), attribute.Int("gatewaykit.discovery.attempts", 1)}
	return e
}

// rebuild publishes a new table from p.endpoints, readmitting endpoints whose ejection is over.
// p.mu must be held.
func (p *Proxy) rebuild() {
	var now int64
	if p.passive.enabled() {
		now = p.clock.Now().UnixNano()
		p.enforceEjectionLimit(now)
	}
	t := &table{all: p.endpoints}
	for _, e := range p.endpoints {
		if e.ejected {
			if now < e.ejectedUntil {
				if t.nextReadmit == 0 || e.ejectedUntil < t.nextReadmit {
					t.nextReadmit = e.ejectedUntil
				}
				continue
			}
			e.ejected = false
			e.readmittedAt = now
			e.fails.Store(0)
			p.logger.Info("discovery: instance readmitted", "service", p.service, "instance", e.hostport)
		}
		t.admitted = append(t.admitted, e)
	}
	if len(t.admitted) > 0 {
		t.main = group{p.balancer.NewPicker(t.admitted), t.admitted}
	}
	if p.route != nil {
		groups := map[string][]*Endpoint{}
		for _, e := range t.admitted {
			for _, tag := range e.inst.Tags {
				if p.route.allowed != nil && !p.route.allowed[tag] {
					continue
				}
				if g := groups[tag]; len(g) == 0 || g[len(g)-1] != e {
					groups[tag] = append(g, e)
				}
			}
		}
		t.byTag = make(map[string]group, len(groups))
		for tag, g := range groups {
			t.byTag[tag] = group{p.balancer.NewPicker(g), g}
		}
		switch p.route.fallback.mode {
		case fallbackAll:
			t.fallback = t.main
		case fallbackTag:
			if tg, ok := t.byTag[p.route.fallback.tag]; ok {
				t.fallback = tg // share the picker (and its state) with the header route
			} else if g := fallbackGroup(t.admitted, p.route.fallback.tag); len(g) > 0 {
				t.fallback = group{p.balancer.NewPicker(g), g} // the fallback tag is not an allowed value
			}
		}
	}
	p.table.Store(t)
}
