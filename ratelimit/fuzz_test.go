package ratelimit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

// FuzzKeyFromClient feeds client-controlled header values and peer addresses through key
// functions and the middleware: the answer is always 200, 403 or 429, never a panic.
func FuzzKeyFromClient(f *testing.F) {
	f.Add("alice", "192.0.2.1:1")
	f.Add("", "[2001:db8::1]:443")
	f.Add("{tag}}{", "not-an-ip")
	f.Add("\x00\x1f\xff", "[::ffff:1.2.3.4]:80")
	l, err := ratelimit.New([]ratelimit.Rule{
		{Name: "hdr", Limit: ratelimit.PerMinute(3), Key: ratelimit.ByHeader("X-Key")},
		{Name: "ip", Limit: ratelimit.PerMinute(5), Key: ratelimit.Composite(ratelimit.ByClientIP(nil), ratelimit.ByHeader("X-Key")), EmptyKey: ratelimit.EmptyKeyShared},
	})
	if err != nil {
		f.Fatal(err)
	}
	h := l.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f.Fuzz(func(t *testing.T, key, remote string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header["X-Key"] = []string{key}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 && w.Code != 403 && w.Code != 429 {
			t.Fatalf("status %d", w.Code)
		}
		if (key == "") != (w.Code == 403) {
			t.Fatalf("key %q: status %d", key, w.Code)
		}
	})
}

// FuzzAlgorithms drives every algorithm with arbitrary valid limits and time steps and checks
// that a rejection's RetryAfter is positive and honest (admitted at RetryAfter, with no other
// traffic).
func FuzzAlgorithms(f *testing.F) {
	f.Add(uint8(0), int64(7), int64(1000), int64(0), int64(13))
	f.Add(uint8(3), int64(100), int64(60000), int64(5), int64(599))
	f.Add(uint8(4), int64(3), int64(10), int64(0), int64(1))
	f.Add(uint8(2), int64(1<<30), int64(1), int64(1<<30), int64(0))
	f.Fuzz(func(t *testing.T, alg uint8, count, periodMs, burst, stepMs int64) {
		a := ratelimit.Algorithm(alg % 5)
		lim := ratelimit.Limit{Count: count, Period: time.Duration(periodMs) * time.Millisecond, Burst: burst}
		if lim.Validate() != nil || (a == ratelimit.SlidingLog && count > ratelimit.MaxLogCount) || count > 1000 {
			return
		}
		clk := newClock()
		l, err := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: lim, Key: ratelimit.Constant("k"), Algorithm: a}}, ratelimit.WithClock(clk.Now))
		if err != nil {
			t.Fatal(err)
		}
		step := time.Duration(stepMs%100000) * time.Millisecond
		for i := 0; i < 50; i++ {
			d, err := l.Allow(context.Background(), "k")
			if err != nil {
				t.Fatal(err)
			}
			if d.Remaining < 0 || d.ResetAfter < 0 {
				t.Fatalf("negative figures: %+v", d)
			}
			if !d.Allowed {
				if d.RetryAfter <= 0 || step >= 0 && d.RetryAfter > 2*lim.Period+time.Second {
					t.Fatalf("RetryAfter %v for %v", d.RetryAfter, lim)
				}
				clk.Advance(d.RetryAfter)
				if d2, _ := l.Allow(context.Background(), "k"); !d2.Allowed {
					t.Fatalf("%v %v: rejected at RetryAfter %v", a, lim, d.RetryAfter)
				}
			}
			clk.Advance(step)
		}
	})
}
