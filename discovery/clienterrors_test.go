package discovery_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/discovery"
)

// Errors the client causes (a body that cannot be read, an invalid Upgrade) are answered 4xx and
// never count against the instance: otherwise any client could eject healthy instances.
func TestProxyClientErrorsDoNotEject(t *testing.T) {
	readAll := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		echo("up")(w, r)
	}
	a, b := upstream(t, readAll), upstream(t, readAll)
	tests := []struct {
		name string
		raw  string // request sent on a raw connection
		want int
	}{
		{"invalid upgrade protocol", "GET / HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: \xff\xfe\r\n\r\n", 400},
		{"malformed chunked body", "POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", 400},
		{"body over the size limit", "POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100), 413},
		// A PUT is buffered for retries before the first attempt: the same answers.
		{"buffered body over the size limit", "PUT / HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("x", 100), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {instanceOf(t, a), instanceOf(t, b)}})
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			p, err := discovery.NewProxy(res, "svc", discovery.WithPassiveHealth(discovery.PassiveHealth{
				ConsecutiveFailures: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectedPercent: 50}))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Body = http.MaxBytesReader(w, r.Body, 10) // as a body-size guard would
				p.ServeHTTP(w, r)
			}))
			defer front.Close()
			for range 3 {
				conn, err := net.Dial("tcp", front.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
				_, _ = io.WriteString(conn, tt.raw)
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					conn.Close()
					t.Fatal(err)
				}
				if resp.StatusCode != tt.want {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
				}
				if resp.StatusCode != http.StatusBadRequest || tt.want == http.StatusBadRequest {
					if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
						t.Errorf("Content-Type %q, want a problem", ct)
					}
				}
				resp.Body.Close()
				conn.Close()
			}
			if n := len(p.Instances()); n != 2 {
				t.Fatalf("%d instances routable after client errors, want 2: the client's fault ejected an instance", n)
			}
		})
	}
}
