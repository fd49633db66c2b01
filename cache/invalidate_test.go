package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gatewaykit/gatewaykit/cache"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

// site is an upstream with state: GET and HEAD answer the current version (cacheable for 60 s),
// unsafe methods change it and answer unsafeStatus (201 by default) with unsafeHeader.
type site struct {
	version      atomic.Int64
	gets         atomic.Int64
	unsafeStatus atomic.Int64
	unsafeHeader http.Header
	vary         bool                           // Vary: Accept-Language, and the language in the body
	beforeAnswer func(r *http.Request, n int64) // called by GET number n after it read the version
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		n := s.gets.Add(1)
		v := s.version.Load()
		if s.beforeAnswer != nil {
			s.beforeAnswer(r, n)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		body := fmt.Sprintf("v=%d path=%s query=%s", v, r.URL.Path, r.URL.RawQuery)
		if s.vary {
			w.Header().Set("Vary", "Accept-Language")
			body += " lang=" + r.Header.Get("Accept-Language")
		}
		if as := r.Header.Get("Authorization"); as != "" {
			body += " auth=" + as
		}
		_, _ = io.WriteString(w, body)
		return
	}
	s.version.Add(1)
	for k, vs := range s.unsafeHeader {
		w.Header()[k] = vs
	}
	status := int(s.unsafeStatus.Load())
	if status == 0 {
		status = http.StatusCreated
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "changed")
}

// plainStore hides the package's store type, so the middleware keeps generations through Get and
// Set only, as with any custom store.
type plainStore struct{ cache.Store }

// eachStore runs f with a fresh store of every kind: in memory, in a private Redis, and a custom
// store (generations through Get/Set).
func eachStore(t *testing.T, f func(t *testing.T, newStore func() cache.Store)) {
	t.Run("memory", func(t *testing.T) {
		m := cache.MemoryStore(16 << 20)
		t.Cleanup(func() { _ = m.Close() })
		f(t, func() cache.Store { return m })
	})
	t.Run("redis", func(t *testing.T) {
		rdb := redistest.Start(t).Client()
		f(t, func() cache.Store { return cache.RedisStore(rdb) })
	})
	t.Run("custom", func(t *testing.T) {
		m := cache.MemoryStore(16 << 20)
		t.Cleanup(func() { _ = m.Close() })
		f(t, func() cache.Store { return plainStore{m} })
	})
}

func expectCache(t *testing.T, what string, r resp, xcache string) {
	t.Helper()
	if r.xcache() != xcache {
		t.Fatalf("%s: X-Cache %q, want %s (status %d, body %q)", what, r.xcache(), xcache, r.status, r.body)
	}
}

func TestUnsafeRequestInvalidatesPath(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		s := &site{}
		h := newCache(t, cache.WithStore(newStore())).Wrap(s)
		get(h, "/items")
		expectCache(t, "before", get(h, "/items"), "HIT")
		expectCache(t, "other path", get(h, "/other"), "MISS")

		r := do(h, http.MethodPost, "/items")
		if r.status != http.StatusCreated || r.xcache() != "BYPASS" {
			t.Fatalf("POST: %+v", r)
		}
		after := get(h, "/items")
		expectCache(t, "after POST", after, "MISS")
		if !strings.HasPrefix(after.body, "v=1 ") {
			t.Fatalf("after POST: %q, want version 1", after.body)
		}
		expectCache(t, "after POST, again", get(h, "/items"), "HIT")
		expectCache(t, "another path is not invalidated", get(h, "/other"), "HIT")

		// An error response changes nothing the cache knows of.
		for _, status := range []int{400, 404, 500, 503} {
			s.unsafeStatus.Store(int64(status))
			if r := do(h, http.MethodPost, "/items"); r.status != status {
				t.Fatalf("POST: status %d, want %d", r.status, status)
			}
			expectCache(t, fmt.Sprintf("after POST %d", status), get(h, "/items"), "HIT")
		}

		// Every unsafe method, 2xx and 3xx; safe methods never.
		for _, tc := range []struct {
			method     string
			status     int
			invalidate bool
		}{
			{http.MethodPut, 200, true},
			{http.MethodPatch, 204, true},
			{http.MethodDelete, 202, true},
			{"PURGE", 200, true}, // any method not known to be safe
			{http.MethodPost, 303, true},
			{http.MethodPost, 399, true},
			{http.MethodOptions, 200, false},
			{http.MethodTrace, 200, false},
		} {
			get(h, "/items")
			expectCache(t, "before "+tc.method, get(h, "/items"), "HIT")
			s.unsafeStatus.Store(int64(tc.status))
			do(h, tc.method, "/items")
			want := "HIT"
			if tc.invalidate {
				want = "MISS"
			}
			expectCache(t, fmt.Sprintf("after %s %d", tc.method, tc.status), get(h, "/items"), want)
		}
	})
}

func TestInvalidationCoversQueriesIdentitiesAndVariants(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		s := &site{vary: true}
		h := newCache(t, cache.WithStore(newStore()), cache.PerIdentity()).Wrap(s)
		variants := []struct {
			target string
			mods   []func(*http.Request)
		}{
			{"/d", nil},
			{"/d?page=2", nil},
			{"/d?page=2&sort=name", nil},
			{"/d", []func(*http.Request){as("alice")}},
			{"/d?page=2", []func(*http.Request){as("alice")}},
			{"/d", []func(*http.Request){as("bob")}},
			{"/d", []func(*http.Request){header("Accept-Language", "en")}},
			{"/d", []func(*http.Request){header("Accept-Language", "de"), as("alice")}},
		}
		for _, v := range variants {
			get(h, v.target, v.mods...)
			expectCache(t, "before: "+v.target, get(h, v.target, v.mods...), "HIT")
		}
		get(h, "/d/sub")
		get(h, "/e?x=/d")

		if r := do(h, http.MethodPatch, "/d?page=9", as("carol")); r.status != http.StatusCreated {
			t.Fatalf("PATCH: %+v", r)
		}
		for _, v := range variants {
			r := get(h, v.target, v.mods...)
			expectCache(t, "after: "+v.target, r, "MISS")
			if !strings.HasPrefix(r.body, "v=1 ") {
				t.Fatalf("after: %s: %q", v.target, r.body)
			}
		}
		expectCache(t, "a longer path", get(h, "/d/sub"), "HIT")
		expectCache(t, "another path with the path in its query", get(h, "/e?x=/d"), "HIT")
	})
}

func TestLocationAndContentLocationInvalidated(t *testing.T) {
	tests := []struct {
		name, field, value, path string
		invalidated              bool
	}{
		{"absolute path", "Location", "/orders/o1", "/orders/o1", true},
		{"relative", "Location", "o2", "/orders/o2", true},
		{"same host", "Content-Location", "http://example.com/orders/o3", "/orders/o3", true},
		{"same host, other port and case", "Location", "https://EXAMPLE.com:8443/orders/o4", "/orders/o4", true},
		{"escaped", "Location", "/orders/a%20b", "/orders/a%20b", true},
		{"other host", "Location", "http://other.example/orders/o5", "/orders/o5", false},
		{"other host, scheme-relative", "Content-Location", "//other.example/orders/o6", "/orders/o6", false},
		{"not http", "Location", "ftp://example.com/orders/o7", "/orders/o7", false},
	}
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := &site{unsafeHeader: http.Header{tc.field: {tc.value}}}
				h := newCache(t, cache.WithStore(newStore())).Wrap(s)
				get(h, tc.path)
				expectCache(t, "before", get(h, tc.path), "HIT")
				if r := do(h, http.MethodPost, "/orders/"); r.status != http.StatusCreated {
					t.Fatalf("POST: %+v", r)
				}
				want := "HIT"
				if tc.invalidated {
					want = "MISS"
				}
				expectCache(t, tc.field+": "+tc.value, get(h, tc.path), want)
			})
		}
	})
}

// A GET that missed before the invalidation and answers after it delivers its (old) response but
// does not store it; a GET that arrives after the invalidation while the old one is still in
// flight does not join it.
func TestInFlightMissDoesNotStoreAcrossInvalidation(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		entered, release := make(chan struct{}), make(chan struct{})
		s := &site{}
		s.beforeAnswer = func(r *http.Request, n int64) {
			if n == 1 { // the first GET read version 0 and is slow to answer
				close(entered)
				<-release
			}
		}
		h := newCache(t, cache.WithStore(newStore())).Wrap(s)

		first := make(chan resp, 1)
		go func() { first <- get(h, "/items") }()
		<-entered
		if r := do(h, http.MethodPost, "/items"); r.status != http.StatusCreated {
			t.Fatalf("POST: %+v", r)
		}
		// A request after the POST gets its own fetch, not the slow one's response.
		during := make(chan resp, 1)
		go func() { during <- get(h, "/items") }()
		select {
		case r := <-during:
			if r.xcache() != "MISS" || !strings.HasPrefix(r.body, "v=1 ") {
				t.Fatalf("GET after the POST: %+v", r)
			}
		case <-time.After(20 * time.Second):
			close(release)
			t.Fatal("a GET sent after the POST waited for a fetch that started before it")
		}
		close(release)
		if r := <-first; r.xcache() != "MISS" || !strings.HasPrefix(r.body, "v=0 ") {
			t.Fatalf("slow GET: %+v", r)
		}
		r := get(h, "/items")
		expectCache(t, "after the slow GET finished", r, "HIT")
		if !strings.HasPrefix(r.body, "v=1 ") {
			t.Fatalf("the slow GET's old response was stored over the new one: %q", r.body)
		}
	})
}

// Also when nothing was stored yet: the slow GET's answer must not become the first entry.
func TestInFlightFirstMissDoesNotStoreAcrossInvalidation(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		entered, release := make(chan struct{}), make(chan struct{})
		s := &site{}
		s.beforeAnswer = func(r *http.Request, n int64) {
			if n == 1 {
				close(entered)
				<-release
			}
		}
		h := newCache(t, cache.WithStore(newStore())).Wrap(s)
		first := make(chan resp, 1)
		go func() { first <- get(h, "/new") }()
		<-entered
		do(h, http.MethodPost, "/new")
		close(release)
		if r := <-first; !strings.HasPrefix(r.body, "v=0 ") {
			t.Fatalf("slow GET: %+v", r)
		}
		r := get(h, "/new")
		expectCache(t, "after", r, "MISS")
		if !strings.HasPrefix(r.body, "v=1 ") {
			t.Fatalf("after: %q", r.body)
		}
	})
}

// The invalidation is done before the response's status reaches the client.
func TestInvalidatedBeforeTheClientSeesSuccess(t *testing.T) {
	s := &site{}
	h := newCache(t).Wrap(s)
	get(h, "/items")
	var seen string
	w := &hookWriter{ResponseRecorder: httptest.NewRecorder(), onHeader: func() { seen = get(h, "/items").xcache() }}
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/items", nil))
	if w.Code != http.StatusCreated || seen != "MISS" {
		t.Fatalf("POST %d; a GET when its status went out: %q, want MISS", w.Code, seen)
	}
}

type hookWriter struct {
	*httptest.ResponseRecorder
	onHeader func()
}

func (w *hookWriter) WriteHeader(code int) {
	w.onHeader()
	w.ResponseRecorder.WriteHeader(code)
}

func TestInvalidateOnSuccessAndInvalidatesOption(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		var logs bytes.Buffer
		orders := &site{}
		dashboard := &site{}
		c, err := cache.New(cache.WithStore(newStore()), cache.PerIdentity(),
			cache.WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))),
			cache.Invalidates(func(r *http.Request) []string {
				if strings.HasPrefix(r.URL.Path, "/orders") {
					return []string{"/dashboard", "not-a-path", "/stats?period=day"}
				}
				return nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		mux := http.NewServeMux()
		mux.Handle("/dashboard", c.Wrap(dashboard))
		mux.Handle("/stats", c.Wrap(dashboard))
		mux.Handle("/orders", c.InvalidateOnSuccess(orders))

		for _, u := range []string{"alice", "bob"} {
			get(mux, "/dashboard", as(u))
			expectCache(t, u+" before", get(mux, "/dashboard", as(u)), "HIT")
		}
		get(mux, "/stats?period=week")

		// Safe requests pass through InvalidateOnSuccess untouched.
		if r := get(mux, "/orders"); r.xcache() != "" || r.status != 200 {
			t.Fatalf("GET through InvalidateOnSuccess: %+v", r)
		}
		if r := do(mux, http.MethodPost, "/orders", as("alice")); r.status != http.StatusCreated || r.xcache() != "" {
			t.Fatalf("POST: %+v", r)
		}
		for _, u := range []string{"alice", "bob"} {
			expectCache(t, u+" after", get(mux, "/dashboard", as(u)), "MISS")
		}
		expectCache(t, "stats, every query", get(mux, "/stats?period=week"), "MISS")
		if !strings.Contains(logs.String(), "not-a-path") {
			t.Fatalf("the invalid path was not logged:\n%s", logs.String())
		}

		// A failed order changes nothing.
		orders.unsafeStatus.Store(422)
		do(mux, http.MethodPost, "/orders", as("alice"))
		expectCache(t, "after a failed order", get(mux, "/dashboard", as("alice")), "HIT")
	})
}

// syncWriter serialises writes to a buffer read by the test.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestInvalidateProgrammatic(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		s := &site{}
		c := newCache(t, cache.WithStore(newStore()), cache.PerIdentity())
		h := c.Wrap(s)
		for _, target := range []string{"/a", "/a?x=1", "/b", "/a%20b", "/c"} {
			get(h, target)
			get(h, target, as("alice"))
		}
		ctx := context.Background()
		if err := c.Invalidate(ctx, "/a?ignored=1", "/b", "/a b"); err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{"/a", "/a?x=1", "/b", "/a%20b"} {
			expectCache(t, target, get(h, target), "MISS")
			expectCache(t, target+" alice", get(h, target, as("alice")), "MISS")
		}
		expectCache(t, "/c", get(h, "/c"), "HIT")
		if err := c.Invalidate(ctx); err != nil {
			t.Fatalf("no paths: %v", err)
		}
		for _, bad := range []string{"", "a", "http://example.com/a", "//example.com/a", "/%zz", "mailto:x"} {
			err := c.Invalidate(ctx, "/c", bad)
			if err == nil || !strings.HasPrefix(err.Error(), "cache: ") {
				t.Fatalf("Invalidate(%q) = %v, want a cache: error", bad, err)
			}
		}
		expectCache(t, "/c after refused calls", get(h, "/c"), "HIT")
	})
}

func TestInvalidatedEntryNotServedStale(t *testing.T) {
	clk := newClock()
	s := &site{}
	c := newCache(t, cache.WithClock(clk.Now), cache.StaleWhileRevalidate(time.Hour))
	h := c.Wrap(s)
	get(h, "/s")
	clk.Advance(2 * time.Minute) // past max-age=60, within the stale window
	if err := c.Invalidate(context.Background(), "/s"); err != nil {
		t.Fatal(err)
	}
	if r := get(h, "/s"); r.xcache() != "MISS" {
		t.Fatalf("invalidated entry: %+v", r)
	}
}

// Instances sharing one Redis see each other's invalidations, and a lost generation (the marker
// key deleted or evicted) is a miss, never a stale hit.
func TestRedisInvalidationSharedAndMarkerLoss(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	s := &site{}
	a := newCache(t, cache.WithStore(cache.RedisStore(rdb)), cache.PerIdentity())
	b := newCache(t, cache.WithStore(cache.RedisStore(rdb)), cache.PerIdentity())
	ha, hb := a.Wrap(s), b.Wrap(s)

	get(ha, "/shared", as("alice"))
	expectCache(t, "b before", get(hb, "/shared", as("alice")), "HIT")
	do(ha, http.MethodDelete, "/shared")
	r := get(hb, "/shared", as("alice"))
	expectCache(t, "b after a's DELETE", r, "MISS")
	if !strings.HasPrefix(r.body, "v=1 ") {
		t.Fatalf("b after a's DELETE: %q", r.body)
	}
	expectCache(t, "a sees b's new entry", get(ha, "/shared", as("alice")), "HIT")

	ctx := context.Background()
	markers, err := rdb.Keys(ctx, cache.DefaultRedisPrefix+"{*}").Result()
	if err != nil || len(markers) != 1 || !strings.Contains(markers[0], cache.PathHash("/shared")) {
		t.Fatalf("markers %v, %v", markers, err)
	}
	rdb.Del(ctx, markers[0])
	expectCache(t, "after the marker was lost", get(ha, "/shared", as("alice")), "MISS")
	expectCache(t, "and then", get(hb, "/shared", as("alice")), "HIT")
}

// A hit costs one Redis round trip (MGET of the path's generation and the entry).
func TestRedisHitIsOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	hook := &countHook{}
	rdb.AddHook(hook)
	h := newCache(t, cache.WithStore(cache.RedisStore(rdb))).Wrap(&site{vary: false})
	get(h, "/rt")
	hook.reset()
	expectCache(t, "hit", get(h, "/rt"), "HIT")
	if cmds := hook.commands(); len(cmds) != 1 || cmds[0] != "mget" {
		t.Fatalf("hit sent %v, want one MGET", cmds)
	}
	hook.reset()
	do(h, http.MethodPost, "/rt")
	if cmds := hook.commands(); len(cmds) != 1 || cmds[0] != "pipeline[set]" {
		t.Fatalf("invalidation sent %v, want one SET (a fresh generation)", cmds)
	}
	// A miss reads (one MGET) and stores (one script), nothing else: no generation is created
	// before the fetch.
	hook.reset()
	expectCache(t, "after the POST", get(h, "/rt"), "MISS")
	if cmds := hook.commands(); len(cmds) != 2 || cmds[0] != "mget" || (cmds[1] != "evalsha" && cmds[1] != "eval") {
		t.Fatalf("miss sent %v, want MGET and the store script", cmds)
	}
}

// countHook records the commands a go-redis client sends, one string per round trip, leaving out
// the set-up of new connections (HELLO, CLIENT SETINFO).
type countHook struct {
	mu   sync.Mutex
	cmds []string
}

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.record(cmd.Name())
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		h.record("pipeline[" + strings.Join(names, ",") + "]")
		return next(ctx, cmds)
	}
}

func (h *countHook) record(name string) {
	switch name {
	case "hello", "pipeline[client,client]", "pipeline[client]":
		return
	}
	h.mu.Lock()
	h.cmds = append(h.cmds, name)
	h.mu.Unlock()
}

func (h *countHook) reset() {
	h.mu.Lock()
	h.cmds = nil
	h.mu.Unlock()
}

func (h *countHook) commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.cmds...)
}

// Redis dies while the POST is being handled: the client still gets the upstream's 201, the
// failure is counted and logged, and the request is not held up beyond the store timeout.
func TestRedisDownDuringInvalidation(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	var logs bytes.Buffer
	c := newCache(t, cache.WithStore(cache.RedisStore(rdb)), cache.WithMeterProvider(mp),
		cache.WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))))
	s := &site{}
	h := c.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			srv.Kill() // the change is made upstream; now the store is gone
		}
		s.ServeHTTP(w, r)
	}))
	get(h, "/k")
	expectCache(t, "before", get(h, "/k"), "HIT")

	start := time.Now()
	r := do(h, http.MethodPost, "/k")
	if r.status != http.StatusCreated || r.body != "changed" {
		t.Fatalf("POST with Redis down: %+v", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("POST took %v with Redis down", d)
	}
	if got := counts(t, reader, "gatewaykit.cache.store.errors", "op"); got["invalidate"] != 1 {
		t.Fatalf("store errors = %v, want one invalidate", got)
	}
	if !strings.Contains(logs.String(), "invalidation failed") {
		t.Fatalf("not logged:\n%s", logs.String())
	}
	if err := c.Invalidate(context.Background(), "/k"); err == nil || !strings.HasPrefix(err.Error(), "cache: ") {
		t.Fatalf("Invalidate with Redis down: %v", err)
	}
	if got := counts(t, reader, "gatewaykit.cache.store.errors", "op"); got["invalidate"] != 2 {
		t.Fatalf("store errors = %v, want two invalidate", got)
	}
}

func TestInvalidationsCounted(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	s := &site{unsafeHeader: http.Header{"Location": {"/x/1"}}}
	c := newCache(t, cache.WithMeterProvider(mp), cache.Invalidates(func(*http.Request) []string { return []string{"/y", "/x"} }))
	do(c.Wrap(s), http.MethodPost, "/x")                 // /x, /x/1, /y (the duplicate /x counts once)
	_ = c.Invalidate(context.Background(), "/z", "/z?a") // /z
	got := counts(t, reader, "gatewaykit.cache.invalidations", "none")
	if got[""] != 4 {
		t.Fatalf("invalidations = %v, want 4", got)
	}
}

// The status is known however the handler reports it: implicitly, by a first Write or Flush,
// after informational responses.
func TestInvalidationStatusSources(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"nothing written", func(w http.ResponseWriter, r *http.Request) {}},
		{"write only", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }},
		{"flush first", func(w http.ResponseWriter, r *http.Request) { http.NewResponseController(w).Flush() }},
		{"failed hijack, then 200", func(w http.ResponseWriter, r *http.Request) {
			if _, _, err := http.NewResponseController(w).Hijack(); err == nil {
				panic("a ResponseRecorder was hijacked")
			}
			w.WriteHeader(http.StatusOK)
		}},
		{"103 then 201", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &site{}
			c := newCache(t)
			cached := c.Wrap(s)
			h := c.InvalidateOnSuccess(tc.handler)
			get(cached, "/p")
			do(h, http.MethodPost, "/p")
			expectCache(t, "after", get(cached, "/p"), "MISS")
		})
	}
	// 1xx alone, then an error: nothing invalidated.
	s := &site{}
	c := newCache(t)
	get(c.Wrap(s), "/p")
	do(c.InvalidateOnSuccess(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusConflict)
	})), http.MethodPut, "/p")
	expectCache(t, "after 103 then 409", get(c.Wrap(s), "/p"), "HIT")
}

// Concurrent reads, writes and invalidations of a few paths: run with -race.
func TestInvalidationConcurrent(t *testing.T) {
	s := &site{vary: true}
	c := newCache(t, cache.PerIdentity())
	h := c.Wrap(s)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				target := fmt.Sprintf("/c%d?j=%d", j%3, j%5)
				switch (i + j) % 7 {
				case 0:
					do(h, http.MethodPost, target)
				case 1:
					_ = c.Invalidate(context.Background(), target)
				default:
					r := get(h, target, header("Accept-Language", []string{"en", "de"}[j%2]), as([]string{"a", "b"}[i%2]))
					if r.status != 200 {
						t.Errorf("GET %s: %+v", target, r)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	// After the dust settles, one more write: the next read is fresh.
	do(h, http.MethodPost, "/c0")
	v := s.version.Load()
	r := get(h, "/c0")
	if !strings.HasPrefix(r.body, fmt.Sprintf("v=%d ", v)) {
		t.Fatalf("after the last write (version %d): %q", v, r.body)
	}
}

// A hijacked connection has no status the cache can see: nothing is invalidated.
func TestHijackedUnsafeRequestInvalidatesNothing(t *testing.T) {
	s := &site{}
	c := newCache(t)
	get(c.Wrap(s), "/h")
	srv := httptest.NewServer(c.InvalidateOnSuccess(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		_ = brw.Flush()
	})))
	defer srv.Close()
	res, err := srv.Client().Post(srv.URL+"/h", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	expectCache(t, "after a hijacked POST", get(c.Wrap(s), "/h"), "HIT")
}

// A handler that strips a prefix with its slash hands the cache a path without a leading slash,
// which could be any string, even an entry's key: it must not reach that entry.
func TestPathWithoutSlashCannotTouchEntries(t *testing.T) {
	s := &site{}
	c := newCache(t)
	h := c.Wrap(s)
	get(h, "/victim")
	key, _ := c.PrimaryKey(httptest.NewRequest(http.MethodGet, "/victim", nil), nil)
	stripped := http.StripPrefix("/static/", h) // "/static/<key>" reaches the cache as "<key>"
	get(stripped, "/static/"+key)
	if r := do(stripped, http.MethodPost, "/static/"+key); r.status != http.StatusCreated {
		t.Fatalf("POST: %+v", r)
	}
	expectCache(t, "the entry whose key was used as a path", get(h, "/victim"), "HIT")
}

// Spellings of one path that the upstream serves alike (percent-encoded unreserved characters,
// dot segments, repeated slashes) are separate entries, but one resource: a successful write to
// any spelling, a Location naming any spelling, and Invalidate with any spelling invalidate all
// of them (no stale hit through another spelling).
func TestInvalidationCoversPathSpellings(t *testing.T) {
	spellings := []string{"/orders/o1", "/orders/%6F1", "/%6frders/o1", "/orders/./o1", "/x/../orders/o1", "/orders//o1", "/orders/o1/"}
	writes := []struct {
		name  string
		write func(c *cache.Cache, h http.Handler, s *site)
	}{
		{"POST to each spelling", nil},
		{"Location", func(c *cache.Cache, h http.Handler, s *site) {
			s.unsafeHeader = http.Header{"Location": {"/orders/%6f1"}}
			do(h, http.MethodPost, "/orders/")
		}},
		{"Content-Location with dot segments", func(c *cache.Cache, h http.Handler, s *site) {
			s.unsafeHeader = http.Header{"Content-Location": {"http://example.com/a/b/../../orders/o1"}}
			do(h, http.MethodPost, "/orders/")
		}},
		{"Invalidate", func(c *cache.Cache, h http.Handler, s *site) {
			s.version.Add(1)
			if err := c.Invalidate(context.Background(), "/orders/%6F1"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		for _, w := range writes {
			t.Run(w.name, func(t *testing.T) {
				targets := []string{""}
				if w.write == nil {
					targets = spellings
				}
				for _, target := range targets {
					s := &site{}
					c := newCache(t, cache.WithStore(newStore()))
					h := c.Wrap(s)
					for _, p := range spellings {
						get(h, p)
						expectCache(t, "before: "+p, get(h, p), "HIT")
					}
					if w.write == nil {
						if r := do(h, http.MethodPost, target); r.status != http.StatusCreated {
							t.Fatalf("POST %s: %+v", target, r)
						}
					} else {
						w.write(c, h, s)
					}
					for _, p := range spellings {
						r := get(h, p)
						expectCache(t, fmt.Sprintf("after the write (%s), GET %s", target, p), r, "MISS")
						if !strings.HasPrefix(r.body, "v=1 ") {
							t.Fatalf("after the write (%s), GET %s: %q", target, p, r.body)
						}
					}
				}
			})
		}
	})
}
