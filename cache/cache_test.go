package cache_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/cache"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is an injectable clock for TTL decisions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is an upstream that counts its calls and answers with a body naming the call number, the
// user and the Accept-Language, so tests can tell responses apart.
type origin struct {
	calls  atomic.Int64
	header http.Header
	status int
	body   func(r *http.Request, n int64) string
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.calls.Add(1)
	for k, vs := range o.header {
		w.Header()[k] = vs
	}
	body := fmt.Sprintf("call=%d path=%s", n, r.URL.Path)
	if o.body != nil {
		body = o.body(r, n)
	}
	if id, ok := gatewaykit.IdentityFrom(r.Context()); ok {
		body += " user=" + id.Subject
	}
	if o.status != 0 {
		w.WriteHeader(o.status)
	}
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

func newOrigin(kv ...string) *origin {
	h := make(http.Header)
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return &origin{header: h}
}

func newCache(t testing.TB, opts ...cache.Option) *cache.Cache {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c, err := cache.New(append([]cache.Option{cache.WithLogger(quiet)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

type resp struct {
	status int
	body   string
	h      http.Header
}

func (r resp) xcache() string { return r.h.Get("X-Cache") }

func do(h http.Handler, method, target string, mods ...func(*http.Request)) resp {
	req := httptest.NewRequest(method, target, nil)
	for _, m := range mods {
		m(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return resp{rec.Code, rec.Body.String(), rec.Result().Header}
}

func get(h http.Handler, target string, mods ...func(*http.Request)) resp {
	return do(h, http.MethodGet, target, mods...)
}

func header(k, v string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Add(k, v) }
}

func as(subject string) func(*http.Request) {
	return func(r *http.Request) {
		*r = *r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: subject, Method: "jwt"}))
		r.Header.Set("Authorization", "Bearer token-of-"+subject)
	}
}

func TestHitMissAndHeaders(t *testing.T) {
	clk := newClock()
	o := newOrigin("Cache-Control", "max-age=60", "Content-Type", "text/plain", "X-Upstream", "yes")
	h := newCache(t, cache.WithClock(clk.Now)).Wrap(o)

	first := get(h, "/a")
	if first.xcache() != "MISS" || first.body != "call=1 path=/a" {
		t.Fatalf("first = %+v", first)
	}
	clk.Advance(7 * time.Second)
	second := get(h, "/a")
	if second.xcache() != "HIT" || second.body != first.body || o.calls.Load() != 1 {
		t.Fatalf("second = %+v, calls %d", second, o.calls.Load())
	}
	if got := second.h.Get("Age"); got != "7" {
		t.Errorf("Age = %q, want 7", got)
	}
	if second.h.Get("X-Upstream") != "yes" || second.h.Get("Content-Type") != "text/plain" {
		t.Errorf("stored header not replayed: %v", second.h)
	}
	if second.h.Get("Content-Length") != strconv.Itoa(len(first.body)) {
		t.Errorf("Content-Length = %q", second.h.Get("Content-Length"))
	}
	if other := get(h, "/b"); other.xcache() != "MISS" || o.calls.Load() != 2 {
		t.Fatalf("other path = %+v", other)
	}
}

func TestHEAD(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t).Wrap(o)

	if r := do(h, http.MethodHead, "/x"); r.xcache() != "MISS" || r.body != "" {
		t.Fatalf("HEAD miss = %+v", r)
	}
	if r := get(h, "/x"); r.xcache() != "MISS" {
		t.Fatalf("a HEAD miss must not store an entry for GET: %+v", r)
	}
	r := do(h, http.MethodHead, "/x")
	if r.xcache() != "HIT" || r.body != "" || o.calls.Load() != 2 {
		t.Fatalf("HEAD after GET = %+v, calls %d", r, o.calls.Load())
	}
	if r.h.Get("Content-Length") != strconv.Itoa(len("call=2 path=/x")) {
		t.Errorf("HEAD hit Content-Length = %q", r.h.Get("Content-Length"))
	}
}

func TestUnsafeMethodsBypass(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t).Wrap(o)
	for range 2 {
		if r := do(h, http.MethodPost, "/x"); r.xcache() != "BYPASS" {
			t.Fatalf("POST = %+v", r)
		}
	}
	if o.calls.Load() != 2 {
		t.Fatalf("calls = %d", o.calls.Load())
	}
}

func TestPerUserIsolation(t *testing.T) {
	o := newOrigin("Cache-Control", "private, max-age=60")
	h := newCache(t, cache.PerIdentity(), cache.TTL(time.Minute)).Wrap(o)

	alice1 := get(h, "/dashboard", as("alice"))
	bob1 := get(h, "/dashboard", as("bob"))
	alice2 := get(h, "/dashboard", as("alice"))
	bob2 := get(h, "/dashboard", as("bob"))
	if !strings.HasSuffix(alice1.body, "user=alice") || !strings.HasSuffix(bob1.body, "user=bob") {
		t.Fatalf("bodies: %q %q", alice1.body, bob1.body)
	}
	if alice2.xcache() != "HIT" || alice2.body != alice1.body {
		t.Fatalf("alice second = %+v", alice2)
	}
	if bob2.xcache() != "HIT" || bob2.body != bob1.body {
		t.Fatalf("bob second = %+v", bob2)
	}
	if o.calls.Load() != 2 {
		t.Fatalf("calls = %d, want 2", o.calls.Load())
	}
	// The same subject from another authentication method is another principal.
	apikey := func(r *http.Request) {
		*r = *r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "alice", Method: "apikey"}))
	}
	if r := get(h, "/dashboard", apikey); r.xcache() != "MISS" {
		t.Fatalf("apikey alice = %+v", r)
	}
	// Anonymous requests share entries, but never see a user's.
	anon := newOrigin("Cache-Control", "max-age=60")
	ha := newCache(t, cache.PerIdentity()).Wrap(anon)
	get(ha, "/p", as("alice"))
	if r := get(ha, "/p"); r.xcache() != "MISS" || strings.Contains(r.body, "alice") {
		t.Fatalf("anonymous after alice = %+v", r)
	}
	if r := get(ha, "/p"); r.xcache() != "HIT" || strings.Contains(r.body, "user=") {
		t.Fatalf("anonymous second = %+v", r)
	}
}

func TestCredentialedRequestsFailClosed(t *testing.T) {
	tests := []struct {
		name string
		opts []cache.Option
		mod  func(*http.Request)
		want string // X-Cache of the second identical request
	}{
		{"authorization without opt-in", nil, header("Authorization", "Bearer x"), "BYPASS"},
		{"cookie without opt-in", nil, header("Cookie", "session=1"), "BYPASS"},
		{"identity without opt-in", nil, func(r *http.Request) {
			*r = *r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: "u"}))
		}, "BYPASS"},
		{"per identity, credentials but no identity", []cache.Option{cache.PerIdentity()}, header("Authorization", "Bearer x"), "BYPASS"},
		{"per identity with identity", []cache.Option{cache.PerIdentity()}, as("u"), "HIT"},
		{"shared opt-in", []cache.Option{cache.ShareCredentialed()}, header("Authorization", "Bearer x"), "HIT"},
		{"anonymous identity is anonymous", nil, func(r *http.Request) {
			*r = *r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{}))
		}, "HIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrigin("Cache-Control", "max-age=60")
			h := newCache(t, tt.opts...).Wrap(o)
			get(h, "/x", tt.mod)
			if r := get(h, "/x", tt.mod); r.xcache() != tt.want {
				t.Fatalf("X-Cache = %q, want %q", r.xcache(), tt.want)
			}
			if tt.want == "BYPASS" { // and nothing leaked into the shared entries
				if r := get(h, "/x"); r.xcache() != "MISS" {
					t.Fatalf("anonymous after credentialed = %q", r.xcache())
				}
			}
		})
	}
}

func TestVary(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60", "Vary", "Accept-Language")
	o.body = func(r *http.Request, n int64) string { return fmt.Sprintf("%d:%s", n, r.Header.Get("Accept-Language")) }
	h := newCache(t).Wrap(o)

	en1 := get(h, "/v", header("Accept-Language", "en"))
	de1 := get(h, "/v", header("Accept-Language", "de"))
	en2 := get(h, "/v", header("Accept-Language", "en"))
	de2 := get(h, "/v", header("Accept-Language", "de"))
	none := get(h, "/v")
	if en1.body != "1:en" || de1.body != "2:de" || en2.body != "1:en" || de2.body != "2:de" || none.body != "3:" {
		t.Fatalf("bodies %q %q %q %q %q", en1.body, de1.body, en2.body, de2.body, none.body)
	}
	if en2.xcache() != "HIT" || de2.xcache() != "HIT" || none.xcache() != "MISS" {
		t.Fatalf("X-Cache %q %q %q", en2.xcache(), de2.xcache(), none.xcache())
	}
	if en2.h.Get("Vary") != "Accept-Language" {
		t.Errorf("Vary not replayed: %v", en2.h)
	}

	star := newOrigin("Cache-Control", "max-age=60", "Vary", "*")
	hs := newCache(t).Wrap(star)
	get(hs, "/s")
	if r := get(hs, "/s"); r.xcache() != "MISS" || star.calls.Load() != 2 {
		t.Fatalf("Vary: * was cached: %+v", r)
	}
}

func TestResponseCacheability(t *testing.T) {
	tests := []struct {
		name   string
		opts   []cache.Option
		status int
		kv     []string
		stored bool
	}{
		{"max-age", nil, 200, []string{"Cache-Control", "max-age=60"}, true},
		{"s-maxage", nil, 200, []string{"Cache-Control", "s-maxage=60"}, true},
		{"no lifetime, no TTL", nil, 200, nil, false},
		{"no lifetime, TTL", []cache.Option{cache.TTL(time.Minute)}, 200, nil, true},
		{"no-store", []cache.Option{cache.TTL(time.Minute)}, 200, []string{"Cache-Control", "no-store"}, false},
		{"no-store with max-age", nil, 200, []string{"Cache-Control", "max-age=60, no-store"}, false},
		{"no-cache", nil, 200, []string{"Cache-Control", "no-cache, max-age=60"}, false},
		{"private shared", nil, 200, []string{"Cache-Control", "private, max-age=60"}, false},
		{"max-age=0", []cache.Option{cache.TTL(time.Minute)}, 200, []string{"Cache-Control", "max-age=0"}, false},
		{"expires in future", nil, 200, []string{"Expires", "Fri, 02 Jan 2026 04:04:05 GMT", "Date", "Fri, 02 Jan 2026 03:04:05 GMT"}, true},
		{"expires invalid", []cache.Option{cache.TTL(time.Minute)}, 200, []string{"Expires", "0"}, false},
		{"404 cached", nil, 404, []string{"Cache-Control", "max-age=60"}, true},
		{"500 not cached", nil, 500, []string{"Cache-Control", "max-age=60"}, false},
		{"201 not cached", nil, 201, []string{"Cache-Control", "max-age=60"}, false},
		{"custom statuses", []cache.Option{cache.Statuses(200)}, 404, []string{"Cache-Control", "max-age=60"}, false},
		{"set-cookie", nil, 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, false},
		{"set-cookie stripped", []cache.Option{cache.StripSetCookie()}, 200, []string{"Cache-Control", "max-age=60", "Set-Cookie", "a=b"}, true},
		{"age beyond max-age", nil, 200, []string{"Cache-Control", "max-age=60", "Age", "100"}, false},
		{"trailer", nil, 200, []string{"Cache-Control", "max-age=60", "Trailer", "X-Sum"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			o := newOrigin(tt.kv...)
			o.status = tt.status
			h := newCache(t, append([]cache.Option{cache.WithClock(clk.Now)}, tt.opts...)...).Wrap(o)
			first := get(h, "/r")
			if first.status != tt.status {
				t.Fatalf("status = %d", first.status)
			}
			second := get(h, "/r")
			if got := second.xcache() == "HIT"; got != tt.stored {
				t.Fatalf("stored = %v, want %v (X-Cache %q)", got, tt.stored, second.xcache())
			}
			if tt.stored && second.status != tt.status {
				t.Fatalf("hit status = %d", second.status)
			}
		})
	}
}

func TestSetCookieStrippedFromHits(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60", "Set-Cookie", "session=leader")
	h := newCache(t, cache.StripSetCookie()).Wrap(o)
	if r := get(h, "/c"); r.h.Get("Set-Cookie") != "session=leader" {
		t.Fatalf("the fetching client lost its cookie: %v", r.h)
	}
	r := get(h, "/c")
	if r.xcache() != "HIT" || r.h.Get("Set-Cookie") != "" {
		t.Fatalf("hit = %+v", r)
	}
}

func TestQualifiedNoCacheFieldsNotStored(t *testing.T) {
	o := newOrigin("Cache-Control", `max-age=60, no-cache="X-Secret", private="X-Mine"`, "X-Secret", "s", "X-Mine", "m", "X-Ok", "ok")
	h := newCache(t).Wrap(o)
	get(h, "/q")
	r := get(h, "/q")
	if r.xcache() != "HIT" || r.h.Get("X-Secret") != "" || r.h.Get("X-Mine") != "" || r.h.Get("X-Ok") != "ok" {
		t.Fatalf("hit = %+v", r)
	}
}

func TestTTLExpiryFakeClock(t *testing.T) {
	clk := newClock()
	o := newOrigin()
	h := newCache(t, cache.TTL(time.Minute), cache.WithClock(clk.Now)).Wrap(o)
	get(h, "/t")
	clk.Advance(59 * time.Second)
	if r := get(h, "/t"); r.xcache() != "HIT" || r.h.Get("Age") != "59" {
		t.Fatalf("at 59s: %+v", r)
	}
	clk.Advance(time.Second)
	if r := get(h, "/t"); r.xcache() != "MISS" || r.body != "call=2 path=/t" {
		t.Fatalf("at 60s: %+v", r)
	}
	if r := get(h, "/t"); r.xcache() != "HIT" || r.h.Get("Age") != "0" {
		t.Fatalf("after refetch: %+v", r)
	}
}

func TestUpstreamLifetimeAndMaxTTL(t *testing.T) {
	clk := newClock()
	o := newOrigin("Cache-Control", "max-age=3600", "Age", "10")
	h := newCache(t, cache.TTL(time.Minute), cache.MaxTTL(2*time.Minute), cache.WithClock(clk.Now)).Wrap(o)
	get(h, "/m")
	if r := get(h, "/m"); r.h.Get("Age") != "10" {
		t.Fatalf("upstream Age not counted: %q", r.h.Get("Age"))
	}
	clk.Advance(109 * time.Second) // age 119 s < MaxTTL 120 s
	if r := get(h, "/m"); r.xcache() != "HIT" {
		t.Fatalf("at age 119s: %q", r.xcache())
	}
	clk.Advance(time.Second)
	if r := get(h, "/m"); r.xcache() != "MISS" {
		t.Fatalf("MaxTTL not applied: %q", r.xcache())
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	clk := newClock()
	o := newOrigin("Cache-Control", "max-age=10")
	c := newCache(t, cache.StaleWhileRevalidate(30*time.Second), cache.WithClock(clk.Now))
	h := c.Wrap(o)
	get(h, "/s")
	clk.Advance(15 * time.Second)
	r := get(h, "/s")
	if r.xcache() != "STALE" || r.body != "call=1 path=/s" {
		t.Fatalf("stale = %+v", r)
	}
	waitFor(t, func() bool { return get(h, "/s").body == "call=2 path=/s" })
	if r := get(h, "/s"); r.xcache() != "HIT" || o.calls.Load() != 2 {
		t.Fatalf("after revalidation: %+v calls %d", r, o.calls.Load())
	}
	clk.Advance(41 * time.Second) // past fresh + stale window
	if r := get(h, "/s"); r.xcache() != "MISS" {
		t.Fatalf("past the stale window: %q", r.xcache())
	}

}

func TestStaleWindowDirectives(t *testing.T) {
	tests := []struct {
		cc   string
		want string // X-Cache 15 s after a fetch, with StaleWhileRevalidate(30s)
	}{
		{"max-age=10", "STALE"},
		{"max-age=10, must-revalidate", "MISS"},
		{"max-age=10, proxy-revalidate", "MISS"},
		{"s-maxage=10", "MISS"},
		{"s-maxage=10, stale-while-revalidate=30", "STALE"},
		{"max-age=10, stale-while-revalidate=2", "MISS"},
		{"max-age=20", "HIT"},
	}
	for _, tt := range tests {
		t.Run(tt.cc, func(t *testing.T) {
			clk := newClock()
			o := newOrigin("Cache-Control", tt.cc)
			h := newCache(t, cache.StaleWhileRevalidate(30*time.Second), cache.WithClock(clk.Now)).Wrap(o)
			get(h, "/s")
			clk.Advance(15 * time.Second)
			if r := get(h, "/s"); r.xcache() != tt.want {
				t.Fatalf("X-Cache = %q, want %q", r.xcache(), tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingOrigin holds every request until release is closed.
type blockingOrigin struct {
	origin
	release chan struct{}
	entered chan struct{}
}

func (b *blockingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	b.origin.ServeHTTP(w, r)
}

func TestSingleflight100ConcurrentMisses(t *testing.T) {
	b := &blockingOrigin{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	b.header = http.Header{"Cache-Control": {"max-age=60"}}
	c := newCache(t)
	h := c.Wrap(b)

	const n = 100
	results := burst(t, h, "/hot", n, b.entered, b.release)
	if got := b.calls.Load(); got != 1 {
		t.Fatalf("upstream calls = %d, want 1", got)
	}
	misses := 0
	for _, r := range results {
		if r.body != "call=1 path=/hot" || r.status != 200 {
			t.Fatalf("waiter got %+v", r)
		}
		if r.xcache() == "MISS" {
			misses++
		}
	}
	if misses != 1 {
		t.Fatalf("MISS responses = %d, want 1", misses)
	}
}

func TestSingleflightUncacheableWaitersFetchThemselves(t *testing.T) {
	b := &blockingOrigin{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	b.header = http.Header{"Cache-Control": {"no-store"}}
	h := newCache(t).Wrap(b)
	var wg sync.WaitGroup
	bodies := make([]string, 5)
	for i := range 5 {
		wg.Go(func() { bodies[i] = get(h, "/private").body })
	}
	<-b.entered
	time.Sleep(50 * time.Millisecond)
	close(b.release)
	wg.Wait()
	seen := map[string]bool{}
	for _, body := range bodies {
		seen[body] = true
	}
	if len(seen) != 5 || b.calls.Load() != 5 {
		t.Fatalf("a no-store response was shared: %v (calls %d)", bodies, b.calls.Load())
	}
}

func TestSingleflightVaryMismatchNotShared(t *testing.T) {
	b := &blockingOrigin{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	b.header = http.Header{"Cache-Control": {"max-age=60"}, "Vary": {"Accept-Language"}}
	b.body = func(r *http.Request, n int64) string { return r.Header.Get("Accept-Language") }
	h := newCache(t).Wrap(b)
	var wg sync.WaitGroup
	var en, de resp
	wg.Go(func() { en = get(h, "/v", header("Accept-Language", "en")) })
	<-b.entered
	wg.Go(func() { de = get(h, "/v", header("Accept-Language", "de")) })
	time.Sleep(50 * time.Millisecond)
	close(b.release)
	wg.Wait()
	if en.body != "en" || de.body != "de" {
		t.Fatalf("en=%q de=%q", en.body, de.body)
	}
}

func TestEntrySizeBound(t *testing.T) {
	big := strings.Repeat("x", 2048)
	o := newOrigin("Cache-Control", "max-age=60")
	o.body = func(r *http.Request, n int64) string {
		if r.URL.Path == "/big" {
			return big
		}
		return "small"
	}
	h := newCache(t, cache.MaxEntryBytes(1024)).Wrap(o)
	for i := range 2 {
		r := get(h, "/big")
		if r.body != big || r.xcache() != "MISS" {
			t.Fatalf("big #%d: X-Cache %q, %d bytes", i, r.xcache(), len(r.body))
		}
	}
	get(h, "/small")
	if r := get(h, "/small"); r.xcache() != "HIT" {
		t.Fatalf("small = %q", r.xcache())
	}
}

func TestTruncatedBodyNotStored(t *testing.T) {
	h := newCache(t).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "100")
		_, _ = io.WriteString(w, "only part")
	}))
	get(h, "/t")
	if r := get(h, "/t"); r.xcache() != "MISS" {
		t.Fatalf("truncated body served from the cache: %q", r.xcache())
	}
}

func TestOuterMiddlewareHeadersNotStored(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	inner := newCache(t).Wrap(o)
	var n atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-"+strconv.FormatInt(n.Add(1), 10))
		inner.ServeHTTP(w, r)
	})
	get(h, "/o")
	r := get(h, "/o")
	if r.xcache() != "HIT" || r.h.Values("X-Request-Id")[0] != "req-2" || len(r.h.Values("X-Request-Id")) != 1 {
		t.Fatalf("hit replayed another request's ID: %v", r.h)
	}
}

func TestQueryKey(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t).Wrap(o)
	get(h, "/q?b=2&a=1")
	if r := get(h, "/q?a=1&b=2"); r.xcache() != "HIT" {
		t.Fatalf("reordered query: %q", r.xcache())
	}
	if r := get(h, "/q?a=%31&b=2"); r.xcache() != "HIT" {
		t.Fatalf("escaped query: %q", r.xcache())
	}
	if r := get(h, "/q?a=1&b=3"); r.xcache() != "MISS" {
		t.Fatalf("other value: %q", r.xcache())
	}
	if r := get(h, "/q?a=1;b=2"); r.xcache() != "BYPASS" {
		t.Fatalf("semicolon query: %q", r.xcache())
	}
	if r := get(h, "/q?a=%zz"); r.xcache() != "BYPASS" {
		t.Fatalf("bad escape: %q", r.xcache())
	}

	o2 := newOrigin("Cache-Control", "max-age=60")
	h2 := newCache(t, cache.Query("page"), cache.KeyHeaders("X-Tenant")).Wrap(o2)
	get(h2, "/l?page=1&utm=a", header("X-Tenant", "t1"))
	if r := get(h2, "/l?utm=b&page=1", header("X-Tenant", "t1")); r.xcache() != "HIT" {
		t.Fatalf("ignored param changed the key: %q", r.xcache())
	}
	if r := get(h2, "/l?page=1", header("X-Tenant", "t2")); r.xcache() != "MISS" {
		t.Fatalf("key header ignored: %q", r.xcache())
	}

	o3 := newOrigin("Cache-Control", "max-age=60")
	h3 := newCache(t, cache.IgnoreQuery()).Wrap(o3)
	get(h3, "/i?x=1")
	if r := get(h3, "/i?x=2"); r.xcache() != "HIT" {
		t.Fatalf("IgnoreQuery: %q", r.xcache())
	}
}

func TestConditionalRequests(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60", "ETag", `"v1"`, "Content-Type", "text/plain")
	h := newCache(t).Wrap(o)
	get(h, "/e")
	r := get(h, "/e", header("If-None-Match", `"v1"`))
	if r.status != http.StatusNotModified || r.xcache() != "HIT" || r.body != "" {
		t.Fatalf("If-None-Match hit = %+v", r)
	}
	r = get(h, "/e", header("Range", "bytes=0-3"))
	if r.status != http.StatusPartialContent || r.body != "call" {
		t.Fatalf("Range hit = %+v", r)
	}
	if o.calls.Load() != 1 {
		t.Fatalf("calls = %d", o.calls.Load())
	}
	// A conditional miss goes upstream alone and is answered by it.
	if r := get(h, "/other", header("If-None-Match", `"x"`)); r.status != 200 || r.xcache() != "MISS" {
		t.Fatalf("conditional miss = %+v", r)
	}
}

func TestPanicPropagatesAndIsNotCached(t *testing.T) {
	var calls atomic.Int64
	h := newCache(t, cache.TTL(time.Minute)).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Fatalf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		get(h, "/p")
	}()
	if r := get(h, "/p"); r.body != "ok" || r.xcache() != "MISS" {
		t.Fatalf("after panic: %+v", r)
	}
}

// failingStore fails every call, like an unreachable remote store.
type failingStore struct{ gets, sets atomic.Int64 }

func (f *failingStore) Get(context.Context, string) (*cache.Entry, error) {
	f.gets.Add(1)
	return nil, fmt.Errorf("store down")
}

func (f *failingStore) Set(context.Context, string, *cache.Entry, time.Duration) error {
	f.sets.Add(1)
	return fmt.Errorf("store down")
}

func TestStoreFailureBypasses(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	fs := &failingStore{}
	h := newCache(t, cache.WithStore(fs)).Wrap(o)
	for range 3 {
		if r := get(h, "/f"); r.status != 200 || r.xcache() != "BYPASS" || !strings.HasPrefix(r.body, "call=") {
			t.Fatalf("with a failing store: %+v", r)
		}
	}
	if fs.gets.Load() != 3 || o.calls.Load() != 3 {
		t.Fatalf("gets %d calls %d", fs.gets.Load(), o.calls.Load())
	}
}

// slowStore blocks until its context ends, like a store that does not answer.
type slowStore struct{}

func (slowStore) Get(ctx context.Context, _ string) (*cache.Entry, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (slowStore) Set(ctx context.Context, _ string, _ *cache.Entry, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestStoreTimeoutBounded(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t, cache.WithStore(slowStore{}), cache.StoreTimeout(20*time.Millisecond)).Wrap(o)
	done := make(chan resp, 1)
	go func() { done <- get(h, "/slow") }()
	select {
	case r := <-done:
		if r.xcache() != "BYPASS" || r.status != 200 {
			t.Fatalf("slow store: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request hung on a store that does not answer")
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		opt  cache.Option
	}{
		{"nil option", nil},
		{"zero TTL", cache.TTL(0)},
		{"negative MaxTTL", cache.MaxTTL(-time.Second)},
		{"zero SWR", cache.StaleWhileRevalidate(0)},
		{"zero RevalidateTimeout", cache.RevalidateTimeout(0)},
		{"negative RevalidateWindow", cache.RevalidateWindow(-time.Second)},
		{"empty Query", cache.Query()},
		{"empty Query name", cache.Query("")},
		{"bad header", cache.KeyHeaders("Bad Header")},
		{"no statuses", cache.Statuses()},
		{"206", cache.Statuses(206)},
		{"99", cache.Statuses(99)},
		{"zero MaxEntryBytes", cache.MaxEntryBytes(0)},
		{"nil store", cache.WithStore(nil)},
		{"tiny memory store", cache.WithStore(cache.MemoryStore(10))},
		{"nil redis client", cache.WithStore(cache.RedisStore(nil))},
		{"empty redis prefix", cache.WithStore(cache.RedisStore(redisClientForValidation(t), cache.KeyPrefix("")))},
		{"redis prefix with a brace", cache.WithStore(cache.RedisStore(redisClientForValidation(t), cache.KeyPrefix("app{1}:")))},
		{"zero StoreTimeout", cache.StoreTimeout(0)},
		{"nil clock", cache.WithClock(nil)},
		{"nil logger", cache.WithLogger(nil)},
		{"nil meter provider", cache.WithMeterProvider(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New(tt.opt)
			if err == nil {
				_ = c.Close()
				t.Fatal("New accepted an invalid option")
			}
			if !strings.HasPrefix(err.Error(), "cache: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
	if _, err := cache.New(cache.TTL(time.Hour), cache.MaxTTL(time.Minute)); err == nil {
		t.Fatal("TTL above MaxTTL accepted")
	}
}

func TestStreamingRequestsBypass(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t).Wrap(o)
	for _, mod := range []func(*http.Request){header("Upgrade", "websocket"), header("Accept", "text/event-stream")} {
		get(h, "/s", mod)
		if r := get(h, "/s", mod); r.xcache() != "BYPASS" {
			t.Fatalf("X-Cache = %q", r.xcache())
		}
	}
}

// entryStore serves one entry built by the test, as a custom store decoding its own format would.
type entryStore struct{ e *cache.Entry }

func (s entryStore) Get(context.Context, string) (*cache.Entry, error) { return s.e, nil }
func (s entryStore) Set(context.Context, string, *cache.Entry, time.Duration) error {
	return nil
}

func TestCustomStoreEntry(t *testing.T) {
	now := time.Now()
	e := &cache.Entry{Status: 203, Header: http.Header{"X-A": {"1", "2"}, "Content-Length": {"2"}}, Body: []byte("hi"),
		Born: now.Add(-5 * time.Second), FreshUntil: now.Add(time.Minute), StaleUntil: now.Add(time.Minute), Generation: 7}
	// entryStore answers every key with e, the path's generation marker too (generation 7).
	h := newCache(t, cache.WithStore(entryStore{e})).Wrap(newOrigin())
	r := get(h, "/any")
	if r.status != 203 || r.body != "hi" || r.xcache() != "HIT" || len(r.h.Values("X-A")) != 2 || r.h.Get("Age") != "5" {
		t.Fatalf("custom entry = %+v", r)
	}
}

func TestConcurrentUsersNeverShareAFlight(t *testing.T) {
	b := &blockingOrigin{release: make(chan struct{}), entered: make(chan struct{}, 1)}
	b.header = http.Header{"Cache-Control": {"private, max-age=60"}}
	h := newCache(t, cache.PerIdentity()).Wrap(b)
	var wg sync.WaitGroup
	users := []string{"alice", "bob"}
	got := make([]resp, 20)
	for i := range got {
		wg.Go(func() { got[i] = get(h, "/me", as(users[i%2])) })
	}
	<-b.entered
	time.Sleep(50 * time.Millisecond)
	close(b.release)
	wg.Wait()
	for i, r := range got {
		if !strings.HasSuffix(r.body, "user="+users[i%2]) {
			t.Fatalf("request of %s got %q", users[i%2], r.body)
		}
	}
	if n := b.calls.Load(); n != 2 {
		t.Fatalf("upstream calls = %d, want one per user", n)
	}
}

func TestCloseWaitsForRevalidation(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{})
	c, err := cache.New(cache.StaleWhileRevalidate(time.Minute), cache.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		if calls.Add(1) == 2 {
			close(started)
			<-release
		}
		_, _ = io.WriteString(w, "v")
	}))
	get(h, "/r")
	clk.Advance(20 * time.Second)
	if r := get(h, "/r"); r.xcache() != "STALE" {
		t.Fatalf("X-Cache = %q", r.xcache())
	}
	<-started
	closed := make(chan struct{})
	go func() { _ = c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a revalidation was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if r := get(h, "/r"); r.xcache() != "HIT" { // refreshed entry; no new revalidation after Close
		t.Fatalf("after Close: %q", r.xcache())
	}
}

// An outer middleware (CORS, a BFF with header variants) that adds "Vary: Origin" before the
// cache runs must not make the cache forget the upstream's own Vary: the response is still keyed
// on Accept-Language, and both Vary values reach the client on a hit.
func TestOuterVaryKeepsUpstreamVary(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	o.header = nil
	o.body = func(r *http.Request, n int64) string { return r.Header.Get("Accept-Language") }
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Add("Vary", "Accept-Language")
		o.ServeHTTP(w, r)
	})
	inner := newCache(t).Wrap(upstream)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		inner.ServeHTTP(w, r)
	})
	en1 := get(h, "/v", header("Accept-Language", "en"))
	de1 := get(h, "/v", header("Accept-Language", "de"))
	en2 := get(h, "/v", header("Accept-Language", "en"))
	if en1.body != "en" || de1.body != "de" || en2.body != "en" {
		t.Fatalf("bodies en=%q de=%q en=%q: the upstream's Vary was lost", en1.body, de1.body, en2.body)
	}
	if en2.xcache() != "HIT" || o.calls.Load() != 2 {
		t.Fatalf("X-Cache %q, calls %d", en2.xcache(), o.calls.Load())
	}
	if got := en2.h.Values("Vary"); len(got) != 2 || got[0] != "Origin" || got[1] != "Accept-Language" {
		t.Fatalf("Vary on a hit = %q, want [Origin Accept-Language]", got)
	}
}

// An upstream that replaces the outer Vary (Set instead of Add) still has its Vary honoured.
func TestOuterVaryReplacedByUpstream(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60", "Vary", "Accept-Language") // replaces the field
	o.body = func(r *http.Request, n int64) string { return r.Header.Get("Accept-Language") }
	inner := newCache(t).Wrap(o)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Origin")
		inner.ServeHTTP(w, r)
	})
	en := get(h, "/v", header("Accept-Language", "en"))
	de := get(h, "/v", header("Accept-Language", "de"))
	if en.body != "en" || de.body != "de" || o.calls.Load() != 2 {
		t.Fatalf("en=%q de=%q calls %d: the upstream's Vary was lost", en.body, de.body, o.calls.Load())
	}
}

// stuckWriter is a client that stops reading: Write blocks until release is closed.
type stuckWriter struct {
	*httptest.ResponseRecorder
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *stuckWriter) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	return s.ResponseRecorder.Write(p)
}

// A leader whose client reads slowly (or not at all) must not hold the requests that wait on its
// flight: they get the upstream's response as soon as the upstream is done.
func TestSlowLeaderClientDoesNotStallWaiters(t *testing.T) {
	o := newOrigin("Cache-Control", "max-age=60")
	h := newCache(t).Wrap(o)
	leader := &stuckWriter{ResponseRecorder: httptest.NewRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		h.ServeHTTP(leader, httptest.NewRequest("GET", "/hot", nil))
	}()
	<-leader.entered // the leader's client is now stuck
	waiter := make(chan resp, 1)
	go func() { waiter <- get(h, "/hot") }()
	select {
	case r := <-waiter:
		if r.body != "call=1 path=/hot" || o.calls.Load() != 1 {
			t.Errorf("waiter got %+v after %d upstream calls", r, o.calls.Load())
		}
	case <-time.After(10 * time.Second):
		t.Error("a waiter was held by the leader's stuck client")
		defer func() { <-waiter }() // it ends once the leader's client is released
	}
	close(leader.release)
	<-leaderDone
	if leader.Body.String() != "call=1 path=/hot" || leader.Header().Get("X-Cache") != "MISS" || leader.Code != 200 {
		t.Fatalf("leader got %d %q %v", leader.Code, leader.Body.String(), leader.Header())
	}
}

// A leader's response is held for its waiters only while it can be stored: a handler that
// flushes streams to its client at once, and so does a body over MaxEntryBytes.
func TestLeaderStreamsWhatIsNotHeld(t *testing.T) {
	tests := []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"flush", func(w http.ResponseWriter) {
			_, _ = io.WriteString(w, "first")
			_ = http.NewResponseController(w).Flush()
		}},
		{"over MaxEntryBytes", func(w http.ResponseWriter) { _, _ = io.WriteString(w, "first"+strings.Repeat("x", 2048)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wrote, finish := make(chan struct{}), make(chan struct{})
			h := newCache(t, cache.MaxEntryBytes(1024)).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				tt.write(w)
				close(wrote)
				<-finish
			}))
			w := httptest.NewRecorder()
			done := make(chan struct{})
			go func() { defer close(done); h.ServeHTTP(w, httptest.NewRequest("GET", "/s", nil)) }()
			<-wrote
			// The handler is still running; its first bytes must already be with the client.
			// (ResponseRecorder is not synchronised: read it only after the handler wrote.)
			got := strings.HasPrefix(w.Body.String(), "first") && w.Code == 200
			close(finish)
			<-done
			if !got {
				t.Fatalf("nothing reached the client while the handler ran")
			}
		})
	}
}

// Background revalidations are bounded: a burst of requests for many distinct stale entries
// (each answered at once from the cache) must not start one goroutine and one upstream request
// per entry.
func TestRevalidationsAreBounded(t *testing.T) {
	clk := newClock()
	var phase atomic.Int64 // 0: filling; 1: revalidating (blocks until release)
	var running, peak atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	c := newCache(t, cache.StaleWhileRevalidate(time.Minute), cache.WithClock(clk.Now))
	t.Cleanup(unblock) // runs before newCache's Close, also when the test fails early
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		if phase.Load() == 1 {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-release
			running.Add(-1)
		}
		_, _ = io.WriteString(w, "v")
	}))
	const n = cache.MaxRevalidations * 3
	for i := range n {
		get(h, "/k?i="+strconv.Itoa(i))
	}
	clk.Advance(20 * time.Second)
	phase.Store(1)
	for i := range n {
		if r := get(h, "/k?i="+strconv.Itoa(i)); r.xcache() != "STALE" {
			t.Fatalf("request %d: %q", i, r.xcache())
		}
	}
	waitFor(t, func() bool { return running.Load() >= cache.MaxRevalidations })
	unblock()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > cache.MaxRevalidations {
		t.Fatalf("%d concurrent revalidations, want at most %d", p, cache.MaxRevalidations)
	}
}

// replayStore returns a saved entry for the next Get, once: a request that read an entry just
// before a revalidation replaced it.
type replayStore struct {
	*cache.Memory
	mu    sync.Mutex
	stale *cache.Entry
}

func (s *replayStore) Get(ctx context.Context, key string) (*cache.Entry, error) {
	s.mu.Lock()
	e := s.stale
	s.stale = nil
	s.mu.Unlock()
	if e != nil {
		return e, nil
	}
	return s.Memory.Get(ctx, key)
}

// A request that saw the stale entry just before a revalidation refreshed it must not start a
// second upstream request for the same key: the background fetch finds the fresh entry and stops.
func TestNoRevalidationOfAFreshEntry(t *testing.T) {
	clk := newClock()
	o := newOrigin("Cache-Control", "max-age=10")
	store := &replayStore{Memory: cache.MemoryStore(1 << 20)}
	c := newCache(t, cache.WithStore(store), cache.StaleWhileRevalidate(30*time.Second), cache.WithClock(clk.Now))
	h := c.Wrap(o)
	get(h, "/s")
	key, _ := c.PrimaryKey(httptest.NewRequest("GET", "/s", nil), nil)
	old, err := store.Memory.Get(context.Background(), key)
	if err != nil || old == nil {
		t.Fatalf("entry %v, %v", old, err)
	}
	clk.Advance(15 * time.Second)
	if r := get(h, "/s"); r.xcache() != "STALE" {
		t.Fatalf("X-Cache %q", r.xcache())
	}
	waitFor(t, func() bool { return get(h, "/s").xcache() == "HIT" }) // refreshed: call 2
	store.mu.Lock()
	store.stale = old // the next request read the entry before the refresh landed
	store.mu.Unlock()
	if r := get(h, "/s"); r.xcache() != "STALE" {
		t.Fatalf("X-Cache %q", r.xcache())
	}
	if err := c.Close(); err != nil { // waits for the background revalidation
		t.Fatal(err)
	}
	if n := o.calls.Load(); n != 2 {
		t.Fatalf("upstream calls = %d, want 2: a fresh entry was revalidated", n)
	}
}

// A JWT "sub" is unique only per issuer: with two identity providers, the same subject from
// another issuer is another person and must not get the first one's entries.
func TestPerUserIsolationAcrossIssuers(t *testing.T) {
	o := newOrigin("Cache-Control", "private, max-age=60")
	o.body = func(r *http.Request, n int64) string {
		id, _ := gatewaykit.IdentityFrom(r.Context())
		return id.Claims["iss"].(string)
	}
	h := newCache(t, cache.PerIdentity()).Wrap(o)
	from := func(iss string) func(*http.Request) {
		return func(r *http.Request) {
			id := &gatewaykit.Identity{Subject: "123", Method: "jwt", Claims: map[string]any{"sub": "123", "iss": iss}}
			*r = *r.WithContext(gatewaykit.WithIdentity(r.Context(), id))
		}
	}
	get(h, "/me", from("https://idp-a.example"))
	r := get(h, "/me", from("https://idp-b.example"))
	if r.xcache() != "MISS" || !strings.HasPrefix(r.body, "https://idp-b.example") {
		t.Fatalf("subject 123 of idp-b got %+v", r)
	}
	if r := get(h, "/me", from("https://idp-a.example")); r.xcache() != "HIT" || !strings.HasPrefix(r.body, "https://idp-a.example") {
		t.Fatalf("subject 123 of idp-a got %+v", r)
	}
}

// Trailers set after the body (declared in Trailer, or with the http.TrailerPrefix) reach the
// client of a coalescing leader.
func TestLeaderTrailers(t *testing.T) {
	tests := []struct {
		name  string
		serve func(w http.ResponseWriter)
	}{
		{"declared", func(w http.ResponseWriter) {
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "abc")
		}},
		{"prefix", func(w http.ResponseWriter) {
			_, _ = io.WriteString(w, "body")
			w.Header().Set(http.TrailerPrefix+"X-Sum", "abc")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newCache(t).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				tt.serve(w)
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()
			res, err := srv.Client().Get(srv.URL + "/t")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if string(body) != "body" || res.Trailer.Get("X-Sum") != "abc" {
				t.Fatalf("body %q trailer %v", body, res.Trailer)
			}
		})
	}
}

// The initial age is the larger of the upstream's Age and the apparent age from its Date (RFC 9111
// §4.2.3), and the freshness lifetime counts from it. A Date in the future never makes the age
// negative; an invalid Date leaves the Age header alone.
func TestApparentAgeFromDate(t *testing.T) {
	base := newClock().Now()
	tests := []struct {
		name      string
		kv        []string
		age       string        // Age of the first hit, at the time of the fetch
		freshLeft time.Duration // how long the entry is served as HIT
	}{
		{"date 30 s ago", []string{"Date", base.Add(-30 * time.Second).Format(http.TimeFormat)}, "30", 30 * time.Second},
		{"date in the future", []string{"Date", base.Add(time.Hour).Format(http.TimeFormat)}, "0", time.Minute},
		{"invalid date, Age", []string{"Date", "yesterday", "Age", "5"}, "5", 55 * time.Second},
		{"no date, Age", []string{"Age", "5"}, "5", 55 * time.Second},
		{"Age above apparent age", []string{"Date", base.Add(-10 * time.Second).Format(http.TimeFormat), "Age", "20"}, "20", 40 * time.Second},
		{"apparent age above Age", []string{"Date", base.Add(-20 * time.Second).Format(http.TimeFormat), "Age", "10"}, "20", 40 * time.Second},
		{"date far in the past", []string{"Date", "Mon, 01 Jan 1900 00:00:00 GMT"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			o := newOrigin(append([]string{"Cache-Control", "max-age=60"}, tt.kv...)...)
			h := newCache(t, cache.WithClock(clk.Now)).Wrap(o)
			get(h, "/a")
			r := get(h, "/a")
			if tt.freshLeft == 0 {
				expectCache(t, "stale on arrival", r, "MISS")
				return
			}
			if r.xcache() != "HIT" || r.h.Get("Age") != tt.age {
				t.Fatalf("first hit: X-Cache %q Age %q, want HIT %s", r.xcache(), r.h.Get("Age"), tt.age)
			}
			clk.Advance(tt.freshLeft - time.Second)
			expectCache(t, "1 s before expiry", get(h, "/a"), "HIT")
			clk.Advance(time.Second)
			expectCache(t, "at expiry", get(h, "/a"), "MISS")
		})
	}
}

// Expires is measured from Date and the lifetime from the apparent age, so an Expires response
// whose Date is in the past expires at Expires, not Expires plus the delay.
func TestApparentAgeWithExpires(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	o := newOrigin("Date", now.Add(-30*time.Second).Format(http.TimeFormat), "Expires", now.Add(30*time.Second).Format(http.TimeFormat))
	h := newCache(t, cache.WithClock(clk.Now)).Wrap(o)
	get(h, "/x")
	if r := get(h, "/x"); r.xcache() != "HIT" || r.h.Get("Age") != "30" {
		t.Fatalf("hit: %+v", r)
	}
	clk.Advance(29 * time.Second)
	expectCache(t, "before Expires", get(h, "/x"), "HIT")
	clk.Advance(time.Second)
	expectCache(t, "at Expires", get(h, "/x"), "MISS")
}

// burst sends n concurrent GETs for path to h while the origin holds its first request: it waits
// for the leader to be upstream (entered) and for every request to start, lets the others reach
// the flight, then releases the origin and returns the n responses.
func burst(t *testing.T, h http.Handler, path string, n int, entered <-chan struct{}, release chan struct{}) []resp {
	t.Helper()
	var wg sync.WaitGroup
	var started atomic.Int64
	results := make([]resp, n)
	for i := range n {
		wg.Go(func() {
			started.Add(1)
			results[i] = get(h, path)
		})
	}
	<-entered // the leader is upstream
	waitFor(t, func() bool { return started.Load() == int64(n) })
	time.Sleep(50 * time.Millisecond) // let the others reach the flight (more would only make it stricter)
	close(release)
	wg.Wait()
	return results
}
