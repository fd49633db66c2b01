package bff

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/internal/jsonpath"
)

const (
	outcomeShaped      = "shaped"
	outcomePassthrough = "passthrough"
	outcomeTooLarge    = "too_large"
	outcomeInvalid     = "invalid"
)

var errTooLarge = errors.New("bff: body exceeds the shaping limit")

// responseWriter applies response header operations and, for a shaped variant, buffers an
// eligible response (2xx JSON, identity or gzip) to shape it when the handler returns. Everything
// else streams through, Flush included.
type responseWriter struct {
	w       http.ResponseWriter
	r       *http.Request
	b       *BFF
	v       *variant // nil: headers only
	decided bool
	shaping bool
	gzipped bool
	status  int
	buf     *bytes.Buffer // from bufferPool while shaping
	over    bool
}

func (sw *responseWriter) Header() http.Header { return sw.w.Header() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (sw *responseWriter) Unwrap() http.ResponseWriter { return sw.w }

func (sw *responseWriter) WriteHeader(code int) {
	if sw.decided {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		sw.w.WriteHeader(code)
		return
	}
	sw.decided = true
	sw.status = code
	h := sw.w.Header()
	applyHeaderOps(h, sw.b.respOps)
	if sw.v != nil {
		sw.shaping = sw.eligible(code, h)
		if !sw.shaping {
			sw.b.responses.Add(sw.r.Context(), 1, sw.v.attrs[outcomePassthrough])
		}
	}
	if sw.shaping {
		h.Del("Content-Length")
		return
	}
	sw.w.WriteHeader(code)
}

func (sw *responseWriter) eligible(code int, h http.Header) bool {
	if sw.r.Method == http.MethodHead {
		if code >= 200 && code < 300 && jsonpath.IsJSONMediaType(h.Get("Content-Type")) {
			h.Del("Content-Length") // the shaped length is unknown without a body
			h.Del("Etag")
		}
		return false
	}
	if code < 200 || code > 299 || code == http.StatusNoContent || code == http.StatusResetContent || code == http.StatusPartialContent {
		return false
	}
	if !jsonpath.IsJSONMediaType(h.Get("Content-Type")) {
		return false
	}
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		sw.gzipped = true
	default:
		// An encoding the shaper cannot read: still shaped, so finish fails closed.
		sw.gzipped = false
		sw.over = true
	}
	return true
}

func (sw *responseWriter) Write(p []byte) (int, error) {
	if !sw.decided {
		sw.WriteHeader(http.StatusOK)
	}
	if !sw.shaping {
		return sw.w.Write(p)
	}
	if sw.over {
		return len(p), nil
	}
	if sw.buf == nil {
		sw.buf = sw.b.pools.getBuffer()
	}
	if int64(sw.buf.Len()+len(p)) > sw.b.maxBody {
		sw.over = true
		sw.b.pools.putBuffer(sw.buf)
		sw.buf = nil
		return len(p), nil
	}
	return sw.buf.Write(p)
}

// Flush sends buffered headers and data for a response that streams; a shaped response is sent
// whole when the handler returns, so Flush is a no-op for it.
func (sw *responseWriter) Flush() {
	if !sw.decided {
		sw.WriteHeader(http.StatusOK)
	}
	if !sw.shaping {
		_ = http.NewResponseController(sw.w).Flush()
	}
}

// pools recycle shaping buffers and gzip codecs; each BFF has its own (no package-level state).
type pools struct {
	buffers     sync.Pool
	gzipWriters sync.Pool
	gzipReaders sync.Pool
}

// maxPooled is the largest buffer kept for reuse; bigger ones are left to the GC.
const maxPooled = 64 << 10

func (p *pools) getBuffer() *bytes.Buffer {
	if b, ok := p.buffers.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (p *pools) putBuffer(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooled {
		return
	}
	b.Reset()
	p.buffers.Put(b)
}

// finish shapes and sends a buffered response.
func (sw *responseWriter) finish() {
	if !sw.decided {
		sw.WriteHeader(http.StatusOK) // what net/http would send, with the header operations applied
	}
	if !sw.shaping {
		return
	}
	ctx := sw.r.Context()
	v := sw.v
	h := sw.w.Header()
	var body []byte
	if sw.buf != nil {
		defer func() { sw.b.pools.putBuffer(sw.buf); sw.buf = nil }()
		body = sw.buf.Bytes()
	}
	var err error
	if sw.over {
		err = errTooLarge
	} else if sw.gzipped {
		body, err = sw.b.pools.gunzip(body, sw.b.maxBody)
	}
	if err == nil && len(body) == 0 {
		sw.w.WriteHeader(sw.status) // nothing to shape, nothing to leak
		return
	}
	var out []byte
	if err == nil {
		ob := sw.b.pools.getBuffer()
		defer sw.b.pools.putBuffer(ob)
		ob.Grow(len(body))
		out, err = v.shaper.Shape(ob.AvailableBuffer(), body, hasRoleFunc(sw.r))
	}
	if err != nil {
		outcome, detail := outcomeInvalid, "the upstream response is not valid JSON"
		if errors.Is(err, errTooLarge) {
			outcome, detail = outcomeTooLarge, "the upstream response is too large or encoded in a way this variant cannot shape"
		}
		sw.b.responses.Add(ctx, 1, v.attrs[outcome])
		sw.b.logEvery.Do(func() {
			sw.b.logger.WarnContext(ctx, "bff: response not shaped, 502 sent", "variant", v.name, "outcome", outcome, "error", err)
		})
		for _, k := range []string{"Content-Encoding", "Etag", "Last-Modified", "Content-Type"} {
			h.Del(k)
		}
		sw.b.onError(sw.w, sw.r, gatewaykit.NewProblem(http.StatusBadGateway, detail).WithErr(err))
		return
	}
	sw.b.responses.Add(ctx, 1, v.attrs[outcomeShaped])
	if removed := len(body) - len(out); removed > 0 {
		sw.b.bytesRemoved.Add(ctx, int64(removed), v.nameAttr)
	}
	if sw.gzipped {
		out = sw.b.pools.gzip(out)
	}
	h.Del("Etag") // the representation changed
	h.Set("Content-Length", strconv.Itoa(len(out)))
	sw.w.WriteHeader(sw.status)
	_, _ = sw.w.Write(out)
}

func (p *pools) gunzip(b []byte, limit int64) ([]byte, error) {
	zr, _ := p.gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(b))
	} else {
		err = zr.Reset(bytes.NewReader(b))
	}
	if err != nil {
		return nil, err
	}
	defer p.gzipReaders.Put(zr)
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errTooLarge
	}
	return out, nil
}

func (p *pools) gzip(b []byte) []byte {
	var out bytes.Buffer
	zw, ok := p.gzipWriters.Get().(*gzip.Writer)
	if ok {
		zw.Reset(&out)
	} else {
		zw = gzip.NewWriter(&out)
	}
	_, _ = zw.Write(b)
	_ = zw.Close()
	p.gzipWriters.Put(zw)
	return out.Bytes()
}
