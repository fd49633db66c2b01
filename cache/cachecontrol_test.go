package cache_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gatewaykit/gatewaykit/cache"
)

func TestParseCacheControl(t *testing.T) {
	type want struct {
		noStore, noCache, private, public, mustRevalidate bool
		maxAge, sMaxAge, swr                              int64
		noCacheFields, privateFields                      []string
	}
	def := func(w want) want {
		return w
	}
	tests := []struct {
		in   []string
		want want
	}{
		{nil, def(want{maxAge: -1, sMaxAge: -1, swr: -1})},
		{[]string{"max-age=60"}, want{maxAge: 60, sMaxAge: -1, swr: -1}},
		{[]string{"MAX-AGE=60, S-MaxAge=10"}, want{maxAge: 60, sMaxAge: 10, swr: -1}},
		{[]string{"max-age=60", "max-age=30"}, want{maxAge: 30, sMaxAge: -1, swr: -1}},
		{[]string{`max-age="60"`}, want{maxAge: 60, sMaxAge: -1, swr: -1}},
		{[]string{"max-age=abc"}, want{maxAge: 0, sMaxAge: -1, swr: -1}},
		{[]string{"max-age=-5"}, want{maxAge: 0, sMaxAge: -1, swr: -1}},
		{[]string{"max-age=99999999999999999999999"}, want{maxAge: 1 << 31, sMaxAge: -1, swr: -1}},
		{[]string{"no-store"}, want{noStore: true, maxAge: -1, sMaxAge: -1, swr: -1}},
		{[]string{" , no-cache ,, private, public"}, want{noCache: true, private: true, public: true, maxAge: -1, sMaxAge: -1, swr: -1}},
		{[]string{`no-cache="set-cookie, x-a", private="x-b"`}, want{maxAge: -1, sMaxAge: -1, swr: -1,
			noCacheFields: []string{"Set-Cookie", "X-A"}, privateFields: []string{"X-B"}}},
		{[]string{`private="a\"b", max-age=5`}, want{maxAge: 5, sMaxAge: -1, swr: -1}},
		{[]string{"must-revalidate, stale-while-revalidate=30"}, want{mustRevalidate: true, maxAge: -1, sMaxAge: -1, swr: 30}},
		{[]string{"proxy-revalidate"}, want{mustRevalidate: true, maxAge: -1, sMaxAge: -1, swr: -1}},
		{[]string{`ext="a,b", max-age=7`}, want{maxAge: 7, sMaxAge: -1, swr: -1}},
		{[]string{`="x", =, max-age=1`}, want{maxAge: 1, sMaxAge: -1, swr: -1}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, "|"), func(t *testing.T) {
			var g want
			g.noStore, g.noCache, g.private, g.public, g.mustRevalidate, g.maxAge, g.sMaxAge, g.swr, g.noCacheFields, g.privateFields =
				cache.ParseCacheControl(tt.in).Fields()
			if !reflect.DeepEqual(g, tt.want) {
				t.Fatalf("got %+v\nwant %+v", g, tt.want)
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", "no-store, private", `no-cache="a, b"`, `x="\`, "s-maxage=1,max-age=2",
		"stale-while-revalidate=99999999999999999999", `private="`, ",,=,", "max-age=60, no-store"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		noStore, _, _, _, _, maxAge, sMaxAge, swr, ncf, pf := cache.ParseCacheControl([]string{s}).Fields()
		for _, v := range []int64{maxAge, sMaxAge, swr} {
			if v < -1 || v > 1<<31 {
				t.Fatalf("delta %d out of range for %q", v, s)
			}
		}
		for _, f := range append(ncf, pf...) {
			if f == "" || strings.ContainsAny(f, " \t,\"") {
				t.Fatalf("bad field name %q from %q", f, s)
			}
		}
		// A no-store directive is never lost, whatever follows it.
		if !noStore {
			if n2, _, _, _, _, _, _, _, _, _ := cache.ParseCacheControl([]string{s + ", no-store"}).Fields(); !n2 && !strings.Contains(s, `"`) {
				t.Fatalf("no-store after %q was lost", s)
			}
		}
	})
}
