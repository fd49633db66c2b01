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
// invalid limit from a LimitFunc gets 500. Wrap's method value is a gatewaykit.Middleware; the
// returned handler is safe for concurrent use.
func (l *Limiter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, kind, b, _ := l.decide(r.Context(), r, nil)
		switch kind {
		case kindAllowed:
			if d.Rule != "" {
				l.writeHeaders(w.Header(), &d, b)
			}
			next.ServeHTTP(w, r)
		case kindFailOpen:
			next.ServeHTTP(w, r)
		case kindRejected:
			p := gatewaykit.NewProblem(http.StatusTooManyRequests, "Too many requests: retry later.")
			p.Header = make(http.Header, 6)
			l.writeHeaders(p.Header, &d, b)
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
// allocations (one string holding the values that vary per request, one array of value slices).
// Values that depend only on a rule with a static Limit are precomputed at New.
func (l *Limiter) writeHeaders(h http.Header, d *Decision, b binding) {
	if l.headers == HeadersNone {
		return
	}
	rule := &l.rules[b.rule]
	static := rule.LimitFunc == nil
	var buf [192]byte
	s := buf[:0]
	var ends [5]int // end in s of each dynamic value, in the order of vals
	vals := new([5]string)
	if l.headers&HeadersLegacy != 0 {
		if !static {
			s = strconv.AppendInt(s, d.Limit.Count, 10)
		}
		ends[0] = len(s)
		s = strconv.AppendInt(s, d.Remaining, 10)
		ends[1] = len(s)
		s = strconv.AppendInt(s, b.now.Add(d.ResetAfter+time.Second-1).Unix(), 10)
		ends[2] = len(s)
	}
	if l.headers&HeadersIETF != 0 {
		if !static {
			s = appendPolicy(s, d.Rule, d.Limit)
		}
		ends[3] = len(s)
		s = append(s, '"')
		s = append(s, d.Rule...)
		s = append(s, `";r=`...)
		s = strconv.AppendInt(s, d.Remaining, 10)
		s = append(s, ";t="...)
		s = strconv.AppendInt(s, ceilSeconds(d.ResetAfter), 10)
		ends[4] = len(s)
	} else { // no IETF values: empty strings
		ends[3], ends[4] = ends[2], ends[2]
	}
	str := string(s)
	start := 0
	for i := range ends {
		vals[i] = str[start:ends[i]]
		start = ends[i]
	}
	if static {
		vals[0], vals[3] = rule.limitVal, rule.policyVal
	}
	if l.headers&HeadersLegacy != 0 {
		h["X-Ratelimit-Limit"] = vals[0:1:1]
		h["X-Ratelimit-Remaining"] = vals[1:2:2]
		h["X-Ratelimit-Reset"] = vals[2:3:3]
	}
	if l.headers&HeadersIETF != 0 {
		h["Ratelimit-Policy"] = vals[3:4:4]
		h["Ratelimit"] = vals[4:5:5]
	}
}
