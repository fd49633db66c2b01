package guard

import (
	"net/http"
	"time"
)

// Settings of HardenedServer.
const (
	// ServerReadHeaderTimeout bounds how long a client may take to send the request headers
	// (the Slowloris defence; net/http has no default).
	ServerReadHeaderTimeout = 5 * time.Second
	// ServerReadTimeout bounds reading the whole request, body included.
	ServerReadTimeout = 30 * time.Second
	// ServerWriteTimeout bounds the time from the end of the request headers to the end of the
	// response. Streaming routes (SSE, long downloads) extend it per request with
	// http.NewResponseController(w).SetWriteDeadline.
	ServerWriteTimeout = 60 * time.Second
	// ServerIdleTimeout bounds how long a keep-alive connection waits for the next request.
	ServerIdleTimeout = 120 * time.Second
	// ServerMaxHeaderBytes caps the request line and headers read by net/http (default 1 MiB).
	// It is above DefaultMaxHeaderBytes so Limits answers with a problem, not net/http's bare 431.
	ServerMaxHeaderBytes = 64 << 10
)

// HardenedServer returns an *http.Server for addr and h with every timeout set (see the Server*
// constants): the zero http.Server has none, so one slow client can hold a connection and a
// goroutine forever. The result is an ordinary *http.Server; adjust fields before starting it.
func HardenedServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ServerReadHeaderTimeout,
		ReadTimeout:       ServerReadTimeout,
		WriteTimeout:      ServerWriteTimeout,
		IdleTimeout:       ServerIdleTimeout,
		MaxHeaderBytes:    ServerMaxHeaderBytes,
	}
}
