package cache

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

// unsafeMethod reports whether a request with method m may change what it targets. RFC 9111
// §4.4 invalidates on every method that is not safe; GET, HEAD, OPTIONS and TRACE are
// (RFC 9110 §9.2.1).
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// InvalidateOnSuccess returns next with the cache's invalidation and no caching: a request with
// an unsafe method (any but GET, HEAD, OPTIONS and TRACE) whose response has a 2xx or 3xx status
// invalidates every entry of the Cache for
//   - its own path, under every query, Vary variant and identity (RFC 9111 §4.4);
//   - the paths in the response's Location and Content-Location, when they name the request's
//     host (or no host): another host's paths are never invalidated;
//   - the paths the Invalidates option returns for the request.
//
// Other requests and unsuccessful responses pass through untouched (no X-Cache field). Use it on
// routes that change what a cached route serves but are not cached themselves; Wrap does the same
// for the unsafe requests it sees.
//
// The invalidation happens when next writes its status, before the response reaches the client,
// so a client that reads the response and then sends a GET never gets an entry from before its
// change. It is bounded by StoreTimeout and never fails the request: a store failure is counted in
// gatewaykit.cache.store.errors{op="invalidate"} and logged, and leaves the entries until they
// expire (fail open, like every store failure of the package). Paths are matched without the
// host: on a Cache serving several hosts, invalidating /a clears /a of every host.
func (c *Cache) InvalidateOnSuccess(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !unsafeMethod(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		c.serveUnsafe(w, r, next)
	})
}

// Invalidate invalidates every entry of the given paths (absolute, escaped as in a URL, such as
// "/api/dashboard"; a query is ignored, every query of the path is invalidated; so is every
// spelling of it, see genPath), for every
// identity and Vary variant, in this Cache's store: in every instance sharing a Redis store. It is
// bounded by StoreTimeout (and ctx). An invalid path is reported before the store is touched.
// Safe for concurrent use.
func (c *Cache) Invalidate(ctx context.Context, paths ...string) error {
	eps := make([]string, 0, len(paths))
	for _, p := range paths {
		ep, err := parseGenPath(p)
		if err != nil {
			return fmt.Errorf("cache: Invalidate: %w", err)
		}
		eps = append(eps, ep)
	}
	return c.drop(ctx, eps)
}

func (c *Cache) serveUnsafe(w http.ResponseWriter, r *http.Request, next http.Handler) {
	iw := &invalidatingWriter{w: w, c: c, r: r}
	next.ServeHTTP(iw, r)
	iw.decide(http.StatusOK) // next wrote nothing: net/http answers 200
}

// drop invalidates the paths (genPath results; it sorts the slice), counting and logging a failure.
func (c *Cache) drop(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	slices.Sort(paths) // the caller's own slice
	paths = slices.Compact(paths)
	if !c.local {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.storeTimeout)
		defer cancel()
	}
	if err := c.gs.drop(ctx, paths, invalidationTTL(c.hold)); err != nil {
		c.tel.storeFailed(ctx, opInvalidate, err)
		return err
	}
	c.tel.invalidations.Add(ctx, int64(len(paths)))
	return nil
}

// invalidateFor invalidates what a successful unsafe request r changed; h is its response header.
func (c *Cache) invalidateFor(r *http.Request, h http.Header) {
	paths := make([]string, 1, 4)
	paths[0] = genPath(r.URL.Path)
	for _, f := range [...]string{"Location", "Content-Location"} {
		if v := h.Get(f); v != "" {
			if p, ok := sameHostPath(r, v); ok {
				paths = append(paths, p)
			}
		}
	}
	if c.cfg.invalidates != nil {
		for _, p := range c.cfg.invalidates(r) {
			ep, err := parseGenPath(p)
			if err != nil {
				c.tel.logLimited(r.Context(), "cache: Invalidates returned an invalid path, skipped", slog.Any("error", err))
				continue
			}
			paths = append(paths, ep)
		}
	}
	_ = c.drop(context.WithoutCancel(r.Context()), paths) // counted and logged; the response stands
}

// sameHostPath resolves a Location or Content-Location value against the request and returns its
// generation path (genPath) when it names the request's host, or no host. RFC 9111 §4.4: another host's URIs
// are never invalidated, so a response cannot clear entries it does not own.
func sameHostPath(r *http.Request, v string) (string, bool) {
	u, err := r.URL.Parse(strings.TrimSpace(v))
	if err != nil || u.Opaque != "" {
		return "", false
	}
	if u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" {
		return "", false
	}
	if u.Host != "" && !strings.EqualFold(u.Hostname(), (&url.URL{Host: r.Host}).Hostname()) {
		return "", false
	}
	if !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	return genPath(u.Path), true
}

// parseGenPath returns the generation path (genPath) of p, an escaped absolute path (a query is
// dropped).
func parseGenPath(p string) (string, error) {
	u, err := url.Parse(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	if u.Scheme != "" || u.Host != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "", fmt.Errorf("path %q is not an absolute path", p)
	}
	return genPath(u.Path), nil
}

// genPath is the path whose generation covers a request's entries, and that an invalidation
// deletes: the decoded path (url.URL.Path, not the escaped form) without dot segments, repeated
// slashes or a trailing slash (path.Clean). Every spelling of one path that an upstream serves
// alike ("/a/b", "/a/%62", "/a/./b", "/x/../a/b", "/a//b") therefore shares one generation, so a
// write through one spelling cannot leave another one's entries stale. Spellings that an upstream
// may tell apart ("/a%2Fb" and "/a/b", "/a/" and "/a") share it too: an invalidation of one
// costs the other a miss, never a stale hit. Entry keys still use the escaped path. A clean path
// (the usual case) is returned as is, without allocating.
func genPath(p string) string {
	if p == "" {
		return ""
	}
	return path.Clean(p)
}

// invalidatingWriter passes a response through and, when its status is known (WriteHeader, the
// first Write or Flush, or the handler returning), invalidates before the status goes out if it is
// 2xx or 3xx.
type invalidatingWriter struct {
	w       http.ResponseWriter
	c       *Cache
	r       *http.Request
	decided bool
}

func (iw *invalidatingWriter) decide(code int) {
	if iw.decided {
		return
	}
	iw.decided = true
	if code >= 200 && code < 400 {
		iw.c.invalidateFor(iw.r, iw.w.Header())
	}
}

func (iw *invalidatingWriter) Header() http.Header { return iw.w.Header() }

func (iw *invalidatingWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols { // not an informational response
		iw.decide(code)
	}
	iw.w.WriteHeader(code)
}

func (iw *invalidatingWriter) Write(p []byte) (int, error) {
	iw.decide(http.StatusOK)
	return iw.w.Write(p)
}

// Flush flushes the client's writer when it can.
func (iw *invalidatingWriter) Flush() {
	iw.decide(http.StatusOK)
	_ = http.NewResponseController(iw.w).Flush()
}

// Hijack hands the connection to the handler; a hijacked response has no status, so nothing is
// invalidated. A failed Hijack changes nothing: the handler may still answer normally.
func (iw *invalidatingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(iw.w).Hijack()
	if err == nil {
		iw.decided = true
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the client's writer.
func (iw *invalidatingWriter) Unwrap() http.ResponseWriter { return iw.w }
