package guard

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/gatewaykit/gatewaykit"
)

// Defaults of NewLimits.
const (
	DefaultMaxBodyBytes   = 1 << 20 // 1 MiB
	DefaultMaxHeaders     = 100
	DefaultMaxHeaderBytes = 32 << 10 // 32 KiB
	DefaultMaxURLLength   = 8 << 10  // 8 KiB
)

func positive(name string, n int64) error {
	if n <= 0 {
		return fmt.Errorf("guard: %s: %d is not positive", name, n)
	}
	return nil
}

// MaxBodyBytes sets the largest request body accepted (default 1 MiB). Applies to NewLimits.
func MaxBodyBytes(n int64) Option {
	return func(c *config) error {
		if err := c.applies("MaxBodyBytes", kindLimits); err != nil {
			return err
		}
		c.maxBody = n
		return positive("MaxBodyBytes", n)
	}
}

// MaxHeaders sets the largest number of request header lines accepted (default 100). Applies to
// NewLimits.
func MaxHeaders(n int) Option {
	return func(c *config) error {
		if err := c.applies("MaxHeaders", kindLimits); err != nil {
			return err
		}
		c.maxHeaders = int64(n)
		return positive("MaxHeaders", int64(n))
	}
}

// MaxHeaderBytes sets the largest total size of the request headers, counted as
// len(name)+len(value)+4 per line (default 32 KiB). Keep http.Server.MaxHeaderBytes at or above
// it (HardenedServer does). Applies to NewLimits.
func MaxHeaderBytes(n int) Option {
	return func(c *config) error {
		if err := c.applies("MaxHeaderBytes", kindLimits); err != nil {
			return err
		}
		c.maxHeaderBytes = int64(n)
		return positive("MaxHeaderBytes", int64(n))
	}
}

// MaxURLLength sets the longest request target (path and query, as sent) accepted (default
// 8 KiB). Applies to NewLimits.
func MaxURLLength(n int) Option {
	return func(c *config) error {
		if err := c.applies("MaxURLLength", kindLimits); err != nil {
			return err
		}
		c.maxURL = int64(n)
		return positive("MaxURLLength", int64(n))
	}
}

// Limits bounds request sizes. See NewLimits. A Limits is immutable and safe for concurrent use.
type Limits struct {
	maxBody, maxHeaders, maxHeaderBytes, maxURL int64
	onErr                                       gatewaykit.ErrorHandler
	m                                           rejections
	rURL, rCount, rBytes, rBody                 reason
}

// NewLimits returns the size guard. It rejects a request target longer than MaxURLLength with
// 414, more header lines than MaxHeaders or more header bytes than MaxHeaderBytes with 431, and a
// declared Content-Length over MaxBodyBytes with 413 before reading any of the body. A body
// without a declared length (chunked) is read through http.MaxBytesReader: when the handler reads
// past the limit, its read fails with *http.MaxBytesError, the connection is closed after the
// response, and, if the handler has not yet written its status, the response becomes a 413
// problem whatever status the handler then chooses.
//
// Options: MaxBodyBytes, MaxHeaders, MaxHeaderBytes, MaxURLLength, WithErrorHandler,
// WithMeterProvider.
func NewLimits(opts ...Option) (*Limits, error) {
	c, err := newConfig(kindLimits, opts)
	if err != nil {
		return nil, err
	}
	l := &Limits{maxBody: DefaultMaxBodyBytes, maxHeaders: DefaultMaxHeaders, maxHeaderBytes: DefaultMaxHeaderBytes,
		maxURL: DefaultMaxURLLength, onErr: c.onErr,
		rURL: newReason("size", "url"), rCount: newReason("size", "header_count"),
		rBytes: newReason("size", "header_bytes"), rBody: newReason("size", "body")}
	for _, v := range []struct{ dst, src *int64 }{{&l.maxBody, &c.maxBody}, {&l.maxHeaders, &c.maxHeaders},
		{&l.maxHeaderBytes, &c.maxHeaderBytes}, {&l.maxURL, &c.maxURL}} {
		if *v.src > 0 {
			*v.dst = *v.src
		}
	}
	if l.m, err = newRejections(c.meter); err != nil {
		return nil, err
	}
	return l, nil
}

// Wrap returns next behind the size limits.
func (l *Limits) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uri := len(r.RequestURI)
		if uri == 0 {
			uri = len(r.URL.RequestURI())
		}
		if int64(uri) > l.maxURL {
			l.reject(w, r, l.rURL, http.StatusRequestURITooLong, "The request target is too long.")
			return
		}
		var lines, size int64
		for k, vs := range r.Header {
			lines += int64(len(vs))
			for _, v := range vs {
				size += int64(len(k) + len(v) + 4)
			}
		}
		if lines > l.maxHeaders {
			l.reject(w, r, l.rCount, http.StatusRequestHeaderFieldsTooLarge, "The request has too many header fields.")
			return
		}
		if size > l.maxHeaderBytes {
			l.reject(w, r, l.rBytes, http.StatusRequestHeaderFieldsTooLarge, "The request header fields are too large.")
			return
		}
		if r.ContentLength > l.maxBody {
			// Do not read the body: close the connection instead of draining it.
			w.Header().Set("Connection", "close")
			l.reject(w, r, l.rBody, http.StatusRequestEntityTooLarge, "The request body is too large.")
			return
		}
		if r.ContentLength >= 0 || r.Body == nil || r.Body == http.NoBody {
			// The server ends the body at the declared length, which is within the limit.
			next.ServeHTTP(w, r)
			return
		}
		bw := &bodyLimitWriter{ResponseWriter: w, l: l, r: r}
		r.Body = &bodyLimitReader{rc: http.MaxBytesReader(w, r.Body, l.maxBody), over: &bw.over}
		next.ServeHTTP(bw, r)
		bw.finish()
	})
}

func (l *Limits) reject(w http.ResponseWriter, r *http.Request, why reason, status int, detail string) {
	l.m.add(r.Context(), why)
	l.onErr(w, r, gatewaykit.NewProblem(status, detail))
}

// bodyLimitReader records that the body went over the limit. It may be read on another
// goroutine than the handler's (a proxy's transport), so it only sets a flag; the writer acts on it.
type bodyLimitReader struct {
	rc   io.ReadCloser
	over *atomic.Bool
}

func (b *bodyLimitReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	var mbe *http.MaxBytesError
	if err != nil && errors.As(err, &mbe) {
		b.over.Store(true)
	}
	return n, err
}

func (b *bodyLimitReader) Close() error { return b.rc.Close() }

// bodyLimitWriter turns the handler's response into a 413 problem once the body went over the
// limit, unless the status was already sent. It is used from the handler's goroutine only.
type bodyLimitWriter struct {
	http.ResponseWriter
	l       *Limits
	r       *http.Request
	over    atomic.Bool
	wrote   bool // the status went out
	swallow bool // a 413 was written in place of the handler's response
}

// intercept reports whether the handler's output must be dropped, writing the 413 first if due.
func (b *bodyLimitWriter) intercept() bool {
	if b.swallow {
		return true
	}
	if b.wrote || !b.over.Load() {
		return false
	}
	b.swallow, b.wrote = true, true
	b.l.reject(b.ResponseWriter, b.r, b.l.rBody, http.StatusRequestEntityTooLarge, "The request body is too large.")
	return true
}

func (b *bodyLimitWriter) finish() {
	if !b.wrote {
		b.intercept()
	}
}

func (b *bodyLimitWriter) WriteHeader(code int) {
	if b.intercept() {
		return
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		b.wrote = true
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *bodyLimitWriter) Write(p []byte) (int, error) {
	if b.intercept() {
		return len(p), nil
	}
	b.wrote = true
	return b.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (b *bodyLimitWriter) Flush() {
	if b.intercept() {
		return
	}
	b.wrote = true
	_ = http.NewResponseController(b.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (b *bodyLimitWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }
