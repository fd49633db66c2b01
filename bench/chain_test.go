package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// inProcess is a RoundTripper that serves requests with the backend handler in memory, so the
// benchmark measures the gateway's own work without sockets.
type inProcess struct{}

func (inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	h := make(http.Header, 2)
	h["Content-Type"] = []string{"application/json"}
	return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(backendBody)), ContentLength: int64(len(backendBody)), Request: r}, nil
}

func benchToken(b *testing.B) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "pub.pem")
	if err := writePublicKey(path, &key.PublicKey); err != nil {
		b.Fatal(err)
	}
	b.Setenv("BENCH_JWT_PUBKEY", path)
	tok, err := mintES256(key, "bench-user")
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

func serve(b *testing.B, h http.Handler, token string) {
	b.Helper()
	r := httptest.NewRequest("GET", "http://gateway/orders/1", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	check := httptest.NewRecorder()
	h.ServeHTTP(check, r.Clone(r.Context()))
	if check.Code != 200 {
		b.Fatalf("status %d: %s", check.Code, check.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r.Clone(r.Context()))
	}
}

// BenchmarkChain compares, in one run and without sockets, a bare httputil.ReverseProxy, the
// gatewaykit discovery proxy, and the full chain (guard, request ID, cached ES256 JWT, per-user
// rate limit, breaker, discovery proxy). The difference in allocs/op between "full" and "bare" is
// the gateway's own per-request allocation count.
func BenchmarkChain(b *testing.B) {
	upstreams := []string{"127.0.0.1:1", "127.0.0.1:2"}
	b.Run("bare", func(b *testing.B) {
		u, _ := url.Parse("http://127.0.0.1:1")
		p := httputil.NewSingleHostReverseProxy(u)
		p.Transport = inProcess{}
		serve(b, p, "")
	})
	b.Run("gkproxy", func(b *testing.B) {
		p, res, err := newProxy(upstreams, discovery.WithTransport(inProcess{}))
		if err != nil {
			b.Fatal(err)
		}
		defer res.Close()
		defer p.Close()
		serve(b, p, "")
	})
	b.Run("full", func(b *testing.B) {
		tok := benchToken(b)
		h, closeFn, err := buildFullWith(upstreams, inProcess{})
		if err != nil {
			b.Fatal(err)
		}
		defer closeFn()
		serve(b, h, tok)
	})
}
