package bff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

type opKind int

const (
	opSet opKind = iota
	opRemove
	opRename
)

type headerOp struct {
	kind      opKind
	name, arg string // arg: value for set, new name for rename
}

func headerOption(side string, kind opKind, name, arg string) Option {
	return func(c *config) error {
		n, err := canonical(name)
		if err != nil {
			return err
		}
		op := headerOp{kind: kind, name: n, arg: arg}
		if kind == opRename {
			if op.arg, err = canonical(arg); err != nil {
				return err
			}
		}
		if kind == opSet && strings.ContainsAny(arg, "\r\n\x00") {
			return fmt.Errorf("bff: header %s: value contains a control character", n)
		}
		if side == "request" {
			c.reqOps = append(c.reqOps, op)
		} else {
			c.respOps = append(c.respOps, op)
		}
		return nil
	}
}

// SetRequestHeader sets a request header (replacing any client value) before next is called.
// Header operations run in the order given.
func SetRequestHeader(name, value string) Option { return headerOption("request", opSet, name, value) }

// RemoveRequestHeader removes a request header before next is called.
func RemoveRequestHeader(name string) Option { return headerOption("request", opRemove, name, "") }

// RenameRequestHeader moves the values of request header from to header to (replacing to).
func RenameRequestHeader(from, to string) Option { return headerOption("request", opRename, from, to) }

// SetResponseHeader sets a response header when the response header is written.
func SetResponseHeader(name, value string) Option {
	return headerOption("response", opSet, name, value)
}

// RemoveResponseHeader removes a response header when the response header is written.
func RemoveResponseHeader(name string) Option { return headerOption("response", opRemove, name, "") }

// RenameResponseHeader moves the values of response header from to header to.
func RenameResponseHeader(from, to string) Option {
	return headerOption("response", opRename, from, to)
}

func applyHeaderOps(h http.Header, ops []headerOp) {
	for _, op := range ops {
		switch op.kind {
		case opSet:
			h[op.name] = []string{op.arg}
		case opRemove:
			delete(h, op.name)
		case opRename:
			if vs, ok := h[op.name]; ok {
				delete(h, op.name)
				h[op.arg] = vs
			}
		}
	}
}

// Value computes an enrichment value for a request; ok false means "no value": the header or
// body field is then removed, so a client-sent value never survives. Values must be safe for
// concurrent use.
type Value func(r *http.Request, now time.Time) (value string, ok bool)

// Subject is the Value of the caller's gatewaykit.Identity subject (none when anonymous).
func Subject() Value {
	return func(r *http.Request, _ time.Time) (string, bool) {
		id, ok := gatewaykit.IdentityFrom(r.Context())
		if !ok || id.Anonymous() {
			return "", false
		}
		return id.Subject, true
	}
}

// Timestamp is the Value of the current time (WithClock) in RFC 3339 with nanoseconds, UTC.
func Timestamp() Value {
	return func(_ *http.Request, now time.Time) (string, bool) {
		return now.UTC().Format(time.RFC3339Nano), true
	}
}

// RequestID is the Value of the request ID (gatewaykit.RequestIDFrom; none when absent).
func RequestID() Value {
	return func(r *http.Request, _ time.Time) (string, bool) {
		id := gatewaykit.RequestIDFrom(r.Context())
		return id, id != ""
	}
}

type enrichment struct {
	name  string // canonical header name or JSON member name
	value Value
}

// EnrichHeader sets request header name from v, replacing whatever the client sent (the client's
// value is removed even when v has no value).
func EnrichHeader(name string, v Value) Option {
	return func(c *config) error {
		n, err := canonical(name)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("bff: enrich header %s: nil value", n)
		}
		c.enrichHdr = append(c.enrichHdr, enrichment{n, v})
		return nil
	}
}

// Enrich is the design brief's header enrichment: X-User-ID from the identity subject,
// X-Request-Timestamp and X-Request-ID.
func Enrich() Option {
	return func(c *config) error {
		for _, e := range []struct {
			n string
			v Value
		}{{"X-User-ID", Subject()}, {"X-Request-Timestamp", Timestamp()}, {"X-Request-ID", RequestID()}} {
			if err := EnrichHeader(e.n, e.v)(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// EnrichBody sets the top-level member field of JSON request bodies (Content-Type application/json
// or +json) to the string v returns; every client-sent member of that name is removed first, also
// when v has no value. Bodies are read up to WithMaxRequestBody (413 beyond); a body that is not a
// JSON object gets a 400 problem, a compressed body or a body of another content type a 415
// problem (an upstream might parse it as JSON regardless); an empty JSON body becomes an object
// with the injected members. GET and HEAD bodies are not examined.
func EnrichBody(field string, v Value) Option {
	return func(c *config) error {
		if field == "" || !utf8.ValidString(field) {
			return fmt.Errorf("bff: enrich body: field name %q is empty or not UTF-8", field)
		}
		if v == nil {
			return fmt.Errorf("bff: enrich body %q: nil value", field)
		}
		c.enrichBody = append(c.enrichBody, enrichment{field, v})
		return nil
	}
}

// transformRequest applies header operations and enrichment to r (a copy owned by this request).
// It reports false after writing a problem.
func (b *BFF) transformRequest(w http.ResponseWriter, r *http.Request) bool {
	if len(b.reqOps) == 0 && len(b.enrichHdr) == 0 && len(b.enrichBody) == 0 {
		return true
	}
	r.Header = r.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	applyHeaderOps(r.Header, b.reqOps)
	var now time.Time
	if len(b.enrichHdr) > 0 || len(b.enrichBody) > 0 {
		now = b.now()
	}
	for _, e := range b.enrichHdr {
		if val, ok := e.value(r, now); ok && !strings.ContainsAny(val, "\r\n\x00") {
			r.Header[e.name] = []string{val}
		} else {
			delete(r.Header, e.name)
		}
	}
	if len(b.enrichBody) == 0 || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	if !jsonpath.IsJSONMediaType(r.Header.Get("Content-Type")) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			return true // no body to smuggle a field in; the headers are enriched
		}
		// An upstream might parse this body as JSON anyway: refuse it rather than pass a
		// client-chosen user_id through unexamined.
		b.enrichments.Add(r.Context(), 1, b.enrichReject)
		b.onError(w, r, gatewaykit.NewProblem(http.StatusUnsupportedMediaType, "the request body must be JSON (application/json)"))
		return false
	}
	if p := b.enrichJSONBody(r, now); p != nil {
		b.enrichments.Add(r.Context(), 1, b.enrichReject)
		b.onError(w, r, p)
		return false
	}
	b.enrichments.Add(r.Context(), 1, b.enrichOK)
	return true
}

func (b *BFF) enrichJSONBody(r *http.Request, now time.Time) *gatewaykit.Problem {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return gatewaykit.NewProblem(http.StatusUnsupportedMediaType, "compressed JSON request bodies are not accepted here")
	}
	if r.ContentLength > b.maxReqBody {
		return gatewaykit.NewProblem(http.StatusRequestEntityTooLarge, "the request body is too large")
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, b.maxReqBody+1))
		_ = r.Body.Close()
		if err != nil {
			return gatewaykit.NewProblem(http.StatusBadRequest, "the request body could not be read").WithErr(err)
		}
		if int64(len(body)) > b.maxReqBody {
			return gatewaykit.NewProblem(http.StatusRequestEntityTooLarge, "the request body is too large")
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	fields := make([]jsonpath.Field, len(b.enrichBody))
	for i, e := range b.enrichBody {
		fields[i].Key = e.name
		if val, ok := e.value(r, now); ok {
			fields[i].Value, _ = json.Marshal(val)
		}
	}
	out, err := jsonpath.SetMembers(make([]byte, 0, len(body)+64), body, fields)
	if err != nil {
		return gatewaykit.NewProblem(http.StatusBadRequest, "the request body must be a JSON object").WithErr(err)
	}
	r.Body = io.NopCloser(bytes.NewReader(out))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(out)), nil }
	r.ContentLength = int64(len(out))
	r.Header.Set("Content-Length", strconv.Itoa(len(out)))
	delete(r.Header, "Transfer-Encoding")
	r.TransferEncoding = nil
	return nil
}
