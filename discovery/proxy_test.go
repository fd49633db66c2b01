package discovery_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/discovery"
)

// seen is what the echo upstream reports about the request it received.
type seen struct {
	Header  http.Header
	Host    string
	Path    string
	RawPath string
	Query   string
	Name    string
}

func echo(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Header: r.Header, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Name: name})
	}
}

func doSeen(t *testing.T, req *http.Request) seen {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var s seen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

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

func TestProxyForwardedHeaders(t *testing.T) {
	up := upstream(t, echo("a"))
	trustLoopback, err := gatewaykit.NewClientIPResolver("127.0.0.0/8", "::1")
	if err != nil {
		t.Fatal(err)
	}
	trustOther, err := gatewaykit.NewClientIPResolver("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	spoof := map[string]string{
		"X-Forwarded-For":   "203.0.113.9",
		"X-Forwarded-Host":  "evil.example",
		"X-Forwarded-Proto": "https",
		"Forwarded":         "for=203.0.113.9",
		"X-Real-Ip":         "203.0.113.9",
	}
	tests := []struct {
		name     string
		resolver *gatewaykit.ClientIPResolver
		send     map[string]string
		want     map[string]string // "" means absent
	}{
		{"untrusted peer: spoofed headers replaced", nil, spoof, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http",
			"Forwarded": "", "X-Real-Ip": "",
		}},
		{"peer outside the trusted ranges", trustOther, spoof, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http",
			"Forwarded": "", "X-Real-Ip": "",
		}},
		{"trusted peer: chain kept and extended", trustLoopback, spoof, map[string]string{
			"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
			"Forwarded": "for=203.0.113.9", "X-Real-Ip": "203.0.113.9",
		}},
		{"trusted peer without forwarding headers", trustLoopback, nil, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "gw.example", "X-Forwarded-Proto": "http",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []discovery.Option{}
			if tt.resolver != nil {
				opts = append(opts, discovery.WithClientIPResolver(tt.resolver))
			}
			_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, opts...)
			req, _ := http.NewRequest("GET", front.URL+"/", nil)
			req.Host = "gw.example"
			for k, v := range tt.send {
				req.Header.Set(k, v)
			}
			s := doSeen(t, req)
			for k, want := range tt.want {
				if got := strings.Join(s.Header.Values(k), " | "); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if s.Host != instanceOf(t, up).HostPort() {
				t.Errorf("upstream Host = %q, want the instance address", s.Host)
			}
		})
	}
}

func TestProxyPreserveHost(t *testing.T) {
	up := upstream(t, echo("a"))
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, discovery.PreserveHost())
	req, _ := http.NewRequest("GET", front.URL+"/", nil)
	req.Host = "shop.example"
	if s := doSeen(t, req); s.Host != "shop.example" {
		t.Fatalf("Host = %q, want shop.example", s.Host)
	}
}

func TestProxyPathRewriting(t *testing.T) {
	up := upstream(t, echo("a"))
	tests := []struct {
		opt               discovery.Option
		in                string
		wantPath, wantRaw string
		wantQuery         string
	}{
		{discovery.StripPrefix("/api"), "/api/orders/7?x=1", "/orders/7", "", "x=1"},
		{discovery.StripPrefix("/api/"), "/api/orders", "/orders", "", ""},
		{discovery.StripPrefix("/api"), "/api", "/", "", ""},
		{discovery.StripPrefix("/api"), "/api/", "/", "", ""},
		{discovery.StripPrefix("/api"), "/apix/orders", "/apix/orders", "", ""},
		{discovery.StripPrefix("/api"), "/other", "/other", "", ""},
		{discovery.StripPrefix("/api"), "/api/a%2Fb", "/a/b", "/a%2Fb", ""},
		{discovery.ReplacePrefix("/api", "/v1"), "/api/orders", "/v1/orders", "", ""},
		{discovery.ReplacePrefix("/api", "/v1"), "/api", "/v1", "", ""},
		{discovery.ReplacePrefix("/api/v2", "/"), "/api/v2/x", "/x", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, front := newProxy(t, []discovery.Instance{instanceOf(t, up)}, tt.opt)
			req, _ := http.NewRequest("GET", front.URL+tt.in, nil)
			s := doSeen(t, req)
			if s.Path != tt.wantPath || s.RawPath != tt.wantRaw || s.Query != tt.wantQuery {
				t.Fatalf("upstream got path %q raw %q query %q, want %q %q %q", s.Path, s.RawPath, s.Query, tt.wantPath, tt.wantRaw, tt.wantQuery)
			}
		})
	}
}

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

func TestProxyNoInstance(t *testing.T) {
	_, front := newProxy(t, nil, discovery.WithRetryAfter(3*time.Second))
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("status %d Retry-After %q, want 503 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := decodeProblem(t, resp); p.Status != 503 {
		t.Fatalf("problem %+v", p)
	}
}

// errTransport fails every round trip with err.
type errTransport struct{ err error }

func (e errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, e.err }

var errBreakerOpen = errors.New("breaker open for 10.0.0.1:80: internal detail")

func TestProxyUpstreamErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	deadInst := instanceOf(t, closed)
	closed.Close()
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	slowTransport := discovery.DefaultTransport()
	slowTransport.ResponseHeaderTimeout = 50 * time.Millisecond
	t.Cleanup(slowTransport.CloseIdleConnections)
	mapper := func(err error) *gatewaykit.Problem {
		if errors.Is(err, errBreakerOpen) {
			return gatewaykit.NewProblem(503, "the upstream service is temporarily unavailable").WithRetryAfter(10 * time.Second)
		}
		return nil
	}
	tests := []struct {
		name       string
		inst       discovery.Instance
		opts       []discovery.Option
		wantStatus int
		retryAfter string
	}{
		{"connection refused", deadInst, nil, 502, ""},
		{"response header timeout", instanceOf(t, slow), []discovery.Option{discovery.WithTransport(slowTransport)}, 504, ""},
		{"transport deadline", deadInst, []discovery.Option{discovery.WithTransport(errTransport{context.DeadlineExceeded})}, 504, ""},
		{"breaker sentinel mapped", deadInst, []discovery.Option{discovery.WithTransport(errTransport{errBreakerOpen}), discovery.WithErrorMapper(mapper)}, 503, "10"},
		{"mapper declines", deadInst, []discovery.Option{discovery.WithTransport(errTransport{errors.New("boom: secret")}), discovery.WithErrorMapper(mapper)}, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, front := newProxy(t, []discovery.Instance{tt.inst}, tt.opts...)
			resp, err := http.Get(front.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			p := decodeProblem(t, resp)
			for _, leak := range []string{"refused", "dial", "timeout awaiting", "secret", "internal detail", "deadline"} {
				if strings.Contains(strings.ToLower(p.Detail+p.Title), leak) {
					t.Errorf("problem leaks %q: %+v", leak, p)
				}
			}
		})
	}
}

func TestProxyCustomErrorHandler(t *testing.T) {
	var got *gatewaykit.Problem
	h := func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
		got = p
		w.WriteHeader(599)
	}
	_, front := newProxy(t, []discovery.Instance{{Address: "127.0.0.1", Port: 1}},
		discovery.WithTransport(errTransport{errBreakerOpen}), discovery.WithErrorHandler(h))
	resp, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 599 || got == nil || got.Status != 502 || !errors.Is(got.Err, errBreakerOpen) {
		t.Fatalf("status %d problem %+v", resp.StatusCode, got)
	}
}

func TestProxyRouteByHeader(t *testing.T) {
	v1 := upstream(t, echo("v1"))
	v2 := upstream(t, echo("v2"))
	both := []discovery.Instance{instanceOf(t, v1, "v1"), instanceOf(t, v2, "v2", "canary")}
	tests := []struct {
		fallback discovery.Fallback
		header   string
		want     string // upstream name, "503" or "any"
		allowed  []string
	}{
		{discovery.FallbackTag("v1"), "v2", "v2", nil},
		{discovery.FallbackTag("v1"), "v2", "v2", []string{"v2"}},
		{discovery.FallbackTag("v1"), "canary", "v1", []string{"v1", "v2"}},
		{discovery.FallbackReject(), "canary", "503", []string{"v1", "v2"}},
		{discovery.FallbackTag("v1"), "canary", "v2", nil},
		{discovery.FallbackTag("v1"), "", "v1", nil},
		{discovery.FallbackTag("v1"), "v9", "v1", nil},
		{discovery.FallbackReject(), "v9", "503", nil},
		{discovery.FallbackReject(), "v1", "v1", nil},
		{discovery.FallbackTag("v3"), "", "503", nil},
		{discovery.FallbackAll(), "", "any", nil},
		{discovery.FallbackTag("v1"), "", "v1", []string{"v2"}}, // fallback tag outside the allowed list
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%s/%v", tt.fallback, tt.header, tt.allowed), func(t *testing.T) {
			_, front := newProxy(t, both, discovery.RouteByHeader("x-service-version", tt.fallback, tt.allowed...))
			names := map[string]int{}
			for range 10 {
				req, _ := http.NewRequest("GET", front.URL+"/", nil)
				if tt.header != "" {
					req.Header.Set("X-Service-Version", tt.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode == 503 {
					names["503"]++
				} else {
					var s seen
					_ = json.NewDecoder(resp.Body).Decode(&s)
					names[s.Name]++
				}
				resp.Body.Close()
			}
			switch tt.want {
			case "any":
				if names["v1"] != 5 || names["v2"] != 5 {
					t.Fatalf("fallback to all: got %v, want 5 each", names)
				}
			default:
				if names[tt.want] != 10 {
					t.Fatalf("got %v, want all 10 on %s", names, tt.want)
				}
			}
		})
	}
}

func TestProxyRoundRobinSpreads(t *testing.T) {
	a, b := upstream(t, echo("a")), upstream(t, echo("b"))
	_, front := newProxy(t, []discovery.Instance{instanceOf(t, a), instanceOf(t, b)})
	names := map[string]int{}
	for range 20 {
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		names[doSeen(t, req).Name]++
	}
	if names["a"] != 10 || names["b"] != 10 {
		t.Fatalf("round robin over two instances: %v", names)
	}
}

func TestOptionValidation(t *testing.T) {
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {{Address: "127.0.0.1", Port: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	bad := map[string]discovery.Option{
		"nil balancer":         discovery.WithBalancer(nil),
		"nil hash key":         discovery.WithBalancer(discovery.ConsistentHash(nil)),
		"nil transport":        discovery.WithTransport(nil),
		"empty prefix":         discovery.StripPrefix("/"),
		"relative prefix":      discovery.StripPrefix("api"),
		"dot segment":          discovery.StripPrefix("/api/.."),
		"encoded prefix":       discovery.StripPrefix("/a%2f"),
		"negative flush":       discovery.WithFlushInterval(-2),
		"zero retry after":     discovery.WithRetryAfter(0),
		"bad scheme":           discovery.WithScheme("ftp"),
		"passive zero":         discovery.WithPassiveHealth(discovery.PassiveHealth{}),
		"passive max < base":   discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Minute, MaxEjection: time.Second, MaxEjectedPercent: 50}),
		"passive percent":      discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Second, MaxEjection: time.Second, MaxEjectedPercent: 101}),
		"route header":         discovery.RouteByHeader("bad header", discovery.FallbackAll()),
		"route zero fallback":  discovery.RouteByHeader("X-V", discovery.Fallback{}),
		"route empty tag":      discovery.RouteByHeader("X-V", discovery.FallbackTag("")),
		"route empty allowed":  discovery.RouteByHeader("X-V", discovery.FallbackAll(), "v1", ""),
		"consul-only option":   discovery.WithDatacenter("dc1"),
		"static-only option":   discovery.WithHealthCheck(discovery.HealthCheck{Path: "/h", Interval: time.Second}),
		"nil clock":            discovery.WithClock(nil),
		"nil error handler":    discovery.WithErrorHandler(nil),
		"nil error mapper":     discovery.WithErrorMapper(nil),
		"nil option":           nil,
		"nil meter provider":   discovery.WithMeterProvider(nil),
		"nil logger":           discovery.WithLogger(nil),
		"wait time with proxy": discovery.WithWaitTime(time.Minute),
	}
	for name, opt := range bad {
		t.Run(name, func(t *testing.T) {
			p, err := discovery.NewProxy(res, "svc", opt)
			if err == nil {
				p.Close()
				t.Fatal("NewProxy accepted an invalid option")
			}
			if !strings.HasPrefix(err.Error(), "discovery: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := discovery.NewProxy(res, "svc", discovery.StripPrefix("/a"), discovery.StripPrefix("/b")); err == nil {
		t.Error("two prefix rewrites accepted")
	}
	if _, err := discovery.NewProxy(nil, "svc"); err == nil {
		t.Error("nil resolver accepted")
	}
	if _, err := discovery.NewProxy(res, ""); err == nil {
		t.Error("empty service accepted")
	}
	if _, err := discovery.NewProxy(res, "unknown"); !errors.Is(err, discovery.ErrUnknownService) {
		t.Errorf("unknown service: %v, want ErrUnknownService", err)
	}
}
