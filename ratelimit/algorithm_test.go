package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit/ratelimit"
)

var algorithms = []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.TokenBucket, ratelimit.FixedWindow,
	ratelimit.SlidingWindow, ratelimit.SlidingLog}

func newLimiter(t *testing.T, clk *fakeClock, alg ratelimit.Algorithm, lim ratelimit.Limit) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: lim, Key: ratelimit.Constant("k"), Algorithm: alg}},
		ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// burst admits requests at the current instant until one is rejected; it returns how many were
// admitted and the rejection's decision.
func burst(t *testing.T, l *ratelimit.Limiter, key string) (int, ratelimit.Decision) {
	t.Helper()
	for n := 0; n < 100000; n++ {
		d, err := l.Allow(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed {
			return n, d
		}
	}
	t.Fatal("never rejected")
	return 0, ratelimit.Decision{}
}

func TestBucketsBurstThenRefill(t *testing.T) {
	for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.TokenBucket} {
		t.Run(alg.String(), func(t *testing.T) {
			clk := newClock()
			l := newLimiter(t, clk, alg, ratelimit.PerMinute(60).WithBurst(5))
			n, d := burst(t, l, "k")
			if n != 5 {
				t.Fatalf("burst admitted %d, want 5", n)
			}
			if d.RetryAfter != time.Second || d.Remaining != 0 || d.Rule != "r" {
				t.Fatalf("rejection = %+v, want RetryAfter 1s", d)
			}
			clk.Advance(999 * time.Millisecond)
			if n, _ := burst(t, l, "k"); n != 0 {
				t.Fatalf("admitted %d before a token refilled", n)
			}
			clk.Advance(time.Millisecond)
			if n, _ := burst(t, l, "k"); n != 1 {
				t.Fatalf("admitted %d after one refill interval, want 1", n)
			}
			clk.Advance(3 * time.Second)
			if n, _ := burst(t, l, "k"); n != 3 {
				t.Fatalf("admitted %d after 3 intervals, want 3", n)
			}
			clk.Advance(time.Hour) // refill caps at the burst
			if n, _ := burst(t, l, "k"); n != 5 {
				t.Fatalf("admitted %d after a long pause, want burst 5", n)
			}
		})
	}
}

func TestFixedWindowEdges(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk, ratelimit.FixedWindow, ratelimit.PerMinute(5))
	clk.Advance(59*time.Second + 999*time.Millisecond)
	n, d := burst(t, l, "k")
	if n != 5 || d.RetryAfter != time.Millisecond {
		t.Fatalf("end of window: admitted %d, retry %v; want 5, 1ms", n, d.RetryAfter)
	}
	clk.Advance(time.Millisecond) // next window: the edge lets another full window through
	if n, d = burst(t, l, "k"); n != 5 || d.RetryAfter != time.Minute {
		t.Fatalf("start of window: admitted %d, retry %v; want 5, 1m", n, d.RetryAfter)
	}
}

func TestSlidingWindowEdges(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk, ratelimit.SlidingWindow, ratelimit.PerMinute(10))
	if n, _ := burst(t, l, "k"); n != 10 {
		t.Fatalf("first window admitted %d, want 10", n)
	}
	clk.Advance(time.Minute) // previous window weighs fully at its end: estimate 10
	n, d := burst(t, l, "k")
	if n != 0 || d.RetryAfter != 6*time.Second {
		t.Fatalf("window edge: admitted %d, retry %v; want 0, 6s", n, d.RetryAfter)
	}
	clk.Advance(6 * time.Second) // estimate 10*54/60 = 9
	if n, _ = burst(t, l, "k"); n != 1 {
		t.Fatalf("after retry: admitted %d, want 1", n)
	}
	clk.Advance(24 * time.Second) // estimate 10*0.5 + 1 = 6
	if n, _ = burst(t, l, "k"); n != 4 {
		t.Fatalf("mid window: admitted %d, want 4", n)
	}
}

func TestSlidingLogExact(t *testing.T) {
	clk := newClock()
	l := newLimiter(t, clk, ratelimit.SlidingLog, ratelimit.PerMinute(3))
	for range 3 { // admissions at 0s, 10s, 20s
		if d, _ := l.Allow(context.Background(), "k"); !d.Allowed {
			t.Fatal("rejected below the limit")
		}
		clk.Advance(10 * time.Second)
	}
	// at 30s the log holds 3 entries: the 4th request waits for the one at 0s to leave
	n, d := burst(t, l, "k")
	if n != 0 || d.RetryAfter != 30*time.Second {
		t.Fatalf("admitted %d retry %v; want 0, 30s", n, d.RetryAfter)
	}
	clk.Advance(30*time.Second - time.Nanosecond)
	if n, _ = burst(t, l, "k"); n != 0 {
		t.Fatal("admitted before the oldest entry left the window")
	}
	clk.Advance(time.Nanosecond)
	if n, _ = burst(t, l, "k"); n != 1 {
		t.Fatalf("admitted %d when the oldest entry left, want 1", n)
	}
}

// TestRetryAfterIsExact checks, for every algorithm, that a rejected request is still rejected
// just before RetryAfter and admitted at RetryAfter.
func TestRetryAfterIsExact(t *testing.T) {
	for _, alg := range algorithms {
		for _, lim := range []ratelimit.Limit{ratelimit.PerSecond(7), ratelimit.PerMinute(100).WithBurst(10), ratelimit.Every(3, 10*time.Second)} {
			t.Run(alg.String()+"/"+lim.String(), func(t *testing.T) {
				clk := newClock()
				l := newLimiter(t, clk, alg, lim)
				steps := []time.Duration{0, 13 * time.Millisecond, 500 * time.Millisecond, 0, 2 * time.Second, 70 * time.Millisecond}
				for i := range 40 {
					clk.Advance(steps[i%len(steps)])
					_, d := burst(t, l, "k")
					if d.RetryAfter <= 0 {
						t.Fatalf("step %d: RetryAfter %v", i, d.RetryAfter)
					}
					if d.RetryAfter > time.Nanosecond {
						clk.Advance(d.RetryAfter - time.Nanosecond)
						if d2, _ := l.Allow(context.Background(), "k"); d2.Allowed {
							t.Fatalf("step %d: admitted 1ns before RetryAfter %v", i, d.RetryAfter)
						}
						clk.Advance(time.Nanosecond)
					} else {
						clk.Advance(d.RetryAfter)
					}
					if d2, _ := l.Allow(context.Background(), "k"); !d2.Allowed {
						t.Fatalf("step %d: rejected at RetryAfter %v: %+v", i, d.RetryAfter, d2)
					}
				}
			})
		}
	}
}

func TestGCRAEqualsTokenBucket(t *testing.T) {
	clk := newClock()
	lim := ratelimit.PerSecond(10).WithBurst(4)
	g := newLimiter(t, clk, ratelimit.GCRA, lim)
	tb := newLimiter(t, clk, ratelimit.TokenBucket, lim)
	for i := range 500 {
		clk.Advance(time.Duration(i%7) * 37 * time.Millisecond)
		dg, _ := g.Allow(context.Background(), "k")
		dt, _ := tb.Allow(context.Background(), "k")
		if dg.Allowed != dt.Allowed || dg.Remaining != dt.Remaining || dg.RetryAfter != dt.RetryAfter {
			t.Fatalf("step %d: gcra %+v, token bucket %+v", i, dg, dt)
		}
	}
}

func TestKeysAreIndependent(t *testing.T) {
	for _, alg := range algorithms {
		clk := newClock()
		l := newLimiter(t, clk, alg, ratelimit.PerMinute(3))
		if n, _ := burst(t, l, "a"); n != 3 {
			t.Fatalf("%v: a admitted %d", alg, n)
		}
		if n, _ := burst(t, l, "b"); n != 3 {
			t.Fatalf("%v: b admitted %d after a was exhausted", alg, n)
		}
	}
}
