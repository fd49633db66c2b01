package breaker_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/breaker"
)

func TestTransportTripsAndFailsFast(t *testing.T) {
	u := newUpstream(t, modeFail)
	brk := mustNew(t, breaker.TripAfter(3, 10*time.Second), breaker.OpenTimeout(time.Hour))
	c := newClient(t, brk, false)

	trip(t, brk, c, u, 3)
	before := u.hits.Load()
	for i := 0; i < 20; i++ {
		_, err := get(t, c, u.URL)
		oe := openError(t, err)
		if oe.State != breaker.Open || oe.Upstream != hostOf(u.Server) {
			t.Fatalf("rejection = %+v, want open for %s", oe, hostOf(u.Server))
		}
		if oe.RetryAfter <= 59*time.Minute || oe.RetryAfter > time.Hour {
			t.Fatalf("RetryAfter = %v, want about 1h (time until half-open)", oe.RetryAfter)
		}
	}
	if got := u.hits.Load(); got != before {
		t.Fatalf("upstream got %d requests while the breaker was open", got-before)
	}
}

func TestTransportRatioTrip(t *testing.T) {
	u := newUpstream(t, modeOK)
	brk := mustNew(t, breaker.TripRatio(0.5, 10), breaker.OpenTimeout(time.Hour))
	c := newClient(t, brk, false)
	// 5 successes, then alternating failures: the breaker opens once 10 attempts completed with
	// at least half failing, never before.
	for i := 0; i < 5; i++ {
		if st, _ := get(t, c, u.URL); st != http.StatusOK {
			t.Fatalf("status %d", st)
		}
	}
	u.mode.Store(modeFail)
	for i := 0; i < 4; i++ {
		if st, err := get(t, c, u.URL); st != http.StatusInternalServerError {
			t.Fatalf("failure %d: status %d err %v", i, st, err)
		}
		if s := brk.State(hostOf(u.Server)); s != breaker.Closed {
			t.Fatalf("opened after %d of %d failed", i+1, i+6)
		}
	}
	if st, _ := get(t, c, u.URL); st != http.StatusInternalServerError {
		t.Fatalf("status %d", st)
	}
	if s := brk.State(hostOf(u.Server)); s != breaker.Open {
		t.Fatalf("state = %v after 5 of 10 failed, want open", s)
	}
}

func TestTransportHalfOpenProbe(t *testing.T) {
	u := newUpstream(t, modeFail)
	brk := mustNew(t, breaker.TripAfter(2, 10*time.Second), breaker.OpenTimeout(150*time.Millisecond),
		breaker.HalfOpenProbes(1), breaker.RecoveryRamp(0))
	c := newClient(t, brk, false)
	key := hostOf(u.Server)
	trip(t, brk, c, u, 2)
	eventually(t, "half-open", func() bool { return brk.State(key) == breaker.HalfOpen })

	// The probe hangs in the upstream; meanwhile every other request is rejected.
	u.mode.Store(modeHang)
	drainArrived(u)
	probe := make(chan int, 1)
	go func() {
		st, _ := get(t, c, u.URL)
		probe <- st
	}()
	<-u.arrived
	before := u.hits.Load()
	for i := 0; i < 5; i++ {
		_, err := get(t, c, u.URL)
		if oe := openError(t, err); oe.State != breaker.HalfOpen || oe.RetryAfter != time.Second {
			t.Fatalf("rejection while probing = %+v, want half_open, 1s", oe)
		}
	}
	if u.hits.Load() != before {
		t.Fatal("a second request reached the upstream while the probe was in flight")
	}
	u.Release()
	if st := <-probe; st != http.StatusOK {
		t.Fatalf("probe status %d", st)
	}
	if s := brk.State(key); s != breaker.Closed {
		t.Fatalf("state after a successful probe = %v, want closed", s)
	}
	for i := 0; i < 5; i++ {
		if st, err := get(t, c, u.URL); st != http.StatusOK {
			t.Fatalf("after recovery: status %d err %v", st, err)
		}
	}
}

func TestTransportFailedProbeReopens(t *testing.T) {
	u := newUpstream(t, modeFail)
	brk := mustNew(t, breaker.TripAfter(2, 10*time.Second), breaker.OpenTimeout(150*time.Millisecond))
	c := newClient(t, brk, false)
	key := hostOf(u.Server)
	trip(t, brk, c, u, 2)
	eventually(t, "half-open", func() bool { return brk.State(key) == breaker.HalfOpen })
	if st, _ := get(t, c, u.URL); st != http.StatusInternalServerError {
		t.Fatalf("probe status %d", st)
	}
	if s := brk.State(key); s != breaker.Open {
		t.Fatalf("state after a failed probe = %v, want open", s)
	}
	_, err := get(t, c, u.URL)
	openError(t, err)
}

func drainArrived(u *upstream) {
	for {
		select {
		case <-u.arrived:
		default:
			return
		}
	}
}

func TestTransportRecoveryRamp(t *testing.T) {
	clk := newFakeClock()
	u := newUpstream(t, modeFail)
	brk := mustNew(t, breaker.TripAfter(2, 10*time.Second), breaker.OpenTimeout(150*time.Millisecond),
		breaker.RecoveryRamp(10*time.Second, 0.1, 0.5), breaker.WithClock(clk))
	c := newClient(t, brk, false)
	key := hostOf(u.Server)
	trip(t, brk, c, u, 2)
	eventually(t, "half-open", func() bool { return brk.State(key) == breaker.HalfOpen })
	u.mode.Store(modeOK)
	if st, _ := get(t, c, u.URL); st != http.StatusOK { // the probe
		t.Fatalf("probe status %d", st)
	}
	if s := brk.State(key); s != breaker.Recovering {
		t.Fatalf("state after the probe = %v, want recovering", s)
	}

	stages := []struct {
		advance  time.Duration
		admitted int64
		state    breaker.State
	}{
		{0, 10, breaker.Recovering},
		{10 * time.Second, 50, breaker.Recovering},
		{10 * time.Second, 100, breaker.Closed},
	}
	for i, st := range stages {
		clk.Advance(st.advance)
		before := u.hits.Load()
		for j := 0; j < 100; j++ {
			code, err := get(t, c, u.URL)
			if err != nil {
				oe := openError(t, err)
				if oe.State != breaker.Recovering || oe.RetryAfter != 10*time.Second {
					t.Fatalf("stage %d: rejection %+v, want recovering with 10s to the next step", i, oe)
				}
			} else if code != http.StatusOK {
				t.Fatalf("stage %d: status %d", i, code)
			}
		}
		if got := u.hits.Load() - before; got != st.admitted {
			t.Fatalf("stage %d: upstream got %d of 100 requests, want %d", i, got, st.admitted)
		}
		if s := brk.State(key); s != st.state {
			t.Fatalf("stage %d: state %v, want %v", i, s, st.state)
		}
	}
}

func TestTransportPerHostIsolation(t *testing.T) {
	bad := newUpstream(t, modeFail)
	good := newUpstream(t, modeOK)
	brk := mustNew(t, breaker.TripAfter(3, 10*time.Second), breaker.OpenTimeout(time.Hour))
	c := newClient(t, brk, false)
	trip(t, brk, c, bad, 3)
	for i := 0; i < 10; i++ {
		if st, err := get(t, c, good.URL); st != http.StatusOK {
			t.Fatalf("good host: status %d, err %v", st, err)
		}
		if _, err := get(t, c, bad.URL); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("bad host: err %v, want ErrOpen", err)
		}
	}
	if s := brk.State(hostOf(good.Server)); s != breaker.Closed {
		t.Fatalf("good host state %v", s)
	}
	if good.hits.Load() != 10 {
		t.Fatalf("good host hits %d, want 10", good.hits.Load())
	}
}

func TestTransportTimeout(t *testing.T) {
	u := newUpstream(t, modeHang)
	var gotHeader atomicString
	inner := u.Config.Handler
	u.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader.Store(r.Header.Get("X-Request-Timeout-Ms"))
		inner.ServeHTTP(w, r)
	})
	brk := mustNew(t, breaker.Timeout(200*time.Millisecond), breaker.TripAfter(1, 10*time.Second),
		breaker.OpenTimeout(time.Hour), breaker.DeadlineHeader("X-Request-Timeout-Ms"))
	c := newClient(t, brk, false)

	start := time.Now()
	_, err := get(t, c, u.URL)
	elapsed := time.Since(start)
	var te *breaker.TimeoutError
	if !errors.Is(err, breaker.ErrTimeout) || !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a *TimeoutError matching ErrTimeout and DeadlineExceeded", err)
	}
	if elapsed > 10*time.Second {
		t.Fatalf("timeout took %v", elapsed)
	}
	select { // the deadline reached the upstream: its request context ended
	case <-u.canceled:
	case <-time.After(15 * time.Second):
		t.Fatal("the upstream request was never canceled")
	}
	ms, convErr := strconv.Atoi(gotHeader.Load())
	if convErr != nil || ms <= 0 || ms > 200 {
		t.Fatalf("deadline header = %q, want 1..200 ms", gotHeader.Load())
	}
	if p := breaker.ProblemFor(err); p.Status != http.StatusGatewayTimeout || strings.Contains(p.Detail, "context") {
		t.Fatalf("problem = %+v, want a 504 without error text", p)
	}
	if s := brk.State(hostOf(u.Server)); s != breaker.Open { // a timeout counts as a failure
		t.Fatalf("state after a timeout = %v, want open", s)
	}
}

func TestTransportTimeoutCoversBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	brk := mustNew(t, breaker.Timeout(200*time.Millisecond))
	c := newClient(t, brk, false)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("body read error = %v, want the deadline", err)
	}
}

func TestTransportClientCancellationNotCounted(t *testing.T) {
	u := newUpstream(t, modeHang)
	brk := mustNew(t, breaker.TripAfter(2, 10*time.Second), breaker.OpenTimeout(time.Hour))
	c := newClient(t, brk, false)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.URL, nil)
		done := make(chan error, 1)
		go func() {
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		<-u.arrived
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		<-u.canceled
	}
	if s := brk.State(hostOf(u.Server)); s != breaker.Closed {
		t.Fatalf("state after 5 client cancellations = %v, want closed", s)
	}
	u.Release()
	if st, err := get(t, c, u.URL); st != http.StatusOK {
		t.Fatalf("status %d err %v", st, err)
	}
}

func TestTransportRetries(t *testing.T) {
	type tc struct {
		name     string
		method   string
		body     string
		hdr      http.Header
		opts     []breaker.Option
		wantHits int64
	}
	cases := []tc{
		{name: "GET retried", method: http.MethodGet, wantHits: 3},
		{name: "POST never retried", method: http.MethodPost, body: "x", wantHits: 1},
		{name: "POST with Idempotency-Key", method: http.MethodPost, body: "abc", hdr: http.Header{"Idempotency-Key": {"k1"}}, wantHits: 3},
		{name: "PUT body replayed", method: http.MethodPut, body: strings.Repeat("b", 1000), wantHits: 3},
		{name: "body over replay limit", method: http.MethodPut, body: strings.Repeat("b", 1000), opts: []breaker.Option{breaker.MaxReplayBody(100)}, wantHits: 1},
		{name: "status not listed", method: http.MethodGet, opts: []breaker.Option{breaker.RetryOn(502)}, wantHits: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				bodies []string
				hits   int64
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				hits++
				bodies = append(bodies, string(b))
				mu.Unlock()
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			opts := append([]breaker.Option{breaker.Retries(2), breaker.RetryBackoff(time.Millisecond, 2*time.Millisecond),
				breaker.TripAfter(100, 10*time.Second)}, c.opts...)
			brk := mustNew(t, opts...)
			cl := newClient(t, brk, false)
			// A request built without GetBody, like a server request forwarded by a proxy.
			var body io.Reader
			if c.body != "" {
				body = struct{ io.Reader }{strings.NewReader(c.body)}
			}
			st, err := do(t, cl, c.method, srv.URL, body, c.hdr)
			if err != nil || st != http.StatusServiceUnavailable {
				t.Fatalf("status %d err %v, want the last 503", st, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if hits != c.wantHits {
				t.Fatalf("upstream hits = %d, want %d", hits, c.wantHits)
			}
			for i, b := range bodies {
				if b != c.body {
					t.Fatalf("attempt %d body = %d bytes, want %d", i, len(b), len(c.body))
				}
			}
		})
	}
}

func TestTransportRetriesConnectionErrors(t *testing.T) {
	var hits atomicInt
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) <= 2 { // drop the connection without answering
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	brk := mustNew(t, breaker.Retries(3), breaker.RetryBackoff(time.Millisecond, 2*time.Millisecond))
	c := newClient(t, brk, true)
	st, err := get(t, c, srv.URL)
	if err != nil || st != http.StatusOK {
		t.Fatalf("status %d err %v, want 200 after retries", st, err)
	}
	if hits.Load() != 3 {
		t.Fatalf("hits = %d, want 3", hits.Load())
	}
}

func TestTransportNoRetryAfterStreamingStarted(t *testing.T) {
	var hits atomicInt
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = buf.Flush()
			conn.Close()
		}
	}))
	defer srv.Close()
	brk := mustNew(t, breaker.Retries(3), breaker.RetryBackoff(time.Millisecond, 2*time.Millisecond))
	c := newClient(t, brk, true)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(bufio.NewReader(resp.Body))
	resp.Body.Close()
	if err == nil {
		t.Fatal("want a body read error")
	}
	if hits.Load() != 1 {
		t.Fatalf("hits = %d, want 1: no retry once the response was returned", hits.Load())
	}
}

func TestTransportRetryBudgetUnderOutage(t *testing.T) {
	u := newUpstream(t, mode503)
	clk := newFakeClock()
	brk := mustNew(t, breaker.Retries(3), breaker.RetryBackoff(time.Millisecond, time.Millisecond),
		breaker.RetryBudget(0.1, 5), breaker.TripAfter(10000, 10*time.Second), breaker.WithClock(clk))
	c := newClient(t, brk, false)
	const n = 100
	for i := 0; i < n; i++ {
		if st, err := get(t, c, u.URL); st != http.StatusServiceUnavailable {
			t.Fatalf("status %d err %v", st, err)
		}
	}
	// Without a budget, 100 requests with 3 retries each would send 400.
	if hits := u.hits.Load(); hits > n+n/10+5 || hits <= n {
		t.Fatalf("upstream hits = %d, want in (%d, %d]", hits, n, n+n/10+5)
	}
	// The window rolls: after 10 s of fake time the budget is fresh again.
	clk.Advance(11 * time.Second)
	before := u.hits.Load()
	if _, err := get(t, c, u.URL); err != nil {
		t.Fatal(err)
	}
	if got := u.hits.Load() - before; got != 4 {
		t.Fatalf("hits after the window rolled = %d, want 4 (1 + 3 retries within the floor)", got)
	}
}

func TestTransportRejectionClosesBody(t *testing.T) {
	u := newUpstream(t, modeFail)
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(time.Hour))
	c := newClient(t, brk, false)
	trip(t, brk, c, u, 1)
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest(http.MethodPost, u.URL, body)
	if _, err := brk.Transport(http.DefaultTransport).RoundTrip(req); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("err %v", err)
	}
	if !body.closed {
		t.Fatal("RoundTrip did not close the request body of a rejected request")
	}
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestTransportConcurrentFlappingUpstream(t *testing.T) {
	u := newUpstream(t, modeOK)
	brk := mustNew(t, breaker.TripAfter(3, time.Second), breaker.OpenTimeout(20*time.Millisecond),
		breaker.RecoveryRamp(20*time.Millisecond, 0.5), breaker.Retries(1),
		breaker.RetryBackoff(time.Millisecond, time.Millisecond), breaker.Timeout(5*time.Second))
	c := newClient(t, brk, false)
	done := make(chan struct{})
	go func() { // flap
		defer close(done)
		for i := 0; i < 20; i++ {
			u.mode.Store(int32(i % 2 * modeFail))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				st, err := get(t, c, u.URL)
				if err != nil && !errors.Is(err, breaker.ErrOpen) {
					errs <- err
					return
				}
				if err == nil && st != http.StatusOK && st != http.StatusInternalServerError {
					errs <- errors.New("unexpected status " + strconv.Itoa(st))
					return
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
