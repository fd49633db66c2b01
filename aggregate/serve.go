package aggregate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

// Part failure kinds: the metric outcome and, in safe words, the _meta error.
const (
	kindOK           = "ok"
	kindTimeout      = "timeout"
	kindUnreachable  = "unreachable"
	kindStatus       = "status"
	kindNotJSON      = "not_json"
	kindTooLarge     = "too_large"
	kindDependency   = "dependency"
	kindMissingValue = "missing_value"
	kindInvalidValue = "invalid_value"
	kindCanceled     = "canceled"
)

var allKinds = []string{kindOK, kindTimeout, kindUnreachable, kindStatus, kindNotJSON, kindTooLarge, kindDependency, kindMissingValue, kindInvalidValue, kindCanceled}

// partError is why a part failed. detail is safe to show to the client: it is built from part
// names, variable names and status codes only, never from upstream text or Go errors.
type partError struct {
	part   string
	kind   string
	detail string
	err    error // internal cause, for logs
}

func (e *partError) Error() string {
	if e.err != nil {
		return "aggregate: part " + e.part + ": " + e.detail + ": " + e.err.Error()
	}
	return "aggregate: part " + e.part + ": " + e.detail
}

type result struct {
	body []byte
	err  *partError
}

// ServeHTTP runs the parts concurrently (dependents after their dependencies) under the overall
// deadline and writes the merged JSON object. A failed Required part gives a problem response:
// 504 when it timed out, 400 when the caller's request lacked or had an invalid value for one of
// its variables, 502 otherwise. Failed optional parts are left out, the response carries
// "X-Gateway-Partial: true", "Cache-Control: no-store" and a "_meta" member
// {"partial":true,"errors":[{"part":"orders","error":"timeout"}]}.
func (a *Aggregator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	var userVars map[string]string
	if a.vars != nil {
		userVars = a.vars(r)
	}
	results := make([]result, len(a.parts))
	done := make([]chan struct{}, len(a.parts))
	for i := range done {
		done[i] = make(chan struct{})
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range a.parts {
		g.Go(func() error {
			defer close(done[p.index])
			res := a.runPart(gctx, r, p, userVars, results, done)
			results[p.index] = res
			if res.err != nil && p.Required {
				return res.err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		var pe *partError
		errors.As(err, &pe)
		a.responses.Add(r.Context(), 1, a.respAttrs["failed"])
		status := http.StatusBadGateway
		switch pe.kind {
		case kindTimeout:
			status = http.StatusGatewayTimeout
		case kindMissingValue, kindInvalidValue:
			status = http.StatusBadRequest
		}
		a.onError(w, r, gatewaykit.NewProblem(status, "required part \""+pe.part+"\" failed: "+pe.detail).WithErr(err))
		return
	}
	body, partial := a.merge(results)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if partial {
		h.Set(PartialHeader, "true")
		h.Set("Cache-Control", "no-store")
		a.responses.Add(r.Context(), 1, a.respAttrs["partial"])
	} else {
		a.responses.Add(r.Context(), 1, a.respAttrs["complete"])
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func (a *Aggregator) runPart(ctx context.Context, r *http.Request, p *part, userVars map[string]string, results []result, done []chan struct{}) result {
	for _, d := range p.deps {
		select {
		case <-done[d]:
		case <-ctx.Done():
			pe := &partError{part: p.Name, kind: kindCanceled, detail: "canceled", err: ctx.Err()}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				pe.kind, pe.detail = kindTimeout, "timed out"
			}
			return a.record(ctx, p, pe, nil)
		}
		if results[d].err != nil {
			return a.record(ctx, p, &partError{part: p.Name, kind: kindDependency, detail: "dependency \"" + a.parts[d].Name + "\" failed"}, nil)
		}
	}
	target, err := p.tmpl.expand(func(sg *tseg) (string, error) { return a.lookup(r, p, sg, userVars, results) })
	if err != nil {
		pe := err.(*partError)
		pe.part = p.Name
		return a.record(ctx, p, pe, nil)
	}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	pctx, span := a.tracer.Start(pctx, p.spanName, trace.WithSpanKind(p.spanKind), trace.WithAttributes(p.spanAttr))
	defer span.End()
	start := time.Now()
	body, pe := a.fetch(pctx, r, p, target)
	if pe == nil && p.AtRoot && body[0] != '{' {
		pe = &partError{kind: kindNotJSON, detail: "response is not a JSON object"}
	}
	if pe != nil {
		pe.part = p.Name
		span.SetStatus(codes.Error, pe.kind)
	}
	span.SetAttributes(attribute.String("gatewaykit.aggregate.outcome", outcome(pe)))
	a.partDuration.Record(ctx, time.Since(start).Seconds(), p.nameAttr)
	return a.record(ctx, p, pe, body)
}

func outcome(pe *partError) string {
	if pe == nil {
		return kindOK
	}
	return pe.kind
}

// record counts the part's outcome, logs failures (rate-limited) and returns its result.
func (a *Aggregator) record(ctx context.Context, p *part, pe *partError, body []byte) result {
	a.partsCounter.Add(ctx, 1, p.attrs[outcome(pe)])
	if pe != nil {
		if pe.kind != kindCanceled {
			a.logEvery.Do(func() {
				a.logger.WarnContext(ctx, "aggregate: part failed", "part", p.Name, "outcome", pe.kind, "required", p.Required, "error", pe)
			})
		}
		return result{err: pe}
	}
	return result{body: body}
}

// lookup resolves one template variable: another part's field, the vars func, a path value of
// the route pattern, or (when allowed) a query parameter.
func (a *Aggregator) lookup(r *http.Request, p *part, sg *tseg, userVars map[string]string, results []result) (string, error) {
	if sg.dep >= 0 {
		raw, ok := jsonpath.Lookup(results[sg.dep].body, sg.path)
		if !ok {
			return "", &partError{kind: kindDependency, detail: "dependency result lacks " + sg.name}
		}
		v, ok := scalar(raw)
		if !ok {
			return "", &partError{kind: kindDependency, detail: "dependency field " + sg.name + " is not a string, number or boolean"}
		}
		if v == "" {
			return "", &partError{kind: kindDependency, detail: "dependency field " + sg.name + " is empty"}
		}
		return v, nil
	}
	if v := userVars[sg.name]; v != "" {
		return v, nil
	}
	if v := r.PathValue(sg.name); v != "" {
		return v, nil
	}
	if a.queryVars[sg.name] {
		if v := r.URL.Query().Get(sg.name); v != "" {
			return v, nil
		}
	}
	return "", &partError{kind: kindMissingValue, detail: "missing value for " + sg.name}
}

func scalar(raw []byte) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case '{', '[', 'n':
		return "", false
	default:
		return string(raw), true
	}
}

// newPartRequest builds the part's request with forwarded headers, identity, request ID and
// trace context.
func (a *Aggregator) newPartRequest(ctx context.Context, r *http.Request, p *part, target string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, p.Method, target, nil)
	if err != nil {
		return nil, err
	}
	h := req.Header
	for _, name := range a.forward {
		if vs := r.Header[name]; len(vs) > 0 {
			h[name] = append([]string(nil), vs...)
		}
	}
	if a.subjectHdr != "" {
		delete(h, a.subjectHdr)
	}
	if a.rolesHdr != "" {
		delete(h, a.rolesHdr)
	}
	if id, ok := gatewaykit.IdentityFrom(r.Context()); ok && !id.Anonymous() {
		if a.subjectHdr != "" {
			h[a.subjectHdr] = []string{id.Subject}
		}
		if a.rolesHdr != "" && len(id.Roles) > 0 {
			h[a.rolesHdr] = []string{strings.Join(id.Roles, ",")}
		}
	}
	reqID := gatewaykit.RequestIDFrom(r.Context())
	if reqID == "" {
		if v := r.Header.Get(gatewaykit.RequestIDHeader); gatewaykit.ValidRequestID(v, gatewaykit.DefaultRequestIDMaxLen) {
			reqID = v
		}
	}
	if reqID != "" {
		h.Set(gatewaykit.RequestIDHeader, reqID)
	}
	h.Set("Accept", "application/json")
	a.propagator.Inject(ctx, propagation.HeaderCarrier(h))
	return req, nil
}

func (a *Aggregator) fetch(ctx context.Context, r *http.Request, p *part, target string) ([]byte, *partError) {
	req, err := a.newPartRequest(ctx, r, p, target)
	if err != nil {
		return nil, &partError{kind: kindInvalidValue, detail: "invalid request target", err: err}
	}
	if p.Handler != nil {
		return a.serveInProcess(ctx, r, p, req)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, a.maxPartBody+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	return a.checkBody(resp.StatusCode, resp.Header, body)
}

func transportError(ctx context.Context, err error) *partError {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &partError{kind: kindTimeout, detail: "timed out", err: err}
	}
	if ctx.Err() != nil {
		return &partError{kind: kindCanceled, detail: "canceled", err: err}
	}
	return &partError{kind: kindUnreachable, detail: "upstream unreachable", err: err}
}

func (a *Aggregator) checkBody(status int, h http.Header, body []byte) ([]byte, *partError) {
	if status < 200 || status > 299 {
		return nil, &partError{kind: kindStatus, detail: "upstream status " + strconv.Itoa(status)}
	}
	if int64(len(body)) > a.maxPartBody {
		return nil, &partError{kind: kindTooLarge, detail: "response too large"}
	}
	if !jsonpath.IsJSONMediaType(h.Get("Content-Type")) {
		return nil, &partError{kind: kindNotJSON, detail: "response is not JSON"}
	}
	if !json.Valid(body) {
		return nil, &partError{kind: kindNotJSON, detail: "response is not valid JSON"}
	}
	return bytes.TrimSpace(body), nil
}

// serveInProcess runs an in-process part. The handler runs on its own goroutine so the part's
// timeout holds even if the handler blocks; a handler still running then is abandoned.
func (a *Aggregator) serveInProcess(ctx context.Context, r *http.Request, p *part, req *http.Request) ([]byte, *partError) {
	req.RequestURI = req.URL.RequestURI()
	req.RemoteAddr = r.RemoteAddr
	req.Host = r.Host
	req.Proto, req.ProtoMajor, req.ProtoMinor = r.Proto, r.ProtoMajor, r.ProtoMinor
	rec := &recorder{header: http.Header{}, max: a.maxPartBody}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					rec.aborted = true
					return
				}
				rec.panicked = true
			}
		}()
		p.Handler.ServeHTTP(rec, req)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		return nil, transportError(ctx, ctx.Err())
	}
	switch {
	case rec.panicked || rec.aborted:
		return nil, &partError{kind: kindUnreachable, detail: "handler failed"}
	case rec.over:
		return nil, &partError{kind: kindTooLarge, detail: "response too large"}
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return a.checkBody(rec.status, rec.header, rec.body.Bytes())
}

// recorder is a bounded in-memory ResponseWriter for in-process parts.
type recorder struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	max      int64
	over     bool
	panicked bool
	aborted  bool
}

var errPartTooLarge = errors.New("aggregate: part response exceeds the size limit")

func (rc *recorder) Header() http.Header { return rc.header }

func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 && code >= 200 {
		rc.status = code
	}
}

func (rc *recorder) Write(b []byte) (int, error) {
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	if rc.over || int64(rc.body.Len()+len(b)) > rc.max {
		rc.over = true
		return 0, errPartTooLarge
	}
	return rc.body.Write(b)
}

// merge writes the response object in part order: named parts under their names, AtRoot parts'
// members at the root (first wins on a clash), then _meta when a part failed.
func (a *Aggregator) merge(results []result) ([]byte, bool) {
	size := 2
	for _, res := range results {
		size += len(res.body) + 32
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	first := true
	var seen map[string]bool
	hasRoot := false
	for _, p := range a.parts {
		hasRoot = hasRoot || p.AtRoot
	}
	if hasRoot {
		seen = map[string]bool{MetaKey: true}
		for _, p := range a.parts {
			if !p.AtRoot {
				seen[p.Name] = true
			}
		}
	}
	var failed []*partError
	for i, p := range a.parts {
		res := results[i]
		if res.err != nil {
			failed = append(failed, res.err)
			continue
		}
		if !p.AtRoot {
			if !first {
				out = append(out, ',')
			}
			out = append(out, '"')
			out = append(out, p.Name...) // validated: no characters that need escaping
			out = append(out, '"', ':')
			out = append(out, res.body...)
			first = false
			continue
		}
		err := jsonpath.Members(res.body, func(key string, value []byte) bool {
			if seen[key] {
				return true
			}
			seen[key] = true
			if !first {
				out = append(out, ',')
			}
			q, _ := json.Marshal(key)
			out = append(out, q...)
			out = append(out, ':')
			out = append(out, value...)
			first = false
			return true
		})
		if err != nil { // not an object: count as a failure of the part
			failed = append(failed, &partError{part: p.Name, kind: kindNotJSON, detail: "response is not a JSON object"})
		}
	}
	if len(failed) > 0 {
		if !first {
			out = append(out, ',')
		}
		out = append(out, `"`+MetaKey+`":{"partial":true,"errors":[`...)
		for i, pe := range failed {
			if i > 0 {
				out = append(out, ',')
			}
			entry, _ := json.Marshal(struct {
				Part  string `json:"part"`
				Error string `json:"error"`
			}{pe.part, pe.detail})
			out = append(out, entry...)
		}
		out = append(out, "]}"...)
	}
	out = append(out, '}')
	return out, len(failed) > 0
}
