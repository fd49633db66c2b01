package breaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/breaker"
)

// serve runs h on a request built by the caller and returns the recorder.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func checkProblem(t *testing.T, rec *httptest.ResponseRecorder, status int) map[string]any {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d (body %q)", rec.Code, status, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != gatewaykit.ProblemContentType {
		t.Fatalf("Content-Type %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["status"] != float64(status) {
		t.Fatalf("problem body %v", body)
	}
	return body
}

// checkRetryAfter asserts a Retry-After in [lo, hi] seconds (the time until half-open shrinks
// while a loaded machine runs the test).
func checkRetryAfter(t *testing.T, rec *httptest.ResponseRecorder, lo, hi int) {
	t.Helper()
	ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if err != nil || ra < lo || ra > hi {
		t.Fatalf("Retry-After %q, want %d..%d", rec.Header().Get("Retry-After"), lo, hi)
	}
}

func TestWrapTripsAndFailsFast(t *testing.T) {
	var calls atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	})
	brk := mustNew(t, breaker.WithName("orders"), breaker.TripAfter(3, 10*time.Second), breaker.OpenTimeout(90*time.Second))
	wrapped := brk.Wrap(h)
	for i := 0; i < 3; i++ {
		if rec := serve(wrapped, httptest.NewRequest(http.MethodGet, "/", nil)); rec.Code != http.StatusBadGateway {
			t.Fatalf("status %d", rec.Code)
		}
	}
	if s := brk.State("orders"); s != breaker.Open {
		t.Fatalf("state %v, want open", s)
	}
	for i := 0; i < 10; i++ {
		rec := serve(wrapped, httptest.NewRequest(http.MethodGet, "/", nil))
		body := checkProblem(t, rec, http.StatusServiceUnavailable)
		checkRetryAfter(t, rec, 80, 90)
		if strings.Contains(rec.Body.String(), "orders") || strings.Contains(rec.Body.String(), "breaker:") {
			t.Fatalf("problem leaks internals: %v", body)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 3: none while open", calls.Load())
	}
}

func TestWrap501AndClientErrorsAreNotFailures(t *testing.T) {
	for _, code := range []int{http.StatusNotImplemented, http.StatusNotFound, http.StatusTooManyRequests, http.StatusOK} {
		brk := mustNew(t, breaker.TripAfter(1, 10*time.Second))
		h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }))
		for i := 0; i < 3; i++ {
			serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
		}
		if s := brk.State(breaker.DefaultName); s != breaker.Closed {
			t.Fatalf("status %d opened the breaker", code)
		}
	}
}

func TestWrapCustomFailureAndKey(t *testing.T) {
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(time.Hour),
		breaker.WithFailure(func(status int, err error) bool { return err != nil || status == http.StatusTooManyRequests }),
		breaker.WithKey(func(r *http.Request) string { return r.URL.Query().Get("svc") }))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("svc") == "a" {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	serve(h, httptest.NewRequest(http.MethodGet, "/?svc=a", nil))
	serve(h, httptest.NewRequest(http.MethodGet, "/?svc=b", nil))
	if brk.State("a") != breaker.Open || brk.State("b") != breaker.Closed {
		t.Fatalf("states a=%v b=%v, want open and closed", brk.State("a"), brk.State("b"))
	}
}

func TestWrapFallback(t *testing.T) {
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(time.Hour),
		breaker.WithFallback(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			oe, ok := breaker.RejectionFrom(r.Context())
			if !ok || oe.State != breaker.Open {
				t.Errorf("RejectionFrom = %v, %v", oe, ok)
			}
			_, _ = io.WriteString(w, "cached")
		})))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	rec := serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "cached" {
		t.Fatalf("fallback answered %d %q", rec.Code, rec.Body.String())
	}
	if _, ok := breaker.RejectionFrom(context.Background()); ok {
		t.Fatal("RejectionFrom on a plain context")
	}
}

func TestWrapErrorHandler(t *testing.T) {
	var got *gatewaykit.Problem
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(time.Hour),
		breaker.WithErrorHandler(func(w http.ResponseWriter, r *http.Request, p *gatewaykit.Problem) {
			got = p
			w.WriteHeader(599)
		}))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec := serve(h, httptest.NewRequest(http.MethodGet, "/", nil)); rec.Code != 599 {
		t.Fatalf("status %d", rec.Code)
	}
	if got == nil || got.Status != http.StatusServiceUnavailable || got.Header.Get("Retry-After") == "" || !errors.Is(got.Err, breaker.ErrOpen) {
		t.Fatalf("problem %+v", got)
	}
}

func TestWrapSlowUpstreamTimesOut(t *testing.T) {
	u := newUpstream(t, modeHang)
	target, _ := url.Parse(u.URL)
	proxy := &httputil.ReverseProxy{
		Rewrite:  func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ErrorLog: discardLogger(),
	}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	proxy.Transport = base
	brk := mustNew(t, breaker.Timeout(200*time.Millisecond), breaker.TripAfter(2, 10*time.Second), breaker.OpenTimeout(time.Hour))
	h := brk.Wrap(proxy)
	for i := 0; i < 2; i++ {
		start := time.Now()
		rec := serve(h, httptest.NewRequest(http.MethodGet, "/slow", nil))
		checkProblem(t, rec, http.StatusGatewayTimeout)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("504 after %v", d)
		}
		select {
		case <-u.canceled:
		case <-time.After(15 * time.Second):
			t.Fatal("the deadline never reached the upstream")
		}
	}
	if s := brk.State(breaker.DefaultName); s != breaker.Open {
		t.Fatalf("state after 2 timeouts = %v, want open", s)
	}
}

func TestWrapTimeoutWhenHandlerWritesNothing(t *testing.T) {
	brk := mustNew(t, breaker.Timeout(50*time.Millisecond))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	checkProblem(t, serve(h, httptest.NewRequest(http.MethodGet, "/", nil)), http.StatusGatewayTimeout)
}

func TestWrapClientCancellationNotCounted(t *testing.T) {
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.Timeout(time.Minute))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		w.WriteHeader(http.StatusBadGateway) // what a reverse proxy writes when its request is canceled
	}))
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		serve(h, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	}
	if s := brk.State(breaker.DefaultName); s != breaker.Closed {
		t.Fatalf("state after client cancellations = %v, want closed", s)
	}
}

func TestWrapRetries(t *testing.T) {
	cases := []struct {
		name      string
		method    string
		hdr       http.Header
		body      string
		failures  int
		wantCalls int
		wantCode  int
	}{
		{"GET recovers", http.MethodGet, nil, "", 2, 3, http.StatusOK},
		{"GET gives up", http.MethodGet, nil, "", 5, 3, http.StatusServiceUnavailable},
		{"POST not retried", http.MethodPost, nil, "data", 2, 1, http.StatusServiceUnavailable},
		{"POST with Idempotency-Key", http.MethodPost, http.Header{"Idempotency-Key": {"abc"}}, "data", 1, 2, http.StatusOK},
		{"PUT body replayed", http.MethodPut, nil, "payload", 2, 3, http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				b, _ := io.ReadAll(r.Body)
				if string(b) != c.body {
					t.Errorf("attempt %d body %q, want %q", calls, b, c.body)
				}
				w.Header().Add("X-Attempt", "x")
				if calls <= c.failures {
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = io.WriteString(w, "unavailable")
					return
				}
				_, _ = io.WriteString(w, "ok")
			})
			brk := mustNew(t, breaker.Retries(2), breaker.RetryBackoff(time.Millisecond, 2*time.Millisecond), breaker.TripAfter(100, time.Minute))
			r := httptest.NewRequest(c.method, "/", strings.NewReader(c.body))
			for k, v := range c.hdr {
				r.Header[k] = v
			}
			rec := serve(brk.Wrap(h), r)
			if rec.Code != c.wantCode || calls != c.wantCalls {
				t.Fatalf("status %d after %d calls, want %d after %d", rec.Code, calls, c.wantCode, c.wantCalls)
			}
			if got := rec.Header().Values("X-Attempt"); len(got) != 1 {
				t.Fatalf("headers of discarded attempts leaked: X-Attempt %v", got)
			}
			want := "ok"
			if c.wantCode != http.StatusOK {
				want = "unavailable"
			}
			if rec.Body.String() != want {
				t.Fatalf("body %q, want %q", rec.Body.String(), want)
			}
		})
	}
}

func TestWrapNoRetryAfterStreamingStarted(t *testing.T) {
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		_, _ = io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		w.WriteHeader(http.StatusServiceUnavailable) // too late: ignored
	})
	brk := mustNew(t, breaker.Retries(3), breaker.RetryBackoff(time.Millisecond, time.Millisecond))
	rec := serve(brk.Wrap(h), httptest.NewRequest(http.MethodGet, "/", nil))
	if calls != 1 || rec.Code != http.StatusOK || !rec.Flushed {
		t.Fatalf("calls %d status %d flushed %v", calls, rec.Code, rec.Flushed)
	}
}

func TestWrapRetryBudget(t *testing.T) {
	clk := newFakeClock()
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	brk := mustNew(t, breaker.Retries(2), breaker.RetryBackoff(time.Millisecond, time.Millisecond),
		breaker.RetryBudget(0.2, 0), breaker.TripAfter(10000, time.Minute), breaker.WithClock(clk))
	wrapped := brk.Wrap(h)
	for i := 0; i < 50; i++ {
		serve(wrapped, httptest.NewRequest(http.MethodGet, "/", nil))
	}
	if calls > 60 || calls < 55 {
		t.Fatalf("calls = %d for 50 requests, want at most 60 (20%% retries)", calls)
	}
}

func TestWrapPanicCountsAndPropagates(t *testing.T) {
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(time.Hour))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the handler's panic", p)
			}
		}()
		serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	if s := brk.State(breaker.DefaultName); s != breaker.Open {
		t.Fatalf("state after a panic = %v, want open", s)
	}
}

func TestWrapPreservesFlushAndHijack(t *testing.T) {
	brk := mustNew(t)
	srv := httptest.NewServer(brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the wrapped writer lost http.Flusher")
		}
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack through the wrapper: %v", err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		_ = buf.Flush()
	})))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	resp, err := (&http.Client{Transport: base}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi" {
		t.Fatalf("body %q", b)
	}
}

func TestProxyErrorHandler(t *testing.T) {
	u := newUpstream(t, modeFail)
	target, _ := url.Parse(u.URL)
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(time.Minute))
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	proxy := &httputil.ReverseProxy{
		Rewrite:      func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:    brk.Transport(base),
		ErrorHandler: breaker.ProxyErrorHandler(nil),
	}
	if rec := serve(proxy, httptest.NewRequest(http.MethodGet, "/", nil)); rec.Code != http.StatusInternalServerError {
		t.Fatalf("first status %d", rec.Code)
	}
	rec := serve(proxy, httptest.NewRequest(http.MethodGet, "/", nil))
	checkProblem(t, rec, http.StatusServiceUnavailable)
	checkRetryAfter(t, rec, 50, 60)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if rec := serve(proxy, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)); rec.Code != 499 {
		t.Fatalf("canceled client got %d, want 499", rec.Code)
	}
}

func TestProblemFor(t *testing.T) {
	cases := []struct {
		err    error
		status int
		retry  string
	}{
		{&breaker.OpenError{State: breaker.Open, RetryAfter: 2500 * time.Millisecond}, 503, "3"},
		{breaker.ErrOpen, 503, "1"},
		{&breaker.TimeoutError{Err: context.DeadlineExceeded}, 504, ""},
		{context.DeadlineExceeded, 504, ""},
		{errors.New("dial tcp 10.0.0.1:80: connection refused"), 502, ""},
	}
	for _, c := range cases {
		p := breaker.ProblemFor(c.err)
		if p.Status != c.status || p.Header.Get("Retry-After") != c.retry || strings.Contains(p.Detail, "10.0.0.1") || p.Err != c.err {
			t.Errorf("ProblemFor(%v) = %+v", c.err, p)
		}
	}
	if breaker.ProblemFor(nil) != nil {
		t.Error("ProblemFor(nil) != nil")
	}
}

func TestWrapHalfOpenAndRampRetryAfter(t *testing.T) {
	clk := newFakeClock()
	var failing atomic.Bool
	failing.Store(true)
	var calls atomic.Int64
	brk := mustNew(t, breaker.TripAfter(1, 10*time.Second), breaker.OpenTimeout(150*time.Millisecond),
		breaker.RecoveryRamp(4*time.Second, 0.5), breaker.WithClock(clk))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	eventually(t, "half-open", func() bool { return brk.State(breaker.DefaultName) == breaker.HalfOpen })
	failing.Store(false)
	if rec := serve(h, httptest.NewRequest(http.MethodGet, "/", nil)); rec.Code != http.StatusOK {
		t.Fatalf("probe status %d", rec.Code)
	}
	clk.Advance(time.Second)
	before := calls.Load()
	var rejected int
	for i := 0; i < 10; i++ {
		rec := serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code == http.StatusServiceUnavailable {
			rejected++
			checkProblem(t, rec, http.StatusServiceUnavailable)
			if ra := rec.Header().Get("Retry-After"); ra != "3" {
				t.Fatalf("Retry-After while recovering = %q, want 3 (seconds to the next step)", ra)
			}
		}
	}
	if rejected != 5 || calls.Load()-before != 5 {
		t.Fatalf("recovering at 50%%: %d rejected, %d served; want 5 and 5", rejected, calls.Load()-before)
	}
	clk.Advance(3 * time.Second)
	if s := brk.State(breaker.DefaultName); s != breaker.Closed {
		t.Fatalf("state after the ramp = %v", s)
	}
}

func TestWrapDeadlineHeader(t *testing.T) {
	brk := mustNew(t, breaker.Timeout(time.Second), breaker.DeadlineHeader("x-timeout-ms"))
	var got string
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("X-Timeout-Ms")
		if _, ok := r.Context().Deadline(); !ok {
			t.Error("no deadline on the handler's context")
		}
	}))
	serve(h, httptest.NewRequest(http.MethodGet, "/", nil))
	if ms, err := strconv.Atoi(got); err != nil || ms < 1 || ms > 1000 {
		t.Fatalf("deadline header %q, want 1..1000", got)
	}
}

func TestWrapDiscardedAttemptHeadersDoNotLeak(t *testing.T) {
	brk := mustNew(t, breaker.Timeout(50*time.Millisecond))
	h := brk.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		w.Header().Set("Set-Cookie", "upstream=secret")
		w.WriteHeader(http.StatusBadGateway)
	}))
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Request-ID", "abc") // set by an outer middleware: kept
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	checkProblem(t, rec, http.StatusGatewayTimeout)
	if rec.Header().Get("Set-Cookie") != "" || rec.Header().Get("X-Request-ID") != "abc" {
		t.Fatalf("headers %v", rec.Header())
	}
}
