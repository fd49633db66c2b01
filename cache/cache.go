package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"golang.org/x/sync/singleflight"

	"github.com/gatewaykit/gatewaykit"
)

// Cache is a response-cache middleware for GET and HEAD. Build it with New; it is safe for
// concurrent use. Close waits for background revalidations and closes the store if it has a
// Close method.
type Cache struct {
	cfg     config
	local   bool // the store answers in-process: no timeout contexts
	tel     *telemetry
	group   singleflight.Group
	reval   sync.Map // flight keys with a background revalidation running
	keyBufs sync.Pool

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// New returns a Cache. Without options it caches, in a MemoryStore of DefaultMemoryBytes, the
// anonymous GET responses whose upstream gives them a lifetime (Cache-Control max-age or s-maxage,
// or Expires). It fails on invalid options, with an error prefixed "cache: ".
func New(opts ...Option) (*Cache, error) {
	cfg := config{
		queryAll:          true,
		maxEntry:          DefaultMaxEntryBytes,
		storeTimeout:      DefaultStoreTimeout,
		revalidateTimeout: DefaultRevalidateTimeout,
		now:               time.Now,
	}
	for _, s := range defaultStatuses {
		cfg.statuses[s] = true
	}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("cache: option %d is nil", i)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.maxTTL > 0 && cfg.ttl > cfg.maxTTL {
		return nil, fmt.Errorf("cache: TTL %v exceeds MaxTTL %v", cfg.ttl, cfg.maxTTL)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.mp == nil {
		cfg.mp = otel.GetMeterProvider()
	}
	tel, err := newTelemetry(cfg.mp, cfg.logger)
	if err != nil {
		return nil, fmt.Errorf("cache: metrics: %w", err)
	}
	if cfg.store == nil {
		cfg.store = MemoryStore(DefaultMemoryBytes)
	}
	_, local := cfg.store.(localStore)
	c := &Cache{cfg: cfg, local: local, tel: tel}
	c.keyBufs.New = newKeyBuf
	return c, nil
}

// Wrap returns next behind the cache. Only GET and HEAD requests are looked up; a HEAD is
// answered from the GET entry and, on a miss, forwarded as is and not stored. Every response gets
// X-Cache: HIT, MISS, STALE or BYPASS; hits also get Age.
func (c *Cache) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, next) })
}

// Close stops new background revalidations, waits for running ones, and closes the store when it
// implements io.Closer. It is idempotent. Requests may still be served after Close, without
// background revalidation.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	if cl, ok := c.cfg.store.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func (c *Cache) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || streaming(r) {
		c.bypass(w, r, next)
		return
	}
	id, perUser, ok := c.identity(r)
	if !ok {
		c.bypass(w, r, next)
		return
	}
	key, ok := c.primaryKey(r, id)
	if !ok {
		c.bypass(w, r, next)
		return
	}
	ctx := r.Context()
	e, err := c.get(ctx, key)
	if err != nil {
		c.bypass(w, r, next)
		return
	}
	flightKey := key
	if e != nil && e.isMarker() {
		flightKey = c.secondaryKey(key, e.Vary, r.Header)
		if e, err = c.get(ctx, flightKey); err != nil {
			c.bypass(w, r, next)
			return
		}
		if e != nil && e.isMarker() {
			e = nil // a marker under a secondary key is not ours to serve
		}
	}
	if e != nil {
		now := c.cfg.now()
		if now.Before(e.FreshUntil) {
			c.hit(w, r, e, now, outHit)
			return
		}
		if now.Before(e.StaleUntil) {
			c.hit(w, r, e, now, outStale)
			c.revalidate(r, next, key, flightKey, perUser)
			return
		}
	}
	c.miss(w, r, next, key, flightKey, perUser)
}

// credentialHeaders mark a request as made on behalf of someone.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// identity decides whose entries a request may use: a user's (id non-nil, perUser), the shared
// ones (id nil), or none (ok false: bypass, failing closed).
func (c *Cache) identity(r *http.Request) (id *gatewaykit.Identity, perUser, ok bool) {
	ident, has := gatewaykit.IdentityFrom(r.Context())
	has = has && !ident.Anonymous()
	if c.cfg.perIdentity && has {
		return ident, true, true
	}
	if c.cfg.shareCredentialed {
		return nil, false, true
	}
	if has {
		return nil, false, false
	}
	for _, h := range credentialHeaders {
		if _, found := r.Header[h]; found {
			return nil, false, false
		}
	}
	return nil, false, true
}

func (c *Cache) bypass(w http.ResponseWriter, r *http.Request, next http.Handler) {
	c.tel.count(r.Context(), outBypass)
	w.Header().Set("X-Cache", xcache[outBypass])
	next.ServeHTTP(w, r)
}

// streaming reports whether r asks for a connection upgrade (WebSocket) or an event stream: such
// requests are never cached, nor coalesced (a waiter would wait for the whole stream).
func streaming(r *http.Request) bool {
	if _, ok := r.Header["Upgrade"]; ok {
		return true
	}
	accept := r.Header["Accept"]
	return len(accept) == 1 && strings.HasPrefix(accept[0], "text/event-stream")
}

// conditionalHeaders make a request's answer depend on what the client already has.
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "Range"}

func conditional(r *http.Request) bool {
	for _, h := range conditionalHeaders {
		if _, ok := r.Header[h]; ok {
			return true
		}
	}
	return false
}

// hit replays e. A 200 entry answers conditional and range requests through http.ServeContent.
func (c *Cache) hit(w http.ResponseWriter, r *http.Request, e *Entry, now time.Time, outcome int) {
	c.tel.count(r.Context(), outcome)
	h := w.Header()
	fields, n := e.fields, 2+e.nvals
	if fields == nil { // an entry from a custom store: index a copy, the entry may be shared
		ix := (&Entry{Header: e.Header}).index()
		fields, n = ix.fields, 2+ix.nvals
	}
	vals := make([]string, 0, n) // one allocation for every value; each field gets a capped slice
	for _, f := range fields {
		start := len(vals)
		vals = append(vals, f.vals...)
		h[f.name] = vals[start:len(vals):len(vals)]
	}
	age := max(int64(now.Sub(e.Born)/time.Second), 0)
	vals = append(vals, strconv.FormatInt(age, 10), xcache[outcome])
	h["Age"] = vals[n-2 : n-1 : n-1]
	h["X-Cache"] = vals[n-1 : n : n]
	if e.Status == http.StatusOK && conditional(r) {
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = nil // ServeContent must not sniff a type the upstream did not send
		}
		var mod time.Time
		if lm := e.Header["Last-Modified"]; len(lm) > 0 {
			mod, _ = http.ParseTime(lm[0])
		}
		http.ServeContent(w, r, "", mod, bytes.NewReader(e.Body))
		return
	}
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.Body)
	}
}

// result is what a fetch leaves for the requests that waited on it.
type result struct {
	entry    *Entry     // nil when the response may not be shared
	vary     [][]string // the fetching request's values of entry.Vary, to match waiters
	panicked bool
	panicVal any
}

// miss fetches from next. Concurrent GET misses for one key share a single upstream request:
// the first one fetches (and streams to its client), the others wait and replay its response if
// it may be stored and matches their Vary values, or else fetch for themselves.
func (c *Cache) miss(w http.ResponseWriter, r *http.Request, next http.Handler, key, flightKey string, perUser bool) {
	if r.Method == http.MethodHead {
		c.tel.count(r.Context(), outMiss)
		w.Header().Set("X-Cache", xcache[outMiss])
		next.ServeHTTP(w, r)
		return
	}
	if conditional(r) {
		c.ownFetch(w, r, next, key, perUser)
		return
	}
	leader := false
	v, _, _ := c.group.Do(flightKey, func() (any, error) {
		leader = true
		c.tel.count(r.Context(), outMiss)
		w.Header().Set("X-Cache", xcache[outMiss])
		return c.fetch(w, r, next, key, perUser), nil
	})
	res := v.(*result)
	if leader {
		if res.panicked {
			panic(res.panicVal)
		}
		return
	}
	if res.entry != nil && sameVary(res.entry.Vary, res.vary, r.Header) {
		c.hit(w, r, res.entry, c.cfg.now(), outHit)
		return
	}
	c.ownFetch(w, r, next, key, perUser)
}

func (c *Cache) ownFetch(w http.ResponseWriter, r *http.Request, next http.Handler, key string, perUser bool) {
	c.tel.count(r.Context(), outMiss)
	w.Header().Set("X-Cache", xcache[outMiss])
	if res := c.fetch(w, r, next, key, perUser); res.panicked {
		panic(res.panicVal)
	}
}

func sameVary(names []string, vals [][]string, h http.Header) bool {
	for i, n := range names {
		if !slices.Equal(vals[i], h[n]) {
			return false
		}
	}
	return true
}

// fetch serves r from next through a recorder and stores the response if it may be stored. It
// recovers a panic of next into the result, for the caller to re-raise on its own goroutine.
func (c *Cache) fetch(w http.ResponseWriter, r *http.Request, next http.Handler, key string, perUser bool) (res *result) {
	res = &result{}
	outer := make([]string, 0, len(w.Header()))
	for k := range w.Header() {
		if k != "X-Cache" {
			outer = append(outer, k)
		}
	}
	rec := &recorder{w: w, c: c, max: c.cfg.maxEntry}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res.panicked, res.panicVal = true, p
			}
		}()
		next.ServeHTTP(rec, r)
	}()
	if res.panicked || rec.failed || r.Context().Err() != nil {
		return res
	}
	rec.finish()
	if rec.skip {
		return res
	}
	for _, k := range outer { // fields set by outer middleware (request ID, rate-limit state) are not the response's
		delete(rec.header, k)
	}
	now := c.cfg.now()
	e, ttl := c.newEntry(rec.status, rec.header, rec.buf, now, perUser)
	if e == nil {
		return res
	}
	res.entry = e
	for _, n := range e.Vary {
		res.vary = append(res.vary, slices.Clone(r.Header[n]))
	}
	ctx := context.WithoutCancel(r.Context())
	if len(e.Vary) == 0 {
		c.set(ctx, key, e, ttl)
		return res
	}
	if c.set(ctx, c.secondaryKey(key, e.Vary, r.Header), e, ttl) {
		c.set(ctx, key, &Entry{Vary: e.Vary, Born: e.Born, FreshUntil: e.FreshUntil, StaleUntil: e.StaleUntil}, ttl)
	}
	return res
}

// revalidate refreshes an entry in the background, once per flight key at a time.
func (c *Cache) revalidate(r *http.Request, next http.Handler, key, flightKey string, perUser bool) {
	if _, running := c.reval.LoadOrStore(flightKey, struct{}{}); running {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.reval.Delete(flightKey)
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.revalidateTimeout)
	r2 := r.Clone(ctx)
	r2.Method, r2.Body = http.MethodGet, http.NoBody
	for _, h := range conditionalHeaders {
		delete(r2.Header, h)
	}
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer c.reval.Delete(flightKey)
		v, _, _ := c.group.Do(flightKey, func() (any, error) {
			return c.fetch(&discardWriter{h: make(http.Header)}, r2, next, key, perUser), nil
		})
		if res := v.(*result); res.panicked {
			c.cfg.logger.LogAttrs(ctx, slog.LevelError, "cache: background revalidation panicked",
				slog.Any("panic", res.panicVal))
		}
	}()
}

func (c *Cache) get(ctx context.Context, key string) (*Entry, error) {
	if !c.local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.storeTimeout)
		defer cancel()
	}
	e, err := c.cfg.store.Get(ctx, key)
	if err != nil {
		c.tel.storeFailed(ctx, opGet, err)
		if errors.Is(err, ErrCorruptEntry) {
			return nil, nil // a miss: the fetch overwrites it
		}
		return nil, err
	}
	return e, nil
}

func (c *Cache) set(ctx context.Context, key string, e *Entry, ttl time.Duration) bool {
	if !c.local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.storeTimeout)
		defer cancel()
	}
	if err := c.cfg.store.Set(ctx, key, e, ttl); err != nil {
		c.tel.storeFailed(ctx, opSet, err)
		return false
	}
	return true
}
