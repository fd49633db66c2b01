package transcode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// ServiceTarget sends the calls of one service (fully qualified, "users.v1.UserService") to target
// instead of NewDynamic's default target. Used by NewDynamic; the service must exist in the Source.
func ServiceTarget(service, target string) Option {
	return func(c *config) error {
		if service == "" || target == "" {
			return errors.New("transcode: ServiceTarget needs a service and a target")
		}
		c.serviceTargets[service] = target
		return nil
	}
}

// Services limits NewDynamic to the named services (fully qualified); by default every service of
// the Source with google.api.http rules is served. Naming a service the Source lacks fails
// construction. Use it when a descriptor set also describes services that must stay internal.
func Services(names ...string) Option {
	return func(c *config) error {
		if len(names) == 0 {
			return errors.New("transcode: Services needs at least one name")
		}
		if c.services == nil {
			c.services = map[string]bool{}
		}
		for _, n := range names {
			if n == "" {
				return errors.New("transcode: Services: empty service name")
			}
			c.services[n] = true
		}
		return nil
	}
}

// route is one HTTP binding of a method.
type route struct {
	httpMethod string
	tmpl       *template
	pathFields [][]protoreflect.FieldDescriptor // per template variable
	bodyAll    bool
	bodyField  protoreflect.FieldDescriptor // top-level field taking the body, or nil
	respField  protoreflect.FieldDescriptor // response_body field, or nil
	fullMethod string                       // "/pkg.Service/Method"
	in, out    protoreflect.MessageType
	streaming  bool
	conn       *grpc.ClientConn
	rule       string // "GET /v1/users/{id}", for errors
}

type dynamic struct {
	routes  map[string][]*route // by HTTP method, most specific first
	decoder bodyDecoder
	marshal protojson.MarshalOptions
}

// NewDynamic builds a dynamic Transcoder: it reads the google.api.http rules of every method in
// src and serves them without generated code, calling target (or a ServiceTarget) with dynamicpb
// messages. Methods without a rule are not served; client- and bidi-streaming methods are skipped
// with a warning. Any invalid rule (bad template, unknown field, duplicate route) fails construction.
func NewDynamic(target string, src Source, opts ...Option) (*Transcoder, error) {
	if target == "" {
		return nil, errors.New("transcode: NewDynamic needs a target")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(cfg.static) > 0 {
		return nil, errors.New("transcode: Register applies to New only")
	}

	files, err := src.files(context.Background())
	if err != nil {
		return nil, err
	}
	t, err := newTranscoder(cfg, "dynamic")
	if err != nil {
		return nil, err
	}
	d := &dynamic{
		routes: map[string][]*route{},
		decoder: bodyDecoder{opts: protojson.UnmarshalOptions{
			DiscardUnknown: cfg.discardUnknown, Resolver: dynamicpb.NewTypes(files)}},
		marshal: protojson.MarshalOptions{UseProtoNames: cfg.useProtoNames, EmitUnpopulated: cfg.emitUnpopulated,
			Resolver: dynamicpb.NewTypes(files)},
	}
	if err := t.buildRoutes(d, files, target); err != nil {
		return nil, t.closeOnError(err)
	}
	t.serve = func(w http.ResponseWriter, r *http.Request, next http.Handler) { t.serveDynamic(d, w, r, next) }
	return t, nil
}

func (t *Transcoder) buildRoutes(d *dynamic, files *protoregistry.Files, target string) error {
	services := map[string]bool{}
	var errs []error
	seen := map[string]string{}
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		svcs := fd.Services()
		for i := 0; i < svcs.Len(); i++ {
			svc := svcs.Get(i)
			services[string(svc.FullName())] = true
			if t.cfg.services != nil && !t.cfg.services[string(svc.FullName())] {
				continue
			}
			tgt := target
			if st, ok := t.cfg.serviceTargets[string(svc.FullName())]; ok {
				tgt = st
			}
			methods := svc.Methods()
			for j := 0; j < methods.Len(); j++ {
				m := methods.Get(j)
				rule := httpRule(m)
				if rule == nil {
					continue
				}
				if m.IsStreamingClient() {
					t.cfg.logger.Warn("transcode: client-streaming method not served", "method", m.FullName())
					continue
				}
				cc, err := t.conn(tgt)
				if err != nil {
					errs = append(errs, err)
					return false
				}
				bindings := append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...)
				for k, b := range bindings {
					if k > 0 && len(b.GetAdditionalBindings()) > 0 {
						errs = append(errs, fmt.Errorf("transcode: %s: additional_bindings cannot nest", m.FullName()))
						continue
					}
					rt, err := newRoute(m, b, cc)
					if err != nil {
						errs = append(errs, fmt.Errorf("transcode: %s: %s: %w", position(m), m.FullName(), err))
						continue
					}
					// Keyed by shape: templates differing only in variable names match the same
					// paths, and which one won would depend on file order.
					key := rt.httpMethod + " " + rt.tmpl.shape()
					if other, dup := seen[key]; dup {
						errs = append(errs, fmt.Errorf("transcode: %s: %s and %s both bind %s %s", position(m), other, m.FullName(),
							rt.httpMethod, rt.tmpl))
						continue
					}
					seen[key] = string(m.FullName())
					d.routes[rt.httpMethod] = append(d.routes[rt.httpMethod], rt)
				}
			}
		}
		return true
	})
	for svc := range t.cfg.serviceTargets {
		if !services[svc] {
			errs = append(errs, fmt.Errorf("transcode: ServiceTarget: no service %q in the source", svc))
		}
	}
	for svc := range t.cfg.services {
		if !services[svc] {
			errs = append(errs, fmt.Errorf("transcode: Services: no service %q in the source", svc))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if len(seen) == 0 {
		return errors.New("transcode: the source has no method with a google.api.http rule")
	}
	for _, rs := range d.routes {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].tmpl.less(rs[j].tmpl) })
	}
	return nil
}

// position is "file.proto:line" of a method when the source kept locations, else the file.
func position(m protoreflect.MethodDescriptor) string {
	f := m.ParentFile()
	if loc := f.SourceLocations().ByDescriptor(m); loc.StartLine > 0 || loc.StartColumn > 0 || loc.EndLine > 0 {
		return fmt.Sprintf("%s:%d", f.Path(), loc.StartLine+1)
	}
	return f.Path()
}

func newRoute(m protoreflect.MethodDescriptor, rule *annotations.HttpRule, cc *grpc.ClientConn) (*route, error) {
	var method, path string
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, path = http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		method, path = http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		method, path = http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		method, path = http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		method, path = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		method, path = p.Custom.GetKind(), p.Custom.GetPath()
		if method == "" || !validMethodToken(method) {
			return nil, fmt.Errorf("custom kind %q is not an HTTP method token", method)
		}
	default:
		return nil, errors.New("the rule has no pattern")
	}
	tmpl, err := parseTemplate(path)
	if err != nil {
		return nil, fmt.Errorf("path template %q: %w", path, err)
	}
	rt := &route{
		httpMethod: method, tmpl: tmpl, conn: cc, streaming: m.IsStreamingServer(),
		fullMethod: "/" + string(m.Parent().FullName()) + "/" + string(m.Name()),
		in:         dynamicpb.NewMessageType(m.Input()),
		out:        dynamicpb.NewMessageType(m.Output()),
		rule:       method + " " + path,
	}
	for _, v := range tmpl.vars {
		fp, err := fieldPathByProtoName(m.Input(), v.path)
		if err != nil {
			return nil, fmt.Errorf("path template %q: %w", path, err)
		}
		leaf := fp[len(fp)-1]
		if leaf.IsList() || !scalarLeaf(leaf) {
			return nil, fmt.Errorf("path template %q: field %q is not a singular scalar", path, strings.Join(v.path, "."))
		}
		rt.pathFields = append(rt.pathFields, fp)
	}
	switch body := rule.GetBody(); body {
	case "":
	case "*":
		rt.bodyAll = true
	default:
		rt.bodyField = m.Input().Fields().ByName(protoreflect.Name(body))
		if rt.bodyField == nil {
			return nil, fmt.Errorf("body field %q is not a field of %s", body, m.Input().FullName())
		}
	}
	if rb := rule.GetResponseBody(); rb != "" {
		rt.respField = m.Output().Fields().ByName(protoreflect.Name(rb))
		if rt.respField == nil {
			return nil, fmt.Errorf("response_body field %q is not a field of %s", rb, m.Output().FullName())
		}
	}
	return rt, nil
}

// fieldPathByProtoName resolves a template's field path: proto names only, as the spec says.
func fieldPathByProtoName(md protoreflect.MessageDescriptor, names []string) ([]protoreflect.FieldDescriptor, error) {
	fp, err := fieldPath(md, names)
	if err != nil {
		return nil, err
	}
	for i, fd := range fp {
		if string(fd.Name()) != names[i] {
			return nil, fmt.Errorf("field %q must be named as in the .proto file (%q)", names[i], fd.Name())
		}
	}
	return fp, nil
}

func validMethodToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// find returns the route for the request; allowed lists the methods that match the path when the
// method does not.
func (d *dynamic) find(method, path string) (rt *route, vals []string, allowed []string, err error) {
	parts, ok := splitPath(path)
	if !ok {
		return nil, nil, nil, nil
	}
	for _, r := range d.routes[method] {
		vals, ok, err := r.tmpl.matchParts(parts)
		if ok {
			return r, vals, nil, err
		}
	}
	for m, rs := range d.routes {
		if m == method {
			continue
		}
		for _, r := range rs {
			if _, ok, _ := r.tmpl.matchParts(parts); ok {
				allowed = append(allowed, m)
				break
			}
		}
	}
	slices.Sort(allowed)
	return nil, nil, allowed, nil
}

func (t *Transcoder) serveDynamic(d *dynamic, w http.ResponseWriter, r *http.Request, next http.Handler) {
	rt, vals, allowed, err := d.find(r.Method, r.URL.EscapedPath())
	switch {
	case rt == nil && next != nil:
		next.ServeHTTP(w, r)
		return
	case rt == nil && len(allowed) > 0:
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		t.reject(w, r, http.StatusMethodNotAllowed, "The method is not allowed on this path.")
		return
	case rt == nil:
		t.reject(w, r, http.StatusNotFound, "No route matches the request.")
		return
	case err != nil:
		t.record(r.Context(), codes.InvalidArgument)
		t.reject(w, r, http.StatusBadRequest, "The request path is malformed.")
		return
	}
	req, status, detail := t.bind(d, rt, vals, r)
	if status != 0 {
		t.record(r.Context(), codes.InvalidArgument)
		t.reject(w, r, status, detail)
		return
	}
	ctx, cancel := t.callContext(r)
	defer cancel()
	if rt.streaming {
		t.record(r.Context(), t.stream(ctx, d, rt, req, w, r))
		return
	}
	t.record(r.Context(), t.unary(ctx, d, rt, req, w, r))
}

// bind builds the request message: body, then path variables, then query parameters. A non-zero
// status rejects the request with detail.
func (t *Transcoder) bind(d *dynamic, rt *route, vals []string, r *http.Request) (proto.Message, int, string) {
	msg := rt.in.New()
	if rt.bodyAll || rt.bodyField != nil {
		body, tooLarge, err := readBody(r, t.cfg.maxBody)
		if tooLarge {
			return nil, http.StatusRequestEntityTooLarge, "The request body is too large."
		}
		if err != nil {
			return nil, http.StatusBadRequest, "The request body could not be read."
		}
		if err := d.decoder.decode(body, msg, rt.bodyField); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	for i, fp := range rt.pathFields {
		if err := setPath(msg, fp, vals[i:i+1], strings.Join(pathNames(fp), ".")); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	q, err := queryValues(r.URL.RawQuery)
	if err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	for key, values := range q {
		if err := t.bindQuery(rt, msg, key, values); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	return msg.Interface(), 0, ""
}

func pathNames(fp []protoreflect.FieldDescriptor) []string {
	names := make([]string, len(fp))
	for i, fd := range fp {
		names[i] = string(fd.Name())
	}
	return names
}

func (t *Transcoder) bindQuery(rt *route, msg protoreflect.Message, key string, values []string) error {
	unknown := func() error {
		if t.cfg.discardUnknown {
			return nil
		}
		return badRequest("unknown query parameter %s", clip(key))
	}
	if rt.bodyAll {
		return unknown()
	}
	names, ok := splitQueryKey(key)
	if !ok {
		return unknown()
	}
	fp, err := fieldPath(msg.Descriptor(), names)
	if err != nil {
		return unknown()
	}
	if rt.bodyField != nil && fp[0] == rt.bodyField {
		return unknown()
	}
	for _, bound := range rt.pathFields {
		if slices.Equal(bound, fp) {
			return unknown()
		}
	}
	if !scalarLeaf(fp[len(fp)-1]) {
		return unknown()
	}
	return setPath(msg, fp, values, key)
}

func (t *Transcoder) unary(ctx context.Context, d *dynamic, rt *route, req proto.Message, w http.ResponseWriter, r *http.Request) codes.Code {
	resp := rt.out.New().Interface()
	var hdr, trl metadata.MD
	if err := rt.conn.Invoke(ctx, rt.fullMethod, req, resp, grpc.Header(&hdr), grpc.Trailer(&trl)); err != nil {
		st := t.convert(err)
		t.writeStatus(w, r, st, hdr)
		return st.Code()
	}
	b, err := d.marshalResponse(rt, resp.ProtoReflect())
	if err != nil {
		st := status.New(codes.Internal, "response not representable as JSON")
		t.writeStatus(w, r, st, hdr)
		return st.Code()
	}
	h := w.Header()
	t.mapMetadata(h, hdr, t.cfg.respHeaders)
	h.Set("Content-Type", "application/json")
	// Trailers are known already: set them before the header is written, so net/http chunks the
	// response instead of sending a Content-Length and dropping them.
	t.mapTrailers(w, r, trl)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return codes.OK
}

func (d *dynamic) marshalResponse(rt *route, m protoreflect.Message) ([]byte, error) {
	f := rt.respField
	switch {
	case f == nil:
		return d.marshal.Marshal(m.Interface())
	case f.Message() != nil && !f.IsList() && !f.IsMap():
		return d.marshal.Marshal(m.Get(f).Message().Interface())
	}
	// A repeated, map or scalar field: marshal a message holding only it and take its value.
	tmp := m.Type().New()
	if m.Has(f) { // an unset list or map is an empty read-only value: Set would panic
		tmp.Set(f, m.Get(f))
	}
	opts := d.marshal
	opts.EmitUnpopulated = true
	b, err := opts.Marshal(tmp.Interface())
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	name := f.JSONName()
	if opts.UseProtoNames {
		name = string(f.Name())
	}
	return obj[name], nil
}

func (t *Transcoder) stream(ctx context.Context, d *dynamic, rt *route, req proto.Message, w http.ResponseWriter, r *http.Request) codes.Code {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := rt.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, rt.fullMethod)
	if err == nil {
		// SendMsg returns io.EOF when the server already ended the stream; the real status
		// comes from RecvMsg below (grpc-go's documented contract), not "UNKNOWN: EOF".
		if err = cs.SendMsg(req); errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err == nil {
		err = cs.CloseSend()
	}
	if err != nil {
		st := t.convert(err)
		t.writeStatus(w, r, st, nil)
		return st.Code()
	}
	rc := http.NewResponseController(w)
	started := false
	start := func() {
		started = true
		h := w.Header()
		if hdr, err := cs.Header(); err == nil {
			t.mapMetadata(h, hdr, t.cfg.respHeaders)
		}
		h.Set("Content-Type", ndjson)
		h.Set("X-Content-Type-Options", "nosniff")
	}
	for {
		resp := rt.out.New()
		err := cs.RecvMsg(resp.Interface())
		if errors.Is(err, io.EOF) {
			if !started {
				start()
				w.WriteHeader(http.StatusOK)
			}
			t.mapTrailers(w, r, cs.Trailer())
			return codes.OK
		}
		if err != nil {
			st := t.convert(err)
			if !started {
				start()
				w.WriteHeader(HTTPStatus(st.Code()))
			}
			_, _ = w.Write(append(t.cfg.streamError(st), '\n'))
			t.mapTrailers(w, r, cs.Trailer())
			return st.Code()
		}
		b, err := d.marshalResponse(rt, resp)
		if err != nil {
			st := status.New(codes.Internal, "response not representable as JSON")
			if !started {
				start()
				w.WriteHeader(HTTPStatus(st.Code()))
			}
			_, _ = w.Write(append(t.cfg.streamError(st), '\n'))
			return st.Code()
		}
		if !started {
			start()
			w.WriteHeader(http.StatusOK)
		}
		line := make([]byte, 0, len(b)+12)
		line = append(append(append(line, `{"result":`...), b...), "}\n"...)
		if _, err := w.Write(line); err != nil {
			return codes.Canceled // the client went away; cancel ends the call
		}
		_ = rc.Flush()
	}
}
