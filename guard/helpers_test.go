package guard_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// rawGet sends one request line verbatim over TCP (Go's client would clean the path) and returns
// the response and its body.
func rawGet(t *testing.T, srv *httptest.Server, target string, extra ...string) (*http.Response, string) {
	t.Helper()
	req := "GET " + target + " HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n"
	for _, h := range extra {
		req += h + "\r\n"
	}
	return rawSend(t, srv, req+"\r\n")
}

// rawSend writes text to a new connection to srv and reads one response.
func rawSend(t *testing.T, srv *httptest.Server, text string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, text); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// problemOf decodes a problem+json body and fails the test when the response is not one.
func problemOf(t *testing.T, h http.Header, body string) map[string]any {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != gatewaykit.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q (body %q)", ct, gatewaykit.ProblemContentType, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	return m
}

// okHandler answers 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "ok")
})

// must returns v, panicking on a construction error (test setup only).
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
