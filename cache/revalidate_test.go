package cache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/gatewaykit/gatewaykit/cache"
	"github.com/gatewaykit/gatewaykit/internal/redistest"
)

// validator is an upstream with a current representation per user: its ETag and/or Last-Modified,
// its body and Cache-Control. It answers a matching If-None-Match (weak comparison) or, without
// one, a matching If-Modified-Since with 304, and records the conditional headers of every
// request.
type validator struct {
	clk *fakeClock

	mu      sync.Mutex
	etag    map[string]string // by user ("" anonymous); no entry: no ETag
	lastMod time.Time         // zero: no Last-Modified
	version int
	cc      string
	extra   http.Header // added to every answer, 304s included
	seen    []http.Header
	release chan struct{} // when set, every request waits for it
	entered chan struct{}

	calls atomic.Int64
}

func newValidator(clk *fakeClock, etag string) *validator {
	v := &validator{clk: clk, etag: map[string]string{}, version: 1, cc: "max-age=10"}
	if etag != "" {
		v.etag[""] = etag
	}
	return v
}

func (v *validator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.calls.Add(1)
	if v.release != nil {
		select {
		case v.entered <- struct{}{}:
		default:
		}
		<-v.release
	}
	user := ""
	if a := r.Header.Get("Authorization"); a != "" {
		user = strings.TrimPrefix(a, "Bearer token-of-")
	}
	v.mu.Lock()
	cond := http.Header{}
	for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range"} {
		if vs, ok := r.Header[k]; ok {
			cond[k] = vs
		}
	}
	v.seen = append(v.seen, cond)
	etag, hasETag := v.etag[user]
	lastMod, version, cc := v.lastMod, v.version, v.cc
	h := w.Header()
	for k, vs := range v.extra {
		h[k] = vs
	}
	v.mu.Unlock()

	h.Set("Cache-Control", cc)
	h.Set("Date", v.clk.Now().Format(http.TimeFormat))
	if hasETag {
		h.Set("ETag", etag)
	}
	if !lastMod.IsZero() {
		h.Set("Last-Modified", lastMod.Format(http.TimeFormat))
	}
	notModified := false
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		notModified = hasETag && strings.TrimPrefix(inm, "W/") == strings.TrimPrefix(etag, "W/")
	} else if ims := r.Header.Get("If-Modified-Since"); ims != "" && !lastMod.IsZero() {
		t, err := http.ParseTime(ims)
		notModified = err == nil && !lastMod.After(t)
	}
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "version=%d user=%s", version, user)
}

// conds returns the conditional headers request n (from 1) carried.
func (v *validator) conds(t *testing.T, n int) http.Header {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if n > len(v.seen) {
		t.Fatalf("upstream saw %d requests, want at least %d", len(v.seen), n)
	}
	return v.seen[n-1]
}

func (v *validator) set(f func(v *validator)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f(v)
}

func expectConds(t *testing.T, what string, got http.Header, want ...string) {
	t.Helper()
	wantH := http.Header{}
	for i := 0; i+1 < len(want); i += 2 {
		wantH[want[i]] = []string{want[i+1]}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantH) {
		t.Fatalf("%s: upstream got conditional headers %v, want %v", what, got, wantH)
	}
}

// A stale entry with an ETag is revalidated with If-None-Match; the 304 refreshes it (Date, Age,
// freshness, other fields, not Content-Length) and the client gets the stored body as a 200.
func TestRevalidateETag(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, `"v1"`)
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now), cache.WithMeterProvider(mp)).Wrap(up)

		first := get(h, "/e")
		expectCache(t, "first", first, "MISS")
		expectConds(t, "first", up.conds(t, 1))
		clk.Advance(15 * time.Second) // past max-age=10
		up.set(func(v *validator) {
			v.cc = "max-age=100"
			v.extra = http.Header{"X-Refreshed": {"yes"}, "Content-Length": {"0"}}
		})
		r := get(h, "/e")
		expectConds(t, "stale", up.conds(t, 2), "If-None-Match", `"v1"`)
		if r.status != http.StatusOK || r.xcache() != "REVALIDATED" || r.body != first.body || r.body != "version=1 user=" {
			t.Fatalf("revalidated: %+v", r)
		}
		if r.h.Get("Age") != "0" || r.h.Get("Date") != clk.Now().Format(http.TimeFormat) || r.h.Get("Date") == first.h.Get("Date") {
			t.Fatalf("revalidated: Age %q Date %q (first Date %q)", r.h.Get("Age"), r.h.Get("Date"), first.h.Get("Date"))
		}
		if r.h.Get("X-Refreshed") != "yes" || r.h.Get("Content-Length") != fmt.Sprint(len(first.body)) ||
			r.h.Get("Content-Type") != "text/plain" || r.h.Get("Etag") != `"v1"` {
			t.Fatalf("revalidated header: %v", r.h)
		}
		clk.Advance(50 * time.Second) // fresh again for 100 s from the 304
		r = get(h, "/e")
		if r.xcache() != "HIT" || r.body != first.body || r.h.Get("Age") != "50" || r.h.Get("X-Refreshed") != "yes" ||
			r.h.Get("Content-Length") != fmt.Sprint(len(first.body)) {
			t.Fatalf("after the refresh: %+v", r)
		}
		if n := up.calls.Load(); n != 2 {
			t.Fatalf("upstream calls = %d, want 2", n)
		}
		if got := counts(t, reader, "gatewaykit.cache.requests", "outcome"); got["revalidated"] != 1 || got["miss"] != 1 || got["hit"] != 1 {
			t.Fatalf("outcomes = %v", got)
		}
	})
}

// Without an ETag the Last-Modified date is the validator (If-Modified-Since); weak ETags are
// sent as they are (If-None-Match compares weakly); with both, both are sent (RFC 9111 §4.3.1).
func TestRevalidateValidators(t *testing.T) {
	lastMod := time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)
	tests := []struct {
		name    string
		etag    string
		lastMod time.Time
		want    []string
	}{
		{"Last-Modified", "", lastMod, []string{"If-Modified-Since", lastMod.Format(http.TimeFormat)}},
		{"weak ETag", `W/"x"`, time.Time{}, []string{"If-None-Match", `W/"x"`}},
		{"both", `"s"`, lastMod, []string{"If-None-Match", `"s"`, "If-Modified-Since", lastMod.Format(http.TimeFormat)}},
	}
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				clk := newClock()
				up := newValidator(clk, tc.etag)
				up.lastMod = tc.lastMod
				h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
				target := "/v/" + strings.ReplaceAll(tc.name, " ", "-")
				first := get(h, target)
				clk.Advance(11 * time.Second)
				r := get(h, target)
				expectConds(t, tc.name, up.conds(t, 2), tc.want...)
				if r.status != http.StatusOK || r.xcache() != "REVALIDATED" || r.body != first.body {
					t.Fatalf("%s: %+v", tc.name, r)
				}
				expectCache(t, tc.name+", then", get(h, target), "HIT")
			})
		}
	})
}

// A changed representation (200 to the conditional request) replaces the entry, as on a miss.
func TestRevalidateReplacedBy200(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, `"v1"`)
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
		get(h, "/c")
		clk.Advance(11 * time.Second)
		up.set(func(v *validator) { v.etag[""], v.version = `"v2"`, 2 })
		r := get(h, "/c")
		expectConds(t, "stale", up.conds(t, 2), "If-None-Match", `"v1"`)
		if r.status != http.StatusOK || r.xcache() != "MISS" || r.body != "version=2 user=" || r.h.Get("Etag") != `"v2"` {
			t.Fatalf("changed: %+v", r)
		}
		r = get(h, "/c")
		if r.xcache() != "HIT" || r.body != "version=2 user=" {
			t.Fatalf("after the change: %+v", r)
		}
		clk.Advance(11 * time.Second)
		get(h, "/c")
		expectConds(t, "stale again", up.conds(t, 3), "If-None-Match", `"v2"`)
	})
}

// An entry without a validator is fetched again as on any miss, without conditional headers.
func TestRevalidateNoValidatorIsAMiss(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, "")
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
		get(h, "/n")
		clk.Advance(11 * time.Second)
		expectCache(t, "stale without a validator", get(h, "/n"), "MISS")
		expectConds(t, "stale without a validator", up.conds(t, 2))
	})
}

// The client's own conditional headers go upstream as they are, never mixed with the cache's, and
// the upstream answers the client (a 304 to a matching one).
func TestRevalidateClientConditionalPassesThrough(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, `"v1"`)
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
		get(h, "/p")
		clk.Advance(11 * time.Second)

		r := get(h, "/p", header("If-None-Match", `"other"`))
		expectConds(t, "client's non-matching If-None-Match", up.conds(t, 2), "If-None-Match", `"other"`)
		if r.status != http.StatusOK || r.xcache() != "MISS" || r.body != "version=1 user=" {
			t.Fatalf("client's non-matching If-None-Match: %+v", r)
		}
		clk.Advance(11 * time.Second)
		r = get(h, "/p", header("If-None-Match", `"v1"`))
		expectConds(t, "client's matching If-None-Match", up.conds(t, 3), "If-None-Match", `"v1"`)
		if r.status != http.StatusNotModified || r.xcache() != "MISS" || r.body != "" {
			t.Fatalf("client's matching If-None-Match: %+v", r)
		}
		r = get(h, "/p", header("If-Modified-Since", clk.Now().Format(http.TimeFormat)))
		expectConds(t, "client's If-Modified-Since", up.conds(t, 4), "If-Modified-Since", clk.Now().Format(http.TimeFormat))
		if r.status != http.StatusOK {
			t.Fatalf("client's If-Modified-Since: %+v", r)
		}
	})
}

// Each user's entry is revalidated with that user's validator only.
func TestRevalidatePerUser(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, "")
		up.etag["alice"], up.etag["bob"] = `"alice-1"`, `"bob-1"`
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now), cache.PerIdentity()).Wrap(up)
		get(h, "/d", as("alice"))
		get(h, "/d", as("bob"))
		clk.Advance(11 * time.Second)
		r := get(h, "/d", as("bob"))
		expectConds(t, "bob", up.conds(t, 3), "If-None-Match", `"bob-1"`)
		if r.xcache() != "REVALIDATED" || r.body != "version=1 user=bob" {
			t.Fatalf("bob: %+v", r)
		}
		up.set(func(v *validator) { v.etag["alice"], v.version = `"alice-2"`, 2 })
		r = get(h, "/d", as("alice"))
		expectConds(t, "alice", up.conds(t, 4), "If-None-Match", `"alice-1"`)
		if r.xcache() != "MISS" || r.body != "version=2 user=alice" {
			t.Fatalf("alice: %+v", r)
		}
	})
}

// A Vary variant is revalidated with its own validator, and the refresh keeps it under its key.
func TestRevalidateVaryVariant(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, `"any"`)
		up.extra = http.Header{"Vary": {"Accept-Language"}}
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
		get(h, "/l", header("Accept-Language", "en"))
		up.set(func(v *validator) { v.etag[""] = `"de"` })
		get(h, "/l", header("Accept-Language", "de"))
		clk.Advance(11 * time.Second)
		r := get(h, "/l", header("Accept-Language", "de"))
		expectConds(t, "de", up.conds(t, 3), "If-None-Match", `"de"`)
		expectCache(t, "de", r, "REVALIDATED")
		expectCache(t, "de again", get(h, "/l", header("Accept-Language", "de")), "HIT")
		r = get(h, "/l", header("Accept-Language", "en"))
		expectConds(t, "en", up.conds(t, 4), "If-None-Match", `"any"`)
		expectCache(t, "en, changed", r, "MISS")
	})
}

// 100 concurrent requests for a stale entry send one conditional request upstream; all get the
// stored body.
func TestRevalidateCoalesced(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, `"v1"`)
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
		first := get(h, "/hot")
		clk.Advance(11 * time.Second)
		up.release, up.entered = make(chan struct{}), make(chan struct{}, 1)

		const n = 100
		results := burst(t, h, "/hot", n, up.entered, up.release)
		if got := up.calls.Load(); got != 2 {
			t.Fatalf("upstream calls = %d, want 2 (the first fetch and one revalidation)", got)
		}
		expectConds(t, "revalidation", up.conds(t, 2), "If-None-Match", `"v1"`)
		revalidated := 0
		for _, r := range results {
			if r.status != http.StatusOK || r.body != first.body {
				t.Fatalf("a request got %+v", r)
			}
			switch r.xcache() {
			case "REVALIDATED":
				revalidated++
			case "HIT":
			default:
				t.Fatalf("a request got X-Cache %q", r.xcache())
			}
		}
		if revalidated != 1 {
			t.Fatalf("REVALIDATED responses = %d, want 1", revalidated)
		}
	})
}

// The stale-while-revalidate background refresh sends the validators too; its 304 refreshes the
// entry.
func TestBackgroundRevalidationIsConditional(t *testing.T) {
	clk := newClock()
	up := newValidator(clk, `"v1"`)
	h := newCache(t, cache.WithClock(clk.Now), cache.StaleWhileRevalidate(time.Minute)).Wrap(up)
	first := get(h, "/s")
	clk.Advance(15 * time.Second)
	expectCache(t, "within the stale window", get(h, "/s"), "STALE")
	waitFor(t, func() bool { return get(h, "/s").xcache() == "HIT" })
	expectConds(t, "background", up.conds(t, 2), "If-None-Match", `"v1"`)
	if r := get(h, "/s"); r.body != first.body || up.calls.Load() != 2 {
		t.Fatalf("after the background 304: %+v, calls %d", r, up.calls.Load())
	}
}

// An entry with a validator is kept past its servable life for RevalidateWindow (default: its
// freshness lifetime again); one without a validator is not. A response stale on arrival
// (max-age=0) is kept for revalidation only with an explicit window.
func TestRevalidateWindowRetention(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []cache.Option
		etag, cc string
		min, max time.Duration // the entry key's TTL in Redis
	}{
		{"default window", nil, `"v"`, "max-age=10", 19 * time.Second, 20 * time.Second},
		{"with stale-while-revalidate", []cache.Option{cache.StaleWhileRevalidate(30 * time.Second)}, `"v"`, "max-age=10", 49 * time.Second, 50 * time.Second},
		{"explicit window", []cache.Option{cache.RevalidateWindow(time.Hour)}, `"v"`, "max-age=10", time.Hour, time.Hour + 10*time.Second},
		{"window 0", []cache.Option{cache.RevalidateWindow(0)}, `"v"`, "max-age=10", 9 * time.Second, 10 * time.Second},
		{"no validator", nil, "", "max-age=10", 9 * time.Second, 10 * time.Second},
		{"max-age=0 with a window", []cache.Option{cache.RevalidateWindow(time.Minute)}, `"v"`, "max-age=0", 59 * time.Second, time.Minute},
		{"max-age=0 by default", nil, `"v"`, "max-age=0", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redistest.Start(t).Client()
			clk := newClock()
			up := newValidator(clk, tc.etag)
			up.cc = tc.cc
			h := newCache(t, append([]cache.Option{cache.WithStore(cache.RedisStore(rdb)), cache.WithClock(clk.Now)}, tc.opts...)...).Wrap(up)
			get(h, "/w")
			ctx := context.Background()
			keys, err := rdb.Keys(ctx, "*}?*").Result() // the entry, not the path's generation
			if err != nil {
				t.Fatal(err)
			}
			if tc.max == 0 {
				if len(keys) != 0 {
					t.Fatalf("stored %v", keys)
				}
				return
			}
			if len(keys) != 1 {
				t.Fatalf("keys %v", keys)
			}
			ttl, err := rdb.PTTL(ctx, keys[0]).Result()
			if err != nil || ttl < tc.min || ttl > tc.max {
				t.Fatalf("entry TTL %v, %v; want %v..%v", ttl, err, tc.min, tc.max)
			}
			if tc.cc == "max-age=0" {
				r := get(h, "/w")
				expectConds(t, "max-age=0", up.conds(t, 2), "If-None-Match", `"v"`)
				expectCache(t, "max-age=0", r, "REVALIDATED")
			}
		})
	}
}

// A 304 that makes the response unstorable (no-store) still answers the request from the stored
// body, and the stored entry is dropped: the request after it fetches without validators.
func TestRevalidate304NoStore(t *testing.T) {
	clk := newClock()
	up := newValidator(clk, `"v1"`)
	h := newCache(t, cache.WithClock(clk.Now)).Wrap(up)
	first := get(h, "/ns")
	clk.Advance(11 * time.Second)
	up.set(func(v *validator) { v.cc = "no-store" })
	r := get(h, "/ns")
	if r.status != http.StatusOK || r.xcache() != "REVALIDATED" || r.body != first.body || r.h.Get("Cache-Control") != "no-store" {
		t.Fatalf("304 with no-store: %+v", r)
	}
	expectCache(t, "after", get(h, "/ns"), "MISS")
	expectConds(t, "after", up.conds(t, 3))
	if n := up.calls.Load(); n != 3 {
		t.Fatalf("upstream calls = %d, want 3", n)
	}
}

// A stale-while-revalidate background refresh answered by a 304 that makes a shared entry
// private (or no-store) drops the entry: it is not served STALE to everyone afterwards.
func TestRevalidate304PrivateStopsStaleServing(t *testing.T) {
	for _, cc := range []string{"private, max-age=10", "no-store"} {
		eachStore(t, func(t *testing.T, newStore func() cache.Store) {
			clk := newClock()
			up := newValidator(clk, `"v1"`)
			c := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now), cache.StaleWhileRevalidate(time.Minute))
			h := c.Wrap(up)
			target := "/sp/" + strings.ReplaceAll(cc, " ", "")
			get(h, target)
			clk.Advance(11 * time.Second)
			up.set(func(v *validator) { v.cc = cc })
			expectCache(t, cc+": stale", get(h, target), "STALE")
			_ = c.Close() // waits for the background revalidation
			expectConds(t, cc+": background", up.conds(t, 2), "If-None-Match", `"v1"`)
			r := get(h, target)
			if r.xcache() != "MISS" || r.h.Get("Cache-Control") != cc {
				t.Fatalf("%s: after the 304: %+v", cc, r)
			}
			expectConds(t, cc+": after", up.conds(t, 3))
		})
	}
}

// A 304 answering the cache's validators never reaches the client, even when the handler writes
// a body or a second status after it.
func TestRevalidate304NeverLeaks(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	h := newCache(t, cache.WithClock(clk.Now)).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"e"`)
		if calls.Add(1) > 1 && r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(http.StatusNotModified)
			w.WriteHeader(http.StatusOK) // superfluous
			_, _ = io.WriteString(w, "junk")
			http.NewResponseController(w).Flush()
			return
		}
		_, _ = io.WriteString(w, "body")
	}))
	get(h, "/x")
	clk.Advance(11 * time.Second)
	if r := get(h, "/x"); r.status != http.StatusOK || r.body != "body" || r.xcache() != "REVALIDATED" {
		t.Fatalf("%+v", r)
	}
}

// A 304 whose validator is not the stored response's does not refresh it (RFC 9111 §4.3.4): the
// cache asks again without validators and answers with that.
func TestRevalidate304ForAnotherRepresentation(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	var conds []string
	var mu sync.Mutex
	h := newCache(t, cache.WithClock(clk.Now)).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		mu.Lock()
		conds = append(conds, r.Header.Get("If-None-Match"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=10")
		if n == 1 {
			w.Header().Set("ETag", `"a"`)
			_, _ = io.WriteString(w, "a")
			return
		}
		w.Header().Set("ETag", `"b"`)
		if r.Header.Get("If-None-Match") != "" {
			w.WriteHeader(http.StatusNotModified) // wrongly, for "b"
			return
		}
		_, _ = io.WriteString(w, "b")
	}))
	get(h, "/a")
	clk.Advance(11 * time.Second)
	r := get(h, "/a")
	if r.status != http.StatusOK || r.body != "b" || r.xcache() != "MISS" || r.h.Get("Etag") != `"b"` {
		t.Fatalf("%+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(conds, ",") != `,"a",` {
		t.Fatalf("If-None-Match sent: %q", conds)
	}
}

// A 304 without Date (some handlers omit it) does not leave the stored Date in the refreshed
// entry: Expires would be measured from it and the entry stay fresh past its Expires, while Age
// says 0.
func TestRevalidate304WithoutDate(t *testing.T) {
	clk := newClock()
	var calls atomic.Int64
	h := newCache(t, cache.WithClock(clk.Now)).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := clk.Now()
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Expires", now.Add(10*time.Second).Format(http.TimeFormat))
		if calls.Add(1) > 1 && r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(http.StatusNotModified) // no Date
			return
		}
		w.Header().Set("Date", now.Format(http.TimeFormat))
		_, _ = io.WriteString(w, "body")
	}))
	get(h, "/d")
	clk.Advance(15 * time.Second)
	if r := get(h, "/d"); r.xcache() != "REVALIDATED" || r.h.Get("Date") != "" {
		t.Fatalf("revalidated: %+v", r)
	}
	clk.Advance(12 * time.Second) // past the 304's Expires (now+10 s)
	if r := get(h, "/d"); r.xcache() == "HIT" {
		t.Fatalf("served fresh past its Expires: %+v", r)
	}
}

// switchable is an upstream whose Cache-Control and status can be changed between requests. Its
// body names the call number and the request's Accept-Language; it varies on Accept-Language when
// vary is set.
type switchable struct {
	mu     sync.Mutex
	cc     string
	status int
	vary   bool
	calls  atomic.Int64
}

func (s *switchable) set(cc string, status int) {
	s.mu.Lock()
	s.cc, s.status = cc, status
	s.mu.Unlock()
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.calls.Add(1)
	s.mu.Lock()
	cc, status, vary := s.cc, s.status, s.vary
	s.mu.Unlock()
	w.Header().Set("Cache-Control", cc)
	if vary {
		w.Header().Set("Vary", "Accept-Language")
	}
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "call=%d lang=%s", n, r.Header.Get("Accept-Language"))
}

// A stale-while-revalidate background refresh answered by a 200 that may not be stored (private
// for a shared key, no-store, an uncached status) drops the stale entry: the following requests
// miss, none is served STALE. A 500 keeps serving the stale entry.
func TestRefreshUnstorableStopsStaleServing(t *testing.T) {
	tests := []struct {
		cc     string
		status int
		after  string // X-Cache of the requests after the refresh
	}{
		{"private, max-age=10", http.StatusOK, "MISS"},
		{"no-store", http.StatusOK, "MISS"},
		{"max-age=10", http.StatusForbidden, "MISS"},
		{"max-age=10", http.StatusInternalServerError, "STALE"},
		{"no-store", http.StatusServiceUnavailable, "STALE"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.cc), func(t *testing.T) {
			eachStore(t, func(t *testing.T, newStore func() cache.Store) {
				clk := newClock()
				up := &switchable{cc: "max-age=10", status: http.StatusOK}
				c := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now), cache.StaleWhileRevalidate(time.Minute))
				h := c.Wrap(up)
				first := get(h, "/r")
				expectCache(t, "first", first, "MISS")
				clk.Advance(11 * time.Second)
				up.set(tt.cc, tt.status)
				if r := get(h, "/r"); r.xcache() != "STALE" || r.body != first.body {
					t.Fatalf("stale: %+v", r)
				}
				_ = c.Close() // waits for the background refresh
				if n := up.calls.Load(); n != 2 {
					t.Fatalf("upstream calls after the refresh = %d, want 2", n)
				}
				for i := range 3 {
					r := get(h, "/r")
					expectCache(t, fmt.Sprintf("after the refresh, request %d", i), r, tt.after)
					if tt.after == "STALE" && r.body != first.body {
						t.Fatalf("stale body %q, want %q", r.body, first.body)
					}
				}
			})
		})
	}
}

// With Vary, the refresh drops the variant it fetched, not the others.
func TestRefreshUnstorableDropsItsVariant(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := &switchable{cc: "max-age=10", status: http.StatusOK, vary: true}
		c := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now), cache.StaleWhileRevalidate(time.Minute))
		h := c.Wrap(up)
		en, fr := header("Accept-Language", "en"), header("Accept-Language", "fr")
		get(h, "/v", en)
		frFirst := get(h, "/v", fr)
		clk.Advance(11 * time.Second)
		up.set("private, max-age=10", http.StatusOK)
		expectCache(t, "en stale", get(h, "/v", en), "STALE")
		_ = c.Close()
		expectCache(t, "en after", get(h, "/v", en), "MISS")
		if r := get(h, "/v", fr); r.xcache() != "STALE" || r.body != frFirst.body {
			t.Fatalf("fr after: %+v", r)
		}
	})
}

// A foreground fetch of an entry kept for revalidation, answered by a 200 no-store, drops the
// entry: the next request goes upstream without the old validators.
func TestMissUnstorableDropsRevalidatableEntry(t *testing.T) {
	eachStore(t, func(t *testing.T, newStore func() cache.Store) {
		clk := newClock()
		up := newValidator(clk, `"v1"`)
		h := newCache(t, cache.WithStore(newStore()), cache.WithClock(clk.Now)).Wrap(up)
		get(h, "/m")
		clk.Advance(11 * time.Second)
		up.set(func(v *validator) { v.cc, v.etag[""], v.version = "no-store", `"v2"`, 2 })
		if r := get(h, "/m"); r.xcache() != "MISS" || r.body != "version=2 user=" {
			t.Fatalf("200 no-store: %+v", r)
		}
		expectConds(t, "fetch", up.conds(t, 2), "If-None-Match", `"v1"`)
		expectCache(t, "after", get(h, "/m"), "MISS")
		expectConds(t, "after", up.conds(t, 3))
	})
}
