package cache

import (
	"maps"
	"net/http"
	"strings"
)

// recorder passes a response through to the client while keeping a copy of the status, the header
// (as it was when the status was written) and up to max body bytes.
//
// With hold set (the leader of a flight that others wait on), a cacheable response is kept from
// the client until release: the waiters then get it as soon as the upstream is done, however
// slowly the leader's own client reads. The response is released early when it cannot be stored
// (status, size) or when the handler flushes (a stream).
//
// With revalidating set (the request carries the cache's own validators), a 304 Not Modified is
// kept from the client entirely (notModified, with the header in header): the caller refreshes
// the stored entry and answers from it.
type recorder struct {
	w            http.ResponseWriter
	c            *Cache
	max          int
	hold         bool
	status       int
	header       http.Header
	sent         http.Header // while holding: the client's header as it was at WriteHeader
	buf          []byte
	skip         bool // do not keep the body: too big, or the status is not cacheable
	failed       bool // a write to the client failed, so the handler may have stopped early
	wroteHeader  bool
	revalidating bool // intercept a 304: the client did not ask for it
	notModified  bool // the upstream answered 304 to the cache's validators
}

func (rec *recorder) Header() http.Header { return rec.w.Header() }

func (rec *recorder) WriteHeader(code int) {
	if rec.wroteHeader || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		if rec.notModified {
			return // the client gets the stored response instead
		}
		if !rec.hold || !rec.wroteHeader {
			rec.w.WriteHeader(code) // informational, or superfluous: net/http handles it
		}
		return
	}
	rec.wroteHeader = true
	rec.status = code
	if rec.revalidating && code == http.StatusNotModified {
		rec.notModified, rec.hold, rec.skip = true, false, true
		rec.header = rec.w.Header().Clone()
		return
	}
	if code < 1000 && code > 0 && rec.c.cfg.statuses[code] {
		rec.header = rec.w.Header().Clone()
	} else {
		rec.skip = true
	}
	if _, trailers := rec.w.Header()["Trailer"]; rec.hold && !rec.skip && !trailers { // declared trailers: never stored
		rec.sent = rec.w.Header().Clone()
		return
	}
	rec.hold = false
	rec.w.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.notModified {
		return len(p), nil // a 304 has no body; nothing reaches the client
	}
	if !rec.skip {
		if len(rec.buf)+len(p) > rec.max {
			rec.release() // too big to store: nobody waits for it, stream it
			rec.skip, rec.buf = true, nil
		} else {
			rec.buf = append(rec.buf, p...)
			if rec.hold {
				return len(p), nil
			}
		}
	}
	n, err := rec.w.Write(p)
	if err != nil {
		rec.failed = true
	}
	return n, err
}

// Flush flushes the client's writer when it can. A held response is released first: a handler
// that flushes is streaming.
func (rec *recorder) Flush() {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	if rec.notModified {
		return
	}
	rec.release()
	_ = http.NewResponseController(rec.w).Flush()
}

// Unwrap lets http.ResponseController reach the client's writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }

// finish completes an implicit 200 (a handler that wrote nothing) so the snapshot exists.
func (rec *recorder) finish() {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
}

// release sends a held response to the client: the header as it was at WriteHeader, the status
// and the body so far. Afterwards the recorder passes writes through. It does nothing when nothing
// is held.
func (rec *recorder) release() {
	if !rec.hold {
		return
	}
	rec.hold = false
	if !rec.wroteHeader {
		return
	}
	h := rec.w.Header()
	for k := range h { // what the handler changed after WriteHeader is not part of the header...
		if _, ok := rec.sent[k]; !ok && !strings.HasPrefix(k, http.TrailerPrefix) { // ...but trailers are
			delete(h, k)
		}
	}
	maps.Copy(h, rec.sent)
	rec.w.WriteHeader(rec.status)
	if len(rec.buf) > 0 {
		if _, err := rec.w.Write(rec.buf); err != nil {
			rec.failed = true
		}
	}
}

// discardWriter is the client of a background revalidation.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
