package discovery_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxyHopByHopHeaders(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Up-Private")
		w.Header().Set("X-Up-Private", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Up-Public", "ok")
		echo("a")(w, r)
	})
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)})

	// Raw request, so the client library cannot tidy up the headers we want to send.
	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /x HTTP/1.1\r\nHost: gw.example\r\n"+
		"Connection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=9\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Connection: keep-alive\r\nTe: gzip\r\n"+
		"X-Public: yes\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s seen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Private", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te"} {
		if v, ok := s.Header[h]; ok {
			t.Errorf("upstream received hop-by-hop header %s: %q", h, v)
		}
	}
	if c := s.Header.Get("Connection"); c != "" && !strings.EqualFold(c, "keep-alive") {
		t.Errorf("upstream received Connection %q", c)
	}
	if s.Header.Get("X-Public") != "yes" {
		t.Error("end-to-end header X-Public was dropped")
	}
	if resp.Header.Get("X-Up-Private") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("client received hop-by-hop response headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Up-Public") != "ok" {
		t.Error("end-to-end response header X-Up-Public was dropped")
	}
}
