package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// bufferPool is an httputil.BufferPool over sync.Pool, as the tuning steps measure.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

// backendBody is what every backend answers: a small JSON document, as a typical API response.
var backendBody = []byte(`{"id":"o1001","user_id":"alice","product_id":"p1","quantity":1,"total":19.5,"status":"shipped"}` + "\n")

// runRole runs one target process until ctx ends.
func runRole(ctx context.Context, o options) error {
	var h http.Handler
	ups := strings.Split(o.upstreams, ",")
	switch o.role {
	case "backend":
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(backendBody)
		})
	case "bare":
		u, err := url.Parse("http://" + ups[0])
		if err != nil {
			return err
		}
		h = httputil.NewSingleHostReverseProxy(u) // default settings, on purpose
	case "bare-transport", "bare-tuned":
		u, err := url.Parse("http://" + ups[0])
		if err != nil {
			return err
		}
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = discovery.DefaultTransport() // step 1: keep connections to the backend alive
		if o.role == "bare-tuned" {
			p.BufferPool = newBufferPool() // step 2: no 32 KiB copy buffer per request
		}
		h = p
	default:
		t, ok := lookupTarget(o.role)
		if !ok {
			return fmt.Errorf("unknown role %q", o.role)
		}
		var closeFn func()
		var err error
		h, closeFn, err = t.build(ups)
		if err != nil {
			return err
		}
		defer closeFn()
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
