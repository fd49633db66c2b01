package cache

import (
	"net/http"
)

// recorder passes a response through to the client while keeping a copy of the status, the header
// (as it was when the status was written) and up to max body bytes.
type recorder struct {
	w           http.ResponseWriter
	c           *Cache
	max         int
	status      int
	header      http.Header
	buf         []byte
	skip        bool // do not keep the body: too big, or the status is not cacheable
	failed      bool // a write to the client failed, so the handler may have stopped early
	wroteHeader bool
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	if rec.wroteHeader || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		rec.w.WriteHeader(code) // informational, or superfluous: net/http handles it
		return
	}
	rec.wroteHeader = true
	rec.status = code
	if code < 1000 && code > 0 && rec.c.cfg.statuses[code] {
		rec.header = rec.w.Header().Clone()
	} else {
		rec.skip = true
	}
	rec.w.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	if !rec.skip {
		if len(rec.buf)+len(p) > rec.max {
			rec.skip, rec.buf = true, nil
		} else {
			rec.buf = append(rec.buf, p...)
		}
	}
	n, err := rec.w.Write(p)
	if err != nil {
		rec.failed = true
	}
	return n, err
}

// Flush flushes the client's writer when it can.
func (rec *recorder) Flush() {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rec.w).Flush()
}

// Unwrap lets http.ResponseController reach the client's writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// finish completes an implicit 200 (a handler that wrote nothing) so the snapshot exists.
func (rec *recorder) finish() {
	if !rec.wroteHeader {
		rec.wroteHeader = true
		rec.status = http.StatusOK
		if rec.c.cfg.statuses[http.StatusOK] {
			rec.header = rec.w.Header().Clone()
		} else {
			rec.skip = true
		}
	}
}

// discardWriter is the client of a background revalidation.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
