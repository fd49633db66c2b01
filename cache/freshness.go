package cache

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// hopHeaders are connection-specific fields never replayed from the cache (RFC 9110 §7.6.1), plus
// the fields the cache itself sets.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Age", "X-Cache"}

// newEntry decides whether a response may be stored and, if so, builds its entry and storage TTL.
// perUser is true when the entry is keyed by the caller's identity.
func (c *Cache) newEntry(status int, h http.Header, body []byte, now time.Time, perUser bool) (*Entry, time.Duration) {
	if status <= 0 || status >= len(c.cfg.statuses) || !c.cfg.statuses[status] {
		return nil, 0
	}
	cc := parseCacheControl(h["Cache-Control"])
	if cc.noStore || cc.noCache || (cc.private && !perUser) {
		return nil, 0
	}
	if _, ok := h["Set-Cookie"]; ok && !c.cfg.stripSetCookie {
		return nil, 0
	}
	if _, ok := h["Trailer"]; ok {
		return nil, 0
	}
	if cl, ok := h["Content-Length"]; ok && (len(cl) != 1 || cl[0] != strconv.Itoa(len(body))) {
		return nil, 0 // the handler stopped short (or lied): never store a truncated body
	}
	vary, ok := parseVary(h["Vary"])
	if !ok {
		return nil, 0
	}
	lifetime, ok := c.lifetime(cc, h, now)
	if !ok {
		return nil, 0
	}
	born := now.Add(-initialAge(h, now))
	fresh := born.Add(lifetime)
	stale := fresh
	if c.cfg.swr > 0 && !cc.mustRevalidate {
		switch {
		case cc.swr >= 0: // the upstream's own stale-while-revalidate
			stale = fresh.Add(time.Duration(cc.swr) * time.Second)
		case cc.sMaxAge < 0: // s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10)
			stale = fresh.Add(c.cfg.swr)
		}
	}
	retain := stale // how long the store keeps it: past stale, for a conditional revalidation
	if status == http.StatusOK && hasValidator(h) {
		if c.cfg.revalWindowSet {
			retain = stale.Add(c.cfg.revalWindow)
		} else {
			retain = stale.Add(lifetime)
		}
	}
	if !retain.After(now) {
		return nil, 0
	}
	e := &Entry{Status: status, Header: storedHeader(h, cc, status, len(body)), Body: body, Vary: vary,
		Born: born, FreshUntil: fresh, StaleUntil: stale}
	return e.index(), retain.Sub(now)
}

// initialAge is the age of a response received at now with header h: RFC 9111 §4.2.3's
// corrected_initial_age = max(apparent_age, corrected_age_value), where apparent_age = max(0,
// now - Date) and corrected_age_value = Age + response_delay. response_delay is taken as 0: the
// cache does not know when the upstream request was sent on its own clock (the clock is
// injectable, the fetch's duration is measured in real time), and for an in-process upstream or a
// nearby proxy it is the smallest part; the apparent age covers a slow hop that kept Date. A Date in
// the future (clock skew) counts as 0, never as a negative age; a missing or invalid Date leaves
// the Age header alone. The result is capped at 2^31 seconds, as Age values are (§1.2.2).
func initialAge(h http.Header, now time.Time) time.Duration {
	var age time.Duration
	if a, ok := h["Age"]; ok && len(a) > 0 {
		age = time.Duration(parseDelta(strings.TrimSpace(a[0]))) * time.Second
	}
	if ds, ok := h["Date"]; ok && len(ds) > 0 {
		if date, err := http.ParseTime(ds[0]); err == nil {
			age = max(age, min(now.Sub(date), maxDelta*time.Second))
		}
	}
	return age
}

// hasValidator reports whether a response header has a validator a conditional request can use
// (RFC 9110 §8.8): ETag or Last-Modified.
func hasValidator(h http.Header) bool {
	return len(h["Etag"]) > 0 || len(h["Last-Modified"]) > 0
}

// revalidatable returns e if a conditional request can revalidate it (a stored 200 with a
// validator), else nil.
func revalidatable(e *Entry) *Entry {
	if e == nil || e.Status != http.StatusOK || !hasValidator(e.Header) {
		return nil
	}
	return e
}

// withValidators returns a copy of r that asks upstream whether e is still current: If-None-Match
// with e's ETag (weak or strong: If-None-Match uses the weak comparison) and If-Modified-Since with
// its Last-Modified, both when e has both (RFC 9111 §4.3.1; an origin that knows ETags ignores
// If-Modified-Since beside If-None-Match). r carries no conditional header of its own.
func withValidators(r *http.Request, e *Entry) *http.Request {
	r2 := r.Clone(r.Context())
	if et := e.Header["Etag"]; len(et) > 0 {
		r2.Header["If-None-Match"] = et[:1:1]
	}
	if lm := e.Header["Last-Modified"]; len(lm) > 0 {
		r2.Header["If-Modified-Since"] = lm[:1:1]
	}
	return r2
}

// sameValidator reports whether a 304 (header h) is about the stored response with header stored
// (RFC 9111 §4.3.4): its ETag matches the stored one (weak comparison, RFC 9110 §8.8.3.2) or,
// without an ETag, its Last-Modified equals the stored one. A 304 without validators answers the
// only validators sent, the stored response's.
func sameValidator(stored, h http.Header) bool {
	if et := h["Etag"]; len(et) > 0 {
		st := stored["Etag"]
		return len(st) > 0 && strings.TrimPrefix(et[0], "W/") == strings.TrimPrefix(st[0], "W/")
	}
	if lm := h["Last-Modified"]; len(lm) > 0 {
		sl := stored["Last-Modified"]
		return len(sl) > 0 && lm[0] == sl[0]
	}
	return true
}

// notRefreshed are the fields a 304 does not replace in the stored response: Content-Length (RFC
// 9111 §3.2) and the fields that describe the stored body's bytes.
var notRefreshed = []string{"Content-Length", "Content-Encoding", "Content-Range"}

// refreshed applies a 304 Not Modified (its header h, without the fields of outer middleware) to
// the stored response old (RFC 9111 §4.3.4, §3.2): h's fields replace the stored ones, but for
// notRefreshed, and the freshness is computed again from the result, as for a new response. It
// returns the entry to store and its TTL (nil when the refreshed response may not be stored, for
// example when the 304 says no-store or changes Vary) and, always, the entry to answer the
// request with.
func (c *Cache) refreshed(old *Entry, h http.Header, now time.Time, perUser bool) (stored *Entry, ttl time.Duration, served *Entry) {
	merged := old.Header.Clone()
	for k, vs := range h {
		if !slices.Contains(notRefreshed, k) {
			merged[k] = vs
		}
	}
	if _, ok := h["Date"]; !ok {
		// The stored Date is the old response's: Expires would be measured from it (a lifetime
		// longer than the 304 gives) and it would contradict the refreshed Age. Without a Date
		// the lifetime runs from now, and the server adds the current Date for the client.
		delete(merged, "Date")
	}
	if e, ttl := c.newEntry(old.Status, merged, old.Body, now, perUser); e != nil && slices.Equal(e.Vary, old.Vary) {
		return e, ttl, e
	}
	cc := parseCacheControl(merged["Cache-Control"])
	served = &Entry{Status: old.Status, Header: storedHeader(merged, cc, old.Status, len(old.Body)), Body: old.Body,
		Vary: old.Vary, Born: now, FreshUntil: now, StaleUntil: now}
	return nil, 0, served.index()
}

// lifetime is the freshness lifetime: s-maxage, else max-age, else Expires minus Date, else the
// configured TTL, capped by MaxTTL. ok is false when nothing gives one.
func (c *Cache) lifetime(cc directives, h http.Header, now time.Time) (time.Duration, bool) {
	var d time.Duration
	switch {
	case cc.sMaxAge >= 0:
		d = time.Duration(cc.sMaxAge) * time.Second
	case cc.maxAge >= 0:
		d = time.Duration(cc.maxAge) * time.Second
	case len(h["Expires"]) > 0:
		exp, err := http.ParseTime(h["Expires"][0])
		if err != nil {
			return 0, true // an invalid Expires means already expired (RFC 9111 §5.3)
		}
		date := now
		if ds, ok := h["Date"]; ok && len(ds) > 0 {
			if t, err := http.ParseTime(ds[0]); err == nil {
				date = t
			}
		}
		d = max(exp.Sub(date), 0)
	case c.cfg.ttl > 0:
		d = c.cfg.ttl
	default:
		return 0, false
	}
	if c.cfg.maxTTL > 0 {
		d = min(d, c.cfg.maxTTL)
	}
	return d, true
}

// parseVary returns the sorted canonical names in Vary; ok is false for "*" or a malformed name.
func parseVary(lines []string) (names []string, ok bool) {
	for _, line := range lines {
		for f := range strings.SplitSeq(line, ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			if !validToken(f) || f == "*" {
				return nil, false
			}
			names = append(names, http.CanonicalHeaderKey(f))
		}
	}
	if len(names) == 0 {
		return nil, true
	}
	slices.Sort(names)
	return slices.Compact(names), true
}

// storedHeader copies the replayable fields of h and sets Content-Length to the body size.
func storedHeader(h http.Header, cc directives, status, bodyLen int) http.Header {
	out := h.Clone()
	for _, f := range out["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			out.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		delete(out, name)
	}
	delete(out, "Set-Cookie")
	for _, name := range cc.noCacheFields {
		delete(out, name)
	}
	for _, name := range cc.privateFields {
		delete(out, name)
	}
	if status == http.StatusNoContent {
		delete(out, "Content-Length") // RFC 9110 §8.6: never on 204
	} else {
		out["Content-Length"] = []string{strconv.Itoa(bodyLen)}
	}
	return out
}
