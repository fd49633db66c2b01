package discovery_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit"
	"github.com/gatewaykit/gatewaykit/discovery"
)

func endpoints(n int, weights ...int) []*discovery.Endpoint {
	eps := make([]*discovery.Endpoint, n)
	for i := range eps {
		in := discovery.Instance{Address: "10.0.0." + strconv.Itoa(i+1), Port: 8080}
		if i < len(weights) {
			in.Weight = weights[i]
		}
		eps[i] = discovery.NewEndpoint(in)
	}
	return eps
}

func countPicks(pk discovery.Picker, r *http.Request, n int) map[*discovery.Endpoint]int {
	got := map[*discovery.Endpoint]int{}
	for range n {
		got[pk.Pick(r)]++
	}
	return got
}

func TestRoundRobinExact(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7} {
		eps := endpoints(n)
		pk := discovery.RoundRobin().NewPicker(eps)
		r := httptest.NewRequest("GET", "/", nil)
		// Order: strictly cyclic.
		for i := range 3 * n {
			if got := pk.Pick(r); got != eps[i%n] {
				t.Fatalf("n=%d pick %d = %s, want %s", n, i, got.HostPort(), eps[i%n].HostPort())
			}
		}
		got := countPicks(pk, r, 1000*n)
		for _, e := range eps {
			if got[e] != 1000 {
				t.Errorf("n=%d: %s picked %d times, want exactly 1000", n, e.HostPort(), got[e])
			}
		}
	}
}

func TestWeightedRoundRobin(t *testing.T) {
	tests := []struct {
		weights []int
		want    []int // picks per endpoint over sum(weights)*100 picks
	}{
		{[]int{1, 1}, []int{100, 100}},
		{[]int{5, 1, 1}, []int{500, 100, 100}},
		{[]int{200, 100}, []int{200, 100}}, // reduced by the gcd, 300 picks
		{[]int{0, 3}, []int{100, 300}},     // zero weight means 1
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.weights), func(t *testing.T) {
			eps := endpoints(len(tt.weights), tt.weights...)
			pk := discovery.WeightedRoundRobin().NewPicker(eps)
			total := 0
			for _, w := range tt.want {
				total += w
			}
			got := countPicks(pk, httptest.NewRequest("GET", "/", nil), total)
			for i, e := range eps {
				if got[e] != tt.want[i] {
					t.Errorf("endpoint %d (weight %d) picked %d times, want %d", i, tt.weights[i], got[e], tt.want[i])
				}
			}
		})
	}
	// Smoothness: weights 5,1,1 give nginx's interleaved order a a b a c a a, not a a a a a b c.
	eps := endpoints(3, 5, 1, 1)
	pk := discovery.WeightedRoundRobin().NewPicker(eps)
	want := []int{0, 0, 1, 0, 2, 0, 0}
	for i, w := range want {
		if got := pk.Pick(nil); got != eps[w] {
			t.Fatalf("pick %d = %s, want endpoint %d (order %v)", i, got.HostPort(), w, want)
		}
	}
}

func TestP2CPrefersLessLoaded(t *testing.T) {
	eps := endpoints(2)
	discovery.SetInFlight(eps[0], 10)
	discovery.SetInFlight(eps[1], 2)
	pk := discovery.P2C().NewPicker(eps)
	got := countPicks(pk, nil, 1000)
	if got[eps[1]] != 1000 {
		t.Fatalf("with two endpoints P2C compares both: less loaded picked %d/1000", got[eps[1]])
	}

	// With 10 endpoints, one idle and the rest loaded, the idle one wins whenever it is sampled
	// (probability 2/10 per pick), so about 20% of picks instead of 10%.
	eps = endpoints(10)
	for _, e := range eps[1:] {
		discovery.SetInFlight(e, 5)
	}
	pk = discovery.P2C().NewPicker(eps)
	got = countPicks(pk, nil, 20000)
	if got[eps[0]] < 3400 || got[eps[0]] > 4600 {
		t.Fatalf("idle endpoint picked %d/20000 times, want about 4000", got[eps[0]])
	}

	// Weight counts: in-flight per unit of weight.
	eps = endpoints(2, 4, 1)
	discovery.SetInFlight(eps[0], 6) // 1.5 per weight
	discovery.SetInFlight(eps[1], 2) // 2 per weight
	got = countPicks(discovery.P2C().NewPicker(eps), nil, 100)
	if got[eps[0]] != 100 {
		t.Fatalf("heavier endpoint with lower load per weight picked %d/100", got[eps[0]])
	}
}

func TestP2CSpreadsEvenLoad(t *testing.T) {
	eps := endpoints(4)
	got := countPicks(discovery.P2C().NewPicker(eps), nil, 40000)
	for _, e := range eps {
		if got[e] < 8000 || got[e] > 12000 {
			t.Errorf("%s picked %d/40000, want about 10000", e.HostPort(), got[e])
		}
	}
}

func TestConsistentHashStability(t *testing.T) {
	key := discovery.HeaderKey("x-user")
	b := discovery.ConsistentHash(key)
	eps := endpoints(5)
	before := b.NewPicker(eps)
	// Same key, same endpoint, across pickers built from the same set in another order.
	shuffled := []*discovery.Endpoint{eps[3], eps[1], eps[4], eps[0], eps[2]}
	again := b.NewPicker(shuffled)
	after := b.NewPicker(append(eps[:5:5], endpoints(6)[5]))

	const keys = 10000
	moved := 0
	perEndpoint := map[string]int{}
	for i := range keys {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-User", "user-"+strconv.Itoa(i))
		a := before.Pick(r)
		if again.Pick(r) != a {
			t.Fatalf("key %d maps differently depending on endpoint order", i)
		}
		if before.Pick(r) != a {
			t.Fatalf("key %d is not sticky", i)
		}
		perEndpoint[a.HostPort()]++
		if c := after.Pick(r); c.HostPort() != a.HostPort() {
			moved++
			if c.HostPort() != "10.0.0.6:8080" {
				t.Fatalf("key %d moved between two old endpoints (%s -> %s)", i, a.HostPort(), c.HostPort())
			}
		}
	}
	// Adding a 6th endpoint should move about 1/6 of the keys.
	if moved < keys/6-keys/20 || moved > keys/6+keys/20 {
		t.Errorf("adding one endpoint to 5 moved %d/%d keys, want about %d", moved, keys, keys/6)
	}
	for hp, n := range perEndpoint {
		if n < keys/5/2 || n > keys/5*2 {
			t.Errorf("%s owns %d/%d keys: ring badly balanced", hp, n, keys)
		}
	}
}

func TestConsistentHashKeys(t *testing.T) {
	eps := endpoints(8)
	tests := []struct {
		name string
		key  discovery.HashKey
		set  func(*http.Request, string)
	}{
		{"header", discovery.HeaderKey("X-Session"), func(r *http.Request, v string) { r.Header.Set("X-Session", v) }},
		{"cookie", discovery.CookieKey("sid"), func(r *http.Request, v string) {
			r.Header.Set("Cookie", "a=1; sid="+v+"; b=2")
		}},
		{"identity", discovery.IdentityKey(), func(r *http.Request, v string) {
			*r = *r.WithContext(gatewaykit.WithIdentity(r.Context(), &gatewaykit.Identity{Subject: v}))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk := discovery.ConsistentHash(tt.key).NewPicker(eps)
			distinct := map[*discovery.Endpoint]bool{}
			for i := range 200 {
				r1 := httptest.NewRequest("GET", "/", nil)
				r2 := httptest.NewRequest("GET", "/other", nil)
				v := "k" + strconv.Itoa(i)
				tt.set(r1, v)
				tt.set(r2, v)
				e := pk.Pick(r1)
				if pk.Pick(r2) != e {
					t.Fatalf("key %q routed to two endpoints", v)
				}
				distinct[e] = true
			}
			if len(distinct) < 6 {
				t.Fatalf("200 keys landed on only %d of 8 endpoints", len(distinct))
			}
			// No key: spread at random rather than all on one endpoint.
			none := map[*discovery.Endpoint]bool{}
			for range 200 {
				none[pk.Pick(httptest.NewRequest("GET", "/", nil))] = true
			}
			if len(none) < 4 {
				t.Fatalf("keyless requests landed on only %d endpoints", len(none))
			}
		})
	}
}

func TestCookieKeyParsing(t *testing.T) {
	tests := []struct{ header, want string }{
		{"sid=abc", "abc"},
		{"a=1;sid=abc", "abc"},
		{"a=1;  sid=\"abc\"  ; b=2", "abc"},
		{"xsid=1; sid=2", "2"},
		{"sid", ""},
		{"", ""},
		{"sid=", ""},
		{"sid=\"", "\""},
		{"a=xsid=1; sid=2", "2"},
		{"c=sid=1", ""},
		{"a=1;\tsid=tab ;", "tab"},
	}
	key := discovery.CookieKey("sid")
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", tt.header)
		if got := key(r); got != tt.want {
			t.Errorf("Cookie %q: got %q, want %q", tt.header, got, tt.want)
		}
	}
}

func FuzzCookieKey(f *testing.F) {
	for _, s := range []string{"sid=abc", "a=1; sid=\"x\"", ";;;", "sid=\"", "=;=", "sid=a;sid=b"} {
		f.Add(s)
	}
	key := discovery.CookieKey("sid")
	f.Fuzz(func(t *testing.T, header string) {
		r := &http.Request{Header: http.Header{"Cookie": {header}}}
		v := key(r)
		if len(v) > len(header) || !strings.Contains(header, v) {
			t.Fatalf("value %q is not part of header %q", v, header)
		}
	})
}

func BenchmarkPick(b *testing.B) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-User", "user-12345")
	r.Header.Set("Cookie", "theme=dark; sid=abcdef0123456789; lang=en")
	for _, bb := range []struct {
		name string
		bal  discovery.Balancer
	}{
		{"RoundRobin", discovery.RoundRobin()},
		{"WeightedRoundRobin", discovery.WeightedRoundRobin()},
		{"P2C", discovery.P2C()},
		{"ConsistentHashHeader", discovery.ConsistentHash(discovery.HeaderKey("X-User"))},
		{"ConsistentHashCookie", discovery.ConsistentHash(discovery.CookieKey("sid"))},
	} {
		for _, n := range []int{3, 16} {
			ws := make([]int, n)
			for i := range ws {
				ws[i] = i%3 + 1
			}
			pk := bb.bal.NewPicker(endpoints(n, ws...))
			b.Run(fmt.Sprintf("%s/n=%d", bb.name, n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if pk.Pick(r) == nil {
							b.Fatal("nil pick")
						}
					}
				})
			})
		}
	}
}
