package discovery_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/discovery"
)

func TestProxySSEFlushesImmediately(t *testing.T) {
	release := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for i := range 2 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			http.NewResponseController(w).Flush()
		}
		select { // hold the stream open until the client has seen the events
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: last\n\n")
	})
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)})
	resp, err := http.Get(front.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		var lines []string
		for len(lines) < 2 {
			l, err := br.ReadString('\n')
			if err != nil {
				break
			}
			if strings.HasPrefix(l, "data:") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		got <- strings.Join(lines, ",")
	}()
	select {
	case s := <-got:
		if s != "data: event 0,data: event 1" {
			t.Fatalf("events = %q", s)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("events did not arrive while the upstream was still streaming: the proxy buffers SSE")
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: last") {
		t.Fatalf("last event missing: %q", rest)
	}
}

func TestProxyWebSocketEcho(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") {
			http.Error(w, "not an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // echo until the client closes
	})
	p, front := newProxy(t, []discovery.Instance{instanceOf(t, up)})
	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for _, msg := range []string{"hello", "through the gateway"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf) != msg {
			t.Fatalf("echo %q, want %q", buf, msg)
		}
	}
	if n := p.InFlight(); n != 1 {
		t.Errorf("open WebSocket counts as %d in-flight requests, want 1", n)
	}
}

func TestProxyTrailers(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Checksum, X-Echo")
		w.WriteHeader(200)
		_, _ = w.Write(body)
		sum := sha256.Sum256(body)
		w.Header().Set("X-Checksum", hex.EncodeToString(sum[:]))
		w.Header().Set("X-Echo", r.Trailer.Get("X-Client-Sum")) // the request's trailer, read after the body
	})
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)})
	req, _ := http.NewRequest("POST", front.URL+"/", io.NopCloser(strings.NewReader("payload")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Client-Sum": nil}
	req.Header.Set("Te", "trailers")
	req.Trailer.Set("X-Client-Sum", "abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sum := sha256.Sum256([]byte("payload"))
	if string(b) != "payload" {
		t.Fatalf("body %q", b)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("response trailer X-Checksum = %q, trailers %v", got, resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Echo"); got != "abc" {
		t.Fatalf("request trailer did not reach the upstream: echoed %q", got)
	}
}

func TestProxyStreamsLargeBodies(t *testing.T) {
	const chunk = 1 << 20
	const total = 32 * chunk
	t.Run("download", func(t *testing.T) {
		clientGotFirst := make(chan struct{})
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			buf := make([]byte, chunk)
			_, _ = w.Write(buf)
			http.NewResponseController(w).Flush()
			select { // a buffering proxy would never deliver the first chunk
			case <-clientGotFirst:
			case <-r.Context().Done():
				return
			}
			for range total/chunk - 1 {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		})
		_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)})
		resp, err := http.Get(front.URL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		done := make(chan int64, 1)
		go func() {
			n, _ := io.CopyN(io.Discard, resp.Body, chunk)
			close(clientGotFirst)
			m, _ := io.Copy(io.Discard, resp.Body)
			done <- n + m
		}()
		select {
		case n := <-done:
			if n != total {
				t.Fatalf("got %d bytes, want %d", n, total)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("download stalled: the proxy buffers responses")
		}
	})
	t.Run("upload", func(t *testing.T) {
		upGotFirst := make(chan struct{})
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.CopyN(io.Discard, r.Body, chunk)
			close(upGotFirst)
			m, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n+m)
		})
		_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)})
		pr, pw := io.Pipe()
		go func() {
			buf := make([]byte, chunk)
			_, _ = pw.Write(buf)
			select { // a buffering proxy would never pass the first chunk on
			case <-upGotFirst:
			case <-time.After(30 * time.Second):
				_ = pw.CloseWithError(errors.New("upstream never saw the first chunk"))
				return
			}
			for range total/chunk - 1 {
				_, _ = pw.Write(buf)
			}
			_ = pw.Close()
		}()
		resp, err := http.Post(front.URL+"/upload", "application/octet-stream", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if string(b) != fmt.Sprint(total) {
			t.Fatalf("upstream received %s bytes, want %d", b, total)
		}
	})
}

func TestProxyClientAbortCancelsUpstream(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(30 * time.Second):
		}
	})
	other := upstream(t, echo("other"))
	// Round robin sends the first request to the slow instance. One failure would eject it.
	p, front := newProxy(t, []discovery.Instance{instanceOf(t, up), instanceOf(t, other)},
		discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Minute, MaxEjection: time.Minute, MaxEjectedPercent: 50}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/slow", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	select {
	case <-canceled:
	case <-time.After(15 * time.Second):
		t.Fatal("upstream request was not cancelled after the client went away")
	}
	if err := <-errc; err == nil {
		t.Fatal("client request succeeded after cancel")
	}
	eventually(t, "in-flight count back to 0", func() bool { return p.InFlight() == 0 })
	if len(p.Instances()) != 2 {
		t.Fatal("a client abort counted as an instance failure")
	}
}
