package breaker_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/breaker"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a manual Clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Upstream modes.
const (
	modeOK   = iota // 200 "ok"
	modeFail        // 500
	modeHang        // blocks until the request context is done or release is closed, then 200
	mode503         // 503
)

// upstream is a real HTTP server whose behaviour tests switch at run time.
type upstream struct {
	*httptest.Server
	mode     atomic.Int32
	hits     atomic.Int64
	arrived  chan struct{} // one value per request that reached the handler (buffered, best effort)
	canceled chan struct{} // one value per hanging request whose context ended
	release  chan struct{}
	relOnce  sync.Once
}

func newUpstream(t *testing.T, mode int32) *upstream {
	t.Helper()
	u := &upstream{arrived: make(chan struct{}, 1024), canceled: make(chan struct{}, 1024), release: make(chan struct{})}
	u.mode.Store(mode)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case u.arrived <- struct{}{}:
		default:
		}
		switch u.mode.Load() {
		case modeFail:
			http.Error(w, "boom", http.StatusInternalServerError)
		case mode503:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case modeHang:
			select {
			case <-r.Context().Done():
				u.canceled <- struct{}{}
				return
			case <-u.release:
			}
			_, _ = io.WriteString(w, "ok")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	t.Cleanup(func() {
		u.Release()
		u.Close()
	})
	return u
}

// Release lets every hanging request (now and later) answer 200.
func (u *upstream) Release() { u.relOnce.Do(func() { close(u.release) }) }

// newClient returns a client over brk.Transport on a private base transport (closed at cleanup).
func newClient(t *testing.T, brk *breaker.Breaker, disableKeepAlives bool) *http.Client {
	t.Helper()
	base := &http.Transport{DisableKeepAlives: disableKeepAlives}
	c := &http.Client{Transport: brk.Transport(base)}
	t.Cleanup(base.CloseIdleConnections)
	return c
}

func mustNew(t *testing.T, opts ...breaker.Option) *breaker.Breaker {
	t.Helper()
	brk, err := breaker.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = brk.Close() })
	return brk
}

// get performs a GET and returns the status (0 on error) and the error; the body is drained.
func get(t *testing.T, c *http.Client, url string) (int, error) {
	t.Helper()
	return do(t, c, http.MethodGet, url, nil, nil)
}

func do(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr http.Header) (int, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openError(t *testing.T, err error) *breaker.OpenError {
	t.Helper()
	var oe *breaker.OpenError
	if !errors.Is(err, breaker.ErrOpen) || !errors.As(err, &oe) {
		t.Fatalf("error = %v, want an *OpenError matching ErrOpen", err)
	}
	return oe
}

// hostOf returns the host:port of a test server, the Transport's default key.
func hostOf(s *httptest.Server) string { return s.Listener.Addr().String() }

// trip drives brk's breaker for u open with failing GETs through c.
func trip(t *testing.T, brk *breaker.Breaker, c *http.Client, u *upstream, n int) {
	t.Helper()
	u.mode.Store(modeFail)
	for i := 0; i < n; i++ {
		if st, err := get(t, c, u.URL); err != nil || st != http.StatusInternalServerError {
			t.Fatalf("failing request %d: status %d, err %v; want 500", i, st, err)
		}
	}
	if s := brk.State(hostOf(u.Server)); s != breaker.Open {
		t.Fatalf("state after %d failures = %v, want open", n, s)
	}
}

type atomicInt = atomic.Int64

type atomicString struct{ v atomic.Value }

func (a *atomicString) Store(s string) { a.v.Store(s) }

func (a *atomicString) Load() string {
	s, _ := a.v.Load().(string)
	return s
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
