package transcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// RegisterFunc registers generated grpc-gateway handlers on mux, calling through conn: the
// signature of the generated Register<Service>Handler functions.
type RegisterFunc func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error

type registration struct {
	target string
	fns    []RegisterFunc
}

// Register adds generated handlers (usersv1.RegisterUserServiceHandler, ...) served by the backend
// at target (a grpc.NewClient target such as "dns:///users:9090"). All registrations with the same
// target share one connection. Used by New; NewDynamic refuses it.
func Register(target string, fns ...RegisterFunc) Option {
	return func(c *config) error {
		if target == "" {
			return errors.New("transcode: Register needs a target")
		}
		if len(fns) == 0 {
			return fmt.Errorf("transcode: Register(%q) needs at least one function", target)
		}
		for _, fn := range fns {
			if fn == nil {
				return fmt.Errorf("transcode: Register(%q): nil function", target)
			}
		}
		c.static = append(c.static, registration{target: target, fns: fns})
		return nil
	}
}

// staticState travels in the request context through grpc-gateway's mux to the hooks.
type staticState struct {
	md       metadata.MD
	next     http.Handler
	orig     *http.Request
	code     codes.Code
	unrouted bool
	tooLarge bool
}

type staticStateKey struct{}

func stateFrom(ctx context.Context) *staticState {
	s, _ := ctx.Value(staticStateKey{}).(*staticState)
	if s == nil {
		s = &staticState{}
	}
	return s
}

// New builds a static Transcoder: a grpc-gateway runtime.ServeMux onto which the Register options'
// generated functions are registered, configured with the gateway's conventions. At least one
// Register option is required.
func New(opts ...Option) (*Transcoder, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(cfg.static) == 0 {
		return nil, errors.New("transcode: New needs at least one Register option")
	}
	if len(cfg.serviceTargets) > 0 || cfg.services != nil {
		return nil, errors.New("transcode: ServiceTarget and Services apply to NewDynamic only")
	}
	t, err := newTranscoder(cfg, "static")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	mux := runtime.NewServeMux(t.muxOptions()...)
	for _, reg := range cfg.static {
		cc, err := t.conn(reg.target)
		if err != nil {
			return nil, t.closeOnError(err)
		}
		for _, fn := range reg.fns {
			if err := fn(ctx, mux, cc); err != nil {
				return nil, t.closeOnError(fmt.Errorf("transcode: register handlers for %q: %w", reg.target, err))
			}
		}
	}
	t.serve = func(w http.ResponseWriter, r *http.Request, next http.Handler) { t.serveStatic(mux, w, r, next) }
	return t, nil
}

func (t *Transcoder) serveStatic(mux *runtime.ServeMux, w http.ResponseWriter, r *http.Request, next http.Handler) {
	st := &staticState{md: t.outgoing(r), next: next, orig: r}
	ctx := context.WithValue(r.Context(), staticStateKey{}, st)
	if t.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.cfg.timeout)
		defer cancel()
	}
	// grpc-gateway forwards Authorization, X-Forwarded-For/Host (from RemoteAddr and Host) and the
	// headers its matcher accepts. Hand it a request that carries none of them: the metadata comes
	// from st.md only.
	r2 := r.WithContext(ctx)
	r2.Header = http.Header{}
	if te := r.Header["Te"]; te != nil {
		r2.Header["Te"] = te
	}
	r2.Host, r2.RemoteAddr = "", ""
	if r.Body != nil && r.Body != http.NoBody {
		left := t.cfg.maxBody
		if r.ContentLength > left {
			left = -1
		}
		r2.Body = &limitedBody{rc: r.Body, left: left, tooLarge: &st.tooLarge}
	}
	mux.ServeHTTP(w, r2)
	if !st.unrouted {
		t.record(r.Context(), st.code)
	}
}

func (t *Transcoder) muxOptions() []runtime.ServeMuxOption {
	c := t.cfg
	m := &jsonMarshaler{cfg: c, JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: c.useProtoNames, EmitUnpopulated: c.emitUnpopulated},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: c.discardUnknown},
	}}
	return []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, m),
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(allowMatcher(c.respHeaders)),
		runtime.WithOutgoingTrailerMatcher(allowMatcher(c.respTrailers)),
		runtime.WithMetadata(func(ctx context.Context, _ *http.Request) metadata.MD { return stateFrom(ctx).md }),
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved),
		runtime.WithErrorHandler(t.staticError),
		runtime.WithStreamErrorHandler(func(ctx context.Context, err error) *status.Status {
			s := t.convert(err)
			stateFrom(ctx).code = s.Code()
			return s
		}),
		runtime.WithRoutingErrorHandler(t.staticRoutingError),
	}
}

func allowMatcher(allow map[string]string) runtime.HeaderMatcherFunc {
	return func(key string) (string, bool) {
		name, ok := allow[key]
		return name, ok
	}
}

func (t *Transcoder) staticError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	state := stateFrom(ctx)
	if state.tooLarge {
		state.code = codes.InvalidArgument
		t.reject(w, r, http.StatusRequestEntityTooLarge, "The request body is too large.")
		return
	}
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) { // a malformed path encoding
		state.code = codes.InvalidArgument
		t.reject(w, r, hs.HTTPStatus, "The request path is malformed.")
		return
	}
	s := t.convert(err)
	state.code = s.Code()
	var hdr metadata.MD
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		hdr = md.HeaderMD
	}
	t.writeStatus(w, r, s, hdr)
}

func (t *Transcoder) staticRoutingError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	state := stateFrom(ctx)
	state.unrouted = true
	switch {
	case httpStatus == http.StatusNotFound && state.next != nil:
		state.next.ServeHTTP(w, state.orig)
	case httpStatus == http.StatusNotFound:
		t.reject(w, r, http.StatusNotFound, "No route matches the request.")
	case httpStatus == http.StatusMethodNotAllowed:
		t.reject(w, r, http.StatusMethodNotAllowed, "The method is not allowed on this path.")
	default:
		t.reject(w, r, http.StatusBadRequest, "The request path is malformed.")
	}
}

// jsonMarshaler is grpc-gateway's JSONPb with the gateway's stream framing: newline-delimited JSON
// with Content-Type application/x-ndjson, and the in-band error line of StreamError.
type jsonMarshaler struct {
	runtime.JSONPb
	cfg *config
}

func streamErrorChunk(v any) (*spb.Status, bool) {
	m, ok := v.(map[string]proto.Message)
	if !ok || len(m) != 1 {
		return nil, false
	}
	s, ok := m["error"].(*spb.Status)
	return s, ok
}

// ContentType implements runtime.Marshaler.
func (m *jsonMarshaler) ContentType(v any) string {
	if _, ok := streamErrorChunk(v); ok {
		return ndjson
	}
	return "application/json"
}

// StreamContentType implements runtime.StreamContentType.
func (m *jsonMarshaler) StreamContentType(any) string { return ndjson }

// Marshal implements runtime.Marshaler.
func (m *jsonMarshaler) Marshal(v any) ([]byte, error) {
	if s, ok := streamErrorChunk(v); ok {
		return m.cfg.streamError(status.FromProto(s)), nil
	}
	return m.JSONPb.Marshal(v)
}

const ndjson = "application/x-ndjson"

// NewDecoder implements runtime.Marshaler. Unlike JSONPb's, the decoder refuses anything after the
// first JSON value, so `["a"], "id": "x"` is malformed rather than silently truncated.
func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	inner := runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: m.UnmarshalOptions}
	return runtime.DecoderFunc(func(v any) error {
		if err := inner.Decode(v); err != nil {
			return err
		}
		if _, err := d.Token(); !errors.Is(err, io.EOF) {
			return errTrailingData
		}
		return nil
	})
}

var errTrailingData = errors.New("transcode: data after the JSON value")
