package discovery

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// clientBody wraps the outbound request body so that a failed forward can tell a body the client
// failed to send (malformed chunking, a connection cut mid-upload, a size limit set by an earlier
// middleware) from an upstream failure: the former is the client's fault and must not count
// against the instance.
type clientBody struct {
	rc       io.ReadCloser
	failed   atomic.Bool
	tooLarge atomic.Bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			b.tooLarge.Store(true)
		}
		b.failed.Store(true)
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// clientFault reports whether a forward failed because of the client, and the status to answer.
func clientFault(out *http.Request) (int, bool) {
	b, ok := out.Body.(*clientBody)
	if !ok || !b.failed.Load() {
		return 0, false
	}
	if b.tooLarge.Load() {
		return http.StatusRequestEntityTooLarge, true
	}
	return http.StatusBadRequest, true
}

// validUpgrade reports whether the Upgrade header (if any) is printable ASCII, as
// httputil.ReverseProxy requires; it reports an invalid one as an upstream error otherwise.
func validUpgrade(h http.Header) bool {
	v := h["Upgrade"]
	if len(v) == 0 {
		return true
	}
	for i := 0; i < len(v[0]); i++ {
		if c := v[0][i]; c < ' ' || c > '~' {
			return false
		}
	}
	return true
}
