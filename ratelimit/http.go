package ratelimit

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gatewaykit/gatewaykit"
)

// Wrap returns next guarded by the limiter: admitted requests reach next with the configured
// rate-limit headers set; rejected ones get a 429 problem with Retry-After (seconds until the same
// request would be admitted, rounded up) and the same headers. A request without a key under
// EmptyKeyDeny gets 403; a store failure under FailClosed gets 503 with Retry-After: 1; an
// invalid limit from a LimitFunc gets 500. Wrap's method value is a gatewaykit.Middleware.
func (l *Limiter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, kind, _ := l.decide(r.Context(), r, nil)
		switch kind {
		case kindAllowed:
			if d.Rule != "" {
				l.writeHeaders(w.Header(), &d)
			}
			next.ServeHTTP(w, r)
		case kindFailOpen:
			next.ServeHTTP(w, r)
		case kindRejected:
			p := gatewaykit.NewProblem(http.StatusTooManyRequests, "Too many requests: retry later.")
			p.Header = make(http.Header, 6)
			l.writeHeaders(p.Header, &d)
			p.WithRetryAfter(d.RetryAfter)
			l.onError(w, r, p)
		case kindNoKey:
			l.onError(w, r, gatewaykit.NewProblem(http.StatusForbidden, "The request cannot be rate limited: it lacks the information identifying its caller.").WithErr(ErrNoKey))
		case kindInvalid:
			l.onError(w, r, gatewaykit.NewProblem(http.StatusInternalServerError, "").WithErr(ErrInvalidLimit))
		default: // kindFailClosed
			l.onError(w, r, gatewaykit.NewProblem(http.StatusServiceUnavailable, "Rate limiting is temporarily unavailable.").
				WithRetryAfter(time.Second).WithErr(ErrStoreUnavailable))
		}
	})
}

// ceilSeconds rounds d up to whole seconds (0 for d <= 0).
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// appendPolicy renders a RateLimit-Policy item: "name";q=100;w=60.
func appendPolicy(b []byte, name string, lim Limit) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `";q=`...)
	b = strconv.AppendInt(b, lim.Count, 10)
	b = append(b, ";w="...)
	return strconv.AppendInt(b, max(1, ceilSeconds(lim.Period)), 10)
}

// writeHeaders sets the selected rate-limit headers for the binding rule of d, with two
// allocations (one string holding every value, one array of value slices).
func (l *Limiter) writeHeaders(h http.Header, d *Decision) {
	if l.headers == HeadersNone {
		return
	}
	var buf [256]byte
	b := buf[:0]
	var ends [5]int
	nv := 0
	reset := ceilSeconds(d.ResetAfter)
	if l.headers&HeadersLegacy != 0 {
		b = strconv.AppendInt(b, d.Limit.Count, 10)
		ends[nv] = len(b)
		nv++
		b = strconv.AppendInt(b, d.Remaining, 10)
		ends[nv] = len(b)
		nv++
		b = strconv.AppendInt(b, l.now().Add(d.ResetAfter+time.Second-1).Unix(), 10)
		ends[nv] = len(b)
		nv++
	}
	if l.headers&HeadersIETF != 0 {
		b = appendPolicy(b, d.Rule, d.Limit)
		ends[nv] = len(b)
		nv++
		b = append(b, '"')
		b = append(b, d.Rule...)
		b = append(b, `";r=`...)
		b = strconv.AppendInt(b, d.Remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, reset, 10)
		ends[nv] = len(b)
		nv++
	}
	s := string(b)
	vals := new([5]string)
	start := 0
	for i := 0; i < nv; i++ {
		vals[i] = s[start:ends[i]]
		start = ends[i]
	}
	i := 0
	if l.headers&HeadersLegacy != 0 {
		h["X-Ratelimit-Limit"] = vals[0:1:1]
		h["X-Ratelimit-Remaining"] = vals[1:2:2]
		h["X-Ratelimit-Reset"] = vals[2:3:3]
		i = 3
	}
	if l.headers&HeadersIETF != 0 {
		h["Ratelimit-Policy"] = vals[i : i+1 : i+1]
		h["Ratelimit"] = vals[i+1 : i+2 : i+2]
	}
}
