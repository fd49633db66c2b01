package transcode

import (
	"errors"
	"io"
	"net/http"
	"strings"
)

// errBodyTooLarge is returned by limitedBody past the limit.
var errBodyTooLarge = errors.New("transcode: request body too large")

// limitedBody reads at most left bytes (left < 0: none at all); past it, it fails and records that the limit was hit so
// the error path can answer 413 instead of a decoding error.
type limitedBody struct {
	rc       io.ReadCloser
	left     int64
	tooLarge *bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left < 0 { // the declared Content-Length is already too large
		*b.tooLarge = true
		return 0, errBodyTooLarge
	}
	if b.left == 0 {
		// Probe one byte: a body of exactly the limit is fine.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			*b.tooLarge = true
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// readBody reads the whole body, up to max bytes. ok is false when it is larger (or the declared
// Content-Length is), or unreadable.
func readBody(r *http.Request, max int64) (body []byte, tooLarge bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false, nil
	}
	if r.ContentLength > max {
		return nil, true, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > max {
		return nil, true, nil
	}
	return b, false, nil
}

func acceptsTrailers(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Te")), "trailers")
}
