package discovery

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultTransport returns a new http.Transport tuned for a gateway talking to a few upstream
// instances over and over: up to 256 idle keep-alive connections per instance (the standard
// library keeps 2, which makes a busy proxy open and close connections constantly), 1024 in total,
// kept 90s; 5s dial and TLS handshake timeouts; 30s to receive response headers; no transparent
// gzip (bodies pass through as the upstream sent them); no HTTP proxy from the environment.
// Callers own the result and should call CloseIdleConnections when done.
func DefaultTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// bufferSize is the size of the copy buffers the proxies share (the same as io.Copy's).
const bufferSize = 32 << 10

// bufferPool is an httputil.BufferPool of fixed-size buffers. It stores array pointers, so Get
// and Put do not allocate.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([bufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[bufferSize]byte)[:] }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= bufferSize {
		b.p.Put((*[bufferSize]byte)(buf[:bufferSize]))
	}
}
