package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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

// Cache is a response-cache middleware for GET and HEAD that invalidates a path's entries when
// an unsafe request (POST, PUT, PATCH, DELETE, ...) to it succeeds. Build it with New; it is safe
// for concurrent use. Close waits for background revalidations and closes the store if it has a
// Close method.
type Cache struct {
	cfg     config
	gs      genStore      // cfg.store with per-path generations
	eager   eagerGens     // gs when it creates generations before fetching (custom stores), or nil
	hold    time.Duration // the longest a fetch may take and still be stored or shared (generation.go)
	local   bool          // the store answers in-process: no timeout contexts
	tel     *telemetry
	group   singleflight.Group
	reval   sync.Map      // flight keys with a background revalidation running
	revals  chan struct{} // one slot per running background revalidation (maxRevalidations)
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
	c := &Cache{cfg: cfg, gs: gensOf(cfg.store), hold: max(storeHold, cfg.revalidateTimeout), local: local, tel: tel,
		revals: make(chan struct{}, maxRevalidations)}
	c.eager, _ = c.gs.(eagerGens)
	c.keyBufs.New = newKeyBuf
	return c, nil
}

// Wrap returns next behind the cache. Only GET and HEAD requests are looked up; a HEAD is
// answered from the GET entry and, on a miss, forwarded as is and not stored. Every response gets
// X-Cache: HIT, MISS, STALE, REVALIDATED (a stored entry confirmed by the upstream's 304, see
// RevalidateWindow) or BYPASS; hits also get Age. Requests with an unsafe method (any
// but GET, HEAD, OPTIONS and TRACE) bypass the cache and, when next answers 2xx or 3xx,
// invalidate their path, as InvalidateOnSuccess does.
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
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if unsafeMethod(r.Method) {
			c.tel.count(r.Context(), outBypass)
			w.Header().Set("X-Cache", xcache[outBypass])
			c.serveUnsafe(w, r, next)
			return
		}
		c.bypass(w, r, next)
		return
	}
	if streaming(r) {
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
	pk := genPath(r.URL.Path) // the generation's key: every entry of the path depends on it
	ctx := r.Context()
	e, gen, err := c.lookup(ctx, pk, key)
	if err != nil {
		c.bypass(w, r, next)
		return
	}
	e = current(e, gen)
	flightKey := key
	if e != nil && e.isMarker() {
		flightKey = c.secondaryKey(key, e.Vary, r.Header)
		if e, gen, err = c.lookup(ctx, pk, flightKey); err != nil {
			c.bypass(w, r, next)
			return
		}
		if e = current(e, gen); e != nil && e.isMarker() {
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
			c.revalidate(r, next, pk, key, flightKey, gen, perUser)
			return
		}
	}
	c.miss(w, r, next, pk, key, flightKey, gen, perUser, e)
}

// current returns e if it was stored under the path's current generation gen, else nil: the path
// was invalidated since (or its marker was lost, which counts the same; no entry has generation 0).
func current(e *Entry, gen uint64) *Entry {
	if e == nil || gen == 0 || e.Generation != gen {
		return nil
	}
	return e
}

// flightName is the singleflight (and revalidation) key of a fetch: the entry key and the
// generation its lookup read (0: none), so that a request arriving after an invalidation never
// joins a fetch that started before it.
func flightName(flightKey string, gen uint64) string {
	return flightKey + "#" + strconv.FormatUint(gen, 36)
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
		if old, ok := h["Vary"]; ok && f.name == "Vary" {
			// An outer middleware's Vary (set before the cache ran) stays, as on a miss.
			h["Vary"] = append(old[:len(old):len(old)], f.vals...)
			continue
		}
		start := len(vals)
		vals = append(vals, f.vals...)
		h[f.name] = vals[start:len(vals):len(vals)]
	}
	age := max(int64(now.Sub(e.Born)/time.Second), 0)
	i := len(vals)
	vals = append(vals, strconv.FormatInt(age, 10), xcache[outcome])
	h["Age"] = vals[i : i+1 : i+1]
	h["X-Cache"] = vals[i+1 : i+2 : i+2]
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
	served   *Entry     // after a 304 to the cache's validators: the refreshed entry, for the leader
	vary     [][]string // the fetching request's values of entry.Vary, to match waiters
	panicked bool
	panicVal any
	rec      *recorder // the fetch's recorder, for the leader only (release)
}

// miss fetches from next. Concurrent GET misses for one key share a single upstream request:
// the first one fetches (holding a storable response from its client until the flight ends, so
// the others do not wait on that client), the others wait and replay its response if
// it may be stored and matches their Vary values, or else fetch for themselves.
//
// gen is the path's generation as the lookup saw it (0: none). The miss writes nothing to the
// store before it fetches (except for a custom store, see eagerGens); the entry is stored only if
// the generation is still gen, creating it when gen is 0 (see generation.go).
//
// stale is the entry the lookup found under r's key (or Vary variant), past serving as fresh, or
// nil. When it can be revalidated (see revalidatable) the fetch asks upstream with its validators,
// unless the client sent conditional headers of its own (they go upstream as they are, and the
// upstream answers the client). A 304 refreshes it and the client gets it (X-Cache: REVALIDATED;
// requests waiting on the fetch get it as HIT). An answer that may not be stored replaces it with a
// tombstone (see dropStale).
func (c *Cache) miss(w http.ResponseWriter, r *http.Request, next http.Handler, pk, key, flightKey string, gen uint64, perUser bool, stale *Entry) {
	if r.Method == http.MethodHead {
		c.tel.count(r.Context(), outMiss)
		w.Header().Set("X-Cache", xcache[outMiss])
		next.ServeHTTP(w, r)
		return
	}
	start := time.Now() // real time, as the stores' TTLs: bounds how long the fetch may take (c.hold)
	if gen == 0 && c.eager != nil {
		var err error
		if gen, err = c.ensure(r.Context(), pk); err != nil {
			c.bypass(w, r, next)
			return
		}
	}
	if conditional(r) {
		c.ownFetch(w, r, next, pk, key, gen, start, perUser)
		return
	}
	leader := false
	v, _, _ := c.group.Do(flightName(flightKey, gen), func() (any, error) {
		leader = true
		w.Header().Set("X-Cache", xcache[outMiss])
		res := c.fetch(w, r, next, pk, key, gen, start, perUser, true, revalidatable(stale), stale)
		if res.served == nil {
			c.tel.count(r.Context(), outMiss)
		}
		return res, nil
	})
	res := v.(*result)
	if leader {
		if res.panicked {
			panic(res.panicVal)
		}
		if res.served != nil {
			c.hit(w, r, res.served, c.cfg.now(), outRevalidated)
			return
		}
		res.rec.release() // the waiters have the response; now the leader's client gets it
		return
	}
	if res.entry != nil && sameVary(res.entry.Vary, res.vary, r.Header) {
		c.hit(w, r, res.entry, c.cfg.now(), outHit)
		return
	}
	c.ownFetch(w, r, next, pk, key, gen, start, perUser)
}

func (c *Cache) ownFetch(w http.ResponseWriter, r *http.Request, next http.Handler, pk, key string, gen uint64, start time.Time, perUser bool) {
	c.tel.count(r.Context(), outMiss)
	w.Header().Set("X-Cache", xcache[outMiss])
	if res := c.fetch(w, r, next, pk, key, gen, start, perUser, false, nil, nil); res.panicked {
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

// fetch serves r from next through a recorder and stores the response if it may be stored, if the
// path's generation is still gen (read at start; 0: none, and then the store creates one): if the
// path is invalidated meanwhile, the entry is not stored, or never served. A response that took
// longer than c.hold since start is neither stored nor shared (see generation.go). It recovers a
// panic of next into the result, for the caller to re-raise on its own goroutine.
//
// With hold, the response is kept from w until the caller calls res.rec.release (see recorder), so
// that requests waiting on this fetch do not wait for w's client.
//
// With old (a stored entry past serving, see revalidatable), next gets a copy of r with old's
// validators. A 304 then is not written to w: the refreshed entry is res.served, for the caller to
// answer with (w's header is as it was before the fetch, plus the 304's Set-Cookie), and it is
// stored (and shared as res.entry) if it may be.
//
// stale is the stored entry this fetch replaces (old, or an entry without validators), or nil. If
// the answer may not be stored, stale is replaced by a tombstone (see dropStale), so that it is no
// longer served while its stale-while-revalidate window lasts.
func (c *Cache) fetch(w http.ResponseWriter, r *http.Request, next http.Handler, pk, key string, gen uint64, start time.Time, perUser, hold bool, old, stale *Entry) (res *result) {
	res = &result{}
	outer := make([]string, 0, len(w.Header()))
	for k := range w.Header() {
		if k != "X-Cache" {
			outer = append(outer, k)
		}
	}
	outerVary := slices.Clone(w.Header()["Vary"])
	rec := &recorder{w: w, c: c, max: c.cfg.maxEntry, hold: hold, revalidating: old != nil}
	res.rec = rec
	upstream := r
	var before http.Header
	if old != nil {
		before = maps.Clone(w.Header())
		upstream = withValidators(r, old)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				res.panicked, res.panicVal = true, p
			}
		}()
		next.ServeHTTP(rec, upstream)
	}()
	if res.panicked || rec.failed || r.Context().Err() != nil {
		return res
	}
	rec.finish()
	now := c.cfg.now()
	var e *Entry
	var ttl time.Duration
	if rec.notModified {
		h := rec.header
		for _, k := range outer { // the 304's own fields only
			delete(h, k)
		}
		wh := w.Header() // as it was: the 304's fields are the stored response's now
		clear(wh)
		maps.Copy(wh, before)
		if !sameValidator(old.Header, h) {
			// Not a 304 for the stored response (RFC 9111 §4.3.4): ask again, unconditionally.
			return c.fetch(w, r, next, pk, key, gen, start, perUser, hold, nil, stale)
		}
		if sc, ok := h["Set-Cookie"]; ok {
			wh["Set-Cookie"] = sc // for this client only, as on a miss; never stored
		}
		e, ttl, res.served = c.refreshed(old, h, now, perUser)
		if e == nil {
			// The stored response, updated by the 304, may no longer be stored (no-store, private
			// for a shared entry, no-cache, a changed Vary): keeping it would go on serving it
			// (stale-while-revalidate) to every request. Replace it with an entry that is never
			// served nor revalidated, so the next request fetches it afresh.
			c.forget(r, pk, key, gen, old, now)
			return res
		}
		if time.Since(start) > c.hold {
			return res
		}
		return c.store(res, r, pk, key, gen, e, ttl)
	}
	if rec.skip { // not a cacheable status, or too big
		c.dropStale(r, pk, key, gen, stale, rec.status, now)
		return res
	}
	if time.Since(start) > c.hold {
		return res // storable, but maybe from before an invalidation: stale stays (see generation.go)
	}
	for _, k := range outer { // fields set by outer middleware (request ID, rate-limit state) are not the response's
		if vary := rec.header[k]; k == "Vary" && !slices.Equal(vary, outerVary) {
			// The response set its own Vary, after the outer one (CORS's "Vary: Origin") or in
			// its place: keep its values, they decide the key. hit puts them after the outer
			// ones again.
			if len(vary) > len(outerVary) && slices.Equal(vary[:len(outerVary)], outerVary) {
				rec.header[k] = vary[len(outerVary):]
			}
			continue
		}
		delete(rec.header, k)
	}
	if e, ttl = c.newEntry(rec.status, rec.header, rec.buf, now, perUser); e == nil {
		c.dropStale(r, pk, key, gen, stale, rec.status, now)
		return res
	}
	return c.store(res, r, pk, key, gen, e, ttl)
}

// store stores e, the response to r fetched under the generation gen, and shares it through res.
func (c *Cache) store(res *result, r *http.Request, pk, key string, gen uint64, e *Entry, ttl time.Duration) *result {
	e.Generation = gen
	if gen == 0 {
		e.Generation = newGeneration() // the path's generation, if this store creates it
	}
	res.entry = e
	for _, n := range e.Vary {
		res.vary = append(res.vary, slices.Clone(r.Header[n]))
	}
	ctx := context.WithoutCancel(r.Context())
	if len(e.Vary) == 0 {
		c.set(ctx, pk, key, gen, e, ttl)
		return res
	}
	if c.set(ctx, pk, c.secondaryKey(key, e.Vary, r.Header), gen, e, ttl) {
		// Under the generation the first write created or found (when it refused, so does this).
		c.set(ctx, pk, key, e.Generation, &Entry{Vary: e.Vary, Born: e.Born, FreshUntil: e.FreshUntil, StaleUntil: e.StaleUntil, Generation: e.Generation}, ttl)
	}
	return res
}

// forget replaces old, the entry under key (or its Vary variant for r) stored under the generation
// gen, with a tombstone: an entry that is neither fresh nor stale and has no validator, so a lookup
// that finds it misses and fetches without validators. Nothing is written if the path's generation
// changed since (the old entry is orphaned then anyway).
func (c *Cache) forget(r *http.Request, pk, key string, gen uint64, old *Entry, now time.Time) {
	if gen == 0 {
		return
	}
	if len(old.Vary) > 0 {
		key = c.secondaryKey(key, old.Vary, r.Header)
	}
	tomb := &Entry{Status: old.Status, Header: http.Header{}, Born: now, FreshUntil: now, StaleUntil: now, Generation: gen}
	c.set(context.WithoutCancel(r.Context()), pk, key, gen, tomb.index(), tombstoneTTL)
}

// dropStale replaces stale, the stored entry a fetch for r was to replace (nil: none), with a
// tombstone (see forget) after the fetch answered with status and a response that may not be
// stored (no-store, private for a shared key, a status that is not cached, too big, ...): the
// upstream's current answer says the stored response is no longer the one to give, so it is not
// served STALE for the rest of its stale-while-revalidate window, nor revalidated with its old
// validators. A 5xx keeps it (serving stale while the upstream fails is wanted), as do 408 and 429,
// which are about the request or its rate, not the resource. An entry that is neither servable
// stale nor revalidatable (a tombstone already) is left alone, so repeated misses do not write.
func (c *Cache) dropStale(r *http.Request, pk, key string, gen uint64, stale *Entry, status int, now time.Time) {
	if stale == nil || status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests {
		return
	}
	if !now.Before(stale.StaleUntil) && revalidatable(stale) == nil {
		return
	}
	c.forget(r, pk, key, gen, stale, now)
}

// tombstoneTTL is how long the store keeps an entry written by forget: any positive time will do,
// the tombstone is never served and a missing entry means the same.
const tombstoneTTL = time.Second

// maxRevalidations bounds the background revalidations running at once per Cache. Beyond it a
// stale entry is served without starting one (a later request will), so a burst of requests for
// many stale entries cannot start a goroutine and an upstream request for each.
const maxRevalidations = 64

// revalidate refreshes an entry in the background, once per flight key and generation at a time.
func (c *Cache) revalidate(r *http.Request, next http.Handler, pk, key, flightKey string, gen uint64, perUser bool) {
	flight := flightName(flightKey, gen)
	if _, running := c.reval.LoadOrStore(flight, struct{}{}); running {
		return
	}
	select {
	case c.revals <- struct{}{}:
	default:
		c.reval.Delete(flight)
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.revals
		c.reval.Delete(flight)
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
		defer func() { <-c.revals }()
		defer cancel()
		defer c.reval.Delete(flight)
		v, _, _ := c.group.Do(flight, func() (any, error) {
			// The request that started this may have read the entry just before another
			// revalidation replaced it: then there is nothing to refresh.
			start := time.Now()
			e, g, err := c.lookup(ctx, pk, flightKey)
			if err != nil {
				return &result{}, nil
			}
			if e = current(e, g); e != nil && !e.isMarker() && c.cfg.now().Before(e.FreshUntil) {
				return &result{}, nil
			}
			if g == 0 && c.eager != nil { // the marker was lost since
				if g, err = c.ensure(ctx, pk); err != nil {
					return &result{}, nil
				}
			}
			if e != nil && e.isMarker() {
				e = nil // the response varies now: the variant to drop is not known
			}
			return c.fetch(&discardWriter{h: make(http.Header)}, r2, next, pk, key, g, start, perUser, false, revalidatable(e), e), nil
		})
		if res := v.(*result); res.panicked {
			c.cfg.logger.LogAttrs(ctx, slog.LevelError, "cache: background revalidation panicked",
				slog.Any("panic", res.panicVal))
		}
	}()
}

// lookup reads the entry under key and the generation of the path pk (a genPath, as every pk).
func (c *Cache) lookup(ctx context.Context, pk, key string) (*Entry, uint64, error) {
	if !c.local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.storeTimeout)
		defer cancel()
	}
	e, gen, err := c.gs.lookup(ctx, pk, key)
	if err != nil {
		c.tel.storeFailed(ctx, opGet, err)
		if errors.Is(err, ErrCorruptEntry) {
			return nil, gen, nil // a miss: the fetch overwrites it
		}
		return nil, 0, err
	}
	return e, gen, nil
}

// ensure returns the generation of the path pk, creating it when the path has none, for stores
// that cannot create it with the first entry (c.eager). A failure counts as a failed lookup (the
// request bypasses the cache).
func (c *Cache) ensure(ctx context.Context, pk string) (uint64, error) {
	if !c.local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.storeTimeout)
		defer cancel()
	}
	gen, err := c.eager.ensure(ctx, pk, newGeneration())
	if err != nil {
		c.tel.storeFailed(ctx, opGet, err)
		return 0, err
	}
	return gen, nil
}

// set stores e under key if the path pk still has generation gen (0: still none, and then e's
// generation becomes the path's). It reports false on a store failure only.
func (c *Cache) set(ctx context.Context, pk, key string, gen uint64, e *Entry, ttl time.Duration) bool {
	if !c.local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.storeTimeout)
		defer cancel()
	}
	if err := c.gs.setIf(ctx, pk, key, gen, e, ttl); err != nil {
		c.tel.storeFailed(ctx, opSet, err)
		return false
	}
	return true
}
