package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/ratelimit"
)

func TestMultiLimitRejectedRequestConsumesNothing(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			clk := newClock()
			l, err := ratelimit.New([]ratelimit.Rule{
				{Name: "user", Limit: ratelimit.PerHour(2), Key: ratelimit.Constant("unused"), Algorithm: alg},
				{Name: "service", Limit: ratelimit.PerHour(5), Key: ratelimit.Constant("unused"), Algorithm: alg},
			}, ratelimit.WithClock(clk.Now))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			allow := func(user string) ratelimit.Decision {
				d, err := l.Allow(ctx, user, "svc")
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			for range 2 {
				if !allow("u1").Allowed {
					t.Fatal("u1 rejected below its limit")
				}
			}
			for range 10 { // rejected by "user": must not count against "service"
				if d := allow("u1"); d.Allowed || d.Rule != "user" {
					t.Fatalf("u1 over its limit: %+v", d)
				}
			}
			for _, u := range []string{"u2", "u2", "u3"} {
				if d := allow(u); !d.Allowed {
					t.Fatalf("%s rejected: %+v (service counted rejected requests?)", u, d)
				}
			}
			if d := allow("u4"); d.Allowed || d.Rule != "service" {
				t.Fatalf("service limit 5 not enforced: %+v", d)
			}
		})
	}
}

func TestBindingRuleIsLeastRemaining(t *testing.T) {
	clk := newClock()
	l, err := ratelimit.New([]ratelimit.Rule{
		{Name: "big", Limit: ratelimit.PerMinute(100), Key: ratelimit.Constant("x")},
		{Name: "small", Limit: ratelimit.PerMinute(3), Key: ratelimit.Constant("x")},
	}, ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Allow(context.Background(), "k")
	if d.Rule != "small" || d.Remaining != 2 || d.Limit != ratelimit.PerMinute(3) {
		t.Fatalf("decision %+v", d)
	}
}

func TestLimitFuncByTier(t *testing.T) {
	clk := newClock()
	l, err := ratelimit.New([]ratelimit.Rule{{
		Name:      "tier",
		LimitFunc: ratelimit.ByTier(map[string]ratelimit.Limit{"free": ratelimit.PerDay(2), "premium": ratelimit.PerDay(5)}, ratelimit.Limit{}),
		Key:       ratelimit.BySubject(),
	}}, ratelimit.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	count := func(tier string) int {
		ctx := gatewaykit.WithIdentity(context.Background(), &gatewaykit.Identity{Subject: "s-" + tier, Tier: tier})
		n := 0
		for range 20 {
			if d, _ := l.Allow(ctx, "s-"+tier); d.Allowed {
				n++
			}
		}
		return n
	}
	if got := count("free"); got != 2 {
		t.Errorf("free admitted %d, want 2", got)
	}
	if got := count("premium"); got != 5 {
		t.Errorf("premium admitted %d, want 5", got)
	}
	if got := count("unknown"); got != 20 { // zero fallback exempts
		t.Errorf("exempt tier admitted %d, want 20", got)
	}
}

func TestInvalidLimitFromLimitFunc(t *testing.T) {
	l, err := ratelimit.New([]ratelimit.Rule{{Name: "r", Key: ratelimit.Constant("x"),
		LimitFunc: func(context.Context, string) ratelimit.Limit { return ratelimit.Limit{Count: -1, Period: time.Second} }}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(context.Background(), "k")
	if d.Allowed || !errors.Is(err, ratelimit.ErrInvalidLimit) {
		t.Fatalf("got %+v, %v", d, err)
	}
}

func TestEmptyKeyPolicies(t *testing.T) {
	ctx := context.Background()
	deny, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(2), Key: ratelimit.BySubject()}})
	if d, err := deny.Allow(ctx, ""); d.Allowed || !errors.Is(err, ratelimit.ErrNoKey) {
		t.Fatalf("deny: %+v, %v", d, err)
	}
	shared, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(2), Key: ratelimit.BySubject(), EmptyKey: ratelimit.EmptyKeyShared}})
	n := 0
	for range 5 {
		if d, err := shared.Allow(ctx, ""); err == nil && d.Allowed {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("shared empty key admitted %d, want 2 (one shared bucket)", n)
	}
}

func TestLongKeysAreHashed(t *testing.T) {
	ms, _ := ratelimit.NewMemoryStore()
	l, _ := ratelimit.New([]ratelimit.Rule{{Name: "r", Limit: ratelimit.PerMinute(1), Key: ratelimit.Constant("x")}}, ratelimit.WithStore(ms))
	a, b := strings.Repeat("a", 10000), strings.Repeat("a", 9999)+"b"
	if d, _ := l.Allow(context.Background(), a); !d.Allowed {
		t.Fatal("first long key rejected")
	}
	if d, _ := l.Allow(context.Background(), b); !d.Allowed {
		t.Fatal("distinct long key shares a counter")
	}
	if d, _ := l.Allow(context.Background(), a); d.Allowed {
		t.Fatal("same long key not limited")
	}
}

func TestNewValidates(t *testing.T) {
	ok := ratelimit.Rule{Name: "r", Limit: ratelimit.PerSecond(1), Key: ratelimit.Constant("x")}
	with := func(f func(*ratelimit.Rule)) []ratelimit.Rule { r := ok; f(&r); return []ratelimit.Rule{r} }
	cases := []struct {
		name  string
		rules []ratelimit.Rule
		opts  []ratelimit.Option
		want  string
	}{
		{"no rules", nil, nil, "rules"},
		{"bad name", with(func(r *ratelimit.Rule) { r.Name = "a b" }), nil, "name"},
		{"no key", with(func(r *ratelimit.Rule) { r.Key = nil }), nil, "Key is nil"},
		{"zero limit", with(func(r *ratelimit.Rule) { r.Limit = ratelimit.Limit{} }), nil, "count"},
		{"short period", with(func(r *ratelimit.Rule) { r.Limit = ratelimit.Every(1, time.Microsecond) }), nil, "period"},
		{"log too big", with(func(r *ratelimit.Rule) { r.Algorithm = ratelimit.SlidingLog; r.Limit = ratelimit.PerDay(100000) }), nil, "sliding_log"},
		{"bad algorithm", with(func(r *ratelimit.Rule) { r.Algorithm = 99 }), nil, "algorithm"},
		{"duplicate", []ratelimit.Rule{ok, ok}, nil, "duplicate"},
		{"open and closed", []ratelimit.Rule{ok}, []ratelimit.Option{ratelimit.FailOpen(), ratelimit.FailClosed()}, "mutually exclusive"},
		{"remote store needs policy", []ratelimit.Rule{ok}, []ratelimit.Option{ratelimit.WithStore(failingStore{})}, "FailOpen() or FailClosed()"},
		{"timeout", []ratelimit.Rule{ok}, []ratelimit.Option{ratelimit.WithStoreTimeout(0)}, "timeout"},
		{"headers", []ratelimit.Rule{ok}, []ratelimit.Option{ratelimit.WithHeaders(64)}, "headers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ratelimit.New(c.rules, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "ratelimit: ") {
				t.Fatalf("err = %v, want mention of %q", err, c.want)
			}
		})
	}
}

// failingStore always fails, as an unreachable remote store would.
type failingStore struct{}

func (failingStore) Take(context.Context, time.Time, []ratelimit.Request, []ratelimit.Result) error {
	return errors.New("connection refused")
}

func TestFailurePolicies(t *testing.T) {
	rules := []ratelimit.Rule{{Name: "r", Limit: ratelimit.PerSecond(1), Key: ratelimit.Constant("x")}}
	open, err := ratelimit.New(rules, ratelimit.WithStore(failingStore{}), ratelimit.FailOpen())
	if err != nil {
		t.Fatal(err)
	}
	d, err := open.Allow(context.Background(), "k")
	if !d.Allowed || !d.FailedOpen || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
		t.Fatalf("fail open: %+v, %v", d, err)
	}
	closed, _ := ratelimit.New(rules, ratelimit.WithStore(failingStore{}), ratelimit.FailClosed())
	d, err = closed.Allow(context.Background(), "k")
	if d.Allowed || !errors.Is(err, ratelimit.ErrStoreUnavailable) {
		t.Fatalf("fail closed: %+v, %v", d, err)
	}
}
