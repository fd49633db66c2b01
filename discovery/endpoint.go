package discovery

import (
	"net/http"
	"net/http/httputil"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Endpoint is one instance as the balancers of a Proxy see it: the instance and its live load.
// Endpoints are created by the Proxy (or NewEndpoint, for testing custom balancers) and are safe
// for concurrent use.
type Endpoint struct {
	inst     Instance
	hostport string
	weight   int

	// inflight changes on every request: keep it off the cache line of the read-mostly fields.
	_        [64]byte
	inflight atomic.Int64
	_        [56]byte

	// passive health; fails is lock-free, the rest is guarded by Proxy.mu
	fails        atomic.Int32
	ejected      bool
	ejectedUntil int64
	ejections    int
	readmittedAt int64

	rp        *httputil.ReverseProxy
	rt        attemptTransport // rp's transport when retries are on
	proxy     *Proxy
	pickOpts  []metric.AddOption
	spanAttrs []attribute.KeyValue
}

// NewEndpoint returns an endpoint for inst with no requests in flight. Proxies build their own;
// this is for testing custom Balancers.
func NewEndpoint(inst Instance) *Endpoint {
	return &Endpoint{inst: inst, hostport: inst.HostPort(), weight: inst.weight()}
}

// Instance returns the instance behind the endpoint (shared: do not modify its Tags or Meta).
// Safe for concurrent use, like the other methods.
func (e *Endpoint) Instance() Instance { return e.inst }

// HostPort returns the instance's "host:port".
func (e *Endpoint) HostPort() string { return e.hostport }

// Weight returns the instance's weight, at least 1.
func (e *Endpoint) Weight() int { return e.weight }

// InFlight returns the number of requests the Proxy is currently forwarding to this endpoint
// (including open WebSocket and streaming connections). A request retried on another endpoint
// counts there while its attempt and response last, except a WebSocket tunnel, which stays
// counted on the endpoint first picked.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

func (e *Endpoint) rewrite(pr *httputil.ProxyRequest) { e.proxy.rewrite(pr, e) }

func (e *Endpoint) modifyResponse(res *http.Response) error {
	if rb, ok := res.Body.(*retriedBody); ok {
		e = rb.e // a retry went to another instance: the outcome is that instance's
	}
	if res.StatusCode >= 500 {
		e.proxy.failure(e)
	} else if e.fails.Load() != 0 {
		e.fails.Store(0)
	}
	return nil
}

func (e *Endpoint) handleError(w http.ResponseWriter, r *http.Request, err error) {
	e.proxy.upstreamError(w, r, err, e)
}

// atomicCounter is an atomic counter on its own cache line.
type atomicCounter struct {
	_ [64]byte
	v atomic.Uint64
	_ [56]byte
}
