package gatewaykit

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object: what the gateway itself answers when it rejects or
// fails a request. Its JSON body holds type, title, status, detail, instance and the extension
// members; Header and Err never reach the body.
//
// Detail must be written for the client: never put Go error strings, upstream bodies, Redis errors
// or credentials in it. Keep the cause in Err, for logs.
type Problem struct {
	// Type is a URI reference identifying the problem type. Empty means "about:blank".
	Type string
	// Title is a short summary of the type. Empty means http.StatusText(Status).
	Title string
	// Status is the HTTP status code. Zero means 500.
	Status int
	// Detail explains this occurrence, in safe words.
	Detail string
	// Instance is a URI reference for this occurrence. Optional.
	Instance string
	// Extensions are extra members of the body. Keys that collide with the standard members are
	// ignored. The request ID is added as "request_id" by WriteProblem when the context has one.
	Extensions map[string]any
	// Header holds response headers to send with the problem, such as Retry-After or
	// WWW-Authenticate. Never serialized into the body.
	Header http.Header
	// Err is the internal cause, for logging by an ErrorHandler. Never serialized.
	Err error
}

// NewProblem returns a Problem with the given status and detail and the default type and title.
func NewProblem(status int, detail string) *Problem {
	return &Problem{Status: status, Detail: detail}
}

// WithRetryAfter sets the Retry-After header, rounded up to whole seconds (at least 1), and returns p.
func (p *Problem) WithRetryAfter(d time.Duration) *Problem {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return p.WithHeader("Retry-After", strconv.FormatInt(secs, 10))
}

// WithHeader adds a response header to send with the problem and returns p.
func (p *Problem) WithHeader(key, value string) *Problem {
	if p.Header == nil {
		p.Header = make(http.Header, 1)
	}
	p.Header.Add(key, value)
	return p
}

// WithErr records the internal cause (never sent to the client) and returns p.
func (p *Problem) WithErr(err error) *Problem {
	p.Err = err
	return p
}

// Error implements error, so a Problem can travel through error-returning code. It returns the
// status and the client-safe detail, never Err.
func (p *Problem) Error() string {
	return strconv.Itoa(p.status()) + " " + p.title() + ": " + p.Detail
}

func (p *Problem) status() int {
	if p.Status == 0 {
		return http.StatusInternalServerError
	}
	return p.Status
}

func (p *Problem) title() string {
	if p.Title != "" {
		return p.Title
	}
	if t := http.StatusText(p.status()); t != "" {
		return t
	}
	return "Error"
}

var reservedMembers = map[string]bool{"type": true, "title": true, "status": true, "detail": true, "instance": true}

// MarshalJSON renders the RFC 9457 body.
func (p *Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, 5+len(p.Extensions))
	for k, v := range p.Extensions {
		if !reservedMembers[k] {
			m[k] = v
		}
	}
	m["type"] = "about:blank"
	if p.Type != "" {
		m["type"] = p.Type
	}
	m["title"] = p.title()
	m["status"] = p.status()
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	return json.Marshal(m)
}

// ErrorHandler writes the response for a request the gateway rejects or fails. Every concern
// accepts one through its WithErrorHandler option; the default is WriteProblem. Implementations
// must be safe for concurrent use.
type ErrorHandler func(w http.ResponseWriter, r *http.Request, p *Problem)

// WriteProblem writes p as application/problem+json with its headers and status. It adds the
// request ID (see RequestIDFrom) as the "request_id" member when present, and sets
// Cache-Control: no-store and X-Content-Type-Options: nosniff. It is the default ErrorHandler and
// is safe for concurrent use. A nil p writes a bare 500 problem.
func WriteProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p == nil {
		p = NewProblem(http.StatusInternalServerError, "")
	}
	h := w.Header()
	for k, vs := range p.Header {
		h[k] = append([]string(nil), vs...)
	}
	body := *p
	if r != nil {
		if id := RequestIDFrom(r.Context()); id != "" {
			if _, ok := body.Extensions["request_id"]; !ok {
				ext := make(map[string]any, len(body.Extensions)+1)
				for k, v := range body.Extensions {
					ext[k] = v
				}
				ext["request_id"] = id
				body.Extensions = ext
			}
		}
	}
	b, err := json.Marshal(&body)
	if err != nil { // an extension that does not marshal: drop the extensions, keep the problem
		body.Extensions = nil
		b, _ = json.Marshal(&body)
	}
	h.Del("Content-Length")
	h.Set("Content-Type", ProblemContentType)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.status())
	if r != nil && r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(append(b, '\n'))
}

// Or returns h, or WriteProblem when h is nil. Concern packages use it to apply their default.
func (h ErrorHandler) Or() ErrorHandler {
	if h == nil {
		return WriteProblem
	}
	return h
}
