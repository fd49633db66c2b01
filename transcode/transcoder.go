package transcode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gatewaykit/gatewaykit"
)

// Transcoder serves REST/JSON requests by calling gRPC methods. New builds one from generated
// grpc-gateway code (static mode), NewDynamic from .proto sources or a descriptor set (dynamic mode);
// both apply the same conventions (metadata, errors, streaming, limits). A Transcoder is an
// http.Handler and, through Wrap, a middleware that passes unmatched requests on. It is safe for
// concurrent use; Close releases the connections it dialed.
type Transcoder struct {
	cfg     *config
	mode    string
	conns   map[string]*grpc.ClientConn
	owned   []*grpc.ClientConn
	cancel  context.CancelFunc
	once    sync.Once
	closed  atomic.Bool
	serve   func(w http.ResponseWriter, r *http.Request, next http.Handler)
	tracer  *clientTracer // nil when tracing is off or nothing was dialed
	calls   metric.Int64Counter
	callSet [len(codeTable) + 1]metric.AddOption
}

func newTranscoder(cfg *config, mode string) (*Transcoder, error) {
	t := &Transcoder{cfg: cfg, mode: mode, conns: map[string]*grpc.ClientConn{}}
	for target, cc := range cfg.conns {
		t.conns[target] = cc
	}
	meter := cfg.meterProvider.Meter("github.com/gatewaykit/gatewaykit/transcode")
	calls, err := meter.Int64Counter("gatewaykit.transcode.calls",
		metric.WithUnit("{call}"),
		metric.WithDescription("Transcoded gRPC calls by outcome."))
	if err != nil {
		return nil, fmt.Errorf("transcode: metrics: %w", err)
	}
	t.calls = calls
	for i := range t.callSet {
		c := codes.Code(i)
		if i == len(codeTable) {
			c = codes.Unknown
		}
		t.callSet[i] = metric.WithAttributeSet(attribute.NewSet(
			attribute.String("transcode.mode", mode),
			attribute.Int("rpc.grpc.status_code", int(c))))
	}
	return t, nil
}

func (t *Transcoder) record(ctx context.Context, c codes.Code) {
	i := int(c)
	if i >= len(codeTable) {
		i = len(codeTable)
	}
	t.calls.Add(ctx, 1, t.callSet[i])
}

// conn returns the connection for target, dialing it once. Only called during construction.
func (t *Transcoder) conn(target string) (*grpc.ClientConn, error) {
	if cc, ok := t.conns[target]; ok {
		return cc, nil
	}
	opts := t.cfg.dialOpts
	if t.cfg.tracing {
		if t.tracer == nil {
			t.tracer = newClientTracer(t.cfg.tracerProvider, t.cfg.propagator)
		}
		// First in the chain, so the caller's interceptors run inside the client span.
		opts = append(t.tracer.dialOptions(), opts...)
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("transcode: dial %q: %w (transport security must be set with WithDialOptions)", target, err)
	}
	t.conns[target] = cc
	t.owned = append(t.owned, cc)
	return cc, nil
}

// ServeHTTP transcodes the request, or answers 404 (405 for a known path with another method) as a
// problem when no route matches.
func (t *Transcoder) ServeHTTP(w http.ResponseWriter, r *http.Request) { t.serve(w, r, nil) }

// Wrap returns a handler that transcodes the requests matching a route and passes every other
// request to next unchanged.
func (t *Transcoder) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.serve(w, r, next) })
}

// Close closes the connections the Transcoder dialed (not those given with WithClientConn). Calls
// in flight and later requests are answered 503 (UNAVAILABLE). Close is idempotent.
func (t *Transcoder) Close() error {
	var errs []error
	t.once.Do(func() {
		t.closed.Store(true)
		if t.cancel != nil {
			t.cancel()
		}
		for _, cc := range t.owned {
			if err := cc.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// convert turns a call error into a status. A call cut by Close fails CANCELLED inside gRPC; it is
// answered UNAVAILABLE (503), since the client did not cancel anything.
func (t *Transcoder) convert(err error) *status.Status {
	st := status.Convert(err)
	if st.Code() == codes.Canceled && t.closed.Load() {
		return status.New(codes.Unavailable, "the transcoder is closed")
	}
	return st
}

func (t *Transcoder) closeOnError(err error) error {
	_ = t.Close()
	return err
}

// callContext derives the call's context: the request's deadline (and Timeout when set) and the
// outgoing metadata.
func (t *Transcoder) callContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx := r.Context()
	cancel := context.CancelFunc(func() {})
	if t.cfg.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.cfg.timeout)
	}
	return metadata.NewOutgoingContext(ctx, t.outgoing(r)), cancel
}

// outgoing builds the request metadata: allow-listed headers, then the identity and the request ID
// from the context. Nothing else is forwarded.
func (t *Transcoder) outgoing(r *http.Request) metadata.MD {
	c := t.cfg
	md := make(metadata.MD, len(c.forward)+4)
	for _, f := range c.forward {
		for _, v := range r.Header[f.canon] {
			if printableASCII(v) {
				md[f.key] = append(md[f.key], v)
			}
		}
	}
	ctx := r.Context()
	if id, ok := gatewaykit.IdentityFrom(ctx); ok && !id.Anonymous() {
		if c.subjectKey != "" && printableASCII(id.Subject) {
			md[c.subjectKey] = []string{id.Subject}
		}
		if c.rolesKey != "" {
			for _, role := range id.Roles {
				if printableASCII(role) {
					md[c.rolesKey] = append(md[c.rolesKey], role)
				}
			}
		}
		if c.tierKey != "" && id.Tier != "" && printableASCII(id.Tier) {
			md[c.tierKey] = []string{id.Tier}
		}
	}
	if c.requestIDKey != "" {
		if rid := gatewaykit.RequestIDFrom(ctx); rid != "" && printableASCII(rid) {
			md[c.requestIDKey] = []string{rid}
		}
	}
	return md
}

// printableASCII reports whether v is a valid gRPC metadata text value.
func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// mapMetadata copies the allow-listed keys of md into h.
func (t *Transcoder) mapMetadata(h http.Header, md metadata.MD, allow map[string]string) {
	if len(allow) == 0 {
		return
	}
	for k, vs := range md {
		if name, ok := allow[k]; ok {
			for _, v := range vs {
				if printableASCII(v) {
					h.Add(name, v)
				}
			}
		}
	}
}

// mapTrailers sets the allow-listed trailer metadata as HTTP trailers when the client accepts them.
func (t *Transcoder) mapTrailers(w http.ResponseWriter, r *http.Request, md metadata.MD) {
	if len(t.cfg.respTrailers) == 0 || !acceptsTrailers(r) {
		return
	}
	h := w.Header()
	for k, vs := range md {
		if name, ok := t.cfg.respTrailers[k]; ok {
			for _, v := range vs {
				if printableASCII(v) {
					h.Add(http.TrailerPrefix+name, v)
				}
			}
		}
	}
}
