package discovery_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/discovery"
)

// closedListener returns the instance of a listener that was closed: connecting is refused.
func closedListener(t *testing.T, id string) discovery.Instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return discovery.Instance{ID: id, Address: "127.0.0.1", Port: addr.Port}
}

var loopbackHost atomic.Int32

// refusing returns an instance that refuses connections: port 1 of an address of the loopback
// network, distinct per call (unlike a closed listener's port, never reused by another server).
func refusing(t *testing.T, id string) discovery.Instance {
	t.Helper()
	n := loopbackHost.Add(1)
	return discovery.Instance{ID: id, Address: "127.0." + strconv.Itoa(int(n/250)) + "." + strconv.Itoa(int(2+n%250)), Port: 1}
}

// resetting returns an instance that accepts connections and resets them at once, before reading
// the request: the proxy sees a reset or EOF before any response byte.
func resetting(t *testing.T, id string) discovery.Instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return discovery.Instance{ID: id, Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
}

// received is what a counted upstream reports about the request it answered.
type received struct {
	Name          string
	Method        string
	Body          string
	ContentLength int64
}

// counted returns an upstream instance that answers with what it received and counts requests.
func counted(t *testing.T, id string) (discovery.Instance, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(received{Name: id, Method: r.Method, Body: string(b), ContentLength: r.ContentLength})
	})
	inst := instanceOf(t, up)
	inst.ID = id
	return inst, hits
}

// captureBalancer is round robin that remembers the endpoints it was given, so tests can read
// per-endpoint in-flight counts.
type captureBalancer struct {
	mu  sync.Mutex
	eps map[string]*discovery.Endpoint
}

func (c *captureBalancer) NewPicker(eps []*discovery.Endpoint) discovery.Picker {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.eps == nil {
		c.eps = map[string]*discovery.Endpoint{}
	}
	for _, e := range eps {
		c.eps[e.Instance().ID] = e
	}
	return discovery.RoundRobin().NewPicker(eps)
}

// inFlight returns the in-flight count of every endpoint seen, by instance ID.
func (c *captureBalancer) inFlight() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int64{}
	for id, e := range c.eps {
		out[id] = e.InFlight()
	}
	return out
}

func (c *captureBalancer) idle() bool {
	for _, n := range c.inFlight() {
		if n != 0 {
			return false
		}
	}
	return true
}

// counters returns the int64 counters of reader by metric name and then by the value of attr.
func counters(t *testing.T, reader *sdkmetric.ManualReader, attr string) map[string]map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			out[m.Name] = map[string]int64{}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(attribute.Key(attr))
				out[m.Name][v.String()] += dp.Value
			}
		}
	}
	return out
}

func newMeter(t *testing.T) (*sdkmetric.ManualReader, discovery.Option) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return reader, discovery.WithMeterProvider(mp)
}

func do(t *testing.T, req *http.Request) (int, received) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got received
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
	} else if p := decodeProblem(t, resp); p.Status != resp.StatusCode {
		t.Fatalf("problem %+v for status %d", p, resp.StatusCode)
	}
	return resp.StatusCode, got
}

// One of two instances is dead. Round robin without passive health sends every request to it
// first (the retry's pick moves the cycle on): with retries, every request succeeds on the other
// instance; without, every other request is a 502.
func TestRetryOnAnotherInstance(t *testing.T) {
	for _, dead := range []struct {
		name string
		inst func(*testing.T, string) discovery.Instance
	}{{"closed listener", closedListener}, {"connection refused", refusing}, {"connection reset", resetting}} {
		for _, retries := range []bool{true, false} {
			t.Run(dead.name+"/retries="+strconv.FormatBool(retries), func(t *testing.T) {
				live, hits := counted(t, "live")
				reader, meter := newMeter(t)
				bal := &captureBalancer{}
				opts := []discovery.Option{discovery.WithBalancer(bal), discovery.WithoutPassiveHealth(), meter}
				if !retries {
					opts = append(opts, discovery.WithoutRetry())
				}
				_, front := newProxy(t, []discovery.Instance{dead.inst(t, "dead"), live}, opts...)
				codes := map[int]int{}
				for range 20 {
					req, _ := http.NewRequest("GET", front.URL+"/x", nil)
					code, got := do(t, req)
					codes[code]++
					if code == 200 && got.Name != "live" {
						t.Fatalf("answered by %q", got.Name)
					}
				}
				m := counters(t, reader, "outcome")
				picks := counters(t, reader, "instance")["gatewaykit.discovery.picks"]
				if retries {
					if codes[200] != 20 || hits.Load() != 20 {
						t.Fatalf("statuses %v, live hits %d: want 20 x 200", codes, hits.Load())
					}
					if got := m["gatewaykit.discovery.retries"]; got["retried"] != 20 || len(got) != 1 {
						t.Errorf("retries metric %v, want 20 retried", got)
					}
					if total := picks[live.HostPort()] + picks[bal.eps["dead"].HostPort()]; total != 40 {
						t.Errorf("picks %v, want 40 (every attempt)", picks)
					}
				} else {
					if codes[502] != 10 || codes[200] != 10 {
						t.Fatalf("statuses %v, want 10 x 502 and 10 x 200", codes)
					}
					if got := m["gatewaykit.discovery.retries"]; got["retried"] != 0 {
						t.Errorf("retries metric %v with retries off", got)
					}
				}
				if !bal.idle() {
					t.Errorf("in-flight counts %v after the requests, want all 0", bal.inFlight())
				}
			})
		}
	}
}

// Only requests that are safe to send twice, with a body that can be replayed, are retried.
func TestRetryOnlyReplayableRequests(t *testing.T) {
	small := strings.Repeat("0123456789", 100) // 1000 bytes
	tests := []struct {
		name    string
		method  string
		body    string
		chunked bool
		header  map[string]string
		want    int
	}{
		{"GET", "GET", "", false, nil, 200},
		{"HEAD", "HEAD", "", false, nil, 200},
		{"DELETE", "DELETE", "", false, nil, 200},
		{"PUT with a small body", "PUT", small, false, nil, 200},
		{"POST", "POST", small, false, nil, 502},
		{"POST with an empty Idempotency-Key", "POST", small, false, map[string]string{"Idempotency-Key": ""}, 502},
		{"POST with Idempotency-Key", "POST", small, false, map[string]string{"Idempotency-Key": "k1"}, 200},
		{"PATCH with Idempotency-Key and no body", "PATCH", "", false, map[string]string{"Idempotency-Key": "k2"}, 200},
		{"PUT over the replay limit", "PUT", small + "x", false, nil, 502},
		{"PUT with a chunked body", "PUT", "short", true, nil, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			live, hits := counted(t, "live")
			policy := discovery.DefaultRetryPolicy()
			policy.MaxReplayBody = int64(len(small))
			_, front := newProxy(t, []discovery.Instance{refusing(t, "dead"), live}, discovery.WithRetry(policy))
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body) // unknown length: sent chunked
				}
			}
			req, _ := http.NewRequest(tt.method, front.URL+"/x", body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want != 200 {
				if hits.Load() != 0 {
					t.Fatalf("the live instance received %d requests: the request was retried", hits.Load())
				}
				if p := decodeProblem(t, resp); p.Status != 502 {
					t.Fatalf("problem %+v", p)
				}
				return
			}
			if hits.Load() != 1 {
				t.Fatalf("live instance hits %d, want 1", hits.Load())
			}
			if tt.method == "HEAD" {
				return
			}
			var got received
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.method || got.Body != tt.body || got.ContentLength != int64(len(tt.body)) {
				t.Fatalf("the surviving instance received %s with %d bytes (Content-Length %d), want %s with %d",
					got.Method, len(got.Body), got.ContentLength, tt.method, len(tt.body))
			}
		})
	}
}

// roundTripCounter counts the attempts reaching the transport, by host.
type roundTripCounter struct {
	mu    sync.Mutex
	hosts []string
	base  http.RoundTripper
}

func (c *roundTripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.hosts = append(c.hosts, r.URL.Host)
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

// When every instance is dead the request fails with a 502 problem after 1+MaxRetries attempts,
// each on a different instance, and every attempt counts against its instance.
func TestRetryAllInstancesDead(t *testing.T) {
	for _, maxRetries := range []int{1, 2, 3} {
		t.Run(strconv.Itoa(maxRetries), func(t *testing.T) {
			var insts []discovery.Instance
			for i := range 5 {
				insts = append(insts, refusing(t, "dead"+strconv.Itoa(i)))
			}
			policy := discovery.DefaultRetryPolicy()
			policy.MaxRetries = maxRetries
			rt := &roundTripCounter{base: discovery.DefaultTransport()}
			p, front := newProxy(t, insts, discovery.WithRetry(policy), discovery.WithTransport(rt),
				discovery.WithPassiveHealth(discovery.PassiveHealth{ConsecutiveFailures: 1, BaseEjection: time.Hour, MaxEjection: time.Hour, MaxEjectedPercent: 100}))
			req, _ := http.NewRequest("GET", front.URL+"/x", nil)
			if code, _ := do(t, req); code != 502 {
				t.Fatalf("status %d, want 502", code)
			}
			seen := map[string]bool{}
			for _, h := range rt.hosts {
				seen[h] = true
			}
			if len(rt.hosts) != 1+maxRetries || len(seen) != len(rt.hosts) {
				t.Fatalf("attempts %v, want %d on distinct instances", rt.hosts, 1+maxRetries)
			}
			if n := len(p.Instances()); n != 5-(1+maxRetries) {
				t.Fatalf("%d instances routable, want %d: each failed attempt ejects its instance", n, 5-(1+maxRetries))
			}
			if n := p.InFlight(); n != 0 {
				t.Fatalf("in flight %d", n)
			}
		})
	}
}

// The budget caps retries at BudgetRatio * requests + BudgetMinPerSecond * 10 over 10 seconds of
// the proxy's clock.
func TestRetryBudget(t *testing.T) {
	t.Run("floor", func(t *testing.T) {
		clk := newFakeClock()
		live, _ := counted(t, "live")
		reader, meter := newMeter(t)
		_, front := newProxy(t, []discovery.Instance{refusing(t, "dead"), live}, discovery.WithClock(clk), discovery.WithoutPassiveHealth(), meter,
			discovery.WithRetry(discovery.RetryPolicy{MaxRetries: 1, BudgetRatio: 0, BudgetMinPerSecond: 1, MaxReplayBody: 0}))
		get := func() int {
			req, _ := http.NewRequest("GET", front.URL+"/x", nil)
			code, _ := do(t, req)
			return code
		}
		// Every request goes to the dead instance first (see TestRetryOnAnotherInstance).
		for i := range 10 {
			if code := get(); code != 200 {
				t.Fatalf("request %d: status %d within the budget", i, code)
			}
			clk.Advance(500 * time.Millisecond) // spread over 5 s of the 10 s window
		}
		if code := get(); code != 502 {
			t.Fatalf("status %d once the budget of 10 retries per 10 s is spent, want 502", code)
		}
		clk.Advance(5 * time.Second) // the first retries leave the window
		if code := get(); code != 200 {
			t.Fatalf("status %d after the window moved on, want 200", code)
		}
		got := counters(t, reader, "outcome")["gatewaykit.discovery.retries"]
		if got["retried"] != 11 || got["budget_exhausted"] != 1 {
			t.Fatalf("retries metric %v, want 11 retried and 1 budget_exhausted", got)
		}
	})
	t.Run("ratio", func(t *testing.T) {
		live, _ := counted(t, "live")
		_, front := newProxy(t, []discovery.Instance{refusing(t, "dead"), live}, discovery.WithClock(newFakeClock()), discovery.WithoutPassiveHealth(),
			discovery.WithRetry(discovery.RetryPolicy{MaxRetries: 1, BudgetRatio: 0.5, BudgetMinPerSecond: 0, MaxReplayBody: 0}))
		var codes []int
		for range 6 {
			req, _ := http.NewRequest("GET", front.URL+"/x", nil)
			code, _ := do(t, req)
			codes = append(codes, code)
		}
		// Retries allowed while retries+1 <= requests/2: requests 2, 4 and 6.
		want := []int{502, 200, 502, 200, 502, 200}
		for i := range want {
			if codes[i] != want[i] {
				t.Fatalf("statuses %v, want %v", codes, want)
			}
		}
	})
}

// Once the response header arrived the request is never retried, whatever happens next: not a
// 5xx, not a body cut short.
func TestRetryNeverAfterResponseStarted(t *testing.T) {
	tests := []struct {
		name string
		h    http.HandlerFunc
		want int
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, 503},
		{"body cut short", func(w http.ResponseWriter, r *http.Request) { // 200, or the client connection aborted
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			_, _ = io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the connection drops mid-body
		}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := upstream(t, tt.h)
			other, hits := counted(t, "other")
			reader, meter := newMeter(t)
			_, front := newProxy(t, []discovery.Instance{instanceOf(t, first), other}, meter)
			resp, err := http.Get(front.URL + "/x")
			switch {
			case err != nil && tt.want == 200:
				// The proxy had not flushed the header when the upstream connection broke: it aborts
				// the client connection too.
			case err != nil:
				t.Fatal(err)
			default:
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
				}
			}
			if hits.Load() != 0 {
				t.Fatal("the request was retried on the other instance")
			}
			if got := counters(t, reader, "outcome")["gatewaykit.discovery.retries"]; len(got) != 0 {
				t.Fatalf("retries metric %v", got)
			}
		})
	}
}

// A request whose client went away, or whose deadline expired, or that timed out once sent is not
// retried.
func TestRetryNotOnCancelOrTimeout(t *testing.T) {
	slowTransport := discovery.DefaultTransport()
	slowTransport.ResponseHeaderTimeout = 50 * time.Millisecond
	t.Cleanup(slowTransport.CloseIdleConnections)
	tests := []struct {
		name    string
		opts    []discovery.Option
		timeout time.Duration // a deadline set on the request context in front of the proxy
		cancel  bool          // the client cancels once the upstream has the request
		want    int
	}{
		{"client cancels", nil, 0, true, 0},
		{"request deadline", nil, 100 * time.Millisecond, false, 504},
		{"response header timeout", []discovery.Option{discovery.WithTransport(slowTransport)}, 0, false, 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{}, 1)
			slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				select {
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
			})
			other, hits := counted(t, "other")
			reader, meter := newMeter(t)
			bal := &captureBalancer{}
			p, _ := newProxy(t, []discovery.Instance{instanceOf(t, slow), other}, append(tt.opts, meter, discovery.WithBalancer(bal))...)
			served := make(chan struct{})
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(served)
				if tt.timeout > 0 {
					ctx, cancel := context.WithTimeout(r.Context(), tt.timeout)
					defer cancel()
					r = r.WithContext(ctx)
				}
				p.ServeHTTP(w, r)
			}))
			defer front.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/x", nil)
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				resp.Body.Close()
				done <- result{code: resp.StatusCode}
			}()
			<-started
			if tt.cancel {
				cancel()
			}
			res := <-done
			<-served
			if tt.cancel {
				if res.err == nil {
					t.Fatalf("status %d after the client canceled", res.code)
				}
			} else if res.err != nil || res.code != tt.want {
				t.Fatalf("status %d (%v), want %d", res.code, res.err, tt.want)
			}
			if hits.Load() != 0 {
				t.Fatal("the request was retried on the other instance")
			}
			if got := counters(t, reader, "outcome")["gatewaykit.discovery.retries"]; len(got) != 0 {
				t.Fatalf("retries metric %v", got)
			}
			if !bal.idle() {
				t.Fatalf("in-flight counts %v", bal.inFlight())
			}
		})
	}
}

// A retry stays in the request's RouteByHeader group.
func TestRetryStaysInRouteGroup(t *testing.T) {
	v1, v1hits := counted(t, "v1-live")
	v1.Tags = []string{"v1"}
	v2, v2hits := counted(t, "v2-live")
	v2.Tags = []string{"v2"}
	dead := refusing(t, "v1-dead")
	dead.Tags = []string{"v1"}
	_, front := newProxy(t, []discovery.Instance{dead, v2, v1}, discovery.WithoutPassiveHealth(),
		discovery.RouteByHeader("X-Version", discovery.FallbackTag("v1"), "v1", "v2"))
	for i := range 10 {
		req, _ := http.NewRequest("GET", front.URL+"/x", nil)
		if i%2 == 0 {
			req.Header.Set("X-Version", "v1")
		}
		code, got := do(t, req)
		if code != 200 || got.Name != "v1-live" {
			t.Fatalf("request %d: status %d from %q, want 200 from v1-live", i, code, got.Name)
		}
	}
	if v1hits.Load() != 10 || v2hits.Load() != 0 {
		t.Fatalf("hits v1 %d, v2 %d", v1hits.Load(), v2hits.Load())
	}
}

// A consistent-hash picker keeps choosing the dead instance for a key: the retry takes another.
func TestRetryConsistentHash(t *testing.T) {
	live, _ := counted(t, "live")
	reader, meter := newMeter(t)
	_, front := newProxy(t, []discovery.Instance{refusing(t, "dead"), live}, discovery.WithoutPassiveHealth(), meter,
		discovery.WithBalancer(discovery.ConsistentHash(discovery.HeaderKey("X-User"))))
	for i := range 20 {
		req, _ := http.NewRequest("GET", front.URL+"/x", nil)
		req.Header.Set("X-User", "user-"+strconv.Itoa(i))
		if code, _ := do(t, req); code != 200 {
			t.Fatalf("user-%d: status %d", i, code)
		}
	}
	if got := counters(t, reader, "outcome")["gatewaykit.discovery.retries"]["retried"]; got == 0 {
		t.Fatal("no key hashed to the dead instance: the test proves nothing")
	}
}

// A single instance has nowhere to retry: the failure is answered, and counted as no_instance.
func TestRetryNoOtherInstance(t *testing.T) {
	reader, meter := newMeter(t)
	_, front := newProxy(t, []discovery.Instance{refusing(t, "dead")}, meter)
	req, _ := http.NewRequest("GET", front.URL+"/x", nil)
	if code, _ := do(t, req); code != 502 {
		t.Fatalf("status %d", code)
	}
	if got := counters(t, reader, "outcome")["gatewaykit.discovery.retries"]; got["no_instance"] != 1 || got["retried"] != 0 {
		t.Fatalf("retries metric %v", got)
	}
}

// A WebSocket upgrade is retried like any GET; the tunnel works through the retried response.
func TestRetryUpgrade(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw)
	})
	bal := &captureBalancer{}
	p, front := newProxy(t, []discovery.Instance{refusing(t, "dead"), instanceOf(t, up)}, discovery.WithBalancer(bal))
	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	_, _ = io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if n := p.InFlight(); n != 1 {
		t.Errorf("in flight %d during the tunnel, want 1", n)
	}
	conn.Close()
	eventually(t, "in-flight counts back to 0", bal.idle)
}

// The current span names the instance that answered and the number of attempts.
func TestRetrySpanAttributes(t *testing.T) {
	live, _ := counted(t, "live")
	var logs syncBuffer
	p, _ := newProxy(t, []discovery.Instance{refusing(t, "dead"), live},
		discovery.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	span, got := tracedGet(t, p)
	if got["gatewaykit.discovery.instance"] != live.HostPort() || got["gatewaykit.discovery.attempts"] != "2" {
		t.Fatalf("span attributes %v, want the live instance and 2 attempts", got)
	}
	if ev := span.Events(); len(ev) != 1 || ev[0].Name != "gatewaykit.discovery.retry" {
		t.Fatalf("span events %v", ev)
	}
	if l := logs.String(); !strings.Contains(l, "level=DEBUG msg=\"discovery: retrying on another instance\"") || !strings.Contains(l, "next="+live.HostPort()) {
		t.Fatalf("no debug line for the retry in %q", l)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRetryOptionValidation(t *testing.T) {
	res, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {{Address: "127.0.0.1", Port: 80}}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	ok := discovery.DefaultRetryPolicy()
	with := func(f func(*discovery.RetryPolicy)) discovery.RetryPolicy {
		rp := ok
		f(&rp)
		return rp
	}
	for name, rp := range map[string]discovery.RetryPolicy{
		"negative retries": with(func(rp *discovery.RetryPolicy) { rp.MaxRetries = -1 }),
		"too many retries": with(func(rp *discovery.RetryPolicy) { rp.MaxRetries = 11 }),
		"negative ratio":   with(func(rp *discovery.RetryPolicy) { rp.BudgetRatio = -0.1 }),
		"NaN ratio":        with(func(rp *discovery.RetryPolicy) { rp.BudgetRatio = nanRatio() }),
		"huge ratio":       with(func(rp *discovery.RetryPolicy) { rp.BudgetRatio = 11 }),
		"negative floor":   with(func(rp *discovery.RetryPolicy) { rp.BudgetMinPerSecond = -1 }),
		"no budget":        with(func(rp *discovery.RetryPolicy) { rp.BudgetRatio, rp.BudgetMinPerSecond = 0, 0 }),
		"negative body":    with(func(rp *discovery.RetryPolicy) { rp.MaxReplayBody = -1 }),
		"huge body":        with(func(rp *discovery.RetryPolicy) { rp.MaxReplayBody = 64<<20 + 1 }),
	} {
		t.Run(name, func(t *testing.T) {
			p, err := discovery.NewProxy(res, "svc", discovery.WithRetry(rp))
			if err == nil {
				p.Close()
				t.Fatal("NewProxy accepted an invalid retry policy")
			}
			if !strings.HasPrefix(err.Error(), "discovery: RetryPolicy") {
				t.Errorf("error %q", err)
			}
		})
	}
	// MaxRetries 0 turns retries off whatever the other fields say.
	p, err := discovery.NewProxy(res, "svc", discovery.WithRetry(discovery.RetryPolicy{}))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	for _, opt := range []discovery.Option{discovery.WithRetry(ok), discovery.WithoutRetry()} {
		if _, err := discovery.NewStatic(map[string][]discovery.Instance{"svc": {{Address: "127.0.0.1", Port: 80}}}, opt); err == nil {
			t.Error("NewStatic accepted a retry option")
		}
	}
}

func nanRatio() float64 {
	zero := 0.0
	return zero / zero
}

// After the last attempt failed, the error handler sees that attempt's request and error (the
// cause, for WithErrorMapper too), and the problem it writes is the usual 502.
func TestRetryLastAttemptReachesErrorHandler(t *testing.T) {
	a, b := refusing(t, "a"), refusing(t, "b")
	var gotHost string
	var gotErr, mapped error
	h := func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
		gotHost, gotErr = r.URL.Host, p.Err
		gatewaykit.WriteProblem(w, r, p)
	}
	mapper := func(err error) *gatewaykit.Problem {
		mapped = err
		return nil
	}
	_, front := newProxy(t, []discovery.Instance{a, b}, discovery.WithErrorHandler(h), discovery.WithErrorMapper(mapper))
	req, _ := http.NewRequest("GET", front.URL+"/x", nil)
	if code, _ := do(t, req); code != 502 {
		t.Fatalf("status %d", code)
	}
	var oe *net.OpError
	if gotHost != b.HostPort() || !errors.As(gotErr, &oe) || oe.Op != "dial" || !strings.Contains(oe.Error(), b.HostPort()) || mapped != gotErr {
		t.Fatalf("error handler saw host %q, error %v (%T), mapper %v; want the second instance's dial error", gotHost, gotErr, gotErr, mapped)
	}
}

// A dial that timed out sent nothing: it is retried, unlike a timeout once the request was sent.
func TestRetryDialTimeout(t *testing.T) {
	live, hits := counted(t, "live")
	blackhole := refusing(t, "blackhole")
	tr := discovery.DefaultTransport()
	t.Cleanup(tr.CloseIdleConnections)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == blackhole.HostPort() {
			d := net.Dialer{Timeout: time.Nanosecond} // the deadline has passed when the dial starts
			return d.DialContext(ctx, network, addr)
		}
		return dial(ctx, network, addr)
	}
	_, front := newProxy(t, []discovery.Instance{blackhole, live}, discovery.WithTransport(tr))
	req, _ := http.NewRequest("GET", front.URL+"/x", nil)
	if code, _ := do(t, req); code != 200 || hits.Load() != 1 {
		t.Fatalf("status %d, live hits %d: the dial timeout was not retried", code, hits.Load())
	}
}
